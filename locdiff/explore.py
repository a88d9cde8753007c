"""The interactive explorer of notebook 07: pick a place, see the tile and where LocDiff puts it.

``show(pipe, lat, lon, ...)`` renders one selection as a figure (tile, density map with samples,
modes and truth, the error); ``explorer(pipe)`` wraps it in ipywidgets controls: a place name
(GeoNames lookup), latitude / longitude, a random test tile, sliders for the number of samples and
the guidance scale.
"""
from __future__ import annotations

import numpy as np

from . import geo, plots
from .data.tiles import TileRenderer


def render_tile(pipe, lat: float, lon: float) -> np.ndarray:
    """The benchmark tile [S, S, 3] uint8 centred on (lat, lon), at the pipeline's tile size."""
    footprint = pipe.meta.get("data", {}).get("footprint_km", 300.0)
    return TileRenderer(pipe.tile_size, footprint).render(np.array([lat]), np.array([lon]))[0].permute(1, 2, 0).numpy()


def show(pipe, lat: float, lon: float, n: int = 16, guidance: float = 1.0, seed: int = 0, title: str = ""):
    """Figure of one selection; returns (fig, summary dict with the prediction and the error)."""
    import matplotlib.pyplot as plt

    lat_a, lon_a = geo.validate_latlon(np.array([float(lat)]), np.array([float(lon)]))
    lat, lon = float(lat_a[0]), float(lon_a[0])
    tile = render_tile(pipe, lat, lon)
    z = pipe._latents([tile], n, None, guidance, seed, 256, False)
    from . import shdd
    from .latent import decode_samples

    latent = pipe.locdiff.diffusion.latent
    mlat, mlon, slat, slon = decode_samples(z, k=3, latent=latent)
    slat, slon, mean = slat[0].numpy(), slon[0].numpy(), latent.mean_coeffs(z)
    lat_ax, lon_ax = geo.grid_axes(2.0)
    f = shdd.field(mean[0].double() * shdd.taper_weights(pipe.locdiff.settings.L), lat_ax, lon_ax, grid=True).numpy()
    err = float(geo.distance_km(lat, lon, float(mlat[0, 0]), float(mlon[0, 0])))
    fig = plt.figure(figsize=(11, 3.9))
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 3.2], wspace=0.05)
    ax_t = fig.add_subplot(gs[0])
    ax_t.imshow(tile)
    ax_t.set_title(title or f"tile at {lat:.2f}, {lon:.2f}", fontsize=9)
    ax_t.axis("off")
    ax = fig.add_subplot(gs[1], projection=plots.map_projection("robinson"))
    plots.world_map(ax)
    rel = f / f.max()
    plots.plot_field(ax, lat_ax, lon_ax, np.where(rel < 0.05, np.nan, rel), cmap="magma_r", vmin=0, vmax=1,
                     colorbar="field (relative to its maximum)")
    plots.plot_points(ax, slat, slon, color=plots.COLORS["sample"], size=10, alpha=0.7,
                      label=f"{n} samples")
    plots.plot_points(ax, mlat[0].numpy(), mlon[0].numpy(), color="#56B4E9", marker="X", size=70, edgecolors="k",
                      linewidths=0.5, label="top-3 modes")
    plots.plot_points(ax, [lat], [lon], color=plots.COLORS["truth"], marker="*", size=120, label="truth")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"prediction {float(mlat[0, 0]):.2f}, {float(mlon[0, 0]):.2f}: error {err:,.0f} km "
                 f"(guidance {guidance:g})", fontsize=10)
    return fig, {"lat": lat, "lon": lon, "pred_lat": float(mlat[0, 0]), "pred_lon": float(mlon[0, 0]), "error_km": err}


def explorer(pipe, test_split=None, draw_first: bool = False):
    """ipywidgets controls around ``show``. ``test_split``: a data split for the random-tile button;
    ``draw_first`` draws Paris into the widget at once (otherwise on the first interaction)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .data.places import find_place

    name = w.Text(value="Paris", description="place")
    lat = w.BoundedFloatText(value=48.8566, min=-90, max=90, step=0.1, description="lat (°)")
    lon = w.BoundedFloatText(value=2.3522, min=-180, max=180, step=0.1, description="lon (°)")
    samples = w.IntSlider(value=pipe.locdiff.settings.samples, min=1, max=64, description="samples")
    guidance = w.FloatSlider(value=1.0, min=0.0, max=4.0, step=0.25, description="guidance")
    go = w.Button(description="locate")
    rand = w.Button(description="random test tile", disabled=test_split is None)
    status, out = w.HTML(), w.Output()
    rng = np.random.default_rng(0)

    def draw(title=""):
        out.clear_output(wait=True)
        with out:
            fig, summary = show(pipe, lat.value, lon.value, samples.value, guidance.value, title=title)
            display(fig)
            plt.close(fig)
        status.value = f"error of the top mode: <b>{summary['error_km']:,.0f} km</b>"

    def on_name(_):
        try:
            p = find_place(name.value)
        except ValueError as e:
            status.value = f"<span style='color:#D55E00'>{e}</span>"
            return
        lat.value, lon.value = p.lat, p.lon
        draw(f"{p.name} ({p.country})")

    def on_random(_):
        i = int(rng.integers(len(test_split)))
        lat.value, lon.value = float(test_split.lat[i]), float(test_split.lon[i])
        draw(f"{test_split.place_name[i]} ({test_split.country[i]})")

    name.on_submit(on_name)
    go.on_click(lambda _: draw())
    rand.on_click(on_random)
    ui = w.VBox([w.HBox([name, rand]), w.HBox([lat, lon, go]), w.HBox([samples, guidance]), status, out])
    display(ui)
    if draw_first:
        draw("Paris (FR)")
    else:
        status.value = "choose a place, coordinates or a random test tile"
    return ui
