"""Regression: an MLP from the image embedding straight to a location.

The network outputs a vector in R³, normalized to the unit sphere; the loss is the great-circle
distance to the truth, as the angle 2·atan2(|u - v|, |u + v|) (radians; accurate at 0 and π).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import Context, Fitted, batched, fit_model, mlp, to_latlon

NAME = "Regression"


def angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Angle (radians) between unit vectors [..., 3], with a finite gradient at u = v."""
    diff = ((u - v) ** 2).sum(-1).add(1e-12).sqrt()
    return 2 * torch.atan2(diff, (u + v).norm(dim=-1))


def fit(ctx: Context, progress: bool = True) -> Fitted:
    s = ctx.settings
    xyz = ctx.xyz
    torch.manual_seed(ctx.profile.train_seed)
    model = mlp(ctx.emb.shape[1], s.hidden, 3, s.dropout)

    def loss_fn(m, idx, gen):
        u = F.normalize(m(ctx.emb[idx]).float(), dim=-1)
        return {"loss": angle(u, xyz[idx]).mean()}

    config = {"hidden": s.hidden, "dropout": s.dropout}
    seconds = fit_model(ctx, f"regression-s{s.steps}", model, loss_fn, s.steps, config, progress)

    def predict(emb):
        lat, lon = to_latlon(batched(model, emb))
        return {"lat": lat, "lon": lon}

    return Fitted(NAME, predict, seconds, model=model)
