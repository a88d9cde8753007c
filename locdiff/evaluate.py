"""Evaluation shared by every method: the accuracy table with bootstrap intervals, distribution
measures of generated samples, and the results CSV.

Point metrics (``geo.summarize``): accuracy (%) at 1 / 25 / 200 / 750 / 2500 km, median and mean
great-circle error (km), mean GeoScore 5000·exp(-d / 1492.7 km).

Intervals: 95% percentile bootstrap over test images (images resampled with replacement,
``n_boot`` times, seeded), the same resamples for every metric of a row.

Generative measures, from N samples per image (LocDiff, raw-coordinate diffusion, flow matching):
- ``coverage@200km``: the share (%) of images whose true location lies within 200 km of at least
  one of their N samples;
- ``precision`` / ``recall`` (%): the k-nearest-neighbour manifold estimates of Kynkäänniemi et
  al. (2019) that PLONK reports, on great-circle distances between the set of true test locations R
  and the set G of generated locations (the first sample of every image):
      precision = share of g in G that lie within r_k(x) of some x in R,
      recall    = share of x in R that lie within r_k(g) of some g in G,
  where r_k(x) is the distance from x to its k-th nearest neighbour in its own set (k = 3).

Results CSV (long format, one row per method x split x metric): columns ``RESULT_COLUMNS``;
written atomically under ``data/results/<profile>/``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import geo
from .io import atomic_write

RESULT_COLUMNS = ("profile", "method", "split", "metric", "value", "ci_low", "ci_high", "n_images",
                  "train_seconds", "predict_seconds")
POINT_METRICS = tuple(f"acc@{t:g}km" for t in geo.THRESHOLDS_KM) + ("median_km", "mean_km", "geoscore")
GENERATIVE_METRICS = ("coverage@200km", "precision", "recall")
TEST_SPLITS = ("test_iid", "test_uniform", "test_unseen")


def _metrics_of_resamples(d: np.ndarray) -> dict[str, np.ndarray]:
    """Each point metric for a batch of resampled error vectors d [R, n] (km) -> {metric: [R]}."""
    out = {f"acc@{t:g}km": 100.0 * (d <= t).mean(1) for t in geo.THRESHOLDS_KM}
    out["median_km"] = np.median(d, 1)
    out["mean_km"] = d.mean(1)
    out["geoscore"] = (5000.0 * np.exp(-d / geo.GEOSCORE_SCALE_KM)).mean(1)
    return out


def bootstrap_intervals(d_km, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, tuple]:
    """{metric: (value, low, high)} for the point metrics of errors d_km [n] (km).

    value is the metric on the full sample; (low, high) the percentile bootstrap interval at
    ``level`` from ``n_boot`` resamples of the images.
    """
    d = np.asarray(d_km, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"d_km must be a non-empty 1-D array of distances; got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("d_km must hold finite distances >= 0 (km)")
    if not (_is_real(level) and 0 < level < 1):
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if not _is_int(n_boot) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10; got {n_boot!r}")
    full = _metrics_of_resamples(d[None])
    rng = np.random.default_rng(seed)
    boot: dict[str, list] = {k: [] for k in full}
    for i in range(0, n_boot, 100):                       # bounded memory: 100 resamples at a time
        idx = rng.integers(0, d.size, size=(min(100, n_boot - i), d.size))
        for k, v in _metrics_of_resamples(d[idx]).items():
            boot[k].append(v)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {k: (float(full[k][0]), *map(float, np.percentile(np.concatenate(boot[k]), q))) for k in full}


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _pairwise_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distances [len1, len2] (km)."""
    a = geo.latlon_to_xyz(np.asarray(lat1, np.float64), np.asarray(lon1, np.float64))
    b = geo.latlon_to_xyz(np.asarray(lat2, np.float64), np.asarray(lon2, np.float64))
    cross = np.linalg.norm(np.cross(a[:, None, :], b[None, :, :]), axis=-1)
    return geo.EARTH_RADIUS_KM * np.arctan2(cross, a @ b.T)


def precision_recall(real_lat, real_lon, gen_lat, gen_lon, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019) precision and recall (%) of generated vs real locations (km)."""
    if not _is_int(k) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (the neighbour that sets each point's radius); got {k!r}")
    geo.validate_latlon(real_lat, real_lon, "real_lat", "real_lon")
    geo.validate_latlon(gen_lat, gen_lon, "gen_lat", "gen_lon")
    if len(real_lat) <= k or len(gen_lat) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} real and generated points")
    rr = _pairwise_km(real_lat, real_lon, real_lat, real_lon)
    gg = _pairwise_km(gen_lat, gen_lon, gen_lat, gen_lon)
    rg = _pairwise_km(real_lat, real_lon, gen_lat, gen_lon)
    r_real = np.sort(rr, 1)[:, k]            # column 0 is the point itself
    r_gen = np.sort(gg, 1)[:, k]
    precision = (rg <= r_real[:, None]).any(0).mean()
    recall = (rg <= r_gen[None, :]).any(1).mean()
    return 100.0 * float(precision), 100.0 * float(recall)


def generative_metrics(sample_lat, sample_lon, lat, lon, radius_km: float = 200.0, k: int = 3) -> dict:
    """coverage@200km, precision, recall (%) from samples [B, n] (degrees) and truths [B]."""
    if not (_is_real(radius_km) and np.isfinite(radius_km) and radius_km > 0):
        raise ValueError(f"radius_km must be a positive finite number (km); got {radius_km!r}")
    slat, slon = np.asarray(sample_lat, np.float64), np.asarray(sample_lon, np.float64)
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if slat.ndim != 2 or slat.shape != slon.shape or slat.shape[0] != lat.shape[0]:
        raise ValueError(f"sample_lat/sample_lon must have shape [B, n] with B = len(lat) = {lat.shape[0]}; "
                         f"got {slat.shape} and {slon.shape}")
    geo.validate_latlon(slat, slon, "sample_lat", "sample_lon")
    d = geo.distance_km(np.repeat(lat, slat.shape[1]), np.repeat(lon, slat.shape[1]), slat.ravel(), slon.ravel())
    coverage = 100.0 * float((d.reshape(slat.shape) <= radius_km).any(1).mean())
    precision, recall = precision_recall(lat, lon, slat[:, 0], slon[:, 0], k)
    return {f"coverage@{radius_km:g}km": coverage, "precision": precision, "recall": recall}


def result_rows(profile: str, method: str, split: str, lat, lon, pred_lat, pred_lon, *,
                train_seconds: float = float("nan"), predict_seconds: float = float("nan"),
                sample_lat=None, sample_lon=None, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Rows of the results table for one method on one split (point metrics with intervals, plus
    the generative measures when samples are given; those carry no interval)."""
    geo.validate_latlon(lat, lon)
    geo.validate_latlon(pred_lat, pred_lon, "pred_lat", "pred_lon")
    d = geo.distance_km(lat, lon, pred_lat, pred_lon)
    base = dict(profile=profile, method=method, split=split, n_images=len(d),
                train_seconds=train_seconds, predict_seconds=predict_seconds)
    rows = [dict(base, metric=m, value=v, ci_low=lo, ci_high=hi)
            for m, (v, lo, hi) in bootstrap_intervals(d, n_boot, seed=seed).items()]
    if sample_lat is not None:
        rows += [dict(base, metric=m, value=v, ci_low=np.nan, ci_high=np.nan)
                 for m, v in generative_metrics(sample_lat, sample_lon, lat, lon).items()]
    return [{c: r[c] for c in RESULT_COLUMNS} for r in rows]


def check_results(df: pd.DataFrame) -> pd.DataFrame:
    """The table with its schema checked: exactly ``RESULT_COLUMNS``, known metrics, finite values."""
    if tuple(df.columns) != RESULT_COLUMNS:
        raise ValueError(f"results must have columns {RESULT_COLUMNS}; got {tuple(df.columns)}")
    unknown = set(df["metric"]) - set(POINT_METRICS) - set(GENERATIVE_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics in results: {sorted(unknown)}")
    if not np.isfinite(df["value"].to_numpy(dtype=float)).all():
        raise ValueError("results hold a non-finite value")
    if df.duplicated(["profile", "method", "split", "metric"]).any():
        raise ValueError("results hold duplicate (profile, method, split, metric) rows")
    return df


def results_dir(profile_name: str) -> Path:
    """``<repo>/data/results/<profile>/`` (created)."""
    from .plots import repo_root

    d = repo_root() / "data" / "results" / profile_name
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_results(rows, path) -> pd.DataFrame:
    """Check and write the results table atomically as CSV; returns it."""
    df = check_results(pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows,
                                    columns=list(RESULT_COLUMNS)))
    atomic_write(Path(path), lambda tmp: df.to_csv(tmp, index=False))
    return df


def read_results(path) -> pd.DataFrame:
    """A results CSV, schema checked."""
    return check_results(pd.read_csv(path))


def table(df: pd.DataFrame, split: str, metrics=POINT_METRICS, intervals: bool = False) -> pd.DataFrame:
    """Methods x metrics for one split; with ``intervals``, cells read 'value [low, high]'."""
    if split not in set(df["split"]):
        raise ValueError(f"split must be one of the results' splits {sorted(set(df['split']))}; got {split!r}")
    sub = df[(df["split"] == split) & df["metric"].isin(metrics)]
    if intervals:
        sub = sub.assign(value=[f"{v:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo) else f"{v:.1f}"
                                for v, lo, hi in zip(sub["value"], sub["ci_low"], sub["ci_high"])])
    out = sub.pivot(index="method", columns="metric", values="value")
    order = list(dict.fromkeys(df["method"]))
    return out.reindex(index=[m for m in order if m in out.index], columns=[m for m in metrics if m in out.columns])
