"""Figures of notebook 00: where the tiles lie, what they look like, and how the tile encoder trained."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import plots

__all__ = ["split_maps", "random_tiles", "encoder_training", "embeddings_pca"]

MAP_SPLITS = ("train", "test_iid", "test_uniform", "test_unseen")


def split_maps(splits: dict, held_bounds, names=MAP_SPLITS, max_points: int = 6000):
    """One Robinson map per split in ``names``: its tiles as dots (the first ``max_points``) over the
    held-out cells shaded. ``splits``: {name: Split with .lat, .lon in degrees}; ``held_bounds``:
    (lat_min, lat_max, lon_min, lon_max) per held-out cell, degrees."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1; got {max_points}")
    missing = [n for n in names if n not in splits]
    if missing:
        raise ValueError(f"names must be splits of `splits` ({sorted(splits)}); missing {missing}")
    fig, axes = plots.world_maps(len(names), ncols=2, panel_size=(6.0, 3.3))
    for ax, name in zip(axes, names):
        plots.shade_cells(ax, held_bounds, color=plots.SPLIT_COLORS["test_unseen"], alpha=0.25,
                          label="held-out cells")
        s = splits[name]
        k = min(len(s.lat), max_points)
        plots.plot_points(ax, s.lat[:k], s.lon[:k], color=plots.SPLIT_COLORS.get(name), size=1.5, alpha=0.6,
                          linewidths=0)
        shown = f", first {k:,} shown" if len(s.lat) > k else ""
        ax.set_title(f"{name} ({len(s.lat):,} tiles{shown})")
    axes[0].legend(loc="lower left", fontsize=8)
    return fig


def random_tiles(split, n: int = 24, seed: int = 0, ncols: int = 8, name: str = "test_iid"):
    """``n`` tiles of ``split`` drawn without replacement (numpy generator ``seed``), titled with
    their place and country; ``name`` titles the figure. Returns (fig, the indices drawn)."""
    if not 1 <= n <= len(split.lat):
        raise ValueError(f"n must lie in [1, {len(split.lat)}] (the split's size); got {n}")
    pick = np.random.default_rng(seed).choice(len(split.lat), n, replace=False)
    fig = plots.tile_mosaic(split.tiles[pick], [f"{split.place_name[i]} ({split.country[i]})" for i in pick],
                            ncols=ncols)
    fig.suptitle(f"Random {name} tiles, 300 km across, north up", fontsize=10)
    return fig, pick


def encoder_training(history):
    """Contrastive loss (train, val) and val recall@1 (%) per epoch. ``history``: DataFrame with
    epoch, train_loss, val_loss, val_recall_at_1 (a fraction), as ``encoders.load_embeddings`` gives."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(history.epoch, history.train_loss, "o-", label="train (augmented)")
    ax1.plot(history.epoch, history.val_loss, "s-", label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("contrastive loss (InfoNCE)")
    ax1.legend()
    ax2.plot(history.epoch, 100 * history.val_recall_at_1, "o-", color=plots.SPLIT_COLORS["val"])
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val image→location recall@1 (%)")
    fig.suptitle("Training the frozen tile encoder")
    return fig


def embeddings_pca(emb, continent, names: dict, split: str = "test_iid"):
    """Embeddings [N, d] projected on their first two principal components, one colour per continent.
    ``continent``: code per row [N]; ``names``: {code: continent name} (``data.CONTINENTS``)."""
    from ..encoders import pca_2d

    continent = np.asarray(continent)
    if len(continent) != len(emb):
        raise ValueError(f"continent must hold one code per embedding row ({len(emb)}); got {len(continent)}")
    xy = pca_2d(np.asarray(emb))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for code, name in names.items():
        m = continent == code
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.7, label=name)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(f"{split} embeddings by continent (PCA)")
    ax.legend(markerscale=3, fontsize=8)
    return fig
