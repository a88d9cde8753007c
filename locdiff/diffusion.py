"""Latent diffusion in SHDD space: schedules, the forward process, losses and samplers.

The latent x0 = √(4π) w ⊙ Y(x) of a location, its spectral weights and its decoding live in
``locdiff.latent``; the samplers in ``locdiff.samplers``.

Forward process (Ho et al. 2020): q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I), t = 0..T-1, with the
cosine schedule of Nichol & Dhariwal (2021) (default) or the linear one of Ho et al., optionally
shifted to lower signal-to-noise ratios by a factor k (Hoogeboom et al. 2023, "simple diffusion"):
SNR'_t = SNR_t / k², i.e. ᾱ'_t = ᾱ_t / (ᾱ_t + k²(1 - ᾱ_t)). The location a noisy latent reveals by
itself grows with L: correlating x_t with the latent of a candidate point gives the matched-filter
signal-to-noise ratio √(SNR_t) · (L+1) (``location_snr``), so k = (L+1)/(L_ref+1) keeps that ratio
at every t what it is at degree L_ref (``shift_for_degree``).

The network predicts x0 (default), ε or v = √ᾱ ε - √(1-ᾱ) x0 (Salimans & Ho 2022); every sampler
turns its output into (x̂0, ε̂).

Losses: "mse" on the prediction target, each coefficient weighted by ``band_weight``: "flat" (1) or
"band" (λ_l = (L+1)/(2l+1): every degree band the same share of the loss, mean weight 1) or "decay"
(band l's share ∝ 1/√(l+1); ``band_loss_weights``);
"shdd_kl": the divergence between the heat-smoothed densities on the sphere of the target and
predicted clean vectors (``divergence.shdd_kl``, width ``kl_width``), the paper's latent KL loss in
our construction, whose optimum under noise is the posterior mean of x0 like MSE's; "mse+kl" their
sum with weight ``kl_weight`` on the KL term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import divergence, shdd
from .latent import SPECTRA, Latent, degrees
from .checks import is_finite_real, is_int, is_real

PREDICTIONS = ("x0", "eps", "v")
LOSSES = ("mse", "shdd_kl", "mse+kl")
BAND_WEIGHTS = ("flat", "band", "decay")


@dataclass(frozen=True)
class DiffusionConfig:
    T: int = 1000
    schedule: str = "cosine"        # or "linear"
    prediction: str = "x0"          # "x0", "eps" or "v"
    loss: str = "mse"               # "mse", "shdd_kl" or "mse+kl"
    kl_weight: float = 1.0
    kl_width: float = divergence.DEFAULT_WIDTH   # heat-kernel width of the SHDD-KL densities, σ = width·(L+1)
    p_uncond: float = 0.1           # probability of dropping the condition during training
    schedule_shift: float = 1.0     # k: SNR_t / k² (1 = the plain schedule)
    spectrum: str = "flat"          # latent spectrum w_l: "flat", "heat" or "band"
    spectrum_width: float = 0.5     # "heat": w_l ∝ exp(-l(l+1)/(2(width·(L+1))²))
    band_weight: str = "flat"       # MSE weight per coefficient: "flat", "band" (equal share per degree) or "decay"

    def __post_init__(self):
        if not is_int(self.T) or self.T < 2:
            raise ValueError(f"T must be an integer >= 2 (diffusion steps); got {self.T!r}")
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be 'cosine' or 'linear'; got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}; got {self.prediction!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {self.loss!r}")
        if not (is_real(self.p_uncond) and 0 <= self.p_uncond < 1):
            raise ValueError(f"p_uncond must lie in [0, 1); got {self.p_uncond!r}")
        if not (is_finite_real(self.kl_weight) and self.kl_weight >= 0):
            raise ValueError(f"kl_weight must be a finite number >= 0; got {self.kl_weight!r}")
        for name in ("kl_width", "spectrum_width"):
            v = getattr(self, name)
            if not (is_finite_real(v) and 1e-3 <= v <= 1e3):
                raise ValueError(f"{name} must be a number in [0.001, 1000] (σ = width·(L+1)); got {v!r}")
        if not (is_finite_real(self.schedule_shift) and 1e-3 <= self.schedule_shift <= 1e3):
            raise ValueError(f"schedule_shift must be a number in [0.001, 1000] (SNR divided by its square); "
                             f"got {self.schedule_shift!r}")
        if self.spectrum not in SPECTRA:
            raise ValueError(f"spectrum must be one of {SPECTRA}; got {self.spectrum!r}")
        if self.band_weight not in BAND_WEIGHTS:
            raise ValueError(f"band_weight must be one of {BAND_WEIGHTS}; got {self.band_weight!r}")


def alpha_bar(T: int, schedule: str = "cosine") -> torch.Tensor:
    """ᾱ_t for t = 0..T-1 (float64), decreasing from ≈1 to ≈0.

    cosine: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t+1)/T + s)/(1 + s) · π/2), s = 0.008, with
    β_t = 1 - ᾱ_t/ᾱ_{t-1} clipped to 0.999; linear: β_t from 1e-4 to 0.02 (scaled by 1000/T, clipped to
    0.999 so that short schedules, T <= 20, keep ᾱ_t > 0).
    """
    if not is_int(T) or T < 1:
        raise ValueError(f"T must be an integer >= 1 (diffusion steps); got {T!r}")
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    elif schedule == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).clamp(max=0.999)  # T <= 20
    else:
        raise ValueError(f"schedule must be 'cosine' or 'linear'; got {schedule!r}")
    return torch.cumprod(1 - betas, 0)


def band_loss_weights(L: int, band_weight: str = "flat") -> torch.Tensor:
    """λ_i per coefficient ([(L+1)²] float64, mean 1). For a squared error spread evenly over the
    coefficients, band l's share of the loss is ∝ (2l+1) λ_l:
      "flat"  λ = 1: share ∝ 2l+1 (the finest bands dominate);
      "band"  λ = (L+1)/(2l+1): every band the same share, 1/(L+1);
      "decay" λ ∝ 1/((2l+1)√(l+1)): share ∝ 1/√(l+1), so that the coarse bands l ≤ 8 keep about the
              share they have under "band" at L = 32 (31% at L = 64 against 14% under "band")."""
    if band_weight not in BAND_WEIGHTS:
        raise ValueError(f"band_weight must be one of {BAND_WEIGHTS}; got {band_weight!r}")
    l = degrees(L).double()
    if band_weight == "flat":
        return torch.ones_like(l)
    lam = 1 / (2 * l + 1) if band_weight == "band" else 1 / ((2 * l + 1) * torch.sqrt(l + 1))
    return lam * (len(l) / float(lam.sum()))


def shift_for_degree(L: int, L_ref: int = 16) -> float:
    """The schedule shift k = (L+1)/(L_ref+1) that gives degree L the location signal-to-noise ratio
    of degree L_ref at every timestep (see ``location_snr``)."""
    return (shdd._check_degree(L) + 1) / (shdd._check_degree(L_ref) + 1)


def location_snr(abar: torch.Tensor, L: int) -> torch.Tensor:
    """Matched-filter SNR of the location in x_t, √(ᾱ/(1-ᾱ)) · (L+1), for any spectrum normalized as
    ``spectral_weights``: the correlation of x_t with the latent z(y) of a candidate point y is
    √ᾱ ⟨z(x), z(y)⟩ + noise of std √(1-ᾱ)‖z(y)‖, and ⟨z(x), z(x)⟩ = ‖z‖² = (L+1)²."""
    abar = torch.as_tensor(abar, dtype=torch.float64)
    if not bool(((abar >= 0) & (abar <= 1)).all()):
        raise ValueError("abar must hold values in [0, 1] (ᾱ_t of a schedule); got values outside it")
    return torch.sqrt(abar / (1 - abar).clamp_min(1e-300)) * (shdd._check_degree(L) + 1)


class Diffusion:
    """The forward process, the training loss and the conversions between prediction targets."""

    def __init__(self, config: DiffusionConfig, L: int, data_dim: int = 0):
        """``L``: the SHDD degree of the latent; ``data_dim`` > 0 diffuses plain vectors of that size
        instead (the raw-coordinate baseline; the SHDD-KL loss then does not apply)."""
        if not is_int(L) or L < 0:
            raise ValueError(f"L must be a non-negative integer (the SHDD degree); got {L!r}")
        if not is_int(data_dim) or data_dim < 0:
            raise ValueError(f"data_dim must be an integer >= 0 (0 = SHDD latents of size (L+1)^2); got {data_dim!r}")
        self.config, self.L, self.dim = config, int(L), int(data_dim) or (int(L) + 1) ** 2
        if data_dim and config.loss != "mse":
            raise ValueError(f"loss {config.loss!r} needs SHDD latents; use loss='mse' with data_dim={data_dim}")
        if data_dim and (config.spectrum != "flat" or config.band_weight != "flat"):
            raise ValueError(f"spectrum and band_weight apply to SHDD latents; use 'flat' with data_dim={data_dim}")
        k2 = float(config.schedule_shift) ** 2
        abar = alpha_bar(config.T, config.schedule)
        self.abar = (abar / (abar + k2 * (1 - abar))).float()
        self.latent = None if data_dim else Latent(self.L, config.spectrum, config.spectrum_width)
        self.weights = torch.ones(self.dim) if data_dim else self.latent.weights
        self.loss_weights = (torch.ones(self.dim, dtype=torch.float64) if data_dim
                             else band_loss_weights(self.L, config.band_weight)).float()

    # ------------------------------------------------------------------ latents
    def encode(self, lat, lon) -> torch.Tensor:
        """This diffusion's latent of points (degrees), ``Latent.encode``: [N, (L+1)²] float32."""
        return self.latent.encode(lat, lon)

    def to_coeffs(self, z: torch.Tensor) -> torch.Tensor:
        """SHDD vectors from latents [..., (L+1)²] (``Latent.to_coeffs``)."""
        return self.latent.to_coeffs(z)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε."""
        a = self.abar.to(x0.device)[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def split(self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """(x̂0, ε̂) from the network output for its prediction target."""
        a = self.abar.to(x_t.device)[t][:, None]
        sa, s1 = a.sqrt(), (1 - a).sqrt()
        kind = self.config.prediction
        if kind == "x0":
            x0 = pred
            eps = (x_t - sa * x0) / s1.clamp_min(1e-8)
        elif kind == "eps":
            eps = pred
            x0 = (x_t - s1 * eps) / sa.clamp_min(1e-8)
        else:  # v = √ᾱ ε - √(1-ᾱ) x0
            x0 = sa * x_t - s1 * pred
            eps = s1 * x_t + sa * pred
        return x0, eps

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kind = self.config.prediction
        if kind == "x0":
            return x0
        if kind == "eps":
            return noise
        a = self.abar.to(x0.device)[t][:, None]
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    # ------------------------------------------------------------------ losses
    def shdd_kl(self, x0: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``divergence.shdd_kl`` between the target and predicted latents (nats);
        float32 products even under bf16 autocast (the densities' logarithms need the precision)."""
        with torch.autocast(x0.device.type, enabled=False):
            return divergence.shdd_kl(self.to_coeffs(x0.float()), self.to_coeffs(x0_hat.float()),
                                      self.config.kl_width).mean()

    def loss(self, model, x0: torch.Tensor, emb: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """One training loss on a batch: random t, noise, condition dropout. Returns a dict of terms."""
        B, dev = x0.shape[0], x0.device
        t = torch.randint(0, self.config.T, (B,), generator=generator, device="cpu").to(dev)
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(dev)
        drop = (torch.rand(B, generator=generator, device="cpu") < self.config.p_uncond).to(dev)
        x_t = self.q_sample(x0, t, noise)
        pred = model(x_t, t, emb, drop_cond=drop)
        out = {}
        total = 0.0
        if self.config.loss in ("mse", "mse+kl"):
            err = (pred.float() - self.target(x0, noise, t)) ** 2
            out["mse"] = (err * self.loss_weights.to(err.device)).mean()
            total = total + out["mse"]
        if self.config.loss in ("shdd_kl", "mse+kl"):
            x0_hat, _ = self.split(pred.float(), x_t, t)
            out["kl"] = self.shdd_kl(x0, x0_hat)
            total = total + (self.config.kl_weight if self.config.loss == "mse+kl" else 1.0) * out["kl"]
        out["loss"] = total
        return out
