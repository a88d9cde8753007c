"""Throughput of ``LocDiffPipeline.predict`` with the shipped weights, on 1,000 benchmark tiles.

Run:  .venv/bin/python benchmarks/bench_pipeline.py      (or `make bench`)

The tiles are rendered for 1,000 area-uniform points (``geo.uniform_points``, seed 0), then
``predict(tiles, top_k=5)`` runs with the model's settings (8 samples, 10 DDIM steps for the shipped weights), with its
progress bar. Prints images/s and writes ``data/results/bench_pipeline.csv`` (one row per run;
best of two runs reported). Tile rendering is not timed.
"""
from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from locdiff import geo
from locdiff.data.tiles import TileRenderer
from locdiff.io import atomic_write
from locdiff.pipeline import LocDiffPipeline

N = 1000
OUT = Path(__file__).resolve().parents[1] / "data" / "results" / "bench_pipeline.csv"


def main() -> None:
    pipe = LocDiffPipeline.from_pretrained()
    lat, lon = geo.uniform_points(N, seed=0)
    tiles = TileRenderer(pipe.tile_size, pipe.meta.get("data", {}).get("footprint_km", 300.0)).render(lat, lon)
    images = list(tiles.permute(0, 2, 3, 1).numpy())
    pipe.predict(images[:8], progress=False)                     # warm-up
    rows = []
    for run in range(2):
        t0 = time.perf_counter()
        table = pipe.predict(images, top_k=5, batch=250, progress=True)
        seconds = time.perf_counter() - t0
        rows.append({"run": run, "images": N, "seconds": seconds, "images_per_s": N / seconds,
                     "samples": pipe.locdiff.settings.samples, "ddim_steps": pipe.locdiff.settings.ddim_steps,
                     "top_k": 5, "threads": torch.get_num_threads(), "machine": platform.machine(),
                     "when": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        print(f"run {run}: {N} images in {seconds:.1f} s = {N / seconds:.1f} images/s ({len(table)} rows)")
    df = pd.DataFrame(rows)
    atomic_write(OUT, lambda tmp: df.to_csv(tmp, index=False))
    print(f"best: {df.images_per_s.max():.1f} images/s; wrote {OUT}")


if __name__ == "__main__":
    main()
