"""Latent diffusion in SHDD space: schedules, the forward process, losses and samplers.

Latent. The SHDD vector of a point, scaled and optionally reshaped by degree:
x0_i = √(4π) · w_l(i) · Y_i(x). By the addition theorem Σ_m Y_lm(x)² = (2l+1)/(4π) for every x, so
with w_l normalized to Σ_l (2l+1) w_l² = (L+1)², the entries have mean square exactly 1 for every
point (``LATENT_SCALE`` = √(4π)). ``spectrum`` chooses w_l (``spectral_weights``): "flat" (w_l = 1,
the delta's own flat spectrum: every degree band carries 2l+1 units of energy, so at L = 64 the bands
above l = 32 hold 75% of it), "heat" (w_l ∝ exp(-l(l+1)/(2(width·(L+1))²)), a decaying spectrum like
a natural image's) or "band" (w_l ∝ 1/√(2l+1): every band the same energy). ``to_coeffs`` divides
w_l and the scale away, so decoding sees the same SHDD vector whatever the spectrum.

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

Samplers share one interface, ``sample(model, emb, n, generator)``: DDPM ancestral (Ho et al.) and
DDIM (Song et al. 2021) with ``eta`` and a number of steps; both take a classifier-free guidance
scale w: pred = pred_uncond + w (pred_cond - pred_uncond) (w = 1: conditional only, w = 0:
unconditional).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import divergence, shdd

LATENT_SCALE = math.sqrt(4 * math.pi)
PREDICTIONS = ("x0", "eps", "v")
LOSSES = ("mse", "shdd_kl", "mse+kl")
SPECTRA = ("flat", "heat", "band")
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
        if not _is_int(self.T) or self.T < 2:
            raise ValueError(f"T must be an integer >= 2 (diffusion steps); got {self.T!r}")
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be 'cosine' or 'linear'; got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}; got {self.prediction!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {self.loss!r}")
        if not (_is_real(self.p_uncond) and 0 <= self.p_uncond < 1):
            raise ValueError(f"p_uncond must lie in [0, 1); got {self.p_uncond!r}")
        if not (_is_finite_real(self.kl_weight) and self.kl_weight >= 0):
            raise ValueError(f"kl_weight must be a finite number >= 0; got {self.kl_weight!r}")
        for name in ("kl_width", "spectrum_width"):
            v = getattr(self, name)
            if not (_is_finite_real(v) and 1e-3 <= v <= 1e3):
                raise ValueError(f"{name} must be a number in [0.001, 1000] (σ = width·(L+1)); got {v!r}")
        if not (_is_finite_real(self.schedule_shift) and 1e-3 <= self.schedule_shift <= 1e3):
            raise ValueError(f"schedule_shift must be a number in [0.001, 1000] (SNR divided by its square); "
                             f"got {self.schedule_shift!r}")
        if self.spectrum not in SPECTRA:
            raise ValueError(f"spectrum must be one of {SPECTRA}; got {self.spectrum!r}")
        if self.band_weight not in BAND_WEIGHTS:
            raise ValueError(f"band_weight must be one of {BAND_WEIGHTS}; got {self.band_weight!r}")


def _is_int(x) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    """A real number (Python or numpy scalar), not a bool."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _is_finite_real(x) -> bool:
    """A real number (not a bool) that is finite as a float (an int beyond the float range is not)."""
    try:
        return _is_real(x) and math.isfinite(x)
    except OverflowError:
        return False


def alpha_bar(T: int, schedule: str = "cosine") -> torch.Tensor:
    """ᾱ_t for t = 0..T-1 (float64), decreasing from ≈1 to ≈0.

    cosine: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t+1)/T + s)/(1 + s) · π/2), s = 0.008, with
    β_t = 1 - ᾱ_t/ᾱ_{t-1} clipped to 0.999; linear: β_t from 1e-4 to 0.02 (scaled by 1000/T, clipped to
    0.999 so that short schedules, T <= 20, keep ᾱ_t > 0).
    """
    if not _is_int(T) or T < 1:
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


def degrees(L: int) -> torch.Tensor:
    """The degree l of every flat index i = l² + l + m: [(L+1)²] int64."""
    L = shdd._check_degree(L)
    return torch.repeat_interleave(torch.arange(L + 1), 2 * torch.arange(L + 1) + 1)


def spectral_weights(L: int, spectrum: str = "flat", width: float = 0.5) -> torch.Tensor:
    """w_l for every coefficient ([(L+1)²] float64), normalized so that Σ_l (2l+1) w_l² = (L+1)²
    (a point's latent keeps mean square 1): "flat" 1; "heat" ∝ exp(-l(l+1)/(2(width·(L+1))²));
    "band" ∝ 1/√(2l+1) (every degree band the same energy, (L+1)² / (L+1) = L+1)."""
    if spectrum not in SPECTRA:
        raise ValueError(f"spectrum must be one of {SPECTRA}; got {spectrum!r}")
    shdd._check_taper_width(width, "width")
    l = degrees(L).double()
    if spectrum == "flat":
        return torch.ones_like(l)
    w = shdd.taper_weights(L, "gauss", width) if spectrum == "heat" else 1 / torch.sqrt(2 * l + 1)
    return w * math.sqrt((L + 1) ** 2 / float((w * w).sum()))


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
        if not _is_int(L) or L < 0:
            raise ValueError(f"L must be a non-negative integer (the SHDD degree); got {L!r}")
        if not _is_int(data_dim) or data_dim < 0:
            raise ValueError(f"data_dim must be an integer >= 0 (0 = SHDD latents of size (L+1)^2); got {data_dim!r}")
        self.config, self.L, self.dim = config, int(L), int(data_dim) or (int(L) + 1) ** 2
        if data_dim and config.loss != "mse":
            raise ValueError(f"loss {config.loss!r} needs SHDD latents; use loss='mse' with data_dim={data_dim}")
        if data_dim and (config.spectrum != "flat" or config.band_weight != "flat"):
            raise ValueError(f"spectrum and band_weight apply to SHDD latents; use 'flat' with data_dim={data_dim}")
        k2 = float(config.schedule_shift) ** 2
        abar = alpha_bar(config.T, config.schedule)
        self.abar = (abar / (abar + k2 * (1 - abar))).float()
        self.weights = (torch.ones(self.dim, dtype=torch.float64) if data_dim
                        else spectral_weights(self.L, config.spectrum, config.spectrum_width)).float()
        self.loss_weights = (torch.ones(self.dim, dtype=torch.float64) if data_dim
                             else band_loss_weights(self.L, config.band_weight)).float()

    # ------------------------------------------------------------------ latents
    @staticmethod
    def to_latent(lat, lon, L: int) -> torch.Tensor:
        """x0 = √(4π) Y(lat, lon) with the flat spectrum: [N, (L+1)²] float32."""
        return LATENT_SCALE * shdd.encode(lat, lon, L).contiguous()

    def encode(self, lat, lon) -> torch.Tensor:
        """This diffusion's latent of points (degrees): x0 = √(4π) w ⊙ Y(lat, lon), [N, (L+1)²] float32."""
        return self.to_latent(lat, lon, self.L) * self.weights

    def to_coeffs(self, z: torch.Tensor) -> torch.Tensor:
        """SHDD vectors from latents [..., (L+1)²]: a = z / (√(4π) w) (what ``shdd.decode`` reads)."""
        return z / (LATENT_SCALE * self.weights.to(device=z.device, dtype=z.dtype if z.is_floating_point()
                                                   else torch.float32))

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


# ---------------------------------------------------------------------- samplers
def _check_sampling(n: int, steps: int | None, guidance: float) -> None:
    if not _is_int(n) or n < 1:
        raise ValueError(f"n (samples per image) must be an integer >= 1; got {n!r}")
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if not (_is_finite_real(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a finite number >= 0 (1 = conditional, 0 = unconditional); got {guidance!r}")


def _check_emb(model, emb) -> None:
    """emb must be a 2-D tensor [B, E], E the model's embedding size where the model states it."""
    if not isinstance(emb, torch.Tensor) or emb.ndim != 2:
        got = tuple(emb.shape) if hasattr(emb, "shape") else type(emb).__name__
        raise ValueError(f"emb must be a tensor of shape [B, E] (one embedding per image); got {got}")
    want = getattr(getattr(model, "config", None), "embed_dim", None)
    if isinstance(want, int) and emb.shape[1] != want:
        raise ValueError(f"emb must have shape [B, {want}] (the model's embedding size); got {tuple(emb.shape)}")


def _check_finite_samples(x: torch.Tensor, guidance: float) -> None:
    """ValueError when the reverse process diverged (NaN or inf samples), e.g. for a guidance scale so large
    that the guided prediction overflows."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"guidance must be a finite number >= 0 small enough for the guided prediction to stay "
                         f"finite; got {guidance!r}, and the samples hold NaN or inf (or the model's weights do)")


def _guided(model, diffusion: Diffusion, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, guidance: float):
    """(x̂0, ε̂) with classifier-free guidance applied to the network output."""
    if guidance == 1.0:
        pred = model(x, t, emb)
    else:
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([emb, emb]),
                     drop_cond=torch.cat([torch.zeros(len(x), dtype=torch.bool, device=x.device),
                                          torch.ones(len(x), dtype=torch.bool, device=x.device)]))
        cond, uncond = both.chunk(2)
        pred = uncond + float(guidance) * (cond - uncond)
        if not bool(torch.isfinite(pred).all()):
            raise ValueError(f"guidance must be a finite number >= 0 small enough for the guided prediction "
                             f"uncond + guidance·(cond - uncond) to stay finite; got {guidance!r}")
    return diffusion.split(pred.float(), x, t)


class DDIMSampler:
    """DDIM (Song et al. 2021) on an evenly spaced subsequence of ``steps`` timesteps; eta = 0 is
    deterministic given the initial noise, eta = 1 matches DDPM's variance."""

    def __init__(self, diffusion: Diffusion, steps: int = 50, eta: float = 0.0, guidance: float = 1.0):
        _check_sampling(1, steps, guidance)
        if not (_is_real(eta) and 0 <= eta <= 1):
            raise ValueError(f"eta must lie in [0, 1]; got {eta!r}")
        self.diffusion, self.steps, self.eta, self.guidance = diffusion, min(steps, diffusion.config.T), eta, guidance

    @torch.no_grad()
    def sample(self, model, emb: torch.Tensor, n: int = 16, generator: torch.Generator | None = None,
               return_trajectory: bool = False):
        """n latent samples per embedding: [B, n, D] (and the x̂0 trajectory [steps, B, n, D])."""
        _check_sampling(n, self.steps, self.guidance)
        _check_emb(model, emb)
        d = self.diffusion
        B, dev = emb.shape[0], emb.device
        D = d.dim
        e = emb.repeat_interleave(n, 0)
        x = torch.randn(B * n, D, generator=generator, device="cpu").to(dev)
        ts = torch.linspace(d.config.T - 1, 0, self.steps).round().long().tolist()
        abar = d.abar.to(dev)
        traj = []
        for i, t in enumerate(ts):
            tt = torch.full((B * n,), t, dtype=torch.long, device=dev)
            x0, eps = _guided(model, d, x, tt, e, self.guidance)
            traj.append(x0.reshape(B, n, D)) if return_trajectory else None
            a = abar[t]
            a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=dev)
            sigma = self.eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp_min(0).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
            if self.eta > 0 and i + 1 < len(ts):
                x = x + sigma * torch.randn(x.shape, generator=generator, device="cpu").to(dev)
        out = x.reshape(B, n, D)
        _check_finite_samples(out, self.guidance)
        return (out, torch.stack(traj)) if return_trajectory else out


class DDPMSampler:
    """DDPM ancestral sampling (Ho et al. 2020) over all T steps, posterior variance β̃_t."""

    def __init__(self, diffusion: Diffusion, guidance: float = 1.0):
        _check_sampling(1, None, guidance)
        self.diffusion, self.guidance = diffusion, guidance

    @torch.no_grad()
    def sample(self, model, emb: torch.Tensor, n: int = 16, generator: torch.Generator | None = None,
               return_trajectory: bool = False):
        _check_sampling(n, None, self.guidance)
        _check_emb(model, emb)
        d = self.diffusion
        B, dev = emb.shape[0], emb.device
        D = d.dim
        e = emb.repeat_interleave(n, 0)
        x = torch.randn(B * n, D, generator=generator, device="cpu").to(dev)
        abar = d.abar.to(dev)
        traj = []
        for t in range(d.config.T - 1, -1, -1):
            tt = torch.full((B * n,), t, dtype=torch.long, device=dev)
            x0, _ = _guided(model, d, x, tt, e, self.guidance)
            traj.append(x0.reshape(B, n, D)) if return_trajectory else None
            a = abar[t]
            a_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, device=dev)
            beta = 1 - a / a_prev
            mean = (a_prev.sqrt() * beta / (1 - a)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a)) * x
            if t > 0:
                var = beta * (1 - a_prev) / (1 - a)
                x = mean + var.sqrt() * torch.randn(x.shape, generator=generator, device="cpu").to(dev)
            else:
                x = mean
        out = x.reshape(B, n, D)
        _check_finite_samples(out, self.guidance)
        return (out, torch.stack(traj)) if return_trajectory else out


def predict(samples: torch.Tensor, k: int = 1, diffusion: Diffusion | None = None):
    """Point predictions from latent samples [B, n, D] (of ``diffusion``'s latent; None: the flat one).

    Rule (ours): decode the mean of the n sampled vectors and take its highest mode. Averaging
    vectors averages the deltas' fields, so the highest mode of the mean is the location on which
    most samples agree (a vote that keeps sub-grid precision). Also decodes every sample.
    Returns (pred_lat [B, k], pred_lon [B, k], sample_lat [B, n], sample_lon [B, n]), degrees.
    """
    if not isinstance(samples, torch.Tensor) or samples.ndim != 3 or samples.shape[1] < 1:
        got = tuple(samples.shape) if hasattr(samples, "shape") else type(samples).__name__
        raise ValueError(f"samples must be a tensor of shape [B, n, D] (n >= 1 latent samples per image); got {got}")
    if samples.is_complex():
        raise ValueError(f"samples must hold real numbers; got a complex tensor ({samples.dtype})")
    if not samples.is_floating_point():
        samples = samples.double()
    B, n, D = samples.shape
    coeffs = diffusion.to_coeffs(samples) if diffusion is not None else samples / LATENT_SCALE
    plat, plon, _ = shdd.decode(coeffs.mean(1), k=k)
    slat, slon, _ = shdd.decode(coeffs.reshape(B * n, D))
    return plat, plon, slat.reshape(B, n), slon.reshape(B, n)
