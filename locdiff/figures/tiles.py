"""Figures that pair a tile with a world map of what the methods answered (notebooks 03 and 04).

Each figure is a grid of panels; a panel is the tile (north up) beside a Robinson map on which
points are drawn in the house colours (``plots.METHOD_COLORS``): samples as small dots, point
predictions as larger markers, the truth as a black star or cross.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import geo, plots

__all__ = ["tile_map_grid", "samples_maps", "prediction_maps", "ambiguous_tiles"]


def tile_map_grid(tiles, titles, ncols: int = 2, panel_size=(6.5, 2.8), title_size: int = 8):
    """A figure of len(tiles) (tile, map) pairs, ``ncols`` pairs per row. tiles: uint8 [N, 3, S, S].
    Returns (fig, map axes [N]); each map is prepared by ``plots.world_map``."""
    n = len(tiles)
    if n < 1 or len(titles) != n:
        raise ValueError(f"tiles and titles must be non-empty and of equal length; got {n} and {len(titles)}")
    nrows = (n + ncols - 1) // ncols
    fig = plt.figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    gs = fig.add_gridspec(nrows, 2 * ncols, width_ratios=[1, 2.4] * ncols, wspace=0.08, hspace=0.25)
    maps = []
    for j in range(n):
        r, c = divmod(j, ncols)
        ax_t = fig.add_subplot(gs[r, 2 * c])
        ax_t.imshow(np.asarray(tiles[j]).transpose(1, 2, 0))
        ax_t.axis("off")
        ax_t.set_title(titles[j], fontsize=title_size)
        ax = fig.add_subplot(gs[r, 2 * c + 1], projection=plots.map_projection("robinson"))
        plots.world_map(ax)
        maps.append(ax)
    return fig, maps


def _titles(split, idx, width: int = 16) -> list[str]:
    return [f"{split.place_name[i][:width]} ({split.country[i]})" for i in idx]


def _truth(ax, split, i, label=None, marker="*", size=90):
    plots.plot_points(ax, [split.lat[i]], [split.lon[i]], color=plots.COLORS["truth"], marker=marker, size=size,
                      label=label)


def samples_maps(split, pred: dict, idx):
    """LocDiff on tiles ``idx`` of a split: its samples, its point prediction and the truth, with the
    error in each map's title. ``pred``: ``LocDiff.predict`` output for exactly those tiles."""
    fig, maps = tile_map_grid(split.tiles[idx], _titles(split, idx), ncols=2, panel_size=(6.0, 2.4))
    for j, (ax, i) in enumerate(zip(maps, idx)):
        plots.plot_points(ax, pred["sample_lat"][j], pred["sample_lon"][j], color=plots.COLORS["sample"], size=8,
                          alpha=0.6, label="samples")
        plots.plot_points(ax, [pred["lat"][j]], [pred["lon"][j]], color=plots.METHOD_COLORS["LocDiff"], marker="*",
                          size=90, label="prediction")
        _truth(ax, split, i, "truth", marker="x", size=50)
        d = float(geo.distance_km(split.lat[i], split.lon[i], pred["lat"][j], pred["lon"][j]))
        ax.set_title(f"error {d:,.0f} km", fontsize=8)
    maps[0].legend(loc="lower left", fontsize=6)
    return fig


def prediction_maps(split, preds: dict, split_name: str, methods, idx):
    """Every method's point prediction on tiles ``idx`` (LocDiff's samples as dots) and the truth;
    ``preds``: ``compare.run``'s predictions {(method, split): arrays over the whole split}."""
    fig, maps = tile_map_grid(split.tiles[idx], _titles(split, idx, 18), title_size=9)
    ld = preds[("LocDiff", split_name)]
    for j, (ax, i) in enumerate(zip(maps, idx)):
        plots.plot_points(ax, ld["sample_lat"][i], ld["sample_lon"][i], color=plots.METHOD_COLORS["LocDiff"], size=4,
                          alpha=0.4)
        for m in methods:
            p = preds[(m, split_name)]
            plots.plot_points(ax, [p["lat"][i]], [p["lon"][i]], color=plots.METHOD_COLORS[m], size=28, marker="o",
                              edgecolors="k", linewidths=0.4, label=m if j == 0 else None)
        _truth(ax, split, i, "truth" if j == 0 else None)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.04), ncol=8, fontsize=8, frameon=False)
    fig.suptitle("Point predictions per method (dots: LocDiff's samples)")
    return fig


def ambiguous_tiles(split, preds: dict, split_name: str, idx, sampled=("Flow matching", "LocDiff"),
                    point="Classification"):
    """Tiles ``idx``: the samples of the ``sampled`` methods, ``point``'s prediction and the truth."""
    fig, maps = tile_map_grid(split.tiles[idx], _titles(split, idx))
    for ax, i in zip(maps, idx):
        for m in sampled:
            if (m, split_name) in preds:
                p = preds[(m, split_name)]
                plots.plot_points(ax, p["sample_lat"][i], p["sample_lon"][i], color=plots.METHOD_COLORS[m], size=8,
                                  alpha=0.7, label=f"{m} samples")
        if (point, split_name) in preds:
            p = preds[(point, split_name)]
            plots.plot_points(ax, [p["lat"][i]], [p["lon"][i]], color=plots.METHOD_COLORS[point], marker="s", size=40,
                              label=point)
        _truth(ax, split, i, "truth", marker="x", size=50)
    maps[0].legend(loc="lower left", fontsize=6)
    return fig
