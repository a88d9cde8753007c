"""benchmarks/bench_scale.py in --quick mode: the CSV it writes has every column, the three methods
in both comparisons and positive finite throughputs; the memory measurement returns a finite peak."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
METHODS = {"LocDiff", "Raw diffusion", "Flow matching"}
THROUGHPUTS = ["train_samples_per_s", "sample_images_per_s_no_decoding", "sample_images_per_s_with_decoding"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_quick_run_writes_csv_and_figure(bench, tmp_path):
    torch.manual_seed(0)
    bench.main(["--quick", "--no-memory", "--device", "cpu", "--out", str(tmp_path)])
    df = pd.read_csv(tmp_path / "data" / "results" / "bench_scale.csv")
    expected = {"comparison", "method", "widths", "data_dim", "parameters", "batch_size", "nfe_per_image",
                "samples_per_image", "steps_per_sample", "guidance", "memory_measure", "rounds", "device",
                "train_peak_mib_above_setup", "predict_peak_mib_above_setup"}
    expected |= {c + suffix for c in THROUGHPUTS for suffix in ("", "_min", "_max", "_ratio_vs_locdiff")}
    assert expected <= set(df.columns)
    assert len(df) == 6
    for comparison in ("own_widths", "same_widths"):
        sub = df[df.comparison == comparison]
        assert set(sub.method) == METHODS
        assert sub.set_index("method").loc["LocDiff", THROUGHPUTS[0] + "_ratio_vs_locdiff"] == pytest.approx(1.0)
    for col in THROUGHPUTS + [c + "_ratio_vs_locdiff" for c in THROUGHPUTS]:
        assert (df[col] > 0).all() and df[col].map(math.isfinite).all(), col
    # the data dimensions: (L+1)² for LocDiff, 3 for the baselines; same widths in the second comparison
    assert set(df[df.method == "LocDiff"].data_dim) == {(8 + 1) ** 2}
    assert set(df[df.method != "LocDiff"].data_dim) == {3}
    assert df[df.comparison == "same_widths"].widths.nunique() == 1
    assert (df.nfe_per_image == df.samples_per_image * df.steps_per_sample).all()     # guidance 1: no doubling
    assert (tmp_path / "figures" / "bench_scale.png").stat().st_size > 10_000


def test_memory_child_reports_a_finite_peak(bench):
    """The function each memory subprocess runs (called in this process here, to keep the test short)."""
    sz = bench.sizes(quick=True, rounds=None)
    res = bench.memory_child({"method": "Flow matching", "widths": [64, 64], "phase": "train"}, sz,
                             torch.device("cpu"), 1.0)
    assert res["method"] == "Flow matching" and res["phase"] == "train"
    assert math.isfinite(res["peak_mb"]) and 0 <= res["peak_mb"] < 1024
