"""Tables, figures and sentences for notebooks 04-06, computed from the results tables.

Nothing here decides a verdict in advance: ``generalization_summary`` writes its sentences from the
numbers it is given.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import geo
from .plots import METHOD_COLORS, SPLIT_COLORS

#: Im2GPS3k accuracy (%) at 1/25/200/750/2500 km, as reported in the papers and compiled by a
#: public survey of the papers' tables (LocDiff and LocDiff-H: Wang et al., NeurIPS 2025); "as reported",
#: on different data from ours.
PUBLISHED_IM2GPS3K = pd.DataFrame(
    [("PlaNet", "grid", 8.5, 24.8, 34.3, 48.4, 64.6), ("CPlaNet", "grid", 10.2, 26.5, 34.6, 48.6, 64.6),
     ("ISNs", "grid", 10.5, 28.0, 36.6, 49.7, 66.0), ("TransLocator", "grid", 11.8, 31.1, 46.7, 58.9, 80.1),
     ("GeoDecoder", "grid", 12.8, 33.5, 45.9, 61.0, 76.1), ("GeoCLIP", "retrieval", 14.1, 34.5, 50.7, 69.7, 83.8),
     ("PIGEOTTO", "grid + retrieval", 11.3, 36.7, 53.8, 72.4, 85.3),
     ("LocDiff", "SHDD diffusion", 10.9, 34.0, 53.3, 72.5, 85.2), ("LocDiff-H", "hybrid", 15.3, 36.5, 56.4, 75.2, 87.4)],
    columns=["method", "kind"] + [f"acc@{t:g}km" for t in geo.THRESHOLDS_KM]).set_index("method")


def errors(preds: dict, truths: dict, split: str, methods) -> dict[str, np.ndarray]:
    """{method: great-circle errors (km) on split} from ``compare.run`` predictions."""
    lat, lon = truths[split]
    return {m: geo.distance_km(lat, lon, preds[(m, split)]["lat"], preds[(m, split)]["lon"])
            for m in methods if (m, split) in preds}


def error_cdf(ax, errs: dict[str, np.ndarray]) -> None:
    """Cumulative share of images (%) within each error (km, log axis), one curve per method."""
    x = np.logspace(-1, np.log10(20_040), 400)
    for m, d in errs.items():
        ax.plot(x, 100 * (np.sort(d)[None, :] <= x[:, None]).mean(1), color=METHOD_COLORS.get(m), label=m, lw=1.8)
    for t in geo.THRESHOLDS_KM:
        ax.axvline(t, color="0.8", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlim(0.1, 20_040)
    ax.set_ylim(0, 100)
    ax.set_xlabel("great-circle error (km)")
    ax.set_ylabel("images within the error (%)")


def grouped_bars(ax, df: pd.DataFrame, metric: str, splits, methods) -> None:
    """Bars of ``metric`` per method (groups) and split (colours) with their 95% intervals."""
    width = 0.8 / len(splits)
    for j, s in enumerate(splits):
        sub = df[(df.split == s) & (df.metric == metric)].set_index("method").reindex(methods)
        x = np.arange(len(methods)) + (j - (len(splits) - 1) / 2) * width
        err = np.vstack([sub.value - sub.ci_low, sub.ci_high - sub.value])
        ax.bar(x, sub.value, width, color=SPLIT_COLORS.get(s), label=s, yerr=err, capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(np.arange(len(methods)))
    ax.set_xticklabels(methods, rotation=25, ha="right")


def regional_median(lat, lon, d_km, box_deg: float = 15.0, min_images: int = 3):
    """Median error (km) in lat/lon boxes of ``box_deg``: (lat centres [H], lon centres [W],
    values [H, W], NaN where fewer than ``min_images`` test images fall)."""
    H, W = int(round(180 / box_deg)), int(round(360 / box_deg))
    i = np.clip(((90 - np.asarray(lat)) / box_deg).astype(int), 0, H - 1)
    j = np.clip(((np.asarray(lon) + 180) / box_deg).astype(int), 0, W - 1)
    out = np.full((H, W), np.nan)
    key = i * W + j
    for k in np.unique(key):
        sel = key == k
        if sel.sum() >= min_images:
            out[k // W, k % W] = np.median(np.asarray(d_km)[sel])
    return 90 - box_deg * (np.arange(H) + 0.5), -180 + box_deg * (np.arange(W) + 0.5), out


def drops(df: pd.DataFrame, metric: str, base: str = "test_iid", others=("test_uniform", "test_unseen")) -> pd.DataFrame:
    """Methods x splits: the change of ``metric`` from ``base`` to each other split."""
    wide = df[df.metric == metric].pivot(index="method", columns="split", values="value")
    order = list(dict.fromkeys(df.method))
    return pd.DataFrame({s: wide[s] - wide[base] for s in others if s in wide}).reindex(order)


def _value(df, method, split, metric):
    r = df[(df.method == method) & (df.split == split) & (df.metric == metric)].iloc[0]
    return float(r.value), float(r.ci_low), float(r.ci_high)


def generalization_summary(df: pd.DataFrame, metric: str = "acc@750km", method: str = "LocDiff",
                           rivals=("Classification", "Retrieval"), splits=("test_uniform", "test_unseen"),
                           replicates: pd.DataFrame | None = None) -> str:
    """Sentences (Markdown) comparing ``method`` with ``rivals`` on the harder splits, from the
    numbers: the values with intervals, the drops from test_iid, and whether the intervals
    separate (non-overlapping 95% intervals) or not. With ``replicates`` (``seeds.run``), each
    comparison also says whether it holds in every training seed (``seeds.pairwise``): only
    those verdicts survive a rerun."""
    from .seeds import pairwise

    lines = []
    for s in splits:
        v, lo, hi = _value(df, method, s, metric)
        base = _value(df, method, "test_iid", metric)[0]
        parts = []
        for r in rivals:
            rv, rlo, rhi = _value(df, r, s, metric)
            rbase = _value(df, r, "test_iid", metric)[0]
            if lo > rhi:
                verdict = "higher, with separated 95% intervals"
            elif hi < rlo:
                verdict = "lower, with separated 95% intervals"
            else:
                verdict = "not distinguishable (overlapping 95% intervals)"
            seed_note = ""
            if replicates is not None:
                pw = pairwise(replicates, s, metric, method, r)
                said = (f"the order of {method} and {r} changes between seeds" if pw["verdict"].startswith("order")
                        else f"{method} is {pw['verdict']}")
                seed_note = (f"; over train seeds {', '.join(map(str, pw['seeds']))} (means {pw['mean_a']:.1f} vs "
                             f"{pw['mean_b']:.1f}) {said}")
            parts.append(f"{r} {rv:.1f} [{rlo:.1f}, {rhi:.1f}] (change from test_iid {rv - rbase:+.1f}): "
                         f"{method} is {verdict}{seed_note}")
        lines.append(f"- **{s}**, {metric}: {method} {v:.1f} [{lo:.1f}, {hi:.1f}] (change from test_iid "
                     f"{v - base:+.1f}); " + "; ".join(parts) + ".")
    return "\n".join(lines)


def markdown_table(df: pd.DataFrame, split: str, metrics=None, intervals: bool = False) -> str:
    """The methods x metrics table of one split as Markdown (for the README), from a results table."""
    from .evaluate import POINT_METRICS, table

    t = table(df, split, metrics or POINT_METRICS, intervals=intervals)
    head = "| method | " + " | ".join(c.replace("acc@", "").replace("_km", " (km)") for c in t.columns) + " |"
    rule = "|---" * (len(t.columns) + 1) + "|"
    fmt = (lambda v: v) if intervals else (lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}")
    rows = [f"| {m} | " + " | ".join(fmt(v) for v in r) + " |" for m, r in t.iterrows()]
    return "\n".join([head, rule] + rows)
