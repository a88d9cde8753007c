"""Classification over adaptive geographic cells (PlaNet, Weyand et al. 2016; PIGEON, Haas et al. 2024).

Cells: a quadtree over (z = sin lat, lon), which is an equal-area chart, started from 8 boxes
(2 hemispheres x 4 longitude quarters); a box holding more than ``max_count`` training images is
split into 4 equal-area children, recursively (PlaNet's adaptive partition, with boxes instead of
S2 cells). Empty leaves are dropped. Each cell is represented by the mean training location of its
images (normalized mean of unit vectors).

Loss: cross-entropy against PIGEON's haversine label smoothing, the target over cells
    q_k(y) ∝ exp(-(d(c_k, y) - d(c_true, y)) / τ) = softmax_k(-d(c_k, y) / τ),
with d the great-circle distance (km) between cell representative c_k and the true location y.
Prediction: the representative of the most probable cell. As a distribution: the softmax
probability of each cell spread uniformly over its box, p(y) = P(c)/A(c) with A(c) = 4π/(8·4^level)
(``calibration.cell_scores``); ``predict`` returns the probabilities (``cell_prob``) and
``Fitted.cells`` locates a point's cell (``Cells.locate``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import geo
from .common import Context, Fitted, batched, fit_model, mlp, tune

NAME = "Classification"
MAX_DEPTH = 14


def _chart(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Equal-area chart coordinates in [0, 1): u = (sin lat + 1)/2, v = (lon + 180)/360."""
    lat, lon = geo.validate_latlon(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
    return (np.sin(np.radians(lat)) + 1) / 2 * (1 - 1e-12), (lon + 180.0) / 360.0 * (1 - 1e-12)


def _box_key(level, u, v) -> np.ndarray:
    """The key of the level-``level`` box holding chart point (u, v)."""
    n = 2 ** np.asarray(level, np.int64)
    return (np.asarray(level, np.int64) << 40) | ((u * 2 * n).astype(np.int64) << 20) | (v * 4 * n).astype(np.int64)


class Cells:
    """The boxes of the adaptive cells: key and level per cell, their areas, and a point's cell."""

    def __init__(self, keys: np.ndarray):
        self.keys = np.asarray(keys, np.int64)
        self.levels = self.keys >> 40
        self.area = 4 * np.pi / (8 * 4.0 ** self.levels)            # steradians (equal-area chart)
        self._index = {int(k): i for i, k in enumerate(self.keys)}

    def locate(self, lat, lon) -> np.ndarray:
        """The cell index of each point [N], -1 where no cell holds it (an empty leaf)."""
        u, v = _chart(lat, lon)
        out = np.full(len(u), -1, np.int64)
        for level in np.unique(self.levels):
            keys = _box_key(level, u, v)
            hit = np.array([self._index.get(int(k), -1) for k in keys])
            out = np.where((out < 0) & (hit >= 0), hit, out)
        return out


def adaptive_cells(lat, lon, max_count: int, return_cells: bool = False):
    """Quadtree cells of points (degrees). Returns (cell index per point [N], representative
    lat [K], lon [K]) with K non-empty cells, each holding at most ``max_count`` points unless it
    reached ``MAX_DEPTH`` splits; and the ``Cells`` (boxes) with ``return_cells``."""
    if max_count < 1:
        raise ValueError(f"max_count must be >= 1; got {max_count}")
    u, v = _chart(lat, lon)
    lat, lon = geo.validate_latlon(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
    iu, iv = (u * 2).astype(np.int64), (v * 4).astype(np.int64)  # level 0: 2 x 4 boxes
    level = np.zeros(len(lat), np.int64)
    for depth in range(MAX_DEPTH):
        key = (level << 40) | (iu << 20) | iv
        uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
        split = counts[inv] > max_count
        if not split.any():
            break
        level[split] += 1
        iu[split] = (u[split] * 2 * 2 ** level[split]).astype(np.int64)
        iv[split] = (v[split] * 4 * 2 ** level[split]).astype(np.int64)
    key = (level << 40) | (iu << 20) | iv
    keys, cell = np.unique(key, return_inverse=True)
    xyz = geo.latlon_to_xyz(lat, lon)
    sums = np.zeros((cell.max() + 1, 3))
    np.add.at(sums, cell, xyz)
    clat, clon = geo.xyz_to_latlon(sums)
    out = cell, np.asarray(clat), np.asarray(clon)
    return (*out, Cells(keys)) if return_cells else out


def smoothed_targets(y_xyz: torch.Tensor, cell_xyz: torch.Tensor, tau_km: float) -> torch.Tensor:
    """PIGEON's haversine-smoothed labels [B, K] for true locations [B, 3] and cells [K, 3]. The
    cosines in float32 even under bf16 autocast: bf16's 8-bit mantissa would blur them by ~500 km."""
    with torch.autocast(y_xyz.device.type, enabled=False):
        cos = (y_xyz.float() @ cell_xyz.float().T).clamp(-1, 1)
    d = geo.EARTH_RADIUS_KM * torch.arccos(cos)
    return torch.softmax(-d / tau_km, -1)


def fit(ctx: Context, progress: bool = True) -> Fitted:
    s = ctx.settings
    xyz = ctx.xyz

    def build(cand: dict, steps: int):
        cell, clat, clon, boxes = adaptive_cells(ctx.lat, ctx.lon, cand["cell_max_count"], return_cells=True)
        cell_xyz = torch.from_numpy(geo.latlon_to_xyz(clat, clon)).float().to(ctx.device)
        cell_t = torch.from_numpy(cell).to(ctx.device)
        torch.manual_seed(ctx.profile.train_seed)
        model = mlp(ctx.emb.shape[1], s.hidden, len(clat), s.dropout)

        def loss_fn(m, idx, gen):
            target = smoothed_targets(xyz[idx], cell_xyz, cand["label_tau_km"])
            logits = m(ctx.emb[idx])
            return {"loss": -(target * F.log_softmax(logits.float(), -1)).sum(-1).mean(),
                    "top1": (logits.argmax(-1) == cell_t[idx]).float().mean()}

        name = f"classification-c{cand['cell_max_count']}-t{cand['label_tau_km']:g}-s{steps}"
        seconds = fit_model(ctx, name, model, loss_fn, steps, {**cand, "cells": len(clat)}, progress)

        def predict(emb, top_k: int = 1):
            prob = torch.softmax(batched(model, emb).float(), -1).numpy()
            k = prob.argmax(-1)
            return {"lat": clat[k], "lon": clon[k], "cell_prob": prob}

        build.seconds, build.model, build.cells, build.boxes = seconds, model, len(clat), boxes
        return name, predict

    candidates = [{"cell_max_count": c, "label_tau_km": t} for c in s.cell_max_count for t in s.label_tau_km]
    best, table = tune(ctx, candidates, build, progress)
    _, predict = build(best, s.steps)
    table["cells"] = [len(adaptive_cells(ctx.lat, ctx.lon, c["cell_max_count"])[1]) for c in candidates]
    return Fitted(NAME, predict, build.seconds, table, build.model, cells=build.boxes)
