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

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import geo
from .checks import check_seed, is_int, is_real
from .io import atomic_write

RESULT_COLUMNS = ("profile", "method", "split", "metric", "value", "ci_low", "ci_high", "n_images",
                  "train_seconds", "predict_seconds")
POINT_METRICS = tuple(f"acc@{t:g}km" for t in geo.THRESHOLDS_KM) + ("median_km", "mean_km", "geoscore")
LOWER_IS_BETTER = ("median_km", "mean_km")      # errors; every other point metric is better higher
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
    d = _float_array(d_km, "d_km")
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"d_km must be a non-empty 1-D array of distances; got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("d_km must hold finite distances >= 0 (km)")
    if not (is_real(level) and 0 < level < 1):
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if not is_int(n_boot) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10; got {n_boot!r}")
    check_seed(seed)
    full = _metrics_of_resamples(d[None])
    rng = np.random.default_rng(seed)
    boot: dict[str, list] = {k: [] for k in full}
    for i in range(0, n_boot, 100):                       # bounded memory: 100 resamples at a time
        idx = rng.integers(0, d.size, size=(min(100, n_boot - i), d.size))
        for k, v in _metrics_of_resamples(d[idx]).items():
            boot[k].append(v)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {k: (float(full[k][0]), *map(float, np.percentile(np.concatenate(boot[k]), q))) for k in full}


def _float_array(x, name: str) -> np.ndarray:
    """x (numbers, arrays or tensors of any dtype and device) as a float64 numpy array; ValueError naming
    ``name`` for strings, complex values and other non-numbers (geo's rules)."""
    x = geo._as_float(x, name)
    return geo._numpy64(x)


def _points(lat, lon, lat_name: str, lon_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated points as 1-D float64 arrays [N] (latitude checked, longitude wrapped, broadcast)."""
    lat, lon = geo.validate_latlon(lat, lon, lat_name, lon_name)
    lat, lon = geo._numpy64(lat), geo._numpy64(lon)
    if lat.ndim != 1:
        raise ValueError(f"{lat_name} and {lon_name} must be 1-D arrays [N] of degrees; got shape {lat.shape}")
    return lat, lon


def _pairwise_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distances [len1, len2] (km)."""
    a = geo.latlon_to_xyz(np.asarray(lat1, np.float64), np.asarray(lon1, np.float64))
    b = geo.latlon_to_xyz(np.asarray(lat2, np.float64), np.asarray(lon2, np.float64))
    cross = np.linalg.norm(np.cross(a[:, None, :], b[None, :, :]), axis=-1)
    return geo.EARTH_RADIUS_KM * np.arctan2(cross, a @ b.T)


def precision_recall(real_lat, real_lon, gen_lat, gen_lon, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019) precision and recall (%) of generated vs real locations (km)."""
    if not is_int(k) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (the neighbour that sets each point's radius); got {k!r}")
    real_lat, real_lon = _points(real_lat, real_lon, "real_lat", "real_lon")
    gen_lat, gen_lon = _points(gen_lat, gen_lon, "gen_lat", "gen_lon")
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
    geo._check_radius(radius_km)
    lat, lon = _points(lat, lon, "lat", "lon")
    slat, slon = _float_array(sample_lat, "sample_lat"), _float_array(sample_lon, "sample_lon")
    if slat.ndim != 2 or slat.shape != slon.shape or slat.shape[0] != lat.shape[0] or slat.shape[1] < 1:
        raise ValueError(f"sample_lat/sample_lon must have shape [B, n] with B = len(lat) = {lat.shape[0]} and "
                         f"n >= 1; got {slat.shape} and {slon.shape}")
    slat, slon = (geo._numpy64(v) for v in geo.validate_latlon(slat, slon, "sample_lat", "sample_lon"))
    d = geo.distance_km(np.repeat(lat, slat.shape[1]), np.repeat(lon, slat.shape[1]), slat.ravel(), slon.ravel())
    coverage = 100.0 * float((d.reshape(slat.shape) <= radius_km).any(1).mean())
    precision, recall = precision_recall(lat, lon, slat[:, 0], slon[:, 0], k)
    return {f"coverage@{radius_km:g}km": coverage, "precision": precision, "recall": recall}


def result_rows(profile: str, method: str, split: str, lat, lon, pred_lat, pred_lon, *,
                train_seconds: float = float("nan"), predict_seconds: float = float("nan"),
                sample_lat=None, sample_lon=None, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Rows of the results table for one method on one split (point metrics with intervals, plus
    the generative measures when samples are given; those carry no interval)."""
    for name, v in (("profile", profile), ("method", method), ("split", split)):
        if not isinstance(v, str) or v.strip() == "":
            raise ValueError(f"{name} must be a non-empty string (it keys the results table); got {v!r}")
    lat, lon = _points(lat, lon, "lat", "lon")
    pred_lat, pred_lon = _points(pred_lat, pred_lon, "pred_lat", "pred_lon")
    if pred_lat.shape != lat.shape:
        raise ValueError(f"pred_lat/pred_lon must have the shape of lat/lon, {lat.shape}; got {pred_lat.shape}")
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
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"results must be a pandas DataFrame with columns {RESULT_COLUMNS}; got {type(df).__name__}")
    if tuple(df.columns) != RESULT_COLUMNS:
        raise ValueError(f"results must have columns {RESULT_COLUMNS}; got {tuple(df.columns)}")
    keys = df[["profile", "method", "split"]]
    if bool(keys.isna().any().any()) or bool(keys.astype(str).apply(lambda c: c.str.strip() == "").any().any()):
        raise ValueError("results hold a row with a missing or empty profile, method or split")
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
    if isinstance(rows, pd.DataFrame):
        df = check_results(rows)
    else:
        try:
            df = pd.DataFrame(list(rows), columns=list(RESULT_COLUMNS))
        except (TypeError, ValueError) as e:
            raise ValueError(f"results must be rows (dicts with the keys {RESULT_COLUMNS}) or a DataFrame; "
                             f"got {type(rows).__name__} ({e})") from None
        df = check_results(df)
    path = _results_path(path)
    try:
        if path.is_dir():
            raise ValueError(f"path must be a CSV file path, not a folder; got {str(path)!r}")
        if not path.parent.is_dir():
            if path.parent.exists():
                raise ValueError(f"path {str(path)!r}: {str(path.parent)!r} is not a folder")
            raise FileNotFoundError(f"path {str(path)!r}: no such folder {str(path.parent)!r}")
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise ValueError(f"path must be a file path the file system accepts; got a name too long: "
                             f"{str(path)[:80]!r}...") from None
        raise
    return df


def _results_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path).strip() == "":
        raise ValueError(f"path must be a non-empty file path (str or os.PathLike); got {path!r}")
    return Path(path)


def read_results(path) -> pd.DataFrame:
    """A results CSV, schema checked."""
    path = _results_path(path)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"no results file {str(path)!r}" + (" (it is a folder)" if path.is_dir() else ""))
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise FileNotFoundError(f"no results file {str(path)!r} ({e.strerror})") from None
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


def best_vs_runner_up(df: pd.DataFrame, split: str, metrics=POINT_METRICS) -> pd.DataFrame:
    """Per metric on one split of a results table: the best method (highest accuracy or GeoScore,
    lowest error), the runner-up, both values, and whether their 95% intervals separate
    (best's low end above the runner-up's high end; the reverse for errors)."""
    if split not in set(df.split):
        raise ValueError(f"split must be one of {sorted(set(df.split))} (the splits in the results); got {split!r}")
    rows = []
    for metric in metrics:
        sub = df[(df.split == split) & (df.metric == metric)].set_index("method")
        if len(sub) < 2:
            continue
        lower = metric in LOWER_IS_BETTER
        order = sub.value.sort_values(ascending=lower, kind="stable")
        best, second = order.index[0], order.index[1]
        sep = sub.ci_high[best] < sub.ci_low[second] if lower else sub.ci_low[best] > sub.ci_high[second]
        rows.append({"metric": metric, "best": best, "value": order.iloc[0], "runner-up": second,
                     "runner-up value": order.iloc[1], "intervals separate": bool(sep)})
    return pd.DataFrame(rows)
