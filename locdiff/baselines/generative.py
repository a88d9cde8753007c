"""Generative baselines on raw coordinates, with LocDiff's denoiser and conditioning.

Both learn a distribution over unit vectors x ∈ S² ⊂ R³ given the image embedding, with the same
network as LocDiff (CS-UNet: FiLM-SIREN UNet, ``data_dim = 3``), the same condition (embedding +
time, learned null embedding for classifier-free guidance, dropped with probability p_uncond),
the same number of samples and of network evaluations per sample as LocDiff's sampler, and the
same point-prediction vote (``common.vote``).

1. Raw diffusion (the "diffusion" variant of PLONK, Dufour et al. 2025): DDPM on x0 = √3·x
   (mean square 1 per component, as LocDiff's latent), LocDiff's schedule and target, DDIM
   sampling, samples projected back onto the sphere by normalization.
2. Riemannian flow matching on the sphere (PLONK's main method; Chen & Lipman 2024): noise
   x0 ~ uniform on S², data x1, the geodesic x_t = sin((1-t)Ω)/sin Ω · x0 + sin(tΩ)/sin Ω · x1
   (Ω = ∠(x0, x1)) with velocity u_t = Ω (cos(tΩ) x1 - cos((1-t)Ω) x0) / sin Ω; the network's
   output, projected on the tangent plane at x_t, regresses u_t (MSE). Sampling: Euler steps with
   the exponential map, x ← cos(h|v|) x + sin(h|v|) v/|v|, h = 1/steps, from uniform noise.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..diffusion import Diffusion, DiffusionConfig
from ..samplers import DDIMSampler, Scheduler, check_sampling
from ..model import CSUNet, CSUNetConfig
from ..profiles import LocDiffSettings, Profile
from .common import Context, Fitted, choose, fit_model, to_latlon, tune, val_score, vote

SQRT3 = math.sqrt(3.0)


def network(profile: Profile, embed_dim: int) -> CSUNet:
    """The baselines' CS-UNet on unit vectors (``data_dim = 3``): widths ``gen_widths``, dropout
    ``gen_dropout``, LocDiff's condition size and w0; initialized from the profile's seed."""
    s, ld = profile.baselines, profile.locdiff
    torch.manual_seed(profile.train_seed)
    return CSUNet(CSUNetConfig(L=0, data_dim=3, embed_dim=embed_dim, widths=tuple(s.gen_widths),
                               cond_dim=ld.cond_dim, w0=ld.w0, dropout=s.gen_dropout))


def _network(ctx: Context) -> CSUNet:
    return network(ctx.profile, ctx.emb.shape[1])


def _sampled(ctx: Context, sample_fn, emb, guidance: float, seed: int, batch: int = 256) -> dict:
    """Samples [B, n] and the vote, for ``sample_fn(emb_batch, n, guidance, generator) -> [b, n, 3]``."""
    ld = ctx.profile.locdiff
    emb = torch.as_tensor(np.asarray(emb, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.cat([sample_fn(emb[i:i + batch].to(ctx.device), ld.samples, guidance, gen).cpu()
                       for i in range(0, len(emb), batch)])
    slat, slon = to_latlon(x)
    lat, lon = vote(slat, slon, ld.L)
    return {"lat": lat, "lon": lon, "sample_lat": slat, "sample_lon": slon}


def _tuned(ctx: Context, name: str, train_one, lrs: tuple[float, ...], progress: bool) -> Fitted:
    """Choose the learning rate among ``lrs`` (full-length runs scored at guidance 1: flow matching
    can diverge late, so short runs would mislead; a single rate is used as given) and then the
    guidance scale (sampling only) on val; ``train_one(lr, steps) -> (sample_fn, seconds, model)``.
    The chosen run is reloaded, not trained again."""
    s = ctx.settings

    def build(cand, steps):
        sample_fn, build.seconds, build.model = train_one(cand["lr"], steps)
        build.sample_fn = sample_fn
        return name, lambda e: _sampled(ctx, sample_fn, e, 1.0, seed=1)

    best, lr_table = tune(ctx, [{"lr": lr} for lr in lrs], build, progress, steps=s.gen_steps) \
        if len(lrs) > 1 else ({"lr": lrs[0]}, pd.DataFrame())
    build(best, s.gen_steps)
    sample_fn, seconds, model = build.sample_fn, build.seconds, build.model
    scored = {}                     # guidance 1 was scored with the same samples (seed 1) by the lr search
    if len(lr_table):
        chosen = lr_table[lr_table["chosen"]].iloc[0]
        scored[1.0] = {"val_geoscore": float(chosen["val_geoscore"]), "val_median_km": float(chosen["val_median_km"])}
    rows = [{"lr": best["lr"], "guidance": g,
             **(scored.get(float(g)) or val_score(ctx, lambda e: _sampled(ctx, sample_fn, e, g, seed=1)))}
            for g in s.guidance]
    g_best, g_table = choose(rows, "guidance")
    g_best = float(g_best)
    if len(lr_table):
        lr_table["steps"] = s.gen_steps
    g_table["steps"] = s.gen_steps
    table = pd.concat([lr_table, g_table], ignore_index=True)
    return Fitted(name, lambda emb, seed=0: _sampled(ctx, sample_fn, emb, g_best, seed), seconds, table, model)


# ----------------------------------------------------------------------------- raw diffusion
def raw_diffusion(ld: LocDiffSettings) -> Diffusion:
    """The forward process of the raw-coordinate baseline: LocDiff's T, schedule, prediction target
    and condition dropout on 3-D data x0 = √3·x, MSE loss (``Diffusion.loss`` is its training loss)."""
    return Diffusion(DiffusionConfig(T=ld.T, schedule=ld.schedule, prediction=ld.prediction, loss="mse",
                                     p_uncond=ld.p_uncond), L=0, data_dim=3)


def sample_raw_diffusion(model: CSUNet, diffusion: Diffusion, emb: torch.Tensor, n: int, steps: int,
                         guidance: float, gen: torch.Generator) -> torch.Tensor:
    """n samples per embedding [B, n, 3] (scaled by √3, not yet normalized): deterministic DDIM
    (eta = 0) with ``steps`` steps and guidance scale ``guidance``."""
    return DDIMSampler(diffusion, steps, 0.0, guidance).sample(model, emb, n, gen)


def fit_raw_diffusion(ctx: Context, progress: bool = True) -> Fitted:
    ld = ctx.profile.locdiff
    x0 = SQRT3 * ctx.xyz
    diffusion = raw_diffusion(ld)

    def train_one(lr, steps):
        model = _network(ctx)

        def loss_fn(m, idx, gen):
            return diffusion.loss(m, x0[idx], ctx.emb[idx], gen)

        config = {"csunet": asdict(model.config), "diffusion": asdict(diffusion.config), "lr": lr}
        seconds = fit_model(ctx, f"raw-diffusion-lr{lr:g}-s{steps}", model, loss_fn, steps, config, progress, lr)

        def sample_fn(emb, n, guidance, gen):
            return sample_raw_diffusion(model, diffusion, emb, n, ld.ddim_steps, guidance, gen)

        return sample_fn, seconds, model

    return _tuned(ctx, "Raw diffusion", train_one, ctx.settings.raw_diffusion_lr, progress)


# ----------------------------------------------------------------------------- flow matching
def uniform_sphere(n: int, gen: torch.Generator) -> torch.Tensor:
    return F.normalize(torch.randn(n, 3, generator=gen), dim=-1)


def geodesic(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
    """Point x_t [B, 3] and velocity u_t [B, 3] on the great circle from x0 to x1 at times t [B]."""
    cross = torch.linalg.cross(x0, x1).norm(dim=-1)
    omega = torch.atan2(cross, (x0 * x1).sum(-1))[:, None]           # accurate at every angle
    sin = torch.sin(omega).clamp_min(torch.finfo(x0.dtype).eps ** 0.5)
    t = t[:, None]
    xt = (torch.sin((1 - t) * omega) * x0 + torch.sin(t * omega) * x1) / sin
    ut = omega * (torch.cos(t * omega) * x1 - torch.cos((1 - t) * omega) * x0) / sin
    return xt, ut


def tangent(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Projection of v onto the tangent plane of the sphere at x."""
    return v - (v * x).sum(-1, keepdim=True) * x


def exp_map(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """exp_x(v) = cos|v| x + sin|v| v/|v| (v tangent at x)."""
    n = v.norm(dim=-1, keepdim=True)
    return F.normalize(torch.cos(n) * x + torch.sin(n) * v / n.clamp_min(1e-12), dim=-1)


TIME_SCALE = 1000.0   # flow matching: continuous time t ∈ [0, 1] enters the network as t·TIME_SCALE


def flow_matching_loss(model: CSUNet, x1: torch.Tensor, emb: torch.Tensor, p_uncond: float,
                       gen: torch.Generator) -> dict:
    """Riemannian flow-matching loss on a batch of data points x1 [B, 3] (unit vectors) with
    embeddings [B, E]: noise x0 uniform on S², t ~ U(0, 1), the condition dropped with probability
    ``p_uncond``; mean over the batch of |tangent(v_θ(x_t, t)) - u_t|². Random draws on the CPU
    generator ``gen`` (then moved to x1's device). Returns {"loss": scalar}."""
    B, dev = len(x1), x1.device
    x0 = uniform_sphere(B, gen).to(dev)
    t = torch.rand(B, generator=gen).to(dev)
    drop = (torch.rand(B, generator=gen) < p_uncond).to(dev)
    xt, ut = geodesic(x0, x1, t)
    v = tangent(model(xt, t * TIME_SCALE, emb, drop_cond=drop).float(), xt)
    return {"loss": ((v - ut) ** 2).sum(-1).mean()}


class SphereEulerSampler(Scheduler):
    """Riemannian flow matching's integrator on S²: from uniform noise, ``steps`` Euler steps of the
    exponential map along the predicted velocity, x ← exp_x(tangent_x(v)/steps), at t = i/steps
    (the network sees t · ``TIME_SCALE``); guidance w combines the velocities, u + w (c - u)."""

    check_finite = False           # a diverged baseline is scored as it is, not refused

    def __init__(self, steps: int, guidance: float = 1.0):
        check_sampling(1, steps, guidance)
        self.steps, self.guidance = int(steps), guidance

    def init(self, size, generator, device):
        return uniform_sphere(size, generator).to(device)

    def timesteps(self) -> list[float]:
        return [i / self.steps for i in range(self.steps)]

    def model_time(self, t, size, device):
        return torch.full((size,), t, device=device) * TIME_SCALE

    def step(self, out, x, i, generator):
        x = exp_map(x, tangent(out.float(), x) / self.steps)
        return x, x


def sample_flow_matching(model: CSUNet, emb: torch.Tensor, n: int, steps: int, guidance: float,
                         gen: torch.Generator) -> torch.Tensor:
    """n samples per embedding [B, n, 3] on the sphere (``SphereEulerSampler``)."""
    return SphereEulerSampler(steps, guidance).sample(model, emb, n, gen)


def fit_flow_matching(ctx: Context, progress: bool = True) -> Fitted:
    ld = ctx.profile.locdiff
    x1_all = ctx.xyz

    def train_one(lr, steps):
        model = _network(ctx)

        def loss_fn(m, idx, gen):
            return flow_matching_loss(m, x1_all[idx], ctx.emb[idx], ld.p_uncond, gen)

        config = {"csunet": asdict(model.config), "p_uncond": ld.p_uncond, "time_scale": TIME_SCALE, "lr": lr}
        seconds = fit_model(ctx, f"flow-matching-lr{lr:g}-s{steps}", model, loss_fn, steps, config, progress, lr)

        def sample_fn(emb, n, guidance, gen):
            return sample_flow_matching(model, emb, n, ld.ddim_steps, guidance, gen)

        return sample_fn, seconds, model

    return _tuned(ctx, "Flow matching", train_one, ctx.settings.flow_matching_lr, progress)


__all__ = ["fit_raw_diffusion", "fit_flow_matching", "geodesic", "exp_map", "tangent", "uniform_sphere", "network",
           "raw_diffusion", "sample_raw_diffusion", "flow_matching_loss", "sample_flow_matching", "SphereEulerSampler", "TIME_SCALE"]
