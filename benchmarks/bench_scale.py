"""Cost of LocDiff against the generative baselines: training and sampling throughput, peak memory.

Run:  .venv/bin/python benchmarks/bench_scale.py [--device auto|cpu|cuda] [--rounds N] [--quick]
      (part of `make bench`; 2-3 minutes on an idle 2-core CPU, longer when other work shares the cores)

Three methods, built exactly as the package trains and samples them, on synthetic inputs (random
unit-norm conditioning embeddings of the profile encoder's size ``embed_dim``, training targets
uniform on the sphere), so no data build is needed and the random weights suffice for speed:

* LocDiff: ``experiment.build`` (CS-UNet on the (L+1)² SHDD latent), ``Diffusion.loss``, DDIM
  sampling, and ``latent.decode_samples`` to decode the samples to a point (the decoder runs on the
  mean of the samples and on every sample, as ``LocDiff.predict`` does).
* Raw diffusion and Flow matching: ``baselines.generative.network`` (CS-UNet on 3-D unit vectors),
  ``raw_diffusion`` + ``Diffusion.loss`` + ``sample_raw_diffusion`` (DDIM), and
  ``flow_matching_loss`` + ``sample_flow_matching`` (Euler steps of the exponential map); their
  point prediction is the package's vote (``common.to_latlon`` then ``common.vote``: SHDD
  encoding of the samples at LocDiff's L, decoding of their mean).

Two comparisons (column ``comparison``):
  ``own_widths``  each method with its own profile widths (LocDiff ``locdiff.widths``, the
                  baselines ``baselines.gen_widths``), i.e. the models the notebooks compare;
  ``same_widths`` the baselines rebuilt with LocDiff's CS-UNet widths, so the differences left are
                  the data dimension ((L+1)² against 3) and the loss / sampler. Dropout rates stay
                  each method's own (a rate does not change the work). LocDiff is the same model
                  (and the same timings) in both.

Measured (interleaved rounds: every round times every configuration once, in a rotating order;
the tables report the median over rounds, and each ratio is the median over rounds of the
per-round ratio against LocDiff, so a slow phase of a shared machine hits all methods alike):
  * training throughput (samples/s): full training steps as ``locdiff.train`` runs them, at each
    method's profile batch size: forward, loss, backward, gradient clipping, AdamW step, EMA
    update (bf16 autocast on CUDA, fp32 on CPU, as the training loop). The LR schedule, logging
    and checkpoints are left out.
  * sampling throughput (images/s), once without decoding (the sampler's output: latent vectors
    or unit vectors) and once with the point prediction (decoding / vote) included. Every method
    draws the profile's ``samples`` per image with ``ddim_steps`` steps (DDIM for both diffusions,
    Euler for flow matching), the same guidance scale for all: the network evaluations per image
    (column ``nfe_per_image``) count one row through the network as one evaluation, samples x
    steps, doubled when classifier-free guidance is on (guidance != 1 evaluates the conditional
    and unconditional rows together).
  * peak memory (MiB), each configuration and phase in a fresh single-threaded subprocess (so
    allocator caches and the other models do not interfere), measured before the timings. Setup = imports, the phase
    run once on a tiny copy of the method (widths 8-8: loads lazy imports, compiled kernels and the
    decoder's tables), then the model, optimizer, synthetic data and a 2-row forward pass; then 3
    training steps (``train_peak_mib_above_setup``, which includes the AdamW state and gradients)
    or one prediction call with decoding (``predict_peak_mib_above_setup``). On CPU: peak RSS
    minus the RSS after setup. The peak is the kernel's high-water mark VmHWM (/proc/self/status,
    reset to the current RSS after setup through /proc/self/clear_refs), which is what
    ``resource.getrusage`` ru_maxrss reports, except that on Linux ru_maxrss of a subprocess also
    carries the peak of the process that started it (here the benchmark itself) and cannot be
    reset, so it is the fallback only where /proc is absent. On CUDA: ``torch.cuda.max_memory_allocated``
    minus the memory allocated after setup. Column ``memory_measure`` says which.

Writes ``data/results/bench_scale.csv`` (atomically, one row per comparison and method) and the
figure ``figures/bench_scale.png`` (+ .pdf); ``--out ROOT`` writes both under ROOT instead.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from locdiff import experiment, geo, profiles
from locdiff.baselines import common, generative
from locdiff.latent import Latent, decode_samples
from locdiff.samplers import DDIMSampler
from locdiff.io import atomic_write
from locdiff.profiles import Profile
from locdiff.train import EMA, TrainConfig, make_optimizer, train_step

ROOT = Path(__file__).resolve().parents[1]
CSV_NAME = "bench_scale.csv"
FIGURE_NAME = "bench_scale"
METHODS = ("LocDiff", "Raw diffusion", "Flow matching")
COMPARISONS = ("own_widths", "same_widths")
DECODING = {  # what "with decoding" adds to the sampler's output, per method (column ``decoding``)
    "LocDiff": "latent.decode_samples: SHDD decode of the samples' mean (the point) and of every sample",
    "Raw diffusion": "common.to_latlon + common.vote: SHDD encode of the samples at L, decode of their mean",
    "Flow matching": "common.to_latlon + common.vote: SHDD encode of the samples at L, decode of their mean",
}
MEMORY_TRAIN_STEPS = 3


@dataclass(frozen=True)
class Sizes:
    """How much work one round does."""

    profile: Profile
    label: str           # profile name as recorded ("cpu", or "smoke-quick" for --quick)
    images: int          # embeddings per sampling call (one sampler batch)
    train_steps: int     # timed training steps per configuration and round
    train_items: int     # size of the synthetic training set the batches are drawn from
    rounds: int


def sizes(quick: bool, rounds: int | None) -> Sizes:
    """The cpu profile's settings (``--quick``: the smoke profile, further shrunk to seconds)."""
    if quick:
        base = profiles.get("smoke")
        P = replace(base, locdiff=replace(base.locdiff, batch_size=32, samples=4, ddim_steps=4),
                    baselines=replace(base.baselines, batch_size=32))
        return Sizes(P, "smoke-quick", images=4, train_steps=2, train_items=128, rounds=rounds or 1)
    P = profiles.get("cpu")
    return Sizes(P, P.name, images=16, train_steps=3, train_items=4096, rounds=rounds or 3)


# ----------------------------------------------------------------------------- the three methods
@dataclass
class Runner:
    """One configuration (method, widths) with its model, optimizer and the timed callables."""

    method: str
    widths: tuple[int, ...]
    data_dim: int
    batch_size: int
    parameters: int
    train: Callable[[int], None]      # k full training steps
    sample: Callable[[], object]      # one sampler call on the query embeddings (no decoding)
    predict: Callable[[], object]     # the same plus the point prediction (decoding / vote)
    warm: Callable[[], None]          # a 2-row forward pass without grad


def build_runner(method: str, widths: tuple[int, ...], sz: Sizes, device: torch.device, guidance: float,
                 seed: int = 0) -> Runner:
    """A method built as the package builds it, on synthetic embeddings and targets."""
    P = sz.profile
    ld = P.locdiff
    E = P.encoder.embed_dim
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(sz.train_items, E, generator=g), dim=-1).to(device)
    query = torch.nn.functional.normalize(torch.randn(sz.images, E, generator=g), dim=-1).to(device)
    lat, lon = geo.uniform_points(sz.train_items, seed=seed)
    xyz = torch.from_numpy(geo.latlon_to_xyz(lat, lon)).float()
    if method == "LocDiff":
        loc = experiment.build(replace(ld, widths=tuple(widths)), E, P.seed)
        model, diffusion, batch, lr = loc.model.to(device), loc.diffusion, ld.batch_size, ld.lr
        data = Latent(ld.L).encode(lat, lon).to(device)

        def loss_fn(m, idx, gen):
            return diffusion.loss(m, data[idx], emb[idx], gen)

        def sample_fn(gen):
            return DDIMSampler(diffusion, ld.ddim_steps, 0.0, guidance).sample(model, query, ld.samples, gen)

        def decode(samples):
            return decode_samples(samples)
    else:
        bs = P.baselines
        model = generative.network(replace(P, baselines=replace(bs, gen_widths=tuple(widths))), E).to(device)
        batch, lr = bs.batch_size, bs.lr
        if method == "Raw diffusion":
            diffusion = generative.raw_diffusion(ld)
            data = (generative.SQRT3 * xyz).to(device)

            def loss_fn(m, idx, gen):
                return diffusion.loss(m, data[idx], emb[idx], gen)

            def sample_fn(gen):
                return generative.sample_raw_diffusion(model, diffusion, query, ld.samples, ld.ddim_steps, guidance, gen)
        elif method == "Flow matching":
            data = xyz.to(device)

            def loss_fn(m, idx, gen):
                return generative.flow_matching_loss(m, data[idx], emb[idx], ld.p_uncond, gen)

            def sample_fn(gen):
                return generative.sample_flow_matching(model, query, ld.samples, ld.ddim_steps, guidance, gen)
        else:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")

        def decode(samples):
            slat, slon = common.to_latlon(samples.cpu())
            return common.vote(slat, slon, ld.L)

    tc = TrainConfig(lr=lr, mixed_precision="bf16" if device.type == "cuda" else "no")
    opt = make_optimizer(model, tc)                      # the training loop's optimizer (fused AdamW)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ema = EMA(model, ld.ema_decay)
    loss_gen, idx_gen, sample_seed = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 2), seed + 3
    state = {"step": 0}

    def train(k: int) -> None:
        model.train()
        for _ in range(k):
            idx = torch.randint(0, sz.train_items, (batch,), generator=idx_gen).to(device)
            train_step(model, loss_fn, idx, loss_gen, opt, sched, ema, state["step"], tc)   # the training loop's step
            state["step"] += 1
        sync(device)

    def sample():
        model.eval()
        out = sample_fn(torch.Generator().manual_seed(sample_seed))
        sync(device)
        return out

    def predict():
        out = decode(sample())
        sync(device)
        return out

    @torch.no_grad()
    def warm() -> None:
        model.eval()
        x = torch.zeros(2, model.config.dim, device=device)
        model(x, torch.zeros(2, device=device), query[:1].expand(2, -1))
        sync(device)

    return Runner(method, tuple(widths), model.config.dim, batch, model.num_parameters(), train, sample, predict, warm)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configurations(P: Profile) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """(method, widths) of each comparison."""
    own = {"LocDiff": tuple(P.locdiff.widths), "Raw diffusion": tuple(P.baselines.gen_widths),
           "Flow matching": tuple(P.baselines.gen_widths)}
    return {"own_widths": [(m, own[m]) for m in METHODS],
            "same_widths": [(m, tuple(P.locdiff.widths)) for m in METHODS]}


def widths_label(w: tuple[int, ...]) -> str:
    return "-".join(str(v) for v in w)


# ----------------------------------------------------------------------------- timing
def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(runners: dict[tuple, Runner], sz: Sizes) -> dict[tuple, dict[str, list[float]]]:
    """Per configuration, the throughput of every round: {'train': samples/s, 'sample': images/s,
    'predict': images/s}. Each round times every configuration once, in a rotating order."""
    keys = list(runners)
    for r in runners.values():                                   # warm-up: kernels, caches, AdamW state
        r.train(2)
        r.predict()
    out = {k: {"train": [], "sample": [], "predict": []} for k in keys}
    for rnd in range(sz.rounds):
        order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
        for k in order:
            r = runners[k]
            out[k]["train"].append(sz.train_steps * r.batch_size / timed(lambda: r.train(sz.train_steps)))
            out[k]["sample"].append(sz.images / timed(r.sample))
            out[k]["predict"].append(sz.images / timed(r.predict))
        print(f"  round {rnd + 1}/{sz.rounds} done", flush=True)
    return out


# ----------------------------------------------------------------------------- memory
def current_rss_bytes() -> float:
    """Resident set size now (Linux /proc); NaN where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return math.nan


def peak_rss_bytes() -> float:
    """Peak RSS of this process so far: the kernel's high-water mark VmHWM (/proc/self/status) on
    Linux, else ``getrusage`` ru_maxrss (KiB on Linux, bytes on macOS).

    Both report the same high-water mark of this process's memory, except that on Linux ru_maxrss
    also keeps the peak of the process image it replaced at exec: a subprocess started from a
    larger Python process reports at least the parent's RSS (measured here: 216 MiB for a child
    whose own peak was 11 MiB). VmHWM has no such carry-over.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Reset the high-water mark VmHWM to the current RSS (Linux >= 4.0: ``5`` into
    /proc/self/clear_refs), so that a peak read later belongs to what ran in between, not to the
    setup before it. Returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(spec: dict, sz: Sizes, device: torch.device, guidance: float) -> dict:
    """Runs in a fresh process: set up one configuration, run one phase, return its peak above setup (MiB).

    Setup first runs the same phase once on a tiny copy of the method (widths 8-8, one image, the
    same L), so lazy imports, compiled kernels and the decoder's tables for L are loaded before
    the reference reading: the peak counts what the phase itself allocates.
    """
    tiny = build_runner(spec["method"], (8, 8), replace(sz, images=1, train_items=64), device, guidance)
    tiny.train(1) if spec["phase"] == "train" else tiny.predict()
    del tiny
    gc.collect()
    r = build_runner(spec["method"], tuple(spec["widths"]), sz, device, guidance)
    r.warm()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        reset_peak_rss()
        base = current_rss_bytes()
        if not math.isfinite(base):                  # no /proc: the setup's peak stands in for it
            base = peak_rss_bytes()
    if spec["phase"] == "train":
        r.train(MEMORY_TRAIN_STEPS)
    else:
        r.predict()
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    return {**spec, "peak_mb": (peak - base) / 2**20}


def memory_measure_label(device: torch.device) -> str:
    if device.type == "cuda":
        return "cuda: torch.cuda.max_memory_allocated - memory_allocated after setup, fresh single-threaded subprocess per phase"
    return "cpu: peak RSS (VmHWM, reset after setup; getrusage ru_maxrss where /proc is absent) - RSS after " \
           "setup, fresh single-threaded subprocess per phase"


def measure_memory(configs: list[tuple[str, tuple[int, ...]]], args: argparse.Namespace,
                   device: torch.device) -> dict[tuple, dict[str, float]]:
    """{(method, widths): {'train': MiB, 'predict': MiB}}, each from its own single-threaded
    subprocess, two at a time (they measure memory, not speed; one thread each keeps two of them
    from fighting over a 2-core machine)."""
    base_cmd = [sys.executable, str(Path(__file__).resolve()), "--device", device.type, "--guidance", str(args.guidance)]
    if args.quick:
        base_cmd.append("--quick")
    specs = [{"method": m, "widths": list(w), "phase": ph} for m, w in configs for ph in ("train", "predict")]

    def run(spec: dict) -> dict:
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run(base_cmd + ["--memory-child", json.dumps(spec)], capture_output=True, text=True,
                              cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"memory subprocess for {spec} failed:\n{proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, specs))
    out: dict[tuple, dict[str, float]] = {}
    for res in results:
        out.setdefault((res["method"], tuple(res["widths"])), {})[res["phase"]] = res["peak_mb"]
    return out


# ----------------------------------------------------------------------------- output
def table(runners: dict[tuple, Runner], thr: dict, mem: dict | None, sz: Sizes, guidance: float,
          device: torch.device, memory_label: str) -> pd.DataFrame:
    ld = sz.profile.locdiff
    ref = ("LocDiff", tuple(ld.widths))
    nfe = ld.samples * ld.ddim_steps * (1 if guidance == 1.0 else 2)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    rows = []
    for comparison, configs in configurations(sz.profile).items():
        for key in configs:
            r, t = runners[key], thr[key]
            row = {"comparison": comparison, "method": r.method, "widths": widths_label(r.widths),
                   "data_dim": r.data_dim, "parameters": r.parameters, "batch_size": r.batch_size,
                   "decoding": DECODING[r.method]}
            for kind, col in (("train", "train_samples_per_s"), ("sample", "sample_images_per_s_no_decoding"),
                              ("predict", "sample_images_per_s_with_decoding")):
                row[col] = statistics.median(t[kind])
                row[f"{col}_min"], row[f"{col}_max"] = min(t[kind]), max(t[kind])
                row[f"{col}_ratio_vs_locdiff"] = statistics.median(a / b for a, b in zip(t[kind], thr[ref][kind]))
            for phase in ("train", "predict"):
                col = f"{phase}_peak_mib_above_setup"
                row[col] = mem[key][phase] if mem else math.nan
                row[f"{col}_ratio_vs_locdiff"] = (mem[key][phase] / mem[ref][phase]
                                                  if mem and mem[ref][phase] > 0 else math.nan)
            rows.append(row)
    df = pd.DataFrame(rows)
    df["memory_measure"] = memory_label if mem else "not measured (--no-memory)"
    df["samples_per_image"], df["steps_per_sample"] = ld.samples, ld.ddim_steps
    df["guidance"], df["nfe_per_image"] = guidance, nfe
    df["nfe_counting"] = "one network row = one evaluation; samples x steps, x2 with classifier-free guidance"
    df["L"], df["embed_dim"], df["images_per_call"] = ld.L, sz.profile.encoder.embed_dim, sz.images
    df["train_steps_per_round"], df["rounds"] = sz.train_steps, sz.rounds
    df["profile"], df["device"], df["threads"] = sz.label, device.type, torch.get_num_threads()
    df["machine"], df["torch_version"], df["load_avg_end"] = platform.machine(), torch.__version__, load
    df["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return df


def print_table(df: pd.DataFrame) -> None:
    def fmt(v, r):
        return "-" if not math.isfinite(v) else f"{v:,.1f} ({r:.2f}x)"

    head = (f"{'comparison':<12} {'method':<14} {'widths':<12} {'params':>9}  {'train samples/s':>20}  "
            f"{'images/s no decode':>20}  {'images/s w/ decode':>20}  {'train peak MiB':>18}  {'predict peak MiB':>18}")
    print(head)
    print("-" * len(head))
    for _, r in df.iterrows():
        print(f"{r.comparison:<12} {r.method:<14} {r.widths:<12} {r.parameters:>9,}  "
              f"{fmt(r.train_samples_per_s, r.train_samples_per_s_ratio_vs_locdiff):>20}  "
              f"{fmt(r.sample_images_per_s_no_decoding, r.sample_images_per_s_no_decoding_ratio_vs_locdiff):>20}  "
              f"{fmt(r.sample_images_per_s_with_decoding, r.sample_images_per_s_with_decoding_ratio_vs_locdiff):>20}  "
              f"{fmt(r.train_peak_mib_above_setup, r.train_peak_mib_above_setup_ratio_vs_locdiff):>18}  "
              f"{fmt(r.predict_peak_mib_above_setup, r.predict_peak_mib_above_setup_ratio_vs_locdiff):>18}")
    print("(ratios: method / LocDiff, median of per-round ratios; memory: peak above setup, see memory_measure)")


@contextmanager
def repo_root_at(root: Path) -> Iterator[None]:
    """Point ``locdiff.plots.repo_root`` (hence ``savefig``) at ``root`` for the duration."""
    old = os.environ.get("LOCDIFF_ROOT")
    os.environ["LOCDIFF_ROOT"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["LOCDIFF_ROOT"]
        else:
            os.environ["LOCDIFF_ROOT"] = old


def figure(df: pd.DataFrame, root: Path) -> list[Path]:
    """Three panels (training, sampling, memory), grouped by comparison, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from locdiff import plots

    plots.use_style()
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.6), layout="constrained")
    groups = {"own_widths": "own widths", "same_widths": "LocDiff's widths\nfor all"}
    width = 0.26
    x = np.arange(len(COMPARISONS))

    def bars(ax, col, offset, m, **kw):
        sub = df.set_index(["comparison", "method"])
        vals = np.array([sub.loc[(c, m), col] for c in COMPARISONS], dtype=float)
        err = None
        if f"{col}_min" in df:
            lo = np.array([sub.loc[(c, m), f"{col}_min"] for c in COMPARISONS], dtype=float)
            hi = np.array([sub.loc[(c, m), f"{col}_max"] for c in COMPARISONS], dtype=float)
            err = np.vstack([vals - lo, hi - vals])
        ax.bar(x + offset, vals, width * kw.pop("scale", 1.0), yerr=err, capsize=2, error_kw={"lw": 0.7},
               color=plots.METHOD_COLORS[m], edgecolor="0.2", linewidth=0.5, **kw)

    for i, m in enumerate(METHODS):
        off = (i - 1) * width
        bars(axes[0], "train_samples_per_s", off, m)
        bars(axes[1], "sample_images_per_s_no_decoding", off, m, alpha=0.35)
        bars(axes[1], "sample_images_per_s_with_decoding", off, m, scale=0.55)
        bars(axes[2], "train_peak_mib_above_setup", off - width / 4, m, scale=0.5)
        bars(axes[2], "predict_peak_mib_above_setup", off + width / 4, m, scale=0.5, hatch="////")
    first = df.iloc[0]
    axes[0].set(ylabel="training throughput (samples/s)", title="training")
    axes[1].set(ylabel="sampling throughput (images/s)", title="sampling")
    axes[2].set(ylabel="peak memory above setup (MiB)", title="peak memory")
    for ax in axes:
        ax.set_xticks(x, [groups[c] for c in COMPARISONS])
        ax.set_ylim(bottom=0)
    if not np.isfinite(df["train_peak_mib_above_setup"]).any():
        axes[2].text(0.5, 0.5, "not measured (--no-memory)", transform=axes[2].transAxes, ha="center", color="0.4")
    threads = int(first.threads)
    fig.suptitle(f"{first.device.upper()}, {threads} thread{'s' if threads != 1 else ''}: training steps of batch {int(first.batch_size)}; "
                 f"{int(first.samples_per_image)} samples x {int(first.steps_per_sample)} steps per image "
                 f"({int(first.nfe_per_image)} network evaluations); bars: median of {int(first.rounds)} rounds, "
                 f"whiskers: range", fontsize=9)
    handles = [Patch(facecolor=plots.METHOD_COLORS[m], edgecolor="0.2", label=m) for m in METHODS] + [
        Patch(facecolor="0.6", alpha=0.35, edgecolor="0.2", label="samples only"),
        Patch(facecolor="0.6", edgecolor="0.2", label="with decoding to a point"),
        Patch(facecolor="white", edgecolor="0.2", label=f"training ({MEMORY_TRAIN_STEPS} steps)"),
        Patch(facecolor="white", edgecolor="0.2", hatch="////", label="prediction")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8.5)
    with repo_root_at(root):
        paths = plots.savefig(fig, FIGURE_NAME)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke profile, shrunk): a few seconds")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance scale for every method (1 = off; otherwise the NFE doubles)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the timings (default: torch's)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--out", type=Path, default=ROOT,
                   help="root under which data/results/bench_scale.csv and figures/bench_scale.png are written")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def main(argv: list[str] | None = None) -> pd.DataFrame | None:
    args = parse_args(argv)
    device = pick_device(args.device)
    sz = sizes(args.quick, args.rounds)
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child), sz, device, args.guidance)))
        return None
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    ld = sz.profile.locdiff
    print(f"scale benchmark: profile {sz.profile.name}{' (quick)' if args.quick else ''}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {sz.rounds} rounds; "
          f"{ld.samples} samples x {ld.ddim_steps} steps per image, guidance {args.guidance:g}", flush=True)
    keys = list(dict.fromkeys(k for cfgs in configurations(sz.profile).values() for k in cfgs))
    mem = None
    if not args.no_memory:       # first, while this process is small and nothing else is being timed
        print(f"  peak memory: {2 * len(keys)} fresh subprocesses, two at a time", flush=True)
        mem = measure_memory(keys, args, device)
    runners = {k: build_runner(k[0], k[1], sz, device, args.guidance) for k in keys}
    thr = measure(runners, sz)
    df = table(runners, thr, mem, sz, args.guidance, device, memory_measure_label(device))
    csv = args.out / "data" / "results" / CSV_NAME
    csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(csv, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))
    paths = figure(df, args.out)
    print()
    print_table(df)
    print(f"\nwrote {csv} and {', '.join(str(p) for p in paths)} (total {time.perf_counter() - start:.0f} s)")
    return df


if __name__ == "__main__":
    main()
