"""One training loop, with HuggingFace Accelerate, shared by LocDiff and every learned baseline.

    for step in range(start, steps):                  # data order: a seeded permutation per epoch
        idx   = batch(step)                           # position = (epoch, offset), so resumable
        loss  = loss_fn(model, idx, generator)        # the method's loss on those items
        backward, clip grad norm, AdamW step, LR schedule (linear warm-up, cosine decay)
        EMA of the weights;  log the loss terms (CSV);  every eval_every: validate(EMA model)
        every checkpoint_every and at the end: checkpoint

A checkpoint is a folder: ``model.safetensors`` and ``ema.safetensors`` (weights), ``state.pt``
(optimizer, scheduler, RNG states, step; read back with ``torch.load(weights_only=True)``) and
``config.json`` (format version, the caller's model config, the training config). Writing goes
to a temporary folder that is then renamed, so a checkpoint is complete or absent. Resuming
restores everything, so training 2n steps equals training n, stopping and resuming for n (on CPU).
Mixed precision: bf16 on CUDA, fp32 on CPU.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from .io import atomic_write

CHECKPOINT_FORMAT = 1


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

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1); got {self.ema_decay}")


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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


def _save_checkpoint(path: Path, model, ema: EMA, opt, sched, step: int, gen: torch.Generator,
                     model_config: dict, config: TrainConfig) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    save_file({k: v.contiguous().cpu() for k, v in ema.shadow.items()}, str(tmp / "ema.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                "torch_rng": torch.get_rng_state(), "loss_rng": gen.get_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
               tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps({"format_version": CHECKPOINT_FORMAT, "step": step,
                                                 "model": model_config, "train": asdict(config)}, indent=1))
    old = path.with_name(path.name + ".old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_config(path) -> dict:
    """config.json of a checkpoint folder, with its format version checked."""
    path = Path(path)
    f = path / "config.json"
    if not f.exists():
        raise FileNotFoundError(f"{path} is not a checkpoint folder (no config.json)")
    cfg = json.loads(f.read_text())
    if cfg.get("format_version") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format version {cfg.get('format_version')!r}; this locdiff "
                         f"reads format {CHECKPOINT_FORMAT} only")
    return cfg


def load_weights(model: torch.nn.Module, path, ema: bool = True) -> torch.nn.Module:
    """Load a checkpoint's (EMA) weights into ``model`` (safetensors only)."""
    from safetensors.torch import load_file

    read_checkpoint_config(path)
    model.load_state_dict(load_file(str(Path(path) / ("ema.safetensors" if ema else "model.safetensors"))))
    return model


def json_safe(obj):
    """Tuples -> lists, recursively, so configs compare equal after a JSON round trip."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def fit_or_load(model: torch.nn.Module, loss_fn: Callable, n_items: int, config: TrainConfig, out_dir,
                model_config: dict, validate: Callable | None = None, resume: bool = False, reuse: bool = True,
                progress: bool = True, desc: str = "training", name: str = "model") -> pd.DataFrame:
    """``train``, unless ``out_dir`` already holds a finished run of the same model config and number
    of steps (then nothing is trained); either way the EMA weights end up in ``model`` (eval mode).
    Returns the training log (its ``time_s`` column: cumulative training seconds)."""
    out = Path(out_dir)
    model_config = json_safe(model_config)
    if reuse and not resume and (out / "checkpoint" / "config.json").exists() and (out / "log.csv").exists():
        saved = read_checkpoint_config(out / "checkpoint")
        if saved["model"] == model_config and saved["step"] == config.steps:
            if progress:
                print(f"{name}: loading the finished run in {out}")
            load_weights(model, out / "checkpoint", ema=True)
            model.eval()
            return pd.read_csv(out / "log.csv")
    log = train(model, loss_fn, n_items, config, out, model_config, validate=validate, resume=resume,
                progress=progress, desc=desc)
    load_weights(model, out / "checkpoint", ema=True)
    model.eval()
    return log


def train(model: torch.nn.Module, loss_fn: Callable, n_items: int, config: TrainConfig, out_dir,
          model_config: dict, validate: Callable | None = None, resume: bool = False,
          progress: bool = True, desc: str = "training") -> pd.DataFrame:
    """Train ``model`` for ``config.steps`` steps; returns the log (one row per log/eval event).

    loss_fn(model, idx, generator) -> dict of scalar tensors with a "loss" entry; ``idx`` are the
    batch's item indices in [0, n_items). validate(model) -> dict of numbers, called on the EMA
    weights. Writes ``out_dir/checkpoint`` and ``out_dir/log.csv``; with resume=True continues from
    ``out_dir/checkpoint`` (which must exist).
    """
    from accelerate import Accelerator

    if n_items < config.batch_size:
        raise ValueError(f"batch_size ({config.batch_size}) must not exceed the number of training items ({n_items})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt, log_path = out_dir / "checkpoint", out_dir / "log.csv"
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no",
                              cpu=not torch.cuda.is_available())
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config.warmup, config.steps))
    ema = EMA(model, config.ema_decay)
    start, log = 0, []
    if resume:
        from safetensors.torch import load_file

        saved = read_checkpoint_config(ckpt)
        if saved["model"] != model_config:
            raise ValueError(f"the checkpoint's model config {saved['model']} differs from this run's {model_config}")
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        ema.shadow = load_file(str(ckpt / "ema.safetensors"))
        state = torch.load(ckpt / "state.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        gen.set_state(state["loss_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start = state["step"]
        if log_path.exists():
            log = pd.read_csv(log_path).query("step <= @start").to_dict("records")
    elapsed = float(log[-1].get("time_s", 0.0)) if log else 0.0
    t_start = time.perf_counter()
    model, opt = accelerator.prepare(model, opt)
    device = accelerator.device
    ema_model = None
    running: dict[str, list] = {}
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=desc, disable=not progress)
    for step in bar:
        model.train()
        idx = batch_indices(step, n_items, config.batch_size, config.seed)
        with accelerator.autocast():
            terms = loss_fn(model, idx.to(device), gen)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or check the data")
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        ema.update(accelerator.unwrap_model(model), step)
        for k, v in terms.items():
            running.setdefault(k, []).append(float(v.detach()))
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            row = {"step": done, "lr": sched.get_last_lr()[0], "time_s": elapsed + time.perf_counter() - t_start,
                   **{k: sum(v) / len(v) for k, v in running.items()}}
            running = {}
            if validate is not None and (done % config.eval_every == 0 or done == config.steps):
                ema_model = ema_model or _clone_for_eval(accelerator.unwrap_model(model))
                ema.copy_to(ema_model)
                row.update({f"val_{k}": v for k, v in validate(ema_model).items()})
            log.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            _write_log(log, log_path)
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save_checkpoint(ckpt, accelerator.unwrap_model(model), ema, opt, sched, done, gen, model_config, config)
    bar.close()
    return pd.DataFrame(log)


def _clone_for_eval(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model)
    clone.eval()
    return clone


def _write_log(rows: list, path: Path) -> None:
    atomic_write(path, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
