"""Interrupts, checksums and data-parallel training of the shared loop (``locdiff.train``).

- A real SIGINT / SIGTERM sent to a training subprocess writes a checkpoint and exits with
  128 + the signal number; resuming ends with exactly the weights of an uninterrupted run.
- A truncated or altered checkpoint file is refused with a message naming it, also by the
  reuse path of ``fit_or_load`` (nothing is silently retrained over a user's run).
- Two processes (``accelerate launch``, gloo on CPU) train LocDiff on the smoke data with the
  same global batch as one process: the logged losses agree within 5 % (relative) at every log
  step, and the checkpoint has the same format.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from locdiff.train import CheckpointError, TrainConfig, fit_or_load, read_checkpoint_config, train

BIN = Path(sys.executable).parent
STEPS = 300

JOB = r'''
import sys, time
from pathlib import Path
import torch
from locdiff.train import TrainConfig, TrainingInterrupted, train

out, mode, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Dropout(0.2), torch.nn.Tanh(), torch.nn.Linear(32, 3))
g = torch.Generator().manual_seed(123)
x, y = torch.randn(200, 6, generator=g), torch.randn(200, 3, generator=g)
calls = [0]

def loss_fn(m, idx, gen):
    calls[0] += 1
    if calls[0] == 20:
        marker.write_text("training")
    if mode != "reference":
        time.sleep(0.02)               # slow enough for the signal to land mid-run
    noise = 0.01 * torch.randn(len(idx), 3, generator=gen)
    return {"loss": ((m(x[idx]) - y[idx] - noise) ** 2).mean()}

cfg = TrainConfig(steps=%d, batch_size=32, lr=3e-3, warmup=10, ema_decay=0.95, log_every=10, eval_every=10,
                  checkpoint_every=100000)     # no periodic checkpoint: only the interrupt writes one
try:
    train(model, loss_fn, 200, cfg, out, {"job": 1}, resume=mode == "resume", progress=False)
except TrainingInterrupted as e:
    print("interrupted at step", e.step, flush=True)
    sys.exit(128 + e.signum)
print("finished", flush=True)
''' % STEPS


def _job(tmp_path: Path, out: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(out), mode, str(tmp_path / f"marker-{out.name}")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _weights(run: Path) -> dict:
    ck = run / "checkpoint"
    return {**{f"model.{k}": v for k, v in load_file(str(ck / "model.safetensors")).items()},
            **{f"ema.{k}": v for k, v in load_file(str(ck / "ema.safetensors")).items()}}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_writes_checkpoint_and_resume_matches_uninterrupted(tmp_path, sig):
    ref = _job(tmp_path, tmp_path / "reference", "reference")
    assert ref.wait(timeout=120) == 0, ref.stderr.read()

    run = tmp_path / "interrupted"
    p = _job(tmp_path, run, "train")
    marker = tmp_path / f"marker-{run.name}"
    deadline = time.time() + 60
    while not marker.exists():
        assert p.poll() is None and time.time() < deadline, "the job ended or stalled before training started"
        time.sleep(0.05)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, (p.returncode, out, err)
    assert "Traceback" not in err, err
    step = int(out.split("interrupted at step")[1].split()[0])
    assert 20 <= step < STEPS
    assert read_checkpoint_config(run / "checkpoint")["step"] == step      # the interrupt's own checkpoint

    resumed = _job(tmp_path, run, "resume")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    a, b = _weights(tmp_path / "reference"), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=f"{k} differs after resume")
    log = pd.read_csv(run / "log.csv")
    assert list(log.step) == list(range(10, STEPS + 1, 10))


def _flip(b: bytes, i: int) -> bytes:
    """``b`` with byte ``i`` inverted (an alteration that keeps the length)."""
    return b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1:]


def _tiny_run(path: Path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(64, 4)

    def loss_fn(m, idx, gen):
        return {"loss": m(x[idx]).pow(2).mean()}
    cfg = TrainConfig(steps=4, batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
    fit_or_load(model, loss_fn, 64, cfg, path, {"tiny": 1}, progress=False)
    return model, loss_fn, cfg


@pytest.mark.parametrize("damage,message", [
    (lambda ck: (ck / "model.safetensors").write_bytes((ck / "model.safetensors").read_bytes()[:100]),
     "model.safetensors does not match its SHA-256"),
    (lambda ck: (ck / "state.pt").write_bytes(_flip((ck / "state.pt").read_bytes(), 200)),
     "state.pt does not match its SHA-256"),
    (lambda ck: (ck / "ema.safetensors").unlink(), "ema.safetensors is missing"),
    (lambda ck: (ck / "config.json").write_text("{oops"), "not valid JSON"),
], ids=["truncated", "altered", "missing", "bad-json"])
def test_damaged_checkpoint_is_refused(tmp_path, damage, message):
    run = tmp_path / "run"
    model, loss_fn, cfg = _tiny_run(run)
    damage(run / "checkpoint")
    damaged = {p.name: p.read_bytes() for p in (run / "checkpoint").iterdir()}
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_config(run / "checkpoint")
    with pytest.raises(CheckpointError, match=message):         # reuse refuses instead of retraining over it
        fit_or_load(model, loss_fn, 64, cfg, run, {"tiny": 1}, progress=False)
    with pytest.raises(CheckpointError, match=message):
        train(model, loss_fn, 64, cfg, run, {"tiny": 1}, resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in (run / "checkpoint").iterdir()} == damaged   # nothing was overwritten


def test_checkpoint_records_sums_of_every_file(tmp_path):
    from locdiff.io import sha256

    _tiny_run(tmp_path / "run")
    ck = tmp_path / "run" / "checkpoint"
    sums = json.loads((ck / "config.json").read_text())["sha256"]
    assert sums == {f: sha256(ck / f) for f in ("model.safetensors", "ema.safetensors", "state.pt")}
    import hashlib

    assert sums["state.pt"] == hashlib.sha256((ck / "state.pt").read_bytes()).hexdigest()   # independent oracle


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    """accelerate launch with 2 CPU processes (gloo) against one process, LocDiff on the smoke data."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "locdiff", "train", "--profile", "smoke", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
                          "-m", "locdiff", "train", "--profile", "smoke", "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (pd.read_csv(tmp_path / r / "log.csv") for r in ("one", "two"))
    assert list(a.step) == list(b.step)
    rel = ((b.loss - a.loss).abs() / a.loss).max()
    assert rel < 0.05, f"loss trajectories differ by up to {rel:.1%}:\n{a.loss.tolist()}\n{b.loss.tolist()}"
    assert a.loss.iloc[-1] < 0.7 * a.loss.iloc[0] and b.loss.iloc[-1] < 0.7 * b.loss.iloc[0]   # both learned
    ca, cb = (read_checkpoint_config(tmp_path / r / "checkpoint") for r in ("one", "two"))
    assert ca.keys() == cb.keys() and ca["model"] == cb["model"] and ca["train"] == cb["train"]
    wa, wb = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert {k: v.shape for k, v in wa.items()} == {k: v.shape for k, v in wb.items()}
    sa, sb = (torch.load(tmp_path / r / "checkpoint" / "state.pt", weights_only=True) for r in ("one", "two"))
    assert sa["torch_rng"].shape[0] == 1 and sb["torch_rng"].shape[0] == 2     # one RNG state per process
