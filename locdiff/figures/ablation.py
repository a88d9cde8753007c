"""Figures of notebook 06: the degree sweep and the coarse bands of each degree's denoiser."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .. import plots

__all__ = ["degree_sweep", "coarse_bands"]


def degree_sweep(table, split: str, n_images: int, steps: int, metrics=("acc@25km", "acc@200km", "acc@750km")):
    """One panel per metric: the value (%) with its 95% interval against the degree variant.
    ``table``: the "degree L" rows of ``ablations.run`` (variant, metric, value, ci_low, ci_high)."""
    missing = [m for m in metrics if m not in set(table.metric)]
    if missing:
        raise ValueError(f"metrics must be metrics of the table ({sorted(set(table.metric))}); missing {missing}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        sub = table[table.metric == m].drop_duplicates("variant")
        ax.errorbar(sub.variant, sub.value, yerr=[sub.value - sub.ci_low, sub.ci_high - sub.value], fmt="o-",
                    color=plots.METHOD_COLORS["LocDiff"], capsize=3)
        ax.set_xlabel("SHDD degree")
        ax.set_ylabel(f"{m} (%)")
    fig.suptitle(f"Degree sweep on {split} ({n_images} tiles, {steps} steps each, 95% intervals)", fontsize=11)
    return fig


def coarse_bands(coarse, l_max: int):
    """The relative error of the bands l ≤ ``l_max`` of x̂0 against t (log), one curve per degree L
    with its loss share. ``coarse``: ``ablations.coarse_band_errors`` output (L, t, relative, loss_share)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for L, g in coarse.groupby("L"):
        ax.plot(g.t, g.relative, "o-", label=f"L = {L} (loss share of l ≤ {l_max}: {100 * g.loss_share.iloc[0]:.0f}%)")
    ax.set_yscale("log")
    ax.set_xlabel("diffusion timestep t")
    ax.set_ylabel(f"relative error of bands l ≤ {l_max} in x̂0")
    ax.set_title("How well each degree's denoiser reproduces the coarse bands (val)", fontsize=10)
    ax.legend(fontsize=7)
    return fig
