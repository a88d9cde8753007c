"""Retrieval over a gallery of locations (GeoCLIP, Vivanco Cepeda et al. 2023).

Two encoders map into one space of unit vectors: an MLP on the frozen image embedding, and a
multi-scale random-Fourier-feature location encoder (``encoders.RFFLocationEncoder``, one scale per
σ in ``rff_sigmas_km``). Trained with InfoNCE (learnable temperature) of each image against its own
location, the other locations of the batch and ``queue_negatives`` random training locations (as
GeoCLIP's queue of past GPS coordinates). The gallery is the set of training locations, plus
``uniform_gallery`` points uniform on the sphere when asked; the prediction is the gallery location
most similar to the image, and ``top_k`` gives the K best with their similarities (for LocDiff-H).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import geo
from ..encoders import RFFLocationEncoder
from .common import Context, Fitted, batched, fit_model, mlp

NAME = "Retrieval"


class DualEncoder(nn.Module):
    def __init__(self, embed_dim: int, hidden, dim: int, sigmas_km, dropout: float, seed: int):
        super().__init__()
        self.image = mlp(embed_dim, hidden, dim, dropout)
        self.location = RFFLocationEncoder(sigmas_km, embed_dim=dim, seed=seed)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(emb), dim=-1)


def fit(ctx: Context, progress: bool = True) -> Fitted:
    s = ctx.settings
    xyz = ctx.xyz
    torch.manual_seed(ctx.profile.train_seed)
    model = DualEncoder(ctx.emb.shape[1], s.hidden, s.retrieval_dim, s.rff_sigmas_km, s.dropout, ctx.profile.train_seed)

    def loss_fn(m, idx, gen):
        img = m.encode_image(ctx.emb[idx])
        neg = torch.randint(0, len(xyz), (s.queue_negatives,), generator=gen)
        # the location tower (random Fourier features down to 25 km: phases of ~250 rad) and the
        # similarities (logit scale up to 100) in float32: bf16 would blur them by hundreds of km
        with torch.autocast(img.device.type, enabled=False):
            loc = m.location(torch.cat([xyz[idx], xyz[neg]]))
            logits = m.logit_scale.exp().clamp(max=100) * img.float() @ loc.float().T
        target = torch.arange(len(idx), device=logits.device)
        return {"loss": F.cross_entropy(logits, target), "recall@1": (logits.argmax(-1) == target).float().mean()}

    config = {k: getattr(s, k) for k in ("hidden", "dropout", "retrieval_dim", "rff_sigmas_km", "queue_negatives")}
    seconds = fit_model(ctx, f"retrieval-s{s.steps}", model, loss_fn, s.steps, config, progress)
    gallery_lat, gallery_lon = np.unique(np.stack([ctx.lat, ctx.lon], 1), axis=0).T
    if s.uniform_gallery:
        ulat, ulon = geo.uniform_points(s.uniform_gallery, seed=ctx.profile.train_seed + 7)
        gallery_lat, gallery_lon = np.concatenate([gallery_lat, ulat]), np.concatenate([gallery_lon, ulon])
    with torch.no_grad():
        g_xyz = torch.from_numpy(geo.latlon_to_xyz(gallery_lat, gallery_lon)).float().to(ctx.device)
        gallery = torch.cat([model.location(g_xyz[i:i + 8192]) for i in range(0, len(g_xyz), 8192)])

    def predict(emb, top_k: int = 1):
        def best(e):
            top = torch.topk(model.encode_image(e) @ gallery.T, top_k, -1)
            return torch.cat([top.values, top.indices.double()], -1)    # indices exact in float64

        both = batched(best, emb, device=ctx.device)
        sims, idx = both[:, :top_k], both[:, top_k:].long()
        out = {"lat": gallery_lat[idx[:, 0].numpy()], "lon": gallery_lon[idx[:, 0].numpy()]}
        if top_k > 1:
            out.update(top_lat=gallery_lat[idx.numpy()], top_lon=gallery_lon[idx.numpy()], top_sim=sims.numpy())
        return out

    return Fitted(NAME, predict, seconds, model=model)
