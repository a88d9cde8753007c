"""Samplers: the reverse process as schedulers, and the one loop that runs them.

A scheduler says where the reverse process starts (``init``: noise), which times it visits
(``timesteps``, and ``model_time``: what the network is told), and how one step moves the state
given the network's output (``step``), as diffusers' schedulers do. ``sample_loop`` holds what they
share: n samples per embedding, classifier-free guidance, the trajectory and the checks.

Classifier-free guidance (Ho & Salimans 2022) with scale w: out = out_∅ + w (out_c - out_∅), the
conditional and unconditional outputs from one batched call (w = 1: conditional only, no extra
call; w = 0: unconditional).

- ``DDIMSampler`` (Song et al. 2021), on ``steps`` evenly spaced timesteps τ_1 > ... > τ_S of the
  T of the forward process: x_{τ'} = √ᾱ' x̂0 + √(1 - ᾱ' - σ²) ε̂ + σ z, with
  σ = η √((1-ᾱ')/(1-ᾱ) (1 - ᾱ/ᾱ')); η = 0 is deterministic given the initial noise.
- ``DDPMSampler`` (Ho et al. 2020), every t = T-1..0: x_{t-1} = μ̃_t(x̂0, x_t) + √β̃_t z, with
  μ̃_t = √ᾱ_{t-1} β_t/(1-ᾱ_t) x̂0 + √(1-β_t)(1-ᾱ_{t-1})/(1-ᾱ_t) x_t and β̃_t = β_t (1-ᾱ_{t-1})/(1-ᾱ_t).
- The flow-matching integrator on the sphere is ``baselines.generative.SphereEulerSampler``.

The diffusion samplers turn the network's output into (x̂0, ε̂) by ``Diffusion.split`` (x0, ε or v
prediction). Noise is drawn on the CPU generator and moved to the model's device, so a seed gives
the same samples on every device.
"""
from __future__ import annotations

import torch

from .checks import is_finite_real, is_int, is_real

__all__ = ["Scheduler", "DDIMSampler", "DDPMSampler", "guided_output", "sample_loop"]


def check_sampling(n: int, steps: int | None, guidance: float) -> None:
    """ValueError naming ``n`` (samples per image), ``steps`` or ``guidance`` when out of range."""
    if not is_int(n) or n < 1:
        raise ValueError(f"n (samples per image) must be an integer >= 1; got {n!r}")
    if steps is not None and (not is_int(steps) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if not (is_finite_real(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a finite number >= 0 (1 = conditional, 0 = unconditional); got {guidance!r}")


def _check_emb(model, emb) -> None:
    """emb must be a 2-D tensor [B, E], E the model's embedding size where the model states it."""
    if not isinstance(emb, torch.Tensor) or emb.ndim != 2:
        got = tuple(emb.shape) if hasattr(emb, "shape") else type(emb).__name__
        raise ValueError(f"emb must be a tensor of shape [B, E] (one embedding per image); got {got}")
    want = getattr(getattr(model, "config", None), "embed_dim", None)
    if isinstance(want, int) and emb.shape[1] != want:
        raise ValueError(f"emb must have shape [B, {want}] (the model's embedding size); got {tuple(emb.shape)}")


def guided_output(model, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, guidance: float) -> torch.Tensor:
    """The network's output with classifier-free guidance: out_∅ + w (out_c - out_∅) [B, D]."""
    if guidance == 1.0:
        return model(x, t, emb)
    dropped = torch.cat([torch.zeros(len(x), dtype=torch.bool, device=x.device),
                         torch.ones(len(x), dtype=torch.bool, device=x.device)])
    cond, uncond = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([emb, emb]), drop_cond=dropped).chunk(2)
    out = uncond + float(guidance) * (cond - uncond)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"guidance must be a finite number >= 0 small enough for the guided prediction "
                         f"uncond + guidance·(cond - uncond) to stay finite; got {guidance!r}")
    return out


class Scheduler:
    """One reverse process: ``init`` (the starting noise), ``timesteps``, ``model_time`` and ``step``;
    ``sample`` runs it through ``sample_loop``. Subclasses set ``guidance``."""

    guidance: float = 1.0
    check_finite: bool = True      # refuse samples that hold NaN or inf (a guidance scale too large)

    def init(self, size: int, generator: torch.Generator | None, device) -> torch.Tensor:
        raise NotImplementedError

    def timesteps(self) -> list:
        raise NotImplementedError

    def model_time(self, t, size: int, device) -> torch.Tensor:
        """What the network is told the time is, for ``size`` rows: the integer timestep t."""
        return torch.full((size,), t, dtype=torch.long, device=device)

    def step(self, out: torch.Tensor, x: torch.Tensor, i: int, generator: torch.Generator | None):
        """(next state, its clean estimate x̂0) from the network output ``out`` at state x, step i."""
        raise NotImplementedError

    def sample(self, model, emb: torch.Tensor, n: int = 16, generator: torch.Generator | None = None,
               return_trajectory: bool = False):
        """n samples per embedding [B, n, D] (and the x̂0 trajectory [steps, B, n, D])."""
        return sample_loop(self, model, emb, n, generator, return_trajectory)


@torch.no_grad()
def sample_loop(scheduler: Scheduler, model, emb: torch.Tensor, n: int, generator: torch.Generator | None = None,
                return_trajectory: bool = False):
    """Run ``scheduler`` from its noise for n samples of each of the B embeddings [B, E]."""
    check_sampling(n, None, scheduler.guidance)
    _check_emb(model, emb)
    B, dev = emb.shape[0], emb.device
    e = emb.repeat_interleave(n, 0)
    x = scheduler.init(B * n, generator, dev)
    traj = []
    for i, t in enumerate(scheduler.timesteps()):
        out = guided_output(model, x, scheduler.model_time(t, B * n, dev), e, scheduler.guidance)
        x, x0 = scheduler.step(out, x, i, generator)
        if return_trajectory:
            traj.append(x0.reshape(B, n, -1))
    x = x.reshape(B, n, -1)
    if scheduler.check_finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"guidance must be a finite number >= 0 small enough for the guided prediction to stay "
                         f"finite; got {scheduler.guidance!r}, and the samples hold NaN or inf (or the model's "
                         f"weights do)")
    return (x, torch.stack(traj)) if return_trajectory else x


def _noise(shape, generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device="cpu").to(device)


class DDIMSampler(Scheduler):
    """DDIM on an evenly spaced subsequence of ``steps`` timesteps; eta = 0 is deterministic given
    the initial noise, eta = 1 matches DDPM's variance."""

    def __init__(self, diffusion, steps: int = 50, eta: float = 0.0, guidance: float = 1.0):
        check_sampling(1, steps, guidance)
        if not (is_real(eta) and 0 <= eta <= 1):
            raise ValueError(f"eta must lie in [0, 1]; got {eta!r}")
        self.diffusion, self.steps, self.eta, self.guidance = diffusion, min(steps, diffusion.config.T), eta, guidance
        self._ts = torch.linspace(diffusion.config.T - 1, 0, self.steps).round().long().tolist()

    def init(self, size, generator, device):
        return _noise((size, self.diffusion.dim), generator, device)

    def timesteps(self) -> list[int]:
        return self._ts

    def step(self, out, x, i, generator):
        t, ts = self._ts[i], self._ts
        abar = self.diffusion.abar.to(x.device)
        x0, eps = self.diffusion.split(out.float(), x, self.model_time(t, len(x), x.device))
        a = abar[t]
        a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=x.device)
        sigma = self.eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp_min(0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
        if self.eta > 0 and i + 1 < len(ts):
            x = x + sigma * _noise(x.shape, generator, x.device)
        return x, x0


class DDPMSampler(Scheduler):
    """DDPM ancestral sampling over all T steps, posterior variance β̃_t."""

    def __init__(self, diffusion, guidance: float = 1.0):
        check_sampling(1, None, guidance)
        self.diffusion, self.guidance = diffusion, guidance

    def init(self, size, generator, device):
        return _noise((size, self.diffusion.dim), generator, device)

    def timesteps(self) -> list[int]:
        return list(range(self.diffusion.config.T - 1, -1, -1))

    def step(self, out, x, i, generator):
        t = self.diffusion.config.T - 1 - i
        abar = self.diffusion.abar.to(x.device)
        x0, _ = self.diffusion.split(out.float(), x, self.model_time(t, len(x), x.device))
        a = abar[t]
        a_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, device=x.device)
        beta = 1 - a / a_prev
        mean = (a_prev.sqrt() * beta / (1 - a)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a)) * x
        if t == 0:
            return mean, x0
        return mean + (beta * (1 - a_prev) / (1 - a)).sqrt() * _noise(x.shape, generator, x.device), x0
