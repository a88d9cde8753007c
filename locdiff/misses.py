"""Where point predictions miss, measured: the point rule or the distribution, and how far from the training data.

Two questions behind a missed accuracy goal:

1. **Point rule or distribution?** An image missed at threshold r (great-circle error d > r) is
   either one where *some* of the method's samples lay within r of the truth (the samples held the
   right place, the point rule chose another mode), or one where *every* sample lay beyond r (the
   predicted distribution itself misses). ``decompose`` splits the images into these three shares.
2. **Off the training distribution.** On places with no training image nearby, a method that only
   answers near training locations must miss by at least the truth's distance to the nearest
   training location, ``floor_km``. ``support_table`` compares how far each method's predictions
   lie from the training locations with how far the truths lie: a method that generalizes beyond
   its training support places some predictions where no training image is.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import geo
from .resolution import nearest_other_km

__all__ = ["decompose", "miss_table", "head_to_head", "floor_km", "support_table"]


def decompose(pred_lat, pred_lon, sample_lat, sample_lon, lat, lon, threshold_km: float) -> dict[str, float]:
    """Shares (%) of images: ``within`` (point error d <= r), ``missed, a sample within`` (d > r but
    min over samples of the sample's error <= r), ``missed, every sample beyond`` (the rest); they
    sum to 100. pred_* [N], sample_* [N, n], lat/lon [N] in degrees; r = ``threshold_km`` > 0."""
    if not (np.isfinite(threshold_km) and threshold_km > 0):
        raise ValueError(f"threshold_km must be a finite distance > 0 km; got {threshold_km!r}")
    sample_lat, sample_lon = np.asarray(sample_lat, np.float64), np.asarray(sample_lon, np.float64)
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if sample_lat.ndim != 2 or sample_lat.shape != sample_lon.shape or sample_lat.shape[0] != len(lat):
        raise ValueError(f"sample_lat and sample_lon must have shape [N, n] with N = {len(lat)} images; got "
                         f"{sample_lat.shape} and {sample_lon.shape}")
    d = geo.distance_km(np.asarray(pred_lat, np.float64), np.asarray(pred_lon, np.float64), lat, lon)
    ds = geo.distance_km(sample_lat, sample_lon, lat[:, None], lon[:, None]).min(1)
    hit = d <= threshold_km
    near = ~hit & (ds <= threshold_km)
    return {"within": 100 * float(hit.mean()), "missed, a sample within": 100 * float(near.mean()),
            "missed, every sample beyond": 100 * float((~hit & ~near).mean())}


def miss_table(pred: dict, lat, lon, thresholds_km=(25.0, 200.0, 750.0, 2500.0)) -> pd.DataFrame:
    """``decompose`` at each threshold for one method's predictions (dict with lat, lon, sample_lat,
    sample_lon as ``compare.run`` returns them): one row per threshold (km)."""
    rows = [{"threshold_km": t, **decompose(pred["lat"], pred["lon"], pred["sample_lat"], pred["sample_lon"],
                                            lat, lon, t)} for t in thresholds_km]
    return pd.DataFrame(rows).set_index("threshold_km")


def head_to_head(err_a, err_b, threshold_km: float, names=("A", "B")) -> pd.DataFrame:
    """2 x 2 shares (%) of images by whether method A (rows) and method B (columns) are within
    ``threshold_km``: where one method's misses are the other's hits."""
    a = np.asarray(err_a) <= threshold_km
    b = np.asarray(err_b) <= threshold_km
    if a.shape != b.shape:
        raise ValueError(f"err_a and err_b must have the same shape; got {a.shape} and {b.shape}")
    lab = {True: "within", False: "beyond"}
    return pd.DataFrame([[100 * float(np.mean((a == x) & (b == y))) for y in (True, False)] for x in (True, False)],
                        index=[f"{names[0]} {lab[x]}" for x in (True, False)],
                        columns=[f"{names[1]} {lab[y]}" for y in (True, False)])


def floor_km(lat, lon, train_lat, train_lon) -> np.ndarray:
    """Distance (km) from each point to the nearest training location [N]: the least error of any
    answer that lies on a training location."""
    return nearest_other_km(lat, lon, train_lat, train_lon, exclude_km=None)


def support_table(preds: dict, lat, lon, train_lat, train_lon, near_km: float = 100.0) -> pd.DataFrame:
    """Per method (``preds``: {method: dict with lat, lon}) and for the truths: the median distance
    (km) to the nearest training location and the share (%) within ``near_km`` of one, with each
    method's median error and its median excess over the floor (error - floor_km of the truth)."""
    floor = floor_km(lat, lon, train_lat, train_lon)
    rows = [{"answer": "truth", "median km to nearest training location": float(np.median(floor)),
             f"% within {near_km:g} km of one": 100 * float((floor <= near_km).mean()),
             "median error (km)": 0.0, "median error - floor (km)": 0.0}]
    for name, p in preds.items():
        to_train = floor_km(p["lat"], p["lon"], train_lat, train_lon)
        err = geo.distance_km(np.asarray(p["lat"], np.float64), np.asarray(p["lon"], np.float64), lat, lon)
        rows.append({"answer": name, "median km to nearest training location": float(np.median(to_train)),
                     f"% within {near_km:g} km of one": 100 * float((to_train <= near_km).mean()),
                     "median error (km)": float(np.median(err)),
                     "median error - floor (km)": float(np.median(err - floor))})
    return pd.DataFrame(rows).set_index("answer")
