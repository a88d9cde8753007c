"""Tests of locdiff.geo against closed forms, hand-computed values and an independent haversine."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locdiff import geo

R = 6371.0

# --------------------------------------------------------------------------- coordinates


def test_latlon_to_xyz_closed_form_numpy():
    lat = np.array([0.0, 0.0, 90.0, -90.0, 0.0, 45.0])
    lon = np.array([0.0, 90.0, 0.0, 0.0, -180.0, 45.0])
    xyz = geo.latlon_to_xyz(lat, lon)
    assert isinstance(xyz, np.ndarray) and xyz.dtype == np.float64 and xyz.shape == (6, 3)
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1], [-1, 0, 0], [0.5, 0.5, math.sqrt(0.5)]])
    np.testing.assert_allclose(xyz, expected, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), 1.0, atol=1e-15)


def _roundtrip_points(sphere_points):
    lat, lon = sphere_points(500, seed=1)
    lat = np.concatenate([lat, [90.0, -90.0, 0.0, 0.0, 33.0, -12.5, 89.9999999, -89.9999999]])
    lon = np.concatenate([lon, [0.0, 0.0, -180.0, 179.999999, -180.0, -179.999999, 45.0, -45.0]])
    return lat, lon


def test_roundtrip_numpy(sphere_points, haversine):
    lat, lon = _roundtrip_points(sphere_points)
    lat2, lon2 = geo.xyz_to_latlon(geo.latlon_to_xyz(lat, lon))
    assert isinstance(lat2, np.ndarray) and isinstance(lon2, np.ndarray)
    np.testing.assert_allclose(lat2, lat, atol=1e-12)
    assert np.all((lon2 >= -180) & (lon2 < 180))
    off_pole = np.abs(lat) < 89.9
    dlon = (lon2 - lon + 180) % 360 - 180          # antimeridian: -180 and 180 are the same longitude
    np.testing.assert_allclose(dlon[off_pole], 0.0, atol=1e-10)
    # every point (poles included, where longitude is arbitrary) comes back to the same place
    assert haversine(lat, lon, lat2, lon2).max() < 1e-9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roundtrip_torch(dtype, sphere_points):
    lat, lon = _roundtrip_points(sphere_points)
    tlat, tlon = torch.tensor(lat, dtype=dtype), torch.tensor(lon, dtype=dtype)
    xyz = geo.latlon_to_xyz(tlat, tlon)
    assert isinstance(xyz, torch.Tensor) and xyz.dtype == dtype and xyz.shape == (lat.size, 3)
    lat2, lon2 = geo.xyz_to_latlon(xyz)
    assert isinstance(lat2, torch.Tensor) and isinstance(lon2, torch.Tensor)
    assert lat2.dtype == dtype and lon2.dtype == dtype
    tol = 1e-3 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(lat2.double().numpy(), tlat.double().numpy(), atol=tol)
    assert bool(((lon2 >= -180) & (lon2 < 180)).all())
    dlon = (lon2.double().numpy() - tlon.double().numpy() + 180) % 360 - 180
    off_pole = np.abs(lat) < 89.0
    np.testing.assert_allclose(dlon[off_pole], 0.0, atol=tol)


def test_poles_and_antimeridian_exact():
    lat, lon = geo.xyz_to_latlon(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -3.0], [-2.0, 0.0, 0.0], [-1.0, -0.0, 0.0]]))
    np.testing.assert_array_equal(lat, [90.0, -90.0, 0.0, 0.0])
    np.testing.assert_array_equal(lon[2:], [-180.0, -180.0])      # 180 and -180 both come back as -180
    # lon = 180 and lon = -180 are the same unit vector
    np.testing.assert_allclose(geo.latlon_to_xyz(20.0, 180.0), geo.latlon_to_xyz(20.0, -180.0), atol=0)
    # any longitude at a pole is the pole
    for pole in (90.0, -90.0):
        xyz = geo.latlon_to_xyz(np.full(7, pole), np.linspace(-180, 179, 7))
        np.testing.assert_allclose(xyz, np.tile([0, 0, math.copysign(1, pole)], (7, 1)), atol=1e-16)


def test_xyz_validation():
    with pytest.raises(ValueError, match="xyz"):
        geo.xyz_to_latlon(np.zeros(3))
    with pytest.raises(ValueError, match="xyz"):
        geo.xyz_to_latlon(np.ones((4, 2)))
    with pytest.raises(ValueError, match="xyz"):
        geo.xyz_to_latlon(np.array([np.nan, 0.0, 1.0]))


# --------------------------------------------------------------------------- distances

PARIS, LONDON = (48.8566, 2.3522), (51.5074, -0.1278)


def test_distance_paris_london(haversine):
    d = geo.distance_km(*PARIS, *LONDON)
    ref = float(haversine(*PARIS, *LONDON))
    assert abs(ref - 343.5) < 0.5               # the well-known value; the oracle itself is sane
    assert d == pytest.approx(ref, rel=1e-12)
    assert geo.distance_km(*LONDON, *PARIS) == pytest.approx(ref, rel=1e-12)


def test_distance_torch(haversine):
    ref = float(haversine(*PARIS, *LONDON))
    d64 = geo.distance_km(torch.tensor([PARIS[0]], dtype=torch.float64), torch.tensor([PARIS[1]], dtype=torch.float64),
                          LONDON[0], LONDON[1])
    assert isinstance(d64, torch.Tensor) and d64.dtype == torch.float64 and d64.shape == (1,)
    assert float(d64) == pytest.approx(ref, rel=1e-12)
    d32 = geo.distance_km(torch.tensor(PARIS[0]), torch.tensor(PARIS[1]), torch.tensor(LONDON[0]), torch.tensor(LONDON[1]))
    assert isinstance(d32, torch.Tensor) and d32.dtype == torch.float32
    assert float(d32) == pytest.approx(ref, rel=1e-5)


def test_distance_closed_forms():
    quarter = R * math.pi / 2
    assert geo.distance_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(quarter, rel=1e-15)
    assert geo.distance_km(0.0, 0.0, 90.0, 0.0) == pytest.approx(quarter, rel=1e-15)
    assert geo.distance_km(0.0, -45.0, 0.0, 45.0) == pytest.approx(quarter, rel=1e-15)
    assert geo.distance_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(R * math.pi, abs=1e-9)
    assert geo.distance_km(90.0, 0.0, -90.0, 123.0) == pytest.approx(R * math.pi, abs=1e-9)
    assert geo.distance_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(R * math.radians(1.0), rel=1e-12)
    # a non-default radius scales linearly
    assert geo.distance_km(0.0, 0.0, 0.0, 90.0, radius_km=1.0) == pytest.approx(math.pi / 2, rel=1e-15)


def test_distance_identical_points_zero(sphere_points):
    lat, lon = sphere_points(200, seed=2)
    lat = np.concatenate([lat, [90.0, -90.0, 0.0]])
    lon = np.concatenate([lon, [17.0, -180.0, -180.0]])
    np.testing.assert_array_equal(geo.distance_km(lat, lon, lat, lon), 0.0)
    # the same place written with a longitude off by 360 degrees, or at lon = +-180
    assert geo.distance_km(10.0, 20.0, 10.0, 380.0) < 1e-9
    assert geo.distance_km(10.0, 180.0, 10.0, -180.0) == 0.0


def test_distance_antipodes(sphere_points):
    lat, lon = sphere_points(300, seed=3)
    d = geo.distance_km(lat, lon, -lat, lon + 180.0)
    np.testing.assert_allclose(d, R * math.pi, atol=1e-9, rtol=0)


@pytest.mark.parametrize("lat", [0.0, 45.0, -60.0, 89.0])
@pytest.mark.parametrize("lon", [10.0, 179.9999999, -180.0])
def test_distance_tiny_separation(lat, lon):
    lat2, lon2 = lat + 1e-9, lon + 1e-9
    dlat, dlon = lat2 - lat, lon2 - lon            # the separations actually represented in float64
    small_angle = R * math.radians(math.hypot(dlat, dlon * math.cos(math.radians(lat + dlat / 2))))
    d = float(geo.distance_km(lat, lon, lat2, lon2))
    assert d == pytest.approx(small_angle, rel=1e-4)


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9])
@pytest.mark.parametrize("lat,lon", [(30.0, 20.0), (-10.0, 170.0), (0.0, -180.0)])
def test_distance_near_antipodal(lat, lon, eps):
    # (-lat + eps, lon + 180) lies on the antipode's meridian, eps degrees from the antipode
    d = float(geo.distance_km(lat, lon, -lat + eps, lon + 180.0))
    eps_repr = (-lat + eps) - (-lat)               # eps as represented after the addition
    assert d == pytest.approx(R * (math.pi - math.radians(eps_repr)), abs=1e-7)


def test_distance_broadcasts(haversine):
    lat = np.array([[0.0], [10.0]])
    lon = np.array([0.0, 30.0, -170.0])
    d = geo.distance_km(lat, lon, 5.0, 5.0)
    assert d.shape == (2, 3)
    np.testing.assert_allclose(d, haversine(lat, lon, 5.0, 5.0), rtol=1e-11)


# --------------------------------------------------------------------------- metrics


def test_accuracy_hand_computed():
    d = np.array([0.5, 1.0, 24.9, 300.0, 3000.0])
    expected = {1.0: 0.4, 25.0: 0.6, 200.0: 0.6, 750.0: 0.8, 2500.0: 0.8}   # d <= t counts
    assert geo.accuracy(d) == pytest.approx(expected)
    assert geo.accuracy(torch.tensor(d)) == pytest.approx(expected)
    assert geo.accuracy(d, thresholds=(0.75, 10_000.0)) == pytest.approx({0.75: 0.2, 10_000.0: 1.0})


def test_median_mean_geoscore():
    d = np.array([0.0, 10.0, 20.0, 1492.7])
    assert geo.median_error(d) == pytest.approx(15.0)
    assert geo.mean_error(d) == pytest.approx((10.0 + 20.0 + 1492.7) / 4)
    assert geo.median_error(torch.tensor(d)) == pytest.approx(15.0)
    assert geo.mean_error(torch.tensor(d)) == pytest.approx((10.0 + 20.0 + 1492.7) / 4)
    g = geo.geoscore(d)
    np.testing.assert_allclose(g, 5000.0 * np.exp(-d / 1492.7), rtol=1e-14)
    assert g[0] == 5000.0 and g[3] == pytest.approx(5000.0 / math.e)
    gt = geo.geoscore(torch.tensor(d))
    assert isinstance(gt, torch.Tensor)
    np.testing.assert_allclose(gt.numpy(), 5000.0 * np.exp(-d / 1492.7), rtol=1e-14)


def test_summarize():
    d = np.array([0.5, 1.0, 24.9, 300.0, 3000.0])
    row = geo.summarize(d)
    assert set(row) == {"acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km",
                        "median_km", "mean_km", "geoscore"}
    assert row["acc@1km"] == pytest.approx(40.0) and row["acc@25km"] == pytest.approx(60.0)
    assert row["acc@200km"] == pytest.approx(60.0) and row["acc@750km"] == pytest.approx(80.0)
    assert row["acc@2500km"] == pytest.approx(80.0)
    assert row["median_km"] == pytest.approx(24.9)
    assert row["mean_km"] == pytest.approx(d.mean())
    assert row["geoscore"] == pytest.approx(float(np.mean(5000.0 * np.exp(-d / 1492.7))))


@pytest.mark.parametrize("bad", [[], [-1.0, 2.0], [np.nan], [np.inf], 3.0])
def test_metrics_reject_bad_distances(bad):
    for fn in (geo.accuracy, geo.median_error, geo.mean_error, geo.geoscore, geo.summarize):
        with pytest.raises(ValueError, match="d_km"):
            fn(np.asarray(bad, dtype=float))


def test_accuracy_rejects_bad_thresholds():
    for bad in [(), (0.0,), (-1.0,), (math.inf,)]:
        with pytest.raises(ValueError, match="thresholds"):
            geo.accuracy([1.0, 2.0], thresholds=bad)


# --------------------------------------------------------------------------- validation and wrapping


@pytest.mark.parametrize("bad", [90.0001, -90.5, 180.0, -1e9])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_latitude_out_of_range(bad, as_tensor):
    lat = torch.tensor([0.0, bad]) if as_tensor else [0.0, bad]
    for call in (lambda: geo.latlon_to_xyz(lat, 0.0), lambda: geo.distance_km(lat, 0.0, 0.0, 0.0),
                 lambda: geo.distance_km(0.0, 0.0, lat, 0.0), lambda: geo.validate_lat(lat)):
        with pytest.raises(ValueError) as err:
            call()
        assert "lat" in str(err.value) and "[-90, 90]" in str(err.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_non_finite_coordinates(bad, as_tensor):
    def arr(v):
        return torch.tensor([0.0, v], dtype=torch.float64) if as_tensor else np.array([0.0, v])

    with pytest.raises(ValueError, match=r"\blat\b.*finite"):
        geo.latlon_to_xyz(arr(bad), 0.0)
    with pytest.raises(ValueError, match=r"\blon\b.*finite"):
        geo.latlon_to_xyz(0.0, arr(bad))
    with pytest.raises(ValueError, match=r"\blon\b.*finite"):
        geo.wrap_lon(arr(bad))
    with pytest.raises(ValueError, match=r"\blat1\b.*finite"):     # distance_km names its own argument
        geo.distance_km(arr(bad), 0.0, 0.0, 0.0)


def test_boundary_latitudes_accepted():
    xyz = geo.latlon_to_xyz(np.array([-90.0, 90.0]), np.array([0.0, 0.0]))
    np.testing.assert_allclose(xyz[:, 2], [-1.0, 1.0], atol=0)


def test_wrap_lon_examples():
    np.testing.assert_array_equal(geo.wrap_lon([180.0, 540.0, -190.0, -180.0, 360.0, -540.0, 190.0, 719.5]),
                                  [-180.0, -180.0, 170.0, -180.0, 0.0, -180.0, -170.0, -0.5])
    t = geo.wrap_lon(torch.tensor([180.0, 540.0, -190.0], dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert t.tolist() == [-180.0, -180.0, 170.0]


def _exact_wrap(v: float) -> float:
    """Wrap of the exact binary value v, in rational arithmetic (correctly rounded once at the end)."""
    r = Fraction(v) % 360
    return float(r - 360 if r >= 180 else r)


@pytest.mark.parametrize("v", [1e7 + 0.25, -3.6e12 - 7.0, 2.0**52 + 5, 1e17, 1e20, -1e300])
def test_wrap_lon_huge_values(v):
    for out in (geo.wrap_lon(v), geo.wrap_lon(torch.tensor([v], dtype=torch.float64))):
        w = float(np.asarray(out).reshape(-1)[0])
        assert -180.0 <= w < 180.0
        # the wrapped value must be the same meridian as the (exactly represented) input
        assert w == pytest.approx(_exact_wrap(v), abs=1e-9), f"wrap_lon({v!r}) = {w}, expected {_exact_wrap(v)}"
    if abs(v) < 1e38:                               # representable in float32: at least in range
        w32 = geo.wrap_lon(torch.tensor([v], dtype=torch.float32))
        assert bool(torch.isfinite(w32).all()) and -180.0 <= float(w32) < 180.0


@pytest.mark.parametrize("v", [0.1, 2.3522, -0.1278, 45.123456789, -179.99999999999997, 179.99999999999997])
def test_wrap_lon_leaves_in_range_longitudes_unchanged(v):
    # the package convention (locdiff.geo): longitudes are in [-180, 180); only *other* longitudes are wrapped
    assert float(geo.wrap_lon(v)) == v
    assert float(geo.wrap_lon(torch.tensor(v, dtype=torch.float64))) == v


def test_uniform_points(haversine):
    lat, lon = geo.uniform_points(20_000, seed=5)
    assert lat.shape == lon.shape == (20_000,) and lat.dtype == lon.dtype == np.float64
    assert np.all(np.abs(lat) <= 90) and np.all((lon >= -180) & (lon < 180))
    la2, lo2 = geo.uniform_points(20_000, seed=5)
    np.testing.assert_array_equal(lat, la2)
    np.testing.assert_array_equal(lon, lo2)
    assert not np.array_equal(lat, geo.uniform_points(20_000, seed=6)[0])
    # area-uniform: sin(lat) ~ U(-1, 1): |lat| < 30 holds for half the sphere (sd of the share: 0.0035)
    assert abs(np.mean(np.abs(lat) < 30.0) - 0.5) < 0.02
    assert abs(np.mean(lon > 0) - 0.5) < 0.02
    with pytest.raises(ValueError, match="n"):
        geo.uniform_points(-1)


# --------------------------------------------------------------------------- properties

lats = st.floats(-90.0, 90.0, allow_nan=False)
lons = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(lats, lons, lats, lons)
def test_distance_symmetric_nonnegative_bounded(la1, lo1, la2, lo2):
    d12 = float(geo.distance_km(la1, lo1, la2, lo2))
    d21 = float(geo.distance_km(la2, lo2, la1, lo1))
    assert d12 == pytest.approx(d21, abs=1e-9)
    assert 0.0 <= d12 <= math.pi * R


@settings(max_examples=200, deadline=None)
@given(lats, lons, lats, lons, lats, lons)
def test_distance_triangle_inequality(la1, lo1, la2, lo2, la3, lo3):
    d = geo.distance_km
    assert float(d(la1, lo1, la3, lo3)) <= float(d(la1, lo1, la2, lo2)) + float(d(la2, lo2, la3, lo3)) + 1e-6


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e12, 1e12, allow_nan=False))
def test_wrap_lon_idempotent_in_range_and_congruent(v):
    w = float(geo.wrap_lon(v))
    assert -180.0 <= w < 180.0
    assert float(geo.wrap_lon(w)) == w
    k = (v - w) / 360.0
    assert abs(k - round(k)) * 360.0 <= 1e-9 * max(1.0, abs(v))
