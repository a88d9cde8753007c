"""The prepared GPU check (benchmarks/gpu_check.py) runs: its dry run on the CPU at toy size, every
stage in its own process, and a stage that fails or runs out of time is reported while the others
still run. (On a GPU machine the same script runs at the gpu profile's size: ``make gpu-check``.)"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_every_stage_passes(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    table = pd.read_csv(tmp_path / "gpu_check.csv")
    assert list(table.columns) == ["stage", "metric", "value", "unit", "status", "seconds", "device"]
    assert set(table.stage) == {"tests", "codec", "train", "sample", "ddp"}
    assert (table.status == "ok").all(), table[table.status != "ok"]
    value = dict(zip(table.stage + ":" + table.metric, table.value))
    n_tests = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              str(SCRIPT.parents[1] / "tests" / "test_cuda.py")], capture_output=True, text=True,
                             env={**os.environ, "LOCDIFF_TEST_DEVICE": "cpu"}).stdout.count("::")
    assert int(value["tests:tests passed"]) == n_tests > 0 and int(value["tests:tests skipped"]) == 0
    for L in (8, 16):                        # the device is the CPU here: the same kernel, identical numbers
        assert float(value[f"codec:encode L={L} max |device - cpu|"]) == 0.0
        assert float(value[f"codec:encode L={L} device"]) > 0 and float(value[f"codec:decode L={L} device/cpu"]) > 0
        assert float(value[f"codec:decode L={L} max error"]) < 1.0
    for prefix in ("train:", "ddp:ddp "):
        assert float(value[prefix + "loss last 20% of log"]) < float(value[prefix + "loss first 20% of log"])
        assert float(value[prefix + "training samples/s"]) > 0
    assert int(value["ddp:ddp processes"]) == 2 and int(value["train:processes"]) == 1
    assert float(value["sample:sampling images/s (decoding included)"]) > 0
    assert "== tests" in r.stdout and "wrote" in r.stdout and (tmp_path / "gpu_check.log").read_text().count("=====") == 5


def test_a_stage_past_its_limit_is_reported_and_the_next_still_runs(gpu_check, tmp_path):
    rows = gpu_check.check(tmp_path, dry=True, stages=["tests", "codec"], limits={"tests": 0.5, "codec": 120})
    status = {r["stage"]: r["status"] for r in rows if r["metric"] in ("error", "encode L=8 device")}
    assert status == {"tests": "timeout", "codec": "ok"}
    table = pd.read_csv(tmp_path / "gpu_check.csv")
    assert set(table.stage) == {"tests", "codec"}


def test_unknown_stage_is_refused_naming_the_stages(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--stages", "codec,warp", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--stages" in r.stderr and "tests, codec, train, sample, ddp" in r.stderr
