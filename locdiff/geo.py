"""Sphere geometry: coordinates, great-circle distances and the field's standard metrics.

Conventions (the package's, shared by every module): angles at every public function are in degrees, latitude in [-90, 90],
longitude wrapped into [-180, 180); distances are great-circle distances in km on a sphere of
radius ``EARTH_RADIUS_KM``. Unit vectors have x toward (lat 0, lon 0), y toward (lat 0, lon 90),
z toward the north pole.

Every function accepts numpy arrays (or Python scalars / lists) and torch tensors on any device,
and answers in the same kind: numpy in, numpy out; tensor in, tensor out (same device).
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]

EARTH_RADIUS_KM = 6371.0
#: Distance thresholds (km) of the usual accuracy table: street, city, region, country, continent.
THRESHOLDS_KM = (1.0, 25.0, 200.0, 750.0, 2500.0)
#: GeoScore scale (km) as used by GeoGuessr-style scores: 5000 * exp(-d / 1492.7).
GEOSCORE_SCALE_KM = 1492.7


def _as_float(x, name: str) -> Array:
    """Numpy float64 array for non-tensors; tensors pass through (floating point required)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must be numeric (degrees) and real; got a complex tensor ({x.dtype})")
        return x if x.is_floating_point() else x.double()
    if isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be numeric (degrees), not a string; got {x!r}")
    try:
        a = np.asarray(x)
        strings = a.dtype.kind in "USV" or (a.dtype.kind == "O" and any(isinstance(v, (str, bytes))
                                                                         for v in a.reshape(-1)))
        if strings or a.dtype.kind in "Mm":
            raise TypeError(f"an array of {a.dtype}")
        if a.dtype.kind == "c" or (a.dtype.kind == "O" and any(isinstance(v, complex) for v in a.reshape(-1))):
            raise ValueError(f"{name} must be numeric (degrees) and real; got complex values")
        return a.astype(np.float64, copy=False)
    except OverflowError:
        raise ValueError(f"{name} must be finite numbers (degrees); got a number beyond the float range") from None
    except ValueError as err:
        if str(err).startswith(name + " must"):
            raise
        raise ValueError(f"{name} must be numeric (degrees); got {type(x).__name__}") from err
    except TypeError as err:
        raise ValueError(f"{name} must be numeric (degrees); got {type(x).__name__}") from err


def _numpy64(x) -> np.ndarray:
    """A float64 numpy array of an already validated array or tensor (any dtype or device)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _lib(x: Array):
    return torch if isinstance(x, torch.Tensor) else np


def check_finite(x: Array, name: str, allowed: str = "") -> None:
    """Raise ``ValueError`` naming ``name`` (and the ``allowed`` range) if any entry is NaN or inf."""
    bad = ~torch.isfinite(x) if isinstance(x, torch.Tensor) else ~np.isfinite(x)
    if bool(bad.any()):
        raise ValueError(f"{name} must be finite{' and ' + allowed if allowed else ''}; got NaN or inf")


def validate_lat(lat, name: str = "lat") -> Array:
    """Latitude in degrees, checked to lie in [-90, 90] and be finite; returns it as an array."""
    lat = _as_float(lat, name)
    check_finite(lat, name, "lie in [-90, 90] degrees")
    if bool((lat < -90).any()) or bool((lat > 90).any()):
        lo, hi = float(lat.min()), float(lat.max())
        raise ValueError(f"{name} must lie in [-90, 90] degrees; got values in [{lo:g}, {hi:g}]")
    return lat


def wrap_lon(lon, name: str = "lon") -> Array:
    """Longitude in degrees wrapped into [-180, 180) (finite values required); 180 maps to -180.

    Uses the exact floating-point remainder fmod(λ, 360), so longitudes already in range come back
    unchanged and huge longitudes land on the right meridian.
    """
    lon = _as_float(lon, name)
    check_finite(lon, name, "be in degrees (any real value; wrapped into [-180, 180))")
    xp = _lib(lon)
    w = xp.fmod(lon, 360.0)                                     # exact, in (-360, 360)
    w = xp.where(w >= 180.0, w - 360.0, w)
    w = xp.where(w < -180.0, w + 360.0, w)
    return xp.where(w >= 180.0, w - 360.0, w)                   # w + 360 may round up to 180


def validate_latlon(lat, lon, lat_name: str = "lat", lon_name: str = "lon"):
    """Validated latitude and wrapped longitude, broadcast to a common shape.

    ValueError (naming the arguments) if either is invalid or their shapes do not broadcast.
    """
    lat, lon = validate_lat(lat, lat_name), wrap_lon(lon, lon_name)
    try:
        if isinstance(lat, torch.Tensor) or isinstance(lon, torch.Tensor):
            ref = lat if isinstance(lat, torch.Tensor) else lon
            lat = torch.as_tensor(lat, device=ref.device)
            lon = torch.as_tensor(lon, device=ref.device)
            dtype = torch.promote_types(lat.dtype, lon.dtype)
            return torch.broadcast_tensors(lat.to(dtype), lon.to(dtype))
        return np.broadcast_arrays(lat, lon)
    except (RuntimeError, ValueError):
        raise ValueError(f"{lat_name} and {lon_name} must have shapes that broadcast together; got "
                         f"{tuple(lat.shape)} and {tuple(lon.shape)}") from None


def _check_radius(radius_km) -> float:
    """The sphere's radius as a float, checked to be a positive finite number of km."""
    real = isinstance(radius_km, numbers.Real) and not isinstance(radius_km, (bool, np.bool_))
    try:
        r = float(radius_km) if real else math.nan
    except OverflowError:                                       # an int too large for a float
        r = math.inf
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"radius_km must be a positive finite number (km); got {radius_km!r}")
    return r


def latlon_to_xyz(lat, lon, lat_name: str = "lat", lon_name: str = "lon") -> Array:
    """Unit vectors [..., 3] of points given in degrees.

    x = cos(lat) cos(lon), y = cos(lat) sin(lon), z = sin(lat). ``lat_name`` / ``lon_name`` are
    the names that error messages use for the two arguments.
    """
    lat, lon = validate_latlon(lat, lon, lat_name, lon_name)
    xp = _lib(lat)
    phi, lam = lat * (math.pi / 180.0), lon * (math.pi / 180.0)
    c = xp.cos(phi)
    return xp.stack([c * xp.cos(lam), c * xp.sin(lam), xp.sin(phi)], -1)


def xyz_to_latlon(xyz):
    """(lat, lon) in degrees of vectors [..., 3] (normalized first; zero vectors are an error).

    lat = atan2(z, hypot(x, y)), lon = atan2(y, x): accurate near the poles too.
    """
    xyz = _as_float(xyz, "xyz")
    check_finite(xyz, "xyz")
    if xyz.ndim == 0 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must have a last dimension of size 3; got shape {tuple(xyz.shape)}")
    xp = _lib(xyz)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    rho = xp.hypot(x, y)
    if bool(((rho == 0) & (z == 0)).any()):
        raise ValueError("xyz must not contain zero vectors (they have no direction)")
    lat = xp.arctan2(z, rho) * (180.0 / math.pi)
    lon = xp.arctan2(y, x) * (180.0 / math.pi)
    return lat, wrap_lon(lon)


def central_angle(lat1, lon1, lat2, lon2) -> Array:
    """Great-circle angle (radians) between points, broadcast.

    Uses the Vincenty form atan2(|a x b|, a . b) of the two unit vectors, which is accurate for
    identical, tiny and antipodal separations alike (unlike acos of the dot product, which loses
    all precision near 0 and pi, or haversine, which does near pi).
    """
    a = latlon_to_xyz(lat1, lon1, "lat1", "lon1")
    b = latlon_to_xyz(lat2, lon2, "lat2", "lon2")
    try:
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            ref = a if isinstance(a, torch.Tensor) else b
            a, b = torch.as_tensor(a, device=ref.device), torch.as_tensor(b, device=ref.device)
            dtype = torch.promote_types(a.dtype, b.dtype)
            a, b = torch.broadcast_tensors(a.to(dtype), b.to(dtype))
            cross = torch.linalg.vector_norm(torch.cross(a, b, dim=-1), dim=-1)
            return torch.atan2(cross, (a * b).sum(-1))
        a, b = np.broadcast_arrays(a, b)
    except (RuntimeError, ValueError):
        raise ValueError(f"the points (lat1, lon1) and (lat2, lon2) must have shapes that broadcast together; "
                         f"got {tuple(a.shape[:-1])} and {tuple(b.shape[:-1])}") from None
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.arctan2(cross, (a * b).sum(-1))


def distance_km(lat1, lon1, lat2, lon2, radius_km: float = EARTH_RADIUS_KM) -> Array:
    """Great-circle distance in km between (lat1, lon1) and (lat2, lon2) in degrees, broadcast."""
    return central_angle(lat1, lon1, lat2, lon2) * _check_radius(radius_km)


def grid_axes(resolution_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of a global equiangular grid of ``resolution_deg`` degrees: latitudes from north
    to south [H] and longitudes from -180 eastward [W], degrees."""
    if not (isinstance(resolution_deg, numbers.Real) and not isinstance(resolution_deg, (bool, np.bool_))
            and 0 < resolution_deg <= 90):
        raise ValueError(f"resolution_deg must lie in (0, 90]; got {resolution_deg!r}")
    r = float(resolution_deg)
    return np.arange(90 - r / 2, -90, -r), np.arange(-180 + r / 2, 180, r)


def uniform_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform on the sphere (area-uniform): lat = asin(u), u ~ U(-1, 1); lon ~ U(-180, 180).

    Returns (lat, lon) float64 numpy arrays in degrees; the same seed gives the same points.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return lat, wrap_lon(rng.uniform(-180.0, 180.0, n))


def destination(lat, lon, bearing_deg, distance_km, radius_km: float = EARTH_RADIUS_KM):
    """The point reached from (lat, lon) after ``distance_km`` along the initial bearing
    ``bearing_deg`` (clockwise from north), on the great circle; numpy, degrees, broadcast.

    lat2 = asin(sin φ cos δ + cos φ sin δ cos β), lon2 = λ + atan2(sin β sin δ cos φ, cos δ - sin φ sin φ2).
    """
    lat, lon = validate_latlon(lat, lon)
    bearing, dist = _as_float(bearing_deg, "bearing_deg"), _as_float(distance_km, "distance_km")
    check_finite(bearing, "bearing_deg", "be in degrees (clockwise from north)")
    check_finite(dist, "distance_km", "be in km (negative goes backwards)")
    lat, lon, bearing, dist = (_numpy64(v) for v in (lat, lon, bearing, dist))
    try:
        lat, lon, bearing, dist = np.broadcast_arrays(lat, lon, bearing, dist)
    except ValueError:
        raise ValueError(f"lat, lon, bearing_deg and distance_km must have shapes that broadcast together; got "
                         f"{lat.shape}, {lon.shape}, {bearing.shape} and {dist.shape}") from None
    p1, l1 = np.radians(lat), np.radians(lon)
    b = np.radians(bearing)
    d = dist / _check_radius(radius_km)
    p2 = np.arcsin(np.clip(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(b), -1.0, 1.0))
    l2 = l1 + np.arctan2(np.sin(b) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    return np.degrees(p2), wrap_lon(np.degrees(l2))


def mean_location(lat, lon) -> tuple[float, float]:
    """The normalized mean of the points' unit vectors, as (lat, lon) in degrees.

    ValueError when there are no points, or when their unit vectors cancel out (e.g. two
    antipodal points), so that the mean has no direction.
    """
    xyz = latlon_to_xyz(lat, lon)
    xyz = _numpy64(xyz).reshape(-1, 3)
    if xyz.shape[0] == 0:
        raise ValueError("lat and lon must hold at least one point; got none")
    v = xyz.mean(0)
    norm = np.linalg.norm(v)
    if norm < 1e-9:
        raise ValueError(f"lat and lon must not hold points whose unit vectors cancel out (e.g. antipodal pairs): "
                         f"their mean has length {norm:.1e} and no direction")
    la, lo = xyz_to_latlon(v / norm)
    return float(la), float(lo)


def _check_distances(d_km) -> Array:
    d = _as_float(d_km, "d_km")
    check_finite(d, "d_km")
    if bool((d < 0).any()):
        raise ValueError("d_km must be non-negative distances in km")
    if d.ndim != 1 or d.shape[0] == 0:
        raise ValueError(f"d_km must be a non-empty 1-D batch of distances in km; got shape {tuple(d.shape)}")
    return d


def _check_thresholds(thresholds) -> list[float]:
    """The accuracy thresholds as floats: a non-empty 1-D sequence of positive finite km."""
    if isinstance(thresholds, torch.Tensor):
        thresholds = thresholds.detach().cpu().double().numpy() if not thresholds.is_complex() else None
    ok = isinstance(thresholds, (list, tuple, range, np.ndarray)) and np.ndim(thresholds) == 1 and len(thresholds) > 0
    ts = list(thresholds) if ok else []
    if not ok or not all(isinstance(t, numbers.Real) and not isinstance(t, (bool, np.bool_))
                         and math.isfinite(t) and t > 0 for t in ts):
        raise ValueError(f"thresholds must be a non-empty sequence of positive finite distances in km; "
                         f"got {thresholds!r}")
    return [float(t) for t in ts]


def accuracy(d_km, thresholds: Sequence[float] = THRESHOLDS_KM) -> dict[float, float]:
    """Share of errors within each threshold: {threshold_km: fraction in [0, 1]} (d <= t counts)."""
    d = _check_distances(d_km)
    return {t: float((d <= t).double().mean() if isinstance(d, torch.Tensor)
                     else (d <= t).mean()) for t in _check_thresholds(thresholds)}


def median_error(d_km) -> float:
    """Median great-circle error in km."""
    d = _check_distances(d_km)
    return float(np.median(_numpy64(d)))


def mean_error(d_km) -> float:
    """Mean great-circle error in km."""
    d = _check_distances(d_km)
    return float(d.double().mean() if isinstance(d, torch.Tensor) else d.mean())


def geoscore(d_km) -> Array:
    """GeoScore per prediction, 5000 * exp(-d / 1492.7), d in km (5000 = perfect)."""
    d = _check_distances(d_km)
    return 5000.0 * _lib(d).exp(-d / GEOSCORE_SCALE_KM)


def summarize(d_km, thresholds: Sequence[float] = THRESHOLDS_KM) -> dict[str, float]:
    """The usual table row: accuracy (%) at each threshold, median and mean error (km), GeoScore."""
    row = {f"acc@{t:g}km": 100.0 * v for t, v in accuracy(d_km, thresholds).items()}
    row["median_km"] = median_error(d_km)
    row["mean_km"] = mean_error(d_km)
    row["geoscore"] = float(geoscore(d_km).mean())
    return row
