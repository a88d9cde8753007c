"""Speed of the embedded benchmark's data path, measured in one run with ratios against references.

Run:  .venv/bin/python benchmarks/bench_data.py      (part of `make bench`)

1. Tile rendering (tiles/s, 32 x 32, 300 km): ``TileRenderer.render`` batched in torch, against a
   reference that renders one tile at a time with numpy for the projection and
   ``scipy.ndimage.map_coordinates`` (bilinear, wrapping columns) for the sampling.
   Target of the data issue: >= 5,000 tiles/s on a 2-core machine.
2. Loading the cached splits of a profile (seconds), against building them from scratch: the cache
   must make loading take seconds, not a rebuild. Uses a temporary cache folder for the build so
   the user's cache is untouched; the load is timed on the user's cache (built first if absent).
Writes ``data/results/bench_data.csv`` atomically.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage
import torch

from locdiff.io import atomic_write
from locdiff import geo, profiles
from locdiff.data import bluemarble, tiles

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "results" / "bench_data.csv"


def reference_render(image: np.ndarray, renderer: tiles.TileRenderer, lat: float, lon: float) -> np.ndarray:
    """One tile, per-tile numpy + scipy.ndimage.map_coordinates (order 1, columns wrapped)."""
    plat, plon = renderer.pixel_latlon(lat, lon)
    H, W, _ = image.shape
    rows = (90.0 - plat[0].numpy()) * (H / 180.0) - 0.5
    cols = ((plon[0].numpy() + 180.0) * (W / 360.0) - 0.5) % W
    rows = np.clip(rows, 0, H - 1)
    return np.stack([scipy.ndimage.map_coordinates(image[..., c], [rows, cols], order=1, mode="grid-wrap")
                     for c in range(3)])


def main() -> None:
    profile = os.environ.get("BENCH_PROFILE", "cpu")
    print(f"data benchmarks: torch {torch.__version__}, {torch.get_num_threads()} threads, profile {profile}")
    rows = []
    renderer = tiles.TileRenderer(32, 300.0)
    image = tiles.blue_marble()
    lat, lon = geo.uniform_points(20_000, seed=1)
    renderer.render(lat[:256], lon[:256])
    best = min(_timed(lambda: renderer.render(lat, lon)) for _ in range(3))
    ours = len(lat) / best
    img_np = image.numpy().astype(np.float32)
    n_ref = 200
    t_ref = _timed(lambda: [reference_render(img_np, renderer, a, b) for a, b in zip(lat[:n_ref], lon[:n_ref])])
    ref = n_ref / t_ref
    diff = np.abs(renderer.render(lat[:20], lon[:20]).numpy().astype(float)
                  - np.stack([reference_render(img_np, renderer, a, b) for a, b in zip(lat[:20], lon[:20])])).max()
    print(f"render: locdiff {ours:,.0f} tiles/s, per-tile scipy reference {ref:,.0f} tiles/s, "
          f"ratio {ours / ref:.1f}x (max |diff| {diff:.2f} of 255); target >= 5,000 tiles/s: "
          f"{'PASS' if ours >= 5000 else 'FAIL'}")
    rows += [{"benchmark": "render", "method": "locdiff", "n": len(lat), "seconds": best, "throughput": ours,
              "unit": "tiles/s", "ratio_vs_reference": ours / ref},
             {"benchmark": "render", "method": "scipy per tile", "n": n_ref, "seconds": t_ref, "throughput": ref,
              "unit": "tiles/s", "ratio_vs_reference": 1.0}]

    settings = profiles.get(profile).data
    bluemarble.load(settings, 0, progress=False)          # make sure the user's cache exists
    t_load = _timed(lambda: bluemarble.load(settings, 0, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOCDIFF_CACHE"] = tmp
        t_build = _timed(lambda: bluemarble.load(settings, 0, progress=False))
        del os.environ["LOCDIFF_CACHE"]
    print(f"{profile} splits: load from cache {t_load:.1f} s, build from scratch {t_build:.1f} s "
          f"(ratio {t_build / t_load:.1f}x)")
    rows += [{"benchmark": f"splits_{profile}", "method": "load cached", "n": 5, "seconds": t_load,
              "throughput": 1 / t_load, "unit": "loads/s", "ratio_vs_reference": t_build / t_load},
             {"benchmark": f"splits_{profile}", "method": "build", "n": 5, "seconds": t_build,
              "throughput": 1 / t_build, "unit": "builds/s", "ratio_vs_reference": 1.0}]
    df = pd.DataFrame(rows)
    df["torch_version"], df["threads"] = torch.__version__, torch.get_num_threads()
    df["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, lambda tmp: df.to_csv(tmp, index=False))
    print(f"wrote {OUT.relative_to(ROOT)}")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
