"""One training loop, with HuggingFace Accelerate, shared by LocDiff and every learned baseline.

    for step in range(start, steps):                  # data order: a seeded permutation per epoch
        idx   = batch(step)                           # position = (epoch, offset), so resumable
        loss  = loss_fn(model, idx, generator)        # the method's loss on those items
        backward, clip grad norm, AdamW step, LR schedule (linear warm-up, cosine decay)
        EMA of the weights;  log the loss terms (CSV);  every eval_every: validate(EMA model)
        every checkpoint_every and at the end: checkpoint

A checkpoint is a folder: ``model.safetensors`` and ``ema.safetensors`` (weights), ``state.pt``
(optimizer, scheduler, every process's RNG states, step; read back with
``torch.load(weights_only=True)``) and ``config.json`` (format version, the caller's model config,
the training config, the SHA-256 of the three other files). Writing goes to a temporary folder
with a unique hidden name that then replaces the old checkpoint (``io.write_folder``), so a
checkpoint is complete or absent, files a user put in the folder are kept, and a full disk keeps
the previous checkpoint (``io.DiskFullError``); a checkpoint left aside by a kill mid-replace is
put back on the next read. Reading checks the sums and refuses a truncated or altered checkpoint
(``CheckpointError``). Resuming restores everything, so training 2n steps equals training n,
stopping and resuming for n (on CPU).

A run folder is never overwritten by accident: ``train`` locks it (a second process training
into it stops with ``io.FolderBusyError`` naming the holder) and refuses a folder that already
holds a run (``RunExistsError``) unless told to ``resume`` it or to ``overwrite`` it.

Interrupts: SIGINT (Ctrl-C, a Jupyter interrupt) or SIGTERM (a scheduler's pre-emption) during
``train`` finishes the current step, writes a checkpoint and raises ``TrainingInterrupted``; a
second signal aborts at once. Continue with ``resume=True`` (``locdiff train --resume``).

Data parallel: under ``accelerate launch`` (or torchrun) with P processes, each global batch of
``batch_size`` items (the same seeded order as one process) is split into P equal shards, one per
process; DDP averages the gradients, so a step is the single-process step on the same global batch
up to the random draws inside ``loss_fn`` (each process has its own generator). Only the main
process writes the log and checkpoints. Mixed precision: ``TrainConfig.mixed_precision`` (default
"auto": bf16 autocast where the device computes it natively, see ``locdiff.precision``).
"""
from __future__ import annotations

import math
import numbers
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import precision
from .checkpoint import (CheckpointError, load_weights, read_checkpoint_config,  # noqa: F401  (re-exported)
                         recover_checkpoint, remove_stale_temporaries, save)
from .io import FolderLock, atomic_write

class RunExistsError(ValueError):
    """The run folder already holds a run, and neither resume nor overwrite was asked for."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; ``signum`` and ``step`` say
    which signal and the step saved. Resume with ``resume=True``."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(f"{signal.Signals(signum).name} at step {step}: checkpoint written to {checkpoint}; "
                         f"continue with resume=True (locdiff train --resume)")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    log_every: int = 25
    eval_every: int = 500
    checkpoint_every: int = 1000
    seed: int = 0
    mixed_precision: str = "auto"   # bf16 autocast where native (CUDA, AVX512-BF16/AMX CPUs); locdiff.precision

    def __post_init__(self):
        precision.check(self.mixed_precision, "mixed_precision")
        for name, low in (("steps", 1), ("batch_size", 1), ("log_every", 1), ("eval_every", 1),
                          ("checkpoint_every", 1), ("warmup", 0), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {v!r}")
        for name, positive in (("lr", True), ("grad_clip", True), ("weight_decay", False)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or \
                    (v <= 0 if positive else v < 0):
                raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} finite number; "
                                 f"got {v!r}")
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, numbers.Real) or \
                not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1); got {self.ema_decay!r}")


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the config's lr and weight decay; the fused kernel (one call for all parameters,
    the same update rule) where this torch has it for the parameters' device (CPU from torch 2.4,
    CUDA), else the per-tensor loop. On 2 CPU cores the fused step is about 5x faster: a tenth of
    a LocDiff training step."""
    params = list(model.parameters())
    kw = {"lr": config.lr, "weight_decay": config.weight_decay}
    if all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params):
        try:
            return torch.optim.AdamW(params, fused=True, **kw)
        except RuntimeError:         # torch < 2.4 on CPU: no fused kernel for this device
            pass
    return torch.optim.AdamW(params, **kw)


def batch_indices(step: int, n_items: int, batch_size: int, seed: int) -> torch.Tensor:
    """Item indices of a global step: epoch e = step // (n_items // batch_size) reads a permutation
    seeded by (seed, e), so any step's batch is known without replaying the ones before."""
    per_epoch = max(1, n_items // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return perm[pos * batch_size:(pos + 1) * batch_size]


class EMA:
    """Exponential moving average of parameters: ema ← d·ema + (1-d)·θ, d = min(decay, (1+s)/(10+s))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})


class _StopFlag:
    """SIGINT/SIGTERM handlers for the duration of training (main thread only): the first signal
    sets ``signum``, a second one raises KeyboardInterrupt at once. Restores the old handlers."""

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without a checkpoint")
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _rng_state(accelerator, gen: torch.Generator) -> dict:
    """Every process's torch and loss-generator RNG states, as [P, n] uint8 tensors (all processes
    must call this; CUDA states of the main process only)."""
    states = torch.stack([torch.get_rng_state(), gen.get_state()])[None]
    if accelerator.num_processes > 1:
        states = accelerator.gather(states.to(accelerator.device)).cpu()
    return {"torch_rng": states[:, 0], "loss_rng": states[:, 1],
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def process_state():
    """Accelerate's view of this process (rank, number of processes), set up as ``train`` sets it up;
    e.g. ``with process_state().main_process_first():`` around building a cache."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def json_safe(obj):
    """Tuples -> lists, recursively, so configs compare equal after a JSON round trip."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def fit_or_load(model: torch.nn.Module, loss_fn: Callable, n_items: int, config: TrainConfig, out_dir,
                model_config: dict, validate: Callable | None = None, resume: bool = False, reuse: bool = True,
                overwrite: bool = False, progress: bool = True, desc: str = "training",
                name: str = "model") -> pd.DataFrame:
    """``train``, unless ``out_dir`` already holds a finished run of the same model config and number
    of steps (then nothing is trained); either way the EMA weights end up in ``model`` (eval mode).
    Any other run in ``out_dir`` is refused (``RunExistsError``) unless ``resume`` or ``overwrite``.
    Returns the training log (its ``time_s`` column: cumulative training seconds)."""
    out = Path(out_dir)
    model_config = json_safe(model_config)
    recover_checkpoint(out / "checkpoint")
    if reuse and not resume and (out / "checkpoint" / "config.json").exists() and (out / "log.csv").exists():
        saved = read_checkpoint_config(out / "checkpoint")   # a damaged or foreign checkpoint is refused, not overwritten
        if saved["model"] == model_config and saved["step"] == config.steps:
            if progress:
                print(f"{name}: loading the finished run in {out}")
            load_weights(model, out / "checkpoint", ema=True)
            model.eval()
            return read_log(out / "log.csv")
    log = train(model, loss_fn, n_items, config, out, model_config, validate=validate, resume=resume,
                overwrite=overwrite, progress=progress, desc=desc)
    load_weights(model, out / "checkpoint", ema=True)
    model.eval()
    return log


def is_main_rank() -> bool:
    """Whether this is the main process of a launch (before Accelerate is set up: torchrun and
    accelerate launch set RANK)."""
    return os.environ.get("RANK", "0") in ("", "0")


def check_run_folder(out_dir, model_config: dict, config: TrainConfig) -> None:
    """Refuse (``RunExistsError``) a run folder that already holds a run or a foreign ``checkpoint``
    entry: what is there, and the three ways on (resume, another folder, overwrite)."""
    out_dir = Path(out_dir)
    ckpt, log_path = out_dir / "checkpoint", out_dir / "log.csv"
    recover_checkpoint(ckpt)
    if not (ckpt.exists() or log_path.exists()):
        return
    ways = "train into another folder (--out), or pass overwrite=True (--overwrite) to replace it"
    if not (ckpt / "config.json").exists():
        what = ("a 'checkpoint' entry that is not a locdiff checkpoint" if ckpt.exists()
                else "a training log (log.csv) from an earlier run")
        raise RunExistsError(f"{out_dir} already holds {what}; {ways}")
    try:
        saved = read_checkpoint_config(ckpt, verify=False)
    except CheckpointError as e:
        raise RunExistsError(f"{out_dir} already holds a checkpoint that cannot be read ({e}); {ways}") from None
    step, same_model = saved["step"], saved["model"] == json_safe(model_config)
    same_train = saved.get("train") == asdict(config)
    if same_model and same_train and step < config.steps:
        raise RunExistsError(f"{out_dir} holds an interrupted run (checkpoint at step {step} of {config.steps}); "
                             f"continue it with resume=True (--resume), {ways}")
    if same_model and same_train:
        what = f"a finished run of these settings ({step} steps)"
    else:
        differ = sorted(k for k in set(saved["model"]) | set(json_safe(model_config))
                        if saved["model"].get(k) != json_safe(model_config).get(k))
        differ += ["train"] if not same_train else []
        what = f"a run made with other settings (differing in {', '.join(differ)}; checkpoint at step {step})"
    raise RunExistsError(f"{out_dir} already holds {what}; {ways}")


def train(model: torch.nn.Module, loss_fn: Callable, n_items: int, config: TrainConfig, out_dir,
          model_config: dict, validate: Callable | None = None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, desc: str = "training") -> pd.DataFrame:
    """Train ``model`` for ``config.steps`` steps; returns the log (one row per log/eval event).

    loss_fn(model, idx, generator) -> dict of scalar tensors with a "loss" entry; ``idx`` are this
    process's item indices in [0, n_items). validate(model) -> dict of numbers, called on the EMA
    weights (main process). Writes ``out_dir/checkpoint`` and ``out_dir/log.csv``; with
    resume=True continues from ``out_dir/checkpoint`` (which must exist). A folder that already
    holds a run is refused (``RunExistsError``) unless ``resume`` or ``overwrite`` (which replaces
    its checkpoint and log; other files in it are kept). The main process holds a lock on
    ``out_dir`` while training (``io.FolderBusyError`` for a second process). Raises
    ``TrainingInterrupted`` after checkpointing on SIGINT/SIGTERM.
    """
    if n_items < config.batch_size:
        raise ValueError(f"batch_size ({config.batch_size}) must not exceed the number of training items ({n_items})")
    if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir).strip() == "":
        raise ValueError(f"out_dir must be a folder path; got {out_dir!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} is a file, not a folder")
    lock = FolderLock(out_dir) if is_main_rank() else None
    if lock is not None:
        lock.acquire()
    try:
        if not resume and not overwrite:
            check_run_folder(out_dir, model_config, config)
        if lock is not None:
            remove_stale_temporaries(out_dir / "checkpoint")
        return _train(model, loss_fn, n_items, config, out_dir, model_config, validate, resume, progress, desc)
    finally:
        if lock is not None:
            lock.release()


def train_step(model, loss_fn: Callable, idx: torch.Tensor, gen: torch.Generator, opt, sched, ema: EMA, step: int,
               config: TrainConfig, accelerator=None) -> dict[str, float]:
    """One optimisation step on the items ``idx``: the loss terms ``loss_fn(model, idx, gen)`` under
    the precision's autocast, backward, clipping the gradient norm at ``grad_clip``, AdamW, the LR
    schedule, the EMA. Returns the loss terms as floats. With an ``accelerator``, backward and
    clipping go through it (DDP across processes)."""
    with precision.autocast(config.mixed_precision, idx.device):
        terms = loss_fn(model, idx, gen)
    loss = terms["loss"]
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or check the data")
    opt.zero_grad(set_to_none=True)
    if accelerator is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    else:
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
    opt.step()
    sched.step()
    ema.update(accelerator.unwrap_model(model) if accelerator is not None else model, step)
    return {k: float(v.detach()) for k, v in terms.items()}


def _train(model, loss_fn, n_items, config, out_dir: Path, model_config, validate, resume, progress, desc):
    """The loop of ``train`` (the run folder checked and locked): a ``train_step`` per batch, a log
    row every ``log_every`` steps (validation every ``eval_every``), a checkpoint every
    ``checkpoint_every`` steps, at the end, and on a signal."""
    run = _setup(model, n_items, config, out_dir, model_config, resume)
    acc = run.accelerator
    bar = tqdm(range(run.start, config.steps), initial=run.start, total=config.steps, desc=desc,
               disable=not (progress and acc.is_main_process))
    with _StopFlag() as stop:
        for step in bar:
            run.model.train()
            idx = batch_indices(step, n_items, config.batch_size, config.seed)[acc.process_index::acc.num_processes]
            terms = train_step(run.model, loss_fn, idx.to(acc.device), run.gen, run.opt, run.sched, run.ema, step,
                               config, acc)
            for k, v in terms.items():
                run.running.setdefault(k, []).append(v)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                _log_event(run, done, config, validate, bar)
            signum = _any_process(acc, stop.signum)
            if signum or done % config.checkpoint_every == 0 or done == config.steps:
                _checkpoint(run, done, model_config, config)
                if signum:
                    bar.close()
                    raise TrainingInterrupted(signum, done, run.ckpt)
    bar.close()
    return pd.DataFrame(run.log)


def _setup(model, n_items, config, out_dir: Path, model_config, resume):
    """Everything the loop carries: the accelerator, the prepared model and optimizer, the schedule,
    the EMA, the loss generator, and (resuming) the step and log to continue from."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    # several processes: DDP (NCCL, or gloo on CPU). Mixed precision is ours (precision.autocast around
    # the loss), not Accelerate's: its process-wide state refuses a second precision in one session
    acc = Accelerator(mixed_precision="no", cpu=not torch.cuda.is_available())
    P, rank = acc.num_processes, acc.process_index
    if config.batch_size % P:
        raise ValueError(f"batch_size ({config.batch_size}) must be a multiple of the number of processes ({P})")
    if acc.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed + rank)
    run = SimpleNamespace(accelerator=acc, ckpt=out_dir / "checkpoint", log_path=out_dir / "log.csv",
                          gen=torch.Generator().manual_seed(config.seed + 1 + rank), start=0, log=[], running={},
                          ema_model=None)
    run.opt = make_optimizer(model, config)
    run.sched = torch.optim.lr_scheduler.LambdaLR(run.opt, lambda s: lr_factor(s, config.warmup, config.steps))
    run.ema = EMA(model, config.ema_decay)
    if resume:
        run.start, run.log = _resume(run.ckpt, run.log_path, model, run.ema, run.opt, run.sched, run.gen,
                                     model_config, P, rank)
    run.elapsed = float(run.log[-1].get("time_s", 0.0)) if run.log else 0.0
    run.t_start = time.perf_counter()
    run.model, run.opt = acc.prepare(model, run.opt)
    run.ema.shadow = {k: v.to(acc.device) for k, v in run.ema.shadow.items()}     # beside the weights it averages
    return run


def _log_event(run, done: int, config: TrainConfig, validate, bar) -> None:
    """Append a log row (the loss terms averaged since the last row and over processes; the EMA
    model's validation every ``eval_every`` steps) and write the log (main process)."""
    acc = run.accelerator
    means = _mean_over_processes(acc, {k: sum(v) / len(v) for k, v in run.running.items()})
    row = {"step": done, "lr": run.sched.get_last_lr()[0],
           "time_s": run.elapsed + time.perf_counter() - run.t_start, **means}
    run.running = {}
    if acc.is_main_process and validate is not None and (done % config.eval_every == 0 or done == config.steps):
        run.ema_model = run.ema_model or _clone_for_eval(acc.unwrap_model(run.model))
        run.ema.copy_to(run.ema_model)
        row.update({f"val_{k}": v for k, v in validate(run.ema_model).items()})
    run.log.append(row)
    bar.set_postfix(loss=f"{row['loss']:.4f}")
    if acc.is_main_process:
        _write_log(run.log, run.log_path)


def _checkpoint(run, done: int, model_config: dict, config: TrainConfig) -> None:
    """Every process's RNG states gathered, the checkpoint written by the main process."""
    acc = run.accelerator
    rng = _rng_state(acc, run.gen)
    if acc.is_main_process:
        save(run.ckpt, acc.unwrap_model(run.model), run.ema, run.opt, run.sched, done, rng, model_config, config)
    acc.wait_for_everyone()


def _resume(ckpt: Path, log_path: Path, model, ema: EMA, opt, sched, gen: torch.Generator, model_config: dict,
            P: int, rank: int) -> tuple[int, list]:
    """Restore weights, EMA, optimizer, scheduler and this process's RNG states; (step, log rows)."""
    from safetensors.torch import load_file

    saved = read_checkpoint_config(ckpt)
    if saved["model"] != model_config:
        raise ValueError(f"the checkpoint's model config {saved['model']} differs from this run's {model_config}")
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    ema.shadow = load_file(str(ckpt / "ema.safetensors"))
    state = torch.load(ckpt / "state.pt", weights_only=True)
    if len(state["torch_rng"]) != P:
        raise ValueError(f"the checkpoint was written by {len(state['torch_rng'])} process(es); resume it with the "
                         f"same number (this run has {P})")
    saved_opt = state["optimizer"]
    for group in saved_opt["param_groups"]:   # the kernel is this run's choice, not the writer's
        group["fused"] = opt.defaults.get("fused")
    opt.load_state_dict(saved_opt)
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"][rank].clone())
    gen.set_state(state["loss_rng"][rank].clone())
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    start = state["step"]
    log = read_log(log_path).query("step <= @start").to_dict("records") if log_path.exists() else []
    return start, log


def read_log(path) -> pd.DataFrame:
    """A run's log.csv (one row per log event, a ``step`` column); ``CheckpointError`` naming the file
    when it is not such a table."""
    try:
        log = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as e:      # pandas' ParserError / EmptyDataError are ValueErrors
        raise CheckpointError(f"{path} is not a training log ({type(e).__name__}: {e}); move it aside to "
                              f"continue with a fresh log") from None
    if "step" not in log.columns or not pd.api.types.is_numeric_dtype(log["step"]):
        raise CheckpointError(f"{path} is not a training log (no numeric 'step' column); move it aside to "
                              f"continue with a fresh log")
    return log


def _mean_over_processes(accelerator, values: dict) -> dict:
    """The mean of each logged number over the processes (identity on one process)."""
    if accelerator.num_processes == 1:
        return values
    keys = list(values)        # the same order on every process
    t = accelerator.reduce(torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device),
                           reduction="mean")
    return dict(zip(keys, t.cpu().tolist()))


def _any_process(accelerator, signum: int) -> int:
    """The signal any process received (0: none); all processes agree, so they stop together."""
    if accelerator.num_processes == 1:
        return signum
    return int(accelerator.gather(torch.tensor([signum], device=accelerator.device)).max().item())


def _clone_for_eval(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model)
    clone.eval()
    return clone


def _write_log(rows: list, path: Path) -> None:
    atomic_write(path, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
