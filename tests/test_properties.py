"""Property-based tests (hypothesis) of ``locdiff.geo`` and ``locdiff.shdd`` over random and edge-case
coordinates: the poles, the antimeridian, longitudes far outside [-180, 180), NaN and inf.

Every property is checked against an independent oracle: plain-numpy formulas written here (the
chord length of the unit vectors, the closed form of two points on one parallel), scipy's complex
spherical harmonics (``scipy_basis`` of tests/conftest.py), scipy's Legendre polynomials, or
exact closed forms at the poles; never against locdiff's own earlier output.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sps
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import R_KM, scipy_basis
from conftest import degree_order as _lm

from locdiff import geo, shdd

FOUR_PI = 4 * math.pi
# a few hundred examples of each cheap property, tens of the costly ones: the file runs in seconds
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies
EDGE_LATS = [90.0, -90.0, 0.0, 89.9999999, -89.9999999, 1e-300, -45.0]
EDGE_LONS = [180.0, -180.0, 179.9, -179.9, 0.0, -0.0, 360.0, 540.0, -540.0, 719.5, 1e6, -1e6, 123456.789]

lats = st.one_of(st.sampled_from(EDGE_LATS), st.floats(-90.0, 90.0, allow_nan=False))
lons_small = st.one_of(st.sampled_from(EDGE_LONS[:6]), st.floats(-180.0, 180.0, allow_nan=False))
lons = st.one_of(st.sampled_from(EDGE_LONS), st.floats(-1e6, 1e6, allow_nan=False))
points = st.tuples(lats, lons)


def unit_xyz(lat, lon) -> np.ndarray:
    """Unit vectors from degrees, plain numpy (the oracle's own conversion)."""
    p, l = np.radians(np.asarray(lat, np.float64)), np.radians(np.asarray(lon, np.float64))
    return np.stack([np.cos(p) * np.cos(l), np.cos(p) * np.sin(l), np.sin(p)], -1)


def chord_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance from the chord c = |a - b| of the unit vectors: d = 2R asin(c/2)."""
    c = np.linalg.norm(unit_xyz(lat1, lon1) - unit_xyz(lat2, lon2), axis=-1)
    return 2 * R_KM * np.arcsin(np.clip(c / 2, 0.0, 1.0))


def wrap_oracle(lon: float) -> float:
    """lon wrapped into [-180, 180) with Python's float remainder (exact for any finite float)."""
    w = math.fmod(lon, 360.0)
    w = w - 360.0 if w >= 180.0 else w + 360.0 if w < -180.0 else w
    return w - 360.0 if w >= 180.0 else w


# ----------------------------------------------------------------------------- geo: distances
@FAST
@given(points, points)
def test_distance_symmetric_bounded_and_equal_to_the_chord_formula(p, q):
    """d(p, q) = d(q, p), 0 <= d <= πR, and d = 2R asin(|a - b| / 2) (chord oracle, to 1 m)."""
    d = float(geo.distance_km(*p, *q))
    assert d == float(geo.distance_km(*q, *p))
    assert 0.0 <= d <= math.pi * R_KM + 1e-9
    # the oracle sees the wrapped longitude: for |lon| ~ 1e6, cos(radians(lon)) itself loses ~1e-10
    ref = chord_km(p[0], wrap_oracle(p[1]), q[0], wrap_oracle(q[1]))
    assert d == pytest.approx(float(ref), abs=1e-3)


@FAST
@given(points, points, points)
def test_distance_triangle_inequality(p, q, r):
    """d(p, r) <= d(p, q) + d(q, r) on the sphere (to rounding)."""
    d = lambda a, b: float(geo.distance_km(*a, *b))   # noqa: E731
    assert d(p, r) <= d(p, q) + d(q, r) + 1e-6


@FAST
@given(points)
def test_distance_to_itself_is_zero_and_to_the_antipode_is_half_the_circumference(p):
    """d(p, p) = 0; the antipode (-lat, lon + 180) is πR away (also at the poles)."""
    lat, lon = p
    assert float(geo.distance_km(lat, lon, lat, lon)) <= 1e-9
    assert float(geo.distance_km(lat, lon, -lat, lon + 180.0)) == pytest.approx(math.pi * R_KM, abs=1e-6)


@FAST
@given(st.sampled_from([90.0, -90.0]), lons, lons)
def test_every_longitude_names_the_same_pole(pole, lon1, lon2):
    """At lat ±90 the longitude does not matter: the distance between any two is 0 (to 1e-9 km)."""
    assert float(geo.distance_km(pole, lon1, pole, lon2)) <= 1e-9


@FAST
@given(st.floats(-89.0, 89.0), st.floats(1e-6, 5.0))
def test_antimeridian_neighbours_are_close(lat, half):
    """(lat, 180 - h) and (lat, -180 + h) are 2h apart in longitude, not 360 - 2h:
    d = 2R asin(cos(lat) sin(h)) (closed form for two points on one parallel)."""
    d = float(geo.distance_km(lat, 180.0 - half, lat, -180.0 + half))
    ref = 2 * R_KM * math.asin(math.cos(math.radians(lat)) * math.sin(math.radians(half)))
    assert d == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert d <= 2 * half * 111.2 + 1e-6                                   # at most 2h degrees of arc


# ----------------------------------------------------------------------------- geo: coordinates
@FAST
@given(lons)
def test_wrap_lon_lands_in_range_on_the_same_meridian(lon):
    """wrap_lon(λ) lies in [-180, 180) and equals λ - 360k exactly (fmod oracle)."""
    w = float(geo.wrap_lon(lon))
    assert -180.0 <= w < 180.0
    assert w == wrap_oracle(lon)
    if -180.0 <= lon < 180.0:
        assert w == lon                                                   # in range: unchanged


def test_wrap_lon_documented_examples():
    """The examples of docs/INPUT_CHECKS.md: 180 and 540 -> -180, -1e6 -> 80, tensors too."""
    np.testing.assert_array_equal(geo.wrap_lon([180.0, 540.0, -1e6, -180.0, 1e6]), [-180.0, -180.0, 80.0, -180.0, -80.0])
    assert geo.wrap_lon(torch.tensor([-1e6], dtype=torch.float64)).item() == 80.0


@FAST
@given(points)
def test_latlon_xyz_round_trip(p):
    """latlon_to_xyz gives the unit vector of the closed form; xyz_to_latlon returns the point
    (the same latitude, the wrapped longitude; at the poles any longitude names the point)."""
    lat, lon = p
    xyz = np.asarray(geo.latlon_to_xyz(lat, lon))
    np.testing.assert_allclose(xyz, unit_xyz(lat, wrap_oracle(lon)), atol=1e-15, rtol=0)
    assert np.linalg.norm(xyz) == pytest.approx(1.0, abs=1e-15)
    la, lo = geo.xyz_to_latlon(xyz)
    la, lo = float(la), float(lo)
    assert la == pytest.approx(lat, abs=1e-12)
    assert -180.0 <= lo < 180.0
    if abs(lat) < 89.9999:
        angle = abs(wrap_oracle(lo - wrap_oracle(lon)))                 # compare on the circle
        assert angle <= 1e-9 or abs(angle - 360.0) <= 1e-9


@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(3)), elements=st.floats(-1e3, 1e3)))
def test_xyz_to_latlon_normalizes_any_vector(v):
    """A vector and its positive multiples give the same (lat, lon): atan2 of the normalized vector."""
    assume(np.all(np.linalg.norm(v, axis=-1) > 1e-6))
    la, lo = geo.xyz_to_latlon(v)
    la2, lo2 = geo.xyz_to_latlon(7.5 * v)
    np.testing.assert_allclose(la, np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1]))), atol=1e-12)
    np.testing.assert_allclose(la2, la, atol=1e-12)
    np.testing.assert_allclose(np.asarray(geo.distance_km(la, lo, la2, lo2)), 0.0, atol=1e-9)


@FAST
@given(st.lists(points, min_size=1, max_size=6), st.integers(0, 5), st.sampled_from([math.nan, math.inf, -math.inf]),
       st.sampled_from(["lat", "lon"]), st.booleans())
def test_non_finite_coordinates_raise_value_error_naming_the_argument(pts, pos, bad, which, as_tensor):
    """One NaN or inf anywhere in lat or lon: ValueError naming that argument; never a NaN result."""
    lat = np.array([p[0] for p in pts])
    lon = np.array([p[1] for p in pts])
    (lat if which == "lat" else lon)[pos % len(pts)] = bad
    if as_tensor:
        lat, lon = torch.tensor(lat), torch.tensor(lon)
    for call, name in [(lambda: geo.latlon_to_xyz(lat, lon), which),
                       (lambda: geo.distance_km(0.0, 0.0, lat, lon), which + "2"),
                       (lambda: shdd.encode(lat, lon, 3), which)]:
        with pytest.raises(ValueError, match=rf"\b{name}\b.*finite"):
            call()


@FAST
@given(st.one_of(st.floats(90.0, 1e300, exclude_min=True), st.floats(-1e300, -90.0, exclude_max=True)), lons)
def test_latitudes_beyond_the_poles_raise(lat, lon):
    """|lat| > 90 is an error (not wrapped, not clipped), with the allowed range in the message."""
    with pytest.raises(ValueError, match=r"\blat\b.*\[-90, 90\]"):
        geo.latlon_to_xyz(lat, lon)
    with pytest.raises(ValueError, match=r"\blat\b.*\[-90, 90\]"):
        shdd.encode(lat, lon, 2)


# ----------------------------------------------------------------------------- shdd: encoder
@FAST
@given(st.integers(0, 6), st.lists(st.tuples(lats, lons_small), min_size=1, max_size=8))
def test_encode_matches_scipy_real_harmonics(L, pts):
    """encode = real orthonormal Y_lm without the Condon-Shortley phase, from scipy's sph_harm_y."""
    lat = np.array([p[0] for p in pts])
    lon = np.array([p[1] for p in pts])
    got = shdd.encode(lat, lon, L, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, scipy_basis(L, lat, lon), atol=1e-12, rtol=0)


@FAST
@given(st.integers(0, 8), lats, lons, st.integers(-3, 3))
def test_encode_is_periodic_in_longitude(L, lat, lon, k):
    """Y(lat, λ + 360k) = Y(lat, λ) = scipy's Y at the wrapped λ, also for |λ| up to 1e6."""
    lon_k = lon + 360.0 * k
    assume(math.isfinite(lon_k))
    got = shdd.encode(lat, lon_k, L, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, scipy_basis(L, [lat], [wrap_oracle(lon_k)])[0], atol=1e-11, rtol=0)
    np.testing.assert_allclose(got, shdd.encode(lat, lon, L, dtype=torch.float64).numpy(), atol=1e-9, rtol=0)


@FAST
@given(st.integers(0, 32), st.sampled_from([90.0, -90.0]), lons)
def test_encode_at_the_poles_is_the_closed_form_for_any_longitude(L, pole, lon):
    """At the poles only m = 0 survives: Y_l0 = (±1)^l sqrt((2l+1)/4π), every other entry exactly 0."""
    ls, ms = _lm(L)
    got = shdd.encode(pole, lon, L, dtype=torch.float64).numpy()
    sign = 1.0 if pole > 0 else (-1.0) ** ls
    np.testing.assert_allclose(got, np.where(ms == 0, sign * np.sqrt((2 * ls + 1) / FOUR_PI), 0.0), rtol=1e-13, atol=0)
    assert np.all(got[ms != 0] == 0.0)


@FAST
@given(st.integers(0, 24), points, points)
def test_encode_inner_product_is_the_legendre_sum(L, p, q):
    """Y(x)·Y(y) = Σ_l (2l+1)/(4π) P_l(cos γ) (addition theorem; scipy's eval_legendre, cos γ from
    numpy unit vectors); |Y(x)|² = (L+1)²/(4π)."""
    a = shdd.encode(*p, L, dtype=torch.float64).numpy()
    b = shdd.encode(*q, L, dtype=torch.float64).numpy()
    cosg = float(np.clip(unit_xyz(p[0], wrap_oracle(p[1])) @ unit_xyz(q[0], wrap_oracle(q[1])), -1.0, 1.0))
    l = np.arange(L + 1)
    ref = float(np.sum((2 * l + 1) / FOUR_PI * sps.eval_legendre(l, cosg)))
    assert float(a @ b) == pytest.approx(ref, abs=1e-9 * (L + 1) ** 2)
    assert float(a @ a) == pytest.approx((L + 1) ** 2 / FOUR_PI, rel=1e-12)


@FAST
@given(st.integers(1, 6), st.lists(points, min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_field_is_the_coefficient_sum_of_scipy_harmonics(L, pts, seed):
    """field(a, lat, lon) = Σ_i a_i Y_i(lat, lon) for random coefficients, Y from scipy."""
    lat = np.array([p[0] for p in pts])
    lon = np.array([p[1] for p in pts])
    a = np.random.default_rng(seed).normal(size=(2, (L + 1) ** 2))
    got = shdd.field(torch.from_numpy(a), lat, lon).numpy()
    ref = a @ scipy_basis(L, lat, [wrap_oracle(v) for v in lon]).T
    np.testing.assert_allclose(got, ref, atol=1e-11, rtol=0)


# ----------------------------------------------------------------------------- shdd: decoder
@SLOW
@given(st.sampled_from([8, 12, 16]), st.lists(points, min_size=1, max_size=16))
def test_decode_recovers_the_encoded_point(L, pts):
    """decode(encode(p)) = p for single-point (band-limited delta) vectors: within 1 km, longitude
    wrapped into [-180, 180), also at the poles and the antimeridian and for huge longitudes."""
    lat = np.array([p[0] for p in pts])
    lon = np.array([p[1] for p in pts])
    la, lo, val = shdd.decode(shdd.encode(lat, lon, L, dtype=torch.float64))
    la, lo = la[:, 0].numpy(), lo[:, 0].numpy()
    assert np.all(np.abs(la) <= 90) and np.all((lo >= -180) & (lo < 180))
    err = chord_km(lat, [wrap_oracle(v) for v in lon], la, lo)
    assert err.max() <= 1.0, f"({lat[err.argmax()]}, {lon[err.argmax()]}) decoded {err.max():.3g} km away"
    assert torch.isfinite(val).all()


@SLOW
@given(st.sampled_from([8, 16]), points, st.floats(0.0, 1.0))
def test_decode_is_invariant_to_a_positive_scale(L, p, scale_exp):
    """A positive multiple of the vector has the same field up to scale, hence the same mode."""
    a = shdd.encode(*p, L, dtype=torch.float64)
    s = 10.0 ** (6 * scale_exp - 3)                                    # 1e-3 .. 1e3
    la1, lo1, _ = shdd.decode(a)
    la2, lo2, _ = shdd.decode(s * a)
    assert la1.shape == (1,) and float(chord_km(la1[0], lo1[0], la2[0], lo2[0])) <= 1e-3
