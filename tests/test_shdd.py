"""Tests of the SHDD codec (locdiff.shdd) against pyshtools, scipy and closed forms.

Oracles:
  * pyshtools.expand.spharm(..., normalization='ortho', csphase=1): real orthonormal harmonics
    without the Condon-Shortley phase, arranged [cos/sin, l, |m|].
  * scipy.special.sph_harm_y(l, m, theta, phi): complex harmonics *with* the Condon-Shortley phase;
    the real ones without it are  m > 0: √2 (-1)^m Re Y_l^m,  m < 0: √2 (-1)^|m| Im Y_l^|m|,
    m = 0: Re Y_l^0  (checked against pyshtools in test_oracles_agree).
  * addition theorem, Legendre sums (scipy.special.eval_legendre), Gauss-Legendre quadrature.
Near the poles pyshtools is a poor oracle: it derives sin θ from cos θ, losing relative accuracy
~1e-16/θ² (errors of 2e-9 at L = 64, 1e-4° from a pole; exactly 0 for Y_{l,±1} within ~1e-7°,
where cos θ rounds to 1). Points near the poles are therefore checked with scipy, which takes θ.
"""
from __future__ import annotations

import math

import numpy as np
import pyshtools as pysh
import pytest
import scipy.special as sps
import torch
from scipy.optimize import brentq

from conftest import degree_order as _lm
from conftest import scipy_basis

from locdiff import shdd

FOUR_PI = 4 * math.pi


# --------------------------------------------------------------------------- oracles
def pysh_basis(L, lat, lon):
    """[n, (L+1)²] real harmonics from pyshtools, flat index l² + l + m."""
    ls, ms = _lm(L)
    rows = []
    for a, b in zip(np.atleast_1d(lat), np.atleast_1d(lon)):
        Y = pysh.expand.spharm(L, 90.0 - a, b, normalization="ortho", csphase=1, degrees=True)
        rows.append(Y[(ms < 0).astype(int), ls, np.abs(ms)])
    return np.array(rows)


def to_cilm(a, L):
    """Flat coefficient vector -> pyshtools array [2, L+1, L+1]."""
    cilm = np.zeros((2, L + 1, L + 1))
    for l in range(L + 1):
        for m in range(l + 1):
            cilm[0, l, m] = a[l * l + l + m]
            if m > 0:
                cilm[1, l, m] = a[l * l + l - m]
    return cilm


def pysh_field(a, L, lat, lon):
    """Σ a_i Y_i at points, by pyshtools' own synthesis (SHCoeffs.expand at points)."""
    coeffs = pysh.SHCoeffs.from_array(to_cilm(np.asarray(a, dtype=np.float64), L), normalization="ortho", csphase=1)
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    return np.asarray(coeffs.expand(lat=lat.ravel(), lon=lon.ravel(), degrees=True)).reshape(lat.shape)


def cos_angle(lat1, lon1, lat2, lon2):
    """cos of the great-circle angle, spherical law of cosines."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    return np.clip(np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(np.radians(lon2 - lon1)), -1, 1)


def point_field(L, cosg):
    """Closed form of one point's field: Σ_l (2l+1)/(4π) P_l(cos γ)."""
    l = np.arange(L + 1)[:, None]
    return np.sum((2 * l + 1) / FOUR_PI * sps.eval_legendre(l, np.atleast_1d(cosg)[None]), 0)


def _test_points(n_random, seed):
    """Random points plus both poles and the antimeridian (lon = -180 and +180)."""
    rng = np.random.default_rng(seed)
    lat = np.concatenate([[90.0, -90.0, 0.0, 0.0, 37.5, -61.25, 85.0, -88.0],
                          np.degrees(np.arcsin(rng.uniform(-1, 1, n_random)))])
    lon = np.concatenate([[0.0, 0.0, -180.0, 180.0, 180.0, -180.0, 12.0, -170.0],
                          rng.uniform(-180, 180, n_random)])
    return lat, lon


# points within 1e-2 .. 1e-12 degrees of a pole (checked with scipy, see the module docstring)
NEAR_POLE_LAT = np.array([89.99, -89.999, 89.9999, 90 - 1e-7, -90 + 1e-7, 90 - 1e-9, -90 + 1e-12, 90 - 1e-12])
NEAR_POLE_LON = np.array([12.0, -170.0, 180.0, 180.0, -180.0, 33.0, -77.0, 5.0])


# --------------------------------------------------------------------------- encoder vs oracles
@pytest.fixture(params=["compiled", "torch"])
def encode_path(request, monkeypatch):
    """Run a test through both no-grad CPU paths of encode: the numba kernel and the torch one."""
    if request.param == "torch":
        monkeypatch.setattr(shdd.sh_cpu, "available", lambda: False)
    elif not shdd.sh_cpu.available():
        pytest.skip("numba is not installed")
    return request.param


def test_oracles_agree():
    """The scipy -> real conversion used below reproduces pyshtools' csphase=1 harmonics."""
    lat, lon = _test_points(10, seed=11)
    np.testing.assert_allclose(scipy_basis(20, lat, lon), pysh_basis(20, lat, lon), atol=1e-12)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_encode_matches_pyshtools(dtype, atol, encode_path):
    L = 64
    lat, lon = _test_points(22, seed=0)                       # 30 points
    got = shdd.encode(lat, lon, L, dtype=dtype)
    assert got.dtype == dtype and got.shape == (30, (L + 1) ** 2)
    ref = pysh_basis(L, lat, lon)
    err = np.abs(got.double().numpy() - ref)
    assert err.max() <= atol, f"max |encode - pyshtools| = {err.max():.3g} at flat index {err.max(0).argmax()}"
    # every degree up to 64 (not only the total): per-degree max error
    ls, _ = _lm(L)
    per_degree = np.array([err[:, ls == l].max() for l in range(L + 1)])
    assert np.all(per_degree <= atol)


def test_encode_matches_scipy_including_near_poles(encode_path):
    L = 64
    lat, lon = _test_points(21, seed=1)
    lat, lon = np.concatenate([lat, NEAR_POLE_LAT]), np.concatenate([lon, NEAR_POLE_LON])
    got = shdd.encode(lat, lon, L, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, scipy_basis(L, lat, lon), atol=1e-10, rtol=0)
    got32 = shdd.encode(lat, lon, L).numpy()
    np.testing.assert_allclose(got32, scipy_basis(L, lat, lon), atol=1e-5, rtol=0)


def test_encode_many_points_and_shapes_match_scipy(sphere_points, encode_path):
    """Thousands of points (the chunked, threaded fast path) and N-d shapes keep every value right."""
    L = 40
    lat, lon = sphere_points(2500, seed=21)
    lat[:4], lon[:4] = [90.0, -90.0, 12.0, -12.0], [0.0, 0.0, 180.0, -180.0]
    ref = scipy_basis(L, lat, lon)
    got = shdd.encode(lat, lon, L, dtype=torch.float64)
    assert got.shape == (2500, (L + 1) ** 2)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10, rtol=0)
    np.testing.assert_allclose(shdd.encode(lat, lon, L).double().numpy(), ref, atol=1e-5, rtol=0)
    # [50, 50] points -> [50, 50, D], each row the same point's harmonics
    got2 = shdd.encode(lat.reshape(50, 50), lon.reshape(50, 50), L, dtype=torch.float64)
    assert got2.shape == (50, 50, (L + 1) ** 2)
    np.testing.assert_allclose(got2.reshape(2500, -1).numpy(), ref, atol=1e-10, rtol=0)
    # broadcasting [2, 1] x [3] -> [2, 3, D]
    la, lo = np.array([[10.0], [-50.0]]), np.array([0.0, 100.0, -180.0])
    got3 = shdd.encode(la, lo, L, dtype=torch.float64)
    LA, LO = np.broadcast_arrays(la, lo)
    np.testing.assert_allclose(got3.numpy(), scipy_basis(L, LA.ravel(), LO.ravel()).reshape(2, 3, -1), atol=1e-10)


def test_encode_threads_split_points_exactly(sphere_points):
    """The compiled kernel on several threads (contiguous slices of points) gives every row right."""
    if not shdd.sh_cpu.available():
        pytest.skip("numba is not installed")
    L = 6
    n = 3 * shdd.sh_cpu.MIN_VALUES_PER_THREAD // (L + 1) ** 2 + 5       # three slices, ragged blocks
    lat, lon = sphere_points(n, seed=23)
    z, s = np.sin(np.radians(lat)), np.cos(np.radians(lat))
    T = shdd._tables(L, "cpu", torch.float64)
    args = (T.a.numpy(), T.b.numpy(), T.sect.numpy(), torch.float64)
    got = shdd.sh_cpu.basis(z, s, np.radians(lon), L, *args, threads=3)
    np.testing.assert_allclose(got, scipy_basis(L, lat, lon), atol=1e-12, rtol=0)
    one = shdd.sh_cpu.basis(z[:7], s[:7], np.radians(lon[:7]), L, *args, threads=3)   # too few to split
    np.testing.assert_array_equal(one, got[:7])


def test_encode_differentiable_path_matches_scipy():
    """Inputs that require grad take the autograd path: its values must match the oracle too."""
    L = 32
    lat, lon = _test_points(12, seed=22)
    tlat = torch.tensor(lat, requires_grad=True)
    y = shdd.encode(tlat, torch.tensor(lon), L)
    assert y.requires_grad and y.dtype == torch.float64
    np.testing.assert_allclose(y.detach().numpy(), scipy_basis(L, lat, lon), atol=1e-10, rtol=0)


def test_encode_L256_float64_finite_and_accurate(encode_path):
    L = 256
    lat, lon = _test_points(6, seed=2)
    lat, lon = np.concatenate([lat, NEAR_POLE_LAT[:3]]), np.concatenate([lon, NEAR_POLE_LON[:3]])
    got = shdd.encode(lat, lon, L, dtype=torch.float64).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, pysh_basis(L, lat, lon), atol=1e-6, rtol=0)
    near = shdd.encode(NEAR_POLE_LAT, NEAR_POLE_LON, L, dtype=torch.float64).numpy()
    assert np.isfinite(near).all()
    np.testing.assert_allclose(near, scipy_basis(L, NEAR_POLE_LAT, NEAR_POLE_LON), atol=1e-9, rtol=0)


def test_pole_values_closed_form():
    """At the poles only m = 0 survives: Y_l0(N) = sqrt((2l+1)/4π), Y_l0(S) = (-1)^l sqrt((2l+1)/4π)."""
    L = 256
    ls, ms = _lm(L)
    got = shdd.encode(np.array([90.0, -90.0]), np.array([0.0, 0.0]), L, dtype=torch.float64).numpy()
    north = np.where(ms == 0, np.sqrt((2 * ls + 1) / FOUR_PI), 0.0)
    np.testing.assert_allclose(got[0], north, atol=1e-12, rtol=1e-12)
    np.testing.assert_allclose(got[1], north * (-1.0) ** ls, atol=1e-12, rtol=1e-12)


def test_addition_theorem():
    """Σ_m Y_lm(x) Y_lm(y) = (2l+1)/(4π) P_l(x·y), every l <= 64."""
    L = 64
    lat1, lon1 = _test_points(25, seed=3)
    rng = np.random.default_rng(4)
    lat2, lon2 = np.degrees(np.arcsin(rng.uniform(-1, 1, lat1.size))), rng.uniform(-180, 180, lat1.size)
    # include identical and antipodal pairs
    lat2[:3], lon2[:3] = lat1[:3], lon1[:3]
    lat2[3:6], lon2[3:6] = -lat1[3:6], lon1[3:6] + 180.0
    Y1 = shdd.encode(lat1, lon1, L, dtype=torch.float64).numpy()
    Y2 = shdd.encode(lat2, lon2, L, dtype=torch.float64).numpy()
    ls, _ = _lm(L)
    prod = Y1 * Y2
    got = np.stack([prod[:, ls == l].sum(1) for l in range(L + 1)], 1)            # [n, L+1]
    cg = cos_angle(lat1, lon1, lat2, lon2)
    l = np.arange(L + 1)[None]
    ref = (2 * l + 1) / FOUR_PI * sps.eval_legendre(l, cg[:, None])
    np.testing.assert_allclose(got, ref, atol=1e-10, rtol=0)


def test_orthonormality_by_quadrature():
    """∫ Y_i Y_j dΩ = δ_ij, exact with Gauss-Legendre in cos θ and 2L+2 equispaced longitudes."""
    L = 24
    x, w = np.polynomial.legendre.leggauss(L + 2)
    nlon = 2 * L + 2
    lon = -180.0 + 360.0 * np.arange(nlon) / nlon
    LAT, LON = np.meshgrid(np.degrees(np.arcsin(x)), lon, indexing="ij")
    W = (w[:, None] * np.full(nlon, 2 * np.pi / nlon)[None]).ravel()
    Y = shdd.encode(LAT.ravel(), LON.ravel(), L, dtype=torch.float64).numpy()
    gram = Y.T @ (W[:, None] * Y)
    np.testing.assert_allclose(gram, np.eye((L + 1) ** 2), atol=1e-12)


def test_antimeridian_and_poles_encode_identically():
    L = 64
    lat = np.array([0.0, 45.0, -72.5, 89.0])
    for other in (180.0, 540.0, -540.0):
        a = shdd.encode(lat, np.full(4, -180.0), L, dtype=torch.float64)
        b = shdd.encode(lat, np.full(4, other), L, dtype=torch.float64)
        assert torch.equal(a, b)
    for pole in (90.0, -90.0):
        lons = np.array([-180.0, -90.0, 0.0, 33.3, 120.0, 179.999, 180.0])
        Y = shdd.encode(np.full(lons.size, pole), lons, L, dtype=torch.float64)
        assert (Y - Y[0]).abs().max().item() <= 1e-12


def test_encode_dtype_and_shape():
    L = 5
    D = (L + 1) ** 2
    e = shdd.encode(np.zeros((2, 3)), np.zeros((1, 3)), L)
    assert e.dtype == torch.float32 and e.shape == (2, 3, D)
    assert shdd.encode(10.0, 20.0, L).shape == (D,)
    assert shdd.encode([10.0, 20.0], 30.0, L).shape == (2, D)
    assert shdd.encode(np.zeros(4), np.zeros(4), L, dtype=torch.float64).dtype == torch.float64
    assert shdd.encode(torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), L).dtype == torch.float64
    assert shdd.encode(torch.zeros(4, dtype=torch.float64), 0.0, L).dtype == torch.float64
    assert shdd.encode(torch.zeros(4), torch.zeros(4), L).dtype == torch.float32
    assert shdd.encode(0.0, 0.0, 0).shape == (1,)
    assert shdd.encode(0.0, 0.0, np.int64(3)).shape == (16,)
    # Y_00 is the constant 1/sqrt(4π)
    assert shdd.encode(-33.0, 151.0, 0, dtype=torch.float64).item() == pytest.approx(1 / math.sqrt(FOUR_PI), rel=1e-15)


def test_encode_gradcheck():
    lat = torch.tensor([10.0, -35.0, 60.0, 0.0], dtype=torch.float64, requires_grad=True)
    lon = torch.tensor([20.0, 170.0, -100.0, -179.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: shdd.encode(a, b, 6), (lat, lon))
    # and the gradient is the oracle's: dY/dlat by central differences of scipy's harmonics
    lat0, lon0 = torch.tensor(25.0, dtype=torch.float64, requires_grad=True), torch.tensor(40.0, dtype=torch.float64)
    y = shdd.encode(lat0, lon0, 6)
    (g,) = torch.autograd.grad(y.sum(), lat0)
    h = 1e-5
    fd = (scipy_basis(6, 25.0 + h, 40.0) - scipy_basis(6, 25.0 - h, 40.0)).sum() / (2 * h)
    assert g.item() == pytest.approx(fd, rel=1e-7, abs=1e-9)


# --------------------------------------------------------------------------- decoder
@pytest.mark.parametrize("L", [8, 16, 32, 64, 128])
def test_decode_clean_encodings(L, haversine, sphere_points):
    lat, lon = sphere_points(10_000, seed=100 + L)
    lat = np.concatenate([lat, [90.0, -90.0, 0.0, 0.0, 30.0, -45.0, 89.9999, -89.99, 70.0, -70.0]])
    lon = np.concatenate([lon, [0.0, 0.0, -180.0, 180.0, -180.0, 180.0, 180.0, -180.0, 179.9, -179.9]])
    la, lo, val = shdd.decode(shdd.encode(lat, lon, L))
    assert la.shape == lo.shape == val.shape == (lat.size, 1)
    la, lo = la[:, 0].numpy(), lo[:, 0].numpy()
    assert np.all(np.abs(la) <= 90) and np.all((lo >= -180) & (lo < 180))
    d = haversine(lat, lon, la, lo)
    print(f"\n[decode L={L}] n={d.size} median error {np.median(d):.3g} km, max {d.max():.3g} km")
    assert np.median(d) <= 0.05
    assert d.max() <= 1.0, f"worst point ({lat[d.argmax()]}, {lon[d.argmax()]}) decoded {d.max():.3g} km away"


@pytest.mark.parametrize("L", [16, 32, 64])
def test_decode_mixture_of_two_points(L, haversine, dest_point, sphere_points):
    n = 1000
    rng = np.random.default_rng(L)
    lat1, lon1 = sphere_points(n, seed=200 + L)
    dmin = 3 * 20000 / L
    dist = rng.uniform(dmin, 19000.0, n)
    dist[: n // 4] = dmin                                    # exactly the minimum separation
    lat2, lon2 = dest_point(lat1, lon1, rng.uniform(0, 360, n), dist)
    np.testing.assert_allclose(haversine(lat1, lon1, lat2, lon2), dist, atol=1e-6)   # oracle sanity
    c = 0.5 * (shdd.encode(lat1, lon1, L, dtype=torch.float64) + shdd.encode(lat2, lon2, L, dtype=torch.float64))
    la, lo, val = shdd.decode(c, k=2)
    assert la.shape == (n, 2)
    la, lo = la.numpy(), lo.numpy()
    straight = np.stack([haversine(la[:, 0], lo[:, 0], lat1, lon1), haversine(la[:, 1], lo[:, 1], lat2, lon2)])
    swapped = np.stack([haversine(la[:, 0], lo[:, 0], lat2, lon2), haversine(la[:, 1], lo[:, 1], lat1, lon1)])
    err = np.where(straight.max(0) <= swapped.max(0), straight, swapped)          # best assignment
    at_min = err[:, : n // 4]
    print(f"\n[mixture L={L}] min separation {dmin:.0f} km: bias median {np.median(err):.3g} km, "
          f"max {err.max():.3g} km (at exactly the minimum separation: median {np.median(at_min):.3g}, "
          f"max {at_min.max():.3g})")
    assert err.max() <= 25.0


def test_decode_shapes_order_and_dtypes(haversine):
    L = 32
    pts = np.array([[40.0, -100.0], [-20.0, 30.0], [10.0, 150.0]])
    w = np.array([0.5, 0.3, 0.2])
    Y = shdd.encode(pts[:, 0], pts[:, 1], L, dtype=torch.float64)
    mix = (torch.tensor(w)[:, None] * Y).sum(0)                 # 1-D [D]
    la, lo, val = shdd.decode(mix, k=3)
    assert la.shape == lo.shape == val.shape == (3,)
    assert la.dtype == lo.dtype == torch.float64 and val.dtype == torch.float64
    assert bool((val[:-1] > val[1:]).all())                     # sorted, highest first
    # the heaviest component gives the highest mode, and so on
    np.testing.assert_array_less(haversine(la.numpy(), lo.numpy(), pts[:, 0], pts[:, 1]), 25.0)
    # k = 1 on a 1-D vector -> shape [1]; numpy float32 input works
    la1, lo1, v1 = shdd.decode(Y[0].float().numpy())
    assert la1.shape == (1,) and haversine(la1.numpy(), lo1.numpy(), 40.0, -100.0)[0] < 1.0
    # batch [N, D] in float64 -> [N, k]
    la2, lo2, v2 = shdd.decode(Y, k=2)
    assert la2.shape == lo2.shape == v2.shape == (3, 2) and v2.dtype == torch.float64
    assert bool((v2[:, 0] >= v2[:, 1]).all())
    np.testing.assert_array_less(haversine(la2[:, 0].numpy(), lo2[:, 0].numpy(), pts[:, 0], pts[:, 1]), 1e-3)
    # the mode value of one point's smoothed field is below the unsmoothed peak (L+1)²/(4π)
    assert bool((v2[:, 0] <= (L + 1) ** 2 / FOUR_PI).all())


# --------------------------------------------------------------------------- fields
def test_field_matches_direct_sum():
    L = 12
    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, (L + 1) ** 2))
    lat, lon = _test_points(15, seed=6)
    f = shdd.field(torch.tensor(a), lat, lon)
    assert f.shape == (3, lat.size) and f.dtype == torch.float64
    np.testing.assert_allclose(f.numpy(), a @ scipy_basis(L, lat, lon).T, atol=1e-11)
    np.testing.assert_allclose(f.numpy()[1], pysh_field(a[1], L, lat, lon), atol=1e-10)
    # 1-D coeffs drop the leading axis; float32 in -> float32 out
    f1 = shdd.field(torch.tensor(a[0], dtype=torch.float32), lat, lon)
    assert f1.shape == (lat.size,) and f1.dtype == torch.float32
    np.testing.assert_allclose(f1.double().numpy(), pysh_field(a[0], L, lat, lon), atol=1e-4)
    # broadcasting points: [2, 1] x [3] -> [N, 2, 3]
    f2 = shdd.field(torch.tensor(a), np.array([[10.0], [-20.0]]), np.array([0.0, 90.0, -180.0]))
    assert f2.shape == (3, 2, 3)
    # linear in the coefficients: d f(y) / d a = Y(y), the oracle's basis
    at = torch.tensor(a[0], requires_grad=True)
    (g,) = torch.autograd.grad(shdd.field(at, 17.0, -33.0), at)
    np.testing.assert_allclose(g.numpy(), scipy_basis(L, 17.0, -33.0)[0], atol=1e-12)


def test_field_numpy_float64_coeffs_keep_float64():
    """field: 'same dtype as coeffs; computed in float64' - numpy float64 coefficients included."""
    L = 16
    c = shdd.encode(10.0, 20.0, L, dtype=torch.float64).numpy()
    assert c.dtype == np.float64
    f = shdd.field(c, 10.0, 20.0)
    assert f.dtype == torch.float64, f"field(numpy float64 coeffs) returned {f.dtype}"
    assert f.item() == pytest.approx((L + 1) ** 2 / FOUR_PI, abs=1e-10)


def test_field_grid_equals_field_at_meshgrid():
    L = 10
    rng = np.random.default_rng(7)
    a = torch.tensor(rng.normal(size=(2, (L + 1) ** 2)))
    lat_axis = np.array([90.0, 61.0, 0.5, -12.0, -90.0])
    lon_axis = np.array([-180.0, -3.0, 44.0, 179.5, 180.0, 300.0])
    fg = shdd.field(a, lat_axis, lon_axis, grid=True)
    assert fg.shape == (2, 5, 6) and fg.dtype == torch.float64
    LAT, LON = np.meshgrid(lat_axis, lon_axis, indexing="ij")
    np.testing.assert_allclose(fg.numpy(), shdd.field(a, LAT, LON).numpy(), atol=1e-12)
    oracle = (scipy_basis(L, LAT.ravel(), LON.ravel()) @ a.numpy().T).T.reshape(2, 5, 6)
    np.testing.assert_allclose(fg.numpy(), oracle, atol=1e-11)
    assert shdd.field(a[0], lat_axis, lon_axis, grid=True).shape == (5, 6)


def _grid_oracle(L, G, a):
    LAT, LON = np.meshgrid(G.lat.double().numpy(), G.lon.double().numpy(), indexing="ij")
    return pysh_field(a, L, LAT, LON)


def test_grid_synthesize_float32_matches_field():
    L = 16
    rng = np.random.default_rng(8)
    a = rng.normal(size=(L + 1) ** 2)
    G = shdd.grid(L)
    assert G.dtype == torch.float32
    f = G.synthesize(torch.tensor(a, dtype=torch.float32)[None])[0]
    assert f.shape == (G.nlat, G.nlon) and f.dtype == torch.float32
    ref = _grid_oracle(L, G, a)
    np.testing.assert_allclose(f.double().numpy(), ref, atol=1e-5 * np.abs(ref).max())
    fld = shdd.field(torch.tensor(a), G.lat, G.lon, grid=True).numpy()
    np.testing.assert_allclose(f.double().numpy(), fld, atol=1e-5 * np.abs(ref).max())


def test_grid_synthesize_float64_is_float64_accurate():
    """A float64 Grid should synthesize to float64 accuracy (like field does)."""
    L = 16
    rng = np.random.default_rng(9)
    a = rng.normal(size=(L + 1) ** 2)
    G = shdd.grid(L, dtype=torch.float64)
    f = G.synthesize(torch.tensor(a)[None])[0]
    assert f.dtype == torch.float64
    err = np.abs(f.numpy() - _grid_oracle(L, G, a)).max()
    assert err <= 1e-10, f"float64 Grid.synthesize is off by {err:.3g} (float32-level)"


@pytest.mark.parametrize("L", [8, 32, 64])
def test_single_point_field_closed_form(L):
    lat0, lon0 = 23.5, -170.0
    c = shdd.encode(lat0, lon0, L, dtype=torch.float64)
    assert shdd.field(c, lat0, lon0).item() == pytest.approx((L + 1) ** 2 / FOUR_PI, rel=1e-12)
    assert shdd.peak_value(L) == pytest.approx((L + 1) ** 2 / FOUR_PI, rel=1e-15)
    lat, lon = _test_points(40, seed=10 + L)
    got = shdd.field(c, lat, lon).numpy()
    np.testing.assert_allclose(got, point_field(L, cos_angle(lat0, lon0, lat, lon)), atol=1e-10)
    # the peak is the maximum over a fine neighbourhood
    ring = shdd.field(c, lat0 + np.array([0.01, -0.01, 0.0, 0.0]), lon0 + np.array([0.0, 0.0, 0.01, -0.01])).numpy()
    assert np.all(ring < (L + 1) ** 2 / FOUR_PI)


# --------------------------------------------------------------------------- densities
@pytest.mark.parametrize("method", ["softmax", "clamp"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_density_normalized_and_positive(method, dtype, tol):
    L = 16
    lat = np.array([10.0, -20.0, 90.0])
    lon = np.array([30.0, -180.0, 0.0])
    c = shdd.encode(lat, lon, L, dtype=dtype)
    c = torch.cat([c, 0.5 * (c[:1] + c[1:2])])                  # and a two-point mixture
    p, G = shdd.density(c, method=method)
    assert p.shape == (4, G.nlat, G.nlon) and p.dtype == dtype
    assert G.weights.sum().item() == pytest.approx(FOUR_PI, rel=1e-12)
    assert bool((G.weights > 0).all())
    # exact cell areas of the equiangular grid: 2π/W (cos θ_top - cos θ_bottom)
    edges = np.cos(np.pi * np.arange(G.nlat + 1) / G.nlat)
    np.testing.assert_allclose(G.weights[:, 0].double().numpy(), (edges[:-1] - edges[1:]) * 2 * np.pi / G.nlon, rtol=1e-12)
    total = (p.double() * G.weights.double()).sum((1, 2)).numpy()
    np.testing.assert_allclose(total, 1.0, atol=tol)
    assert bool((p > 0).all())
    p1, _ = shdd.density(c[0], method=method)
    assert p1.shape == (G.nlat, G.nlon)


def test_density_softmax_argmax_at_nearest_cell(haversine):
    L = 32
    lat, lon = _test_points(12, seed=12)
    c = shdd.encode(lat, lon, L, dtype=torch.float64)
    p, G = shdd.density(c)
    LAT, LON = np.meshgrid(G.lat.numpy(), G.lon.numpy(), indexing="ij")
    for i in range(lat.size):
        j = int(p[i].argmax())
        d_cells = haversine(lat[i], lon[i], LAT.ravel(), LON.ravel())
        assert d_cells[j] <= d_cells.min() + 1e-6, (
            f"point ({lat[i]}, {lon[i]}): argmax cell at {d_cells[j]:.3f} km, nearest cell at {d_cells.min():.3f} km")


@pytest.mark.parametrize("L", [16, 32, 64, 128, 256])
def test_peak_half_width(L):
    half = (L + 1) ** 2 / FOUR_PI / 2
    gamma = brentq(lambda g: point_field(L, math.cos(g))[0] - half, 1e-9, 3.0 / (L + 1), xtol=1e-14)
    assert shdd.peak_half_width(L) == pytest.approx(gamma, rel=0.02)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("lat,lon,name", [(90.5, 0.0, "lat"), (-91.0, 0.0, "lat"), (math.nan, 0.0, "lat"),
                                          (math.inf, 0.0, "lat"), (0.0, math.nan, "lon"), (0.0, -math.inf, "lon")])
def test_encode_rejects_bad_coordinates(lat, lon, name):
    for as_tensor in (False, True):
        la = torch.tensor([0.0, lat]) if as_tensor else np.array([0.0, lat])
        lo = torch.tensor([0.0, lon]) if as_tensor else np.array([0.0, lon])
        with pytest.raises(ValueError, match=rf"\b{name}\b") as err:
            shdd.encode(la, lo, 4)
        if name == "lat" and math.isfinite(lat):
            assert "[-90, 90]" in str(err.value)


@pytest.mark.parametrize("L", [-1, 2.5, True, "3", None])
def test_encode_rejects_bad_degree(L):
    with pytest.raises(ValueError, match=r"\bL\b"):
        shdd.encode(0.0, 0.0, L)


@pytest.mark.parametrize("n", [0, 2, 5, 10, 24])
def test_coefficient_length_must_be_square(n):
    for call in (lambda c: shdd.decode(c), lambda c: shdd.field(c, 0.0, 0.0), lambda c: shdd.density(c)):
        for c in (torch.zeros(n), torch.zeros(3, n), np.zeros(n)):
            with pytest.raises(ValueError, match="coeffs"):
                call(c)


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_decode_rejects_bad_k(k):
    with pytest.raises(ValueError, match=r"\bk\b"):
        shdd.decode(shdd.encode(0.0, 0.0, 8), k=k)


def test_decode_rejects_degree_zero_and_nonfinite():
    with pytest.raises(ValueError, match="coeffs"):
        shdd.decode(torch.ones(1))
    c = shdd.encode(0.0, 0.0, 4)
    c[3] = math.nan
    for call in (shdd.decode, lambda x: shdd.field(x, 0.0, 0.0), shdd.density):
        with pytest.raises(ValueError, match="coeffs"):
            call(c)
