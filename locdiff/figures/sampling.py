"""Figures of notebook 03: the reverse process as fields on a map, and the sampling knobs."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import plots
from .codec import relative_field

__all__ = ["reverse_process", "sampling_knobs"]

KNOB_CURVES = (("acc@2500km", "LocDiff"), ("acc@750km", "Classification"), ("acc@200km", "Retrieval"))


def reverse_process(ld, trajectory, lat: float, lon: float, n_show: int = 4, resolution_deg: float = 2.0):
    """The field of the current estimate x̂0 (divided by the peak height (L+1)²/4π) at ``n_show``
    evenly spaced DDIM steps of one sample, with the true point (degrees) as a cross.
    ``trajectory``: [steps, B, n, D] from ``LocDiff.sample(..., return_trajectory=True)``; image 0,
    sample 0 drawn."""
    steps = trajectory.shape[0]
    if n_show < 1:
        raise ValueError(f"n_show must be >= 1; got {n_show}")
    show = np.unique(np.linspace(0, steps - 1, min(n_show, steps)).round().astype(int))
    fig, axes = plots.world_maps(len(show), ncols=len(show), panel_size=(3.6, 2.1), coast_color="0.85")
    for ax, k in zip(axes, show):
        field = relative_field(ld.diffusion.to_coeffs(trajectory[k, 0, 0]), ld.settings.L, resolution_deg)
        mesh = plots.plot_field(ax, *field, cmap="magma", vmin=-0.2, vmax=1.0)
        plots.plot_points(ax, [lat], [lon], color="#56B4E9", marker="x", size=40)
        ax.set_title(f"DDIM step {k + 1} of {steps}", fontsize=9)
    fig.colorbar(mesh, ax=axes, shrink=0.7, pad=0.02, label="field / peak height")
    return fig


def sampling_knobs(sweeps, split: str, n_images: int):
    """Accuracy (%) within 2500 / 750 / 200 km against each knob of ``experiment.sampling_sweep``
    (``sweeps``: knob in {samples, DDIM steps, guidance}, value, acc@... columns); counts on log axes."""
    knobs = list(dict.fromkeys(sweeps.knob))
    fig, axes = plt.subplots(1, len(knobs), figsize=(4 * len(knobs), 3.4), sharey=True, squeeze=False)
    for ax, knob in zip(axes[0], knobs):
        g = sweeps[sweeps.knob == knob]
        for metric, method in KNOB_CURVES:
            ax.plot(g.value, g[metric], "o-", color=plots.METHOD_COLORS[method], label=metric.replace("acc@", "within "))
        ax.set_xlabel("guidance scale w" if knob == "guidance" else knob)
        if knob != "guidance":
            ax.set_xscale("log")
    axes[0, 0].set_ylabel(f"{split} accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"LocDiff sampling knobs ({n_images} {split} images)")
    return fig
