"""Figures of notebooks 04 and 05: every method's accuracy, calibration and generalization, drawn
from ``compare.run``'s results table (method, split, metric, value, ci_low, ci_high) and predictions."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import geo, plots, report

__all__ = ["accuracy_panels", "reliability", "generalization_bars", "error_maps"]

#: The published rows drawn dotted beside ours (Im2GPS3k, another data set: shape only).
PUBLISHED_SHOWN = ("GeoCLIP", "LocDiff", "LocDiff-H")


def accuracy_panels(results, preds: dict, truths: dict, split: str, methods, published=PUBLISHED_SHOWN):
    """Left: the share of ``split``'s images within each error, per method. Right: accuracy (%) at
    ``geo.THRESHOLDS_KM`` with 95% bootstrap intervals, and the ``published`` Im2GPS3k rows dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    report.error_cdf(axes[0], report.errors(preds, truths, split, methods))
    axes[0].set_title(f"{split}: share of images within each error")
    axes[0].legend(fontsize=8, loc="upper left")
    thr = [f"acc@{t:g}km" for t in geo.THRESHOLDS_KM]
    sel = results[(results.split == split) & results.metric.isin(thr)]
    for m in methods:
        sub = sel[sel.method == m].set_index("metric").loc[thr]
        axes[1].errorbar(geo.THRESHOLDS_KM, sub.value, yerr=[sub.value - sub.ci_low, sub.ci_high - sub.value],
                         color=plots.METHOD_COLORS[m], marker="o", ms=4, capsize=2, label=m)
    for m, row in report.PUBLISHED_IM2GPS3K.loc[list(published)].iterrows():
        axes[1].plot(geo.THRESHOLDS_KM, row[thr].astype(float), ls=":", color=plots.METHOD_COLORS.get(m, "0.5"),
                     lw=1.2, label=f"{m} on Im2GPS3k (as reported)")
    axes[1].set_xscale("log")
    axes[1].set_ylim(0, 100)
    axes[1].set_xlabel("threshold (km)")
    axes[1].set_ylabel("accuracy (%)")
    axes[1].set_title(f"{split} accuracy, 95% intervals (dotted: published, other data)")
    axes[1].legend(fontsize=7, ncol=2)
    return fig


def reliability(table):
    """Reliability diagram per split: the share of truths inside each method's α-highest-density
    region against α (both %), with the diagonal of a calibrated method. ``table``: split, method,
    alpha, coverage (fractions), as ``compare.distribution_scores`` writes them (reliability.csv)."""
    groups = list(table.groupby("split", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4.2), squeeze=False)
    for ax, (split, grp) in zip(axes[0], groups):
        for method, g in grp.groupby("method", sort=False):
            ax.plot(100 * g.alpha, 100 * g.coverage, "o-", ms=3, color=plots.METHOD_COLORS[method], label=method)
        ax.plot([0, 100], [0, 100], color="0.5", lw=0.8, ls=":", label="calibrated")
        ax.set_xlabel("highest-density region mass α (%)")
        ax.set_ylabel("truths inside the α-region (%)")
        ax.set_title(split)
        ax.set_aspect("equal")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    return fig


def generalization_bars(results, splits, methods, metrics=("acc@750km", "acc@2500km")):
    """Per metric, bars of each method (groups) on each split (colours) with 95% intervals."""
    bad = [m for m in metrics if not (m.startswith("acc@") and m.endswith("km"))]
    if bad:
        raise ValueError(f"metrics must be accuracies 'acc@<r>km' (drawn in % on 0-100); got {bad}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        report.grouped_bars(ax, results, metric, splits, methods)
        ax.set_ylabel(f"accuracy within {metric[4:-2]} km (%)")
        ax.set_ylim(0, 100)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Each method on the test splits (95% bootstrap intervals)")
    return fig


def error_maps(preds: dict, truths: dict, splits, methods, box_deg: float = 15.0):
    """One map per method: the median error (km, log colour scale 10-10,000) of the test images of
    ``splits`` pooled, in lat/lon boxes of ``box_deg`` (``report.regional_median``)."""
    lat = np.concatenate([truths[s][0] for s in splits])
    lon = np.concatenate([truths[s][1] for s in splits])
    fig, axes = plots.world_maps(len(methods), ncols=len(methods), panel_size=(4.6, 2.6))
    for ax, m in zip(axes, methods):
        d = np.concatenate([report.errors(preds, truths, s, [m])[m] for s in splits])
        la, lo, grid = report.regional_median(lat, lon, d, box_deg=box_deg)
        mesh = plots.plot_field(ax, la, lo, np.log10(np.maximum(grid, 1.0)), cmap="viridis", vmin=1, vmax=4)
        ax.set_title(m)
    cb = fig.colorbar(mesh, ax=axes, shrink=0.7, pad=0.02, ticks=[1, 2, 3, 4])
    cb.ax.set_yticklabels(["10", "100", "1,000", "10,000"])
    cb.set_label("median error (km)")
    return fig
