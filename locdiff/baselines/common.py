"""What every baseline shares: the data it trains on, an MLP, tuning on val, the sample-vote rule.

A fitted method is a ``Fitted``: its name, ``predict(emb) -> {"lat", "lon"[, "sample_lat",
"sample_lon"]}`` (degrees; samples [B, n] for the generative methods), its training time and the
table of its tuning runs on ``val``. Tuning never looks at a test split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .. import datasets, geo, shdd
from ..model import Dropout
from ..profiles import BaselineSettings, Profile
from ..train import TrainConfig, fit_or_load, process_state


@dataclass
class Context:
    """Frozen embeddings and locations of train and (a prefix of) val, for one profile. The
    training tensors live on ``device``, where the training loop puts the models (CUDA when present)."""

    profile: Profile
    emb: torch.Tensor          # [N, E] float32, train, on device
    lat: np.ndarray            # [N] degrees
    lon: np.ndarray
    val_emb: np.ndarray        # [V, E]
    val_lat: np.ndarray
    val_lon: np.ndarray
    device: torch.device = torch.device("cpu")

    @property
    def settings(self) -> BaselineSettings:
        return self.profile.baselines

    @property
    def xyz(self) -> torch.Tensor:
        """Training locations as unit vectors [N, 3] float32, on ``device``."""
        return torch.from_numpy(geo.latlon_to_xyz(self.lat, self.lon)).float().to(self.device)


def load_context(profile: Profile, progress: bool = True) -> Context:
    enc = datasets.embeddings(profile, progress=progress)
    data = datasets.load(profile, ["train", "val"], progress=progress)
    v = min(profile.baselines.val_images, len(data["val"]))
    device = process_state().device
    return Context(profile, torch.from_numpy(enc["embeddings"]["train"]).to(device), data["train"].lat,
                   data["train"].lon, enc["embeddings"]["val"][:v], data["val"].lat[:v], data["val"].lon[:v], device)


@dataclass
class Fitted:
    name: str
    predict: Callable[..., dict]
    train_seconds: float
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)
    model: nn.Module | None = None
    cells: object | None = None        # classification: the cells' boxes (areas, locate) for its density


def mlp(d_in: int, hidden: tuple[int, ...], d_out: int, dropout: float) -> nn.Sequential:
    """Linear-GELU-Dropout blocks, then a linear output layer."""
    layers, d = [], d_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.GELU(), Dropout(dropout)]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, d_out))


def train_config(s: BaselineSettings, steps: int, seed: int, lr: float | None = None) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=s.batch_size, lr=lr or s.lr, warmup=min(s.warmup, steps // 2),
                       ema_decay=s.ema_decay, eval_every=steps, checkpoint_every=steps, seed=seed)


def run_dir(profile: Profile, name: str) -> Path:
    """``<repo>/checkpoints/<profile tag>/baselines/<name>`` (git-ignored)."""
    from ..plots import repo_root

    return repo_root() / "checkpoints" / profile.tag / "baselines" / name


def fit_model(ctx: Context, name: str, model: nn.Module, loss_fn: Callable, steps: int, config: dict,
              progress: bool = True, lr: float | None = None) -> float:
    """Train ``model`` with the shared loop (or reuse a finished identical run); returns the
    training seconds recorded in the run's log. ``lr`` overrides the settings' learning rate."""
    cfg = train_config(ctx.settings, steps, ctx.profile.train_seed, lr)
    model_config = {"method": name, "config": config, "train": asdict(cfg), **datasets.describe(ctx.profile),
                    "encoder": asdict(ctx.profile.encoder), "seed": ctx.profile.train_seed}
    log = fit_or_load(model, loss_fn, len(ctx.emb), cfg, run_dir(ctx.profile, name), model_config, overwrite=True,
                      progress=progress, desc=f"training {name}", name=name)
    return float(log["time_s"].iloc[-1]) if "time_s" in log else float("nan")


def val_score(ctx: Context, predict: Callable[..., dict]) -> dict:
    """The tuning criterion on val: mean GeoScore (higher is better), with median error for the table."""
    p = predict(ctx.val_emb)
    d = geo.distance_km(ctx.val_lat, ctx.val_lon, p["lat"], p["lon"])
    return {"val_geoscore": float(geo.geoscore(d).mean()), "val_median_km": float(np.median(d))}


def tune(ctx: Context, candidates: list[dict], build: Callable[[dict, int], tuple[str, Callable]],
         progress: bool = True, steps: int | None = None) -> tuple[dict, pd.DataFrame]:
    """Train each candidate for ``steps`` (default ``tune_steps``; ``build(candidate, steps) -> (run
    name, predict)``), score it on val, return the best candidate and the tuning table."""
    rows = []
    for cand in candidates:
        _, predict = build(cand, steps or ctx.settings.tune_steps)
        rows.append({**cand, **val_score(ctx, predict)})
    table = mark_best(pd.DataFrame(rows))
    return candidates[int(table["chosen"].to_numpy().argmax())], table


def mark_best(table: pd.DataFrame) -> pd.DataFrame:
    """The tuning table with a ``chosen`` column: True on the row of highest ``val_geoscore``."""
    best = int(table["val_geoscore"].to_numpy().argmax())
    return table.assign(chosen=np.arange(len(table)) == best)


def choose(rows: list[dict], key: str) -> tuple[float, pd.DataFrame]:
    """A setting picked on val without retraining: (the best row's ``key``, the marked table)."""
    table = mark_best(pd.DataFrame(rows))
    return table[key][table["chosen"]].iloc[0], table


def batched(fn: Callable[[torch.Tensor], torch.Tensor], emb, batch: int = 2048, device=None) -> torch.Tensor:
    """fn over embeddings [B, E] in batches on ``device`` (default: the device of ``fn``'s parameters
    when fn is a module, else CPU), no grad; the result on the CPU."""
    if device is None:
        device = next(fn.parameters()).device if isinstance(fn, nn.Module) else torch.device("cpu")
    emb = torch.as_tensor(np.asarray(emb, dtype=np.float32))
    with torch.no_grad():
        return torch.cat([fn(emb[i:i + batch].to(device)).cpu() for i in range(0, len(emb), batch)])


def vote(sample_lat: np.ndarray, sample_lon: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Point prediction from n point samples per image [B, n]: the highest mode of the mean of
    their SHDD vectors at degree L, i.e. of a kernel density estimate with the band-limited delta
    kernel. LocDiff's own rule (``latent.decode_samples``) does the same with its latent samples, so
    every generative method is scored with the same vote."""
    B, n = sample_lat.shape
    a = shdd.encode(sample_lat.reshape(-1), sample_lon.reshape(-1), L).reshape(B, n, -1).mean(1)
    lat, lon, _ = shdd.decode(a)
    return lat[:, 0].numpy().astype(np.float64), lon[:, 0].numpy().astype(np.float64)


def to_latlon(xyz: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Unit (or any non-zero) vectors [..., 3] -> degrees."""
    lat, lon = geo.xyz_to_latlon(torch.nn.functional.normalize(xyz.double(), dim=-1).numpy())
    return np.asarray(lat), np.asarray(lon)
