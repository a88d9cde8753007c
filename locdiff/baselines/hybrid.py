"""LocDiff-H: LocDiff's field re-ranks the retrieval baseline's best gallery locations.

Rule (ours; the paper combines LocDiff with GeoCLIP but its exact rule could not be consulted):
for each image take the retrieval model's K most similar gallery locations and predict the one
where LocDiff's field is highest. The field is the mean of LocDiff's n sampled SHDD vectors,
smoothed as in decoding (``shdd.field_pairs``), i.e. the density LocDiff's own prediction
maximizes. K = 1 is retrieval itself; large K lets LocDiff choose the region and retrieval the
exact place. K is chosen on val.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import shdd
from .common import Context, Fitted, choose, val_score

NAME = "LocDiff-H"


def rerank(field_coeffs: torch.Tensor, top_lat: np.ndarray, top_lon: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Among the first k candidates [B, K] of each row, the one with the highest field value."""
    lat, lon = top_lat[:, :k], top_lon[:, :k]
    best = shdd.field_pairs(field_coeffs, lat, lon).argmax(1).numpy()
    rows = np.arange(len(lat))
    return lat[rows, best], lon[rows, best]


def fit(ctx: Context, retrieval: Fitted, locdiff: Fitted) -> Fitted:
    """``retrieval`` must accept ``top_k``; ``locdiff.predict`` must return ``field_coeffs``."""
    k_max = max(ctx.settings.hybrid_k)
    ld_val = locdiff.predict(ctx.val_emb, seed=1)
    top_val = retrieval.predict(ctx.val_emb, top_k=max(k_max, 2))
    rows = []
    for k in ctx.settings.hybrid_k:
        la, lo = rerank(ld_val["field_coeffs"], top_val["top_lat"], top_val["top_lon"], k)
        rows.append({"hybrid_k": k, **val_score(ctx, lambda e: {"lat": la, "lon": lo})})
    k_best, table = choose(rows, "hybrid_k")
    k_best = int(k_best)

    def predict(emb, locdiff_output: dict | None = None, seed: int = 0):
        out = locdiff_output if locdiff_output is not None else locdiff.predict(emb, seed=seed)
        top = retrieval.predict(emb, top_k=max(k_best, 2))
        la, lo = rerank(out["field_coeffs"], top["top_lat"], top["top_lon"], k_best)
        return {"lat": la, "lon": lo}

    return Fitted(NAME, predict, locdiff.train_seconds + retrieval.train_seconds, table)
