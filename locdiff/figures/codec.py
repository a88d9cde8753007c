"""Figures of notebook 01: the SHDD field of one point and of a mixture, its peak width, its noise
robustness and the codec's speed. Fields are drawn divided by the peak height (L+1)²/4π."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import geo, plots, shdd

__all__ = ["map_axes", "relative_field", "fields_by_degree", "half_width", "noise_robustness", "mixture_modes",
           "codec_speed"]

#: Cell centres of the maps' grid (``geo.grid_axes``).
map_axes = geo.grid_axes


def relative_field(coeffs, L: int, resolution_deg: float = 2.0):
    """(lat [H], lon [W], f(y) / ((L+1)²/4π) [H, W]): the field of SH coefficients of degree L on the
    maps' grid, divided by the peak height of one encoded point (1 at a clean point)."""
    la, lo = map_axes(resolution_deg)
    return la, lo, (shdd.field(coeffs, la, lo, grid=True) / shdd.peak_value(L)).numpy()


def fields_by_degree(lat: float, lon: float, degrees, resolution_deg: float = 2.0):
    """f(y) / ((L+1)²/4π) of the encoding of one point (degrees) for each L in ``degrees``, one map each."""
    fig, axes = plots.world_maps(len(degrees), ncols=3, coast_color="0.85")
    for ax, L in zip(axes, degrees):
        ax.set_title(f"L = {L}  ({(L + 1) ** 2} coefficients)")
        mesh = plots.plot_field(ax, *relative_field(shdd.encode(lat, lon, L), L, resolution_deg), cmap="magma",
                                vmin=-0.2, vmax=1.0)
    fig.colorbar(mesh, ax=axes, shrink=0.6, label="field / peak height  f(y) / ((L+1)²/4π)")
    return fig


def half_width(widths):
    """Measured half width at half maximum (km) against L, log-log, beside the closed form
    HALF_WIDTH_X · R / (L+1). ``widths``: DataFrame with L and measured_km."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.loglog(widths.L, widths.measured_km, "o", label="measured on the exact field")
    Ls = np.geomspace(widths.L.min(), widths.L.max(), 100)
    ax.loglog(Ls, shdd.HALF_WIDTH_X * geo.EARTH_RADIUS_KM / (Ls + 1), "-",
              label=f"closed form {shdd.HALF_WIDTH_X:.4f} R / (L+1)")
    ax.set_xlabel("maximum degree L")
    ax.set_ylabel("half width at half maximum (km)")
    ax.set_title("Peak width of one encoded point")
    ax.legend()
    return fig


def noise_robustness(noise, n_points: int):
    """Median decoding error (km, log) against the noise σ, one curve per L. ``noise``: DataFrame
    with L, noise, median_km (rows with noise 0 are the clean reference and are not drawn)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for L, g in noise[noise.noise > 0].groupby("L"):
        ax.plot(g.noise, g.median_km, "o-", label=f"L = {L}")
    ax.set_yscale("log")
    ax.set_xlabel("noise σ (relative to the RMS entry of a clean vector)")
    ax.set_ylabel("median decoding error (km)")
    ax.set_title(f"Decoding under noise ({n_points} random points per L and σ)")
    ax.legend(title="degree")
    return fig


def mixture_modes(mix, L: int, lat, lon, modes, resolution_deg: float = 2.0):
    """The field of a mixture of encodings ``mix`` (coefficients of degree L) with the encoded points
    (open circles) and its decoded modes (crosses; DataFrame with mode_lat, mode_lon)."""
    fig, ax = plots.world_map(coast_color="0.85", title=f"Average of {len(lat)} encodings (L = {L}) and its "
                                                          f"top-{len(modes)} modes")
    plots.plot_field(ax, *relative_field(mix, L, resolution_deg), cmap="magma", vmin=-0.1, vmax=0.4,
                     colorbar="field / peak height")
    plots.plot_points(ax, lat, lon, color=None, marker="o", size=70, label="encoded points",
                      edgecolors=plots.COLORS["truth"], facecolors="none", linewidths=1.5)
    plots.plot_points(ax, modes.mode_lat, modes.mode_lon, color="#56B4E9", marker="x", size=50, label="decoded modes")
    ax.legend(loc="lower left")
    return fig


def codec_speed(speed):
    """Encode (points/s) and decode (fields/s) throughput against L, log-log. ``speed``: DataFrame
    with L, encode_points_per_s, decode_fields_per_s, threads."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.loglog(speed.L, speed.encode_points_per_s, "o-", label="encode (points / s)")
    ax.loglog(speed.L, speed.decode_fields_per_s, "s-", label="decode, k = 1 (fields / s)")
    ax.set_xlabel("maximum degree L")
    ax.set_ylabel("throughput (per second)")
    ax.set_title(f"SHDD codec speed ({int(speed.threads.iloc[0])} CPU threads, float32)")
    ax.legend()
    return fig
