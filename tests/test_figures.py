"""The tile-and-map figures of notebooks 03 and 04 build offline from predictions of any method set."""
import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from locdiff import figures  # noqa: E402


@pytest.fixture
def split():
    rng = np.random.default_rng(0)
    n = 5
    return SimpleNamespace(tiles=rng.integers(0, 255, (n, 3, 8, 8), dtype=np.uint8), lat=rng.uniform(-60, 60, n),
                           lon=rng.uniform(-180, 180, n), place_name=[f"Place {i}" for i in range(n)],
                           country=["FR"] * n)


def _pred(n, k=4, seed=1):
    rng = np.random.default_rng(seed)
    return {"lat": rng.uniform(-60, 60, n), "lon": rng.uniform(-180, 180, n),
            "sample_lat": rng.uniform(-60, 60, (n, k)), "sample_lon": rng.uniform(-180, 180, (n, k))}


def test_figures_have_one_tile_and_one_map_per_shown_tile(split):
    preds = {(m, "test_iid"): _pred(5, seed=i) for i, m in enumerate(["Classification", "LocDiff", "Flow matching"])}
    idx = [0, 2, 3]
    fig = figures.samples_maps(split, _pred(3), idx)
    assert len(fig.axes) == 6 and fig.axes[1].get_title() .startswith("error ")
    fig = figures.prediction_maps(split, preds, "test_iid", ["Classification", "LocDiff"], idx)
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "Place 0 (FR)"
    fig = figures.ambiguous_tiles(split, preds, "test_iid", idx)
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="tiles and titles"):
        figures.tile_map_grid(split.tiles[:2], ["one"])
