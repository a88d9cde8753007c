"""How close two places can be and still decode as two: the resolution of a degree-L field.

The decoder smooths a field with the taper w_l (``shdd.taper_weights``) and takes its highest
mode. One point's smoothed field is the zonal kernel

    K(θ) = Σ_{l=0..L} (2l+1)/(4π) · w_l · P_l(cos θ)          (addition theorem)

of the angle θ to the point. An equal mixture of two points at angular separation d has, on the
great circle through them, the field K(θ₁) + K(θ₂); by symmetry its midpoint is a critical point
with second derivative 2 K''(d/2). So the midpoint is a maximum, and the two points decode as
*one* mode between them, exactly when d/2 is inside K's inflection angle θ_i (K'' < 0):

    merge distance = 2 θ_i · R.

A posterior that puts weight on two training places closer than that yields a mode between them,
some tens of km from each: this caps the share of images placed within 25 km whatever the network
learns, and it shrinks like 1/L. ``nearest_other_km`` measures how many test images have such a
neighbour.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial.legendre import legval

from . import geo, shdd
from .checks import check_distances_km, check_radius_km

__all__ = ["kernel", "merge_distance_km", "nearest_other_km", "crowding_table"]


def kernel(L: int, theta_rad, taper: str | None = "gauss", width: float = 0.35) -> np.ndarray:
    """K(θ) = Σ_l (2l+1)/(4π) w_l P_l(cos θ): one point's decoded field at angle θ (radians) from it,
    with the decoder's taper (``shdd.taper_weights``). Same shape as ``theta_rad``."""
    L = shdd._check_degree(L)
    w = shdd.taper_weights(L, taper, width).numpy()
    starts = np.arange(L + 1) ** 2                       # w_l is constant within band l
    band_w = w[starts]
    l = np.arange(L + 1)
    return legval(np.cos(np.asarray(theta_rad, dtype=np.float64)), (2 * l + 1) / (4 * np.pi) * band_w)


def merge_distance_km(L: int, taper: str | None = "gauss", width: float = 0.35,
                      radius_km: float = geo.EARTH_RADIUS_KM) -> float:
    """The separation below which an equal two-point mixture decodes to one mode between the
    points: twice the first inflection angle of ``kernel``, in km. Found on a grid of 20,000
    angles in (0, π/2], refined linearly between the two grid points where K'' changes sign."""
    theta = np.linspace(0.0, np.pi / 2, 20_001)
    h = theta[1] - theta[0]
    k = kernel(L, theta, taper, width)
    second = (k[2:] - 2 * k[1:-1] + k[:-2]) / h**2        # K'' at theta[1:-1]
    change = np.nonzero(np.diff(np.sign(second)) > 0)[0]
    if len(change) == 0:
        raise ValueError(f"the degree-{L} kernel has no inflection below 90 degrees (L too small)")
    i = change[0]
    t0, t1, s0, s1 = theta[1 + i], theta[2 + i], second[i], second[i + 1]
    theta_i = t0 - s0 * (t1 - t0) / (s1 - s0)
    return float(2 * theta_i * radius_km)


def nearest_other_km(lat, lon, ref_lat, ref_lon, exclude_km: float | None = 25.0, chunk: int = 256) -> np.ndarray:
    """For each point, the distance (km) to the nearest reference point farther than ``exclude_km``
    (another place, not a jittered copy of its own; None: the nearest reference point of all);
    inf when there is none. [N]."""
    lat, lon = geo.validate_latlon(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
    ref_lat, ref_lon = geo.validate_latlon(np.asarray(ref_lat, np.float64), np.asarray(ref_lon, np.float64),
                                           "ref_lat", "ref_lon")
    if exclude_km is not None and not (np.isfinite(exclude_km) and exclude_km >= 0):
        raise ValueError(f"exclude_km must be None or a finite distance >= 0 km; got {exclude_km!r}")
    if len(ref_lat) == 0:
        return np.full(len(lat), np.inf)
    if exclude_km is None:
        # the nearest of all: a k-d tree on unit vectors (chord length c is monotone in the angle,
        # θ = 2 asin(c/2)), exact, instead of N x M haversines
        from scipy.spatial import cKDTree

        chord, _ = cKDTree(geo.latlon_to_xyz(ref_lat, ref_lon)).query(geo.latlon_to_xyz(lat, lon))
        return 2.0 * geo.EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    out = np.full(len(lat), np.inf)
    for s in range(0, len(lat), chunk):
        d = geo.distance_km(lat[s:s + chunk, None], lon[s:s + chunk, None], ref_lat[None], ref_lon[None])
        d = d if exclude_km is None else np.where(d > exclude_km, d, np.inf)
        out[s:s + chunk] = d.min(1)
    return out



def crowding_table(lat, lon, train_lat, train_lon, errors: dict, L: int, radius_km: float = 25.0):
    """Fine accuracy against how crowded the training set is around each test point.

    Test points (degrees) are binned by ``nearest_other_km`` to the training locations, with edges
    0, 100, 300 km, ``merge_distance_km(L)`` and ∞ (sorted, duplicates dropped); per bin: the number
    of tiles and, per method of ``errors`` {method: error km [N]}, the share (%) within ``radius_km``.
    Beyond the merge distance a decoded peak cannot mix two training places."""
    import pandas as pd

    radius_km = check_radius_km(radius_km)
    other = nearest_other_km(lat, lon, train_lat, train_lon)
    for m, e in errors.items():
        if np.shape(e) != other.shape:
            raise ValueError(f"errors[{m!r}] must hold one error per test point ({len(other)}); got {np.shape(e)}")
    errors = {m: check_distances_km(e, f"errors[{m!r}]") for m, e in errors.items()}
    bins = sorted({0.0, 100.0, 300.0, float(merge_distance_km(L)), np.inf})
    crowd = pd.Series(pd.cut(other, bins, include_lowest=True))
    cols = {"tiles": crowd.value_counts(sort=False).values}
    for m, e in errors.items():
        cols[f"{m} acc@{radius_km:g}km (%)"] = pd.Series(100.0 * (e <= radius_km)).groupby(
            crowd, observed=False).mean().values
    return pd.DataFrame(cols, index=crowd.cat.categories.astype(str))
