"""Why a larger degree L changes the diffusion: the spectrum of the SHDD latent, measured by band.

A Dirac delta has a flat spectrum: by the addition theorem its degree-l band holds
Σ_m Y_lm(x)² = (2l+1)/(4π) for every x, so in the scaled latent x0 = √(4π) Y(x) every coefficient
has mean square 1 and band l carries 2l+1 of the (L+1)² units of energy. A natural image's spectrum
decays, which is what makes image diffusion generate coarse to fine. Here:

* **Loss share.** The bands above L/2 hold 1 - (L/2+1)²/(L+1)² ≈ 75% of the target's energy at any
  L, and those are the bands an image that leaves the location uncertain cannot predict: with a
  posterior spread over a radius r, the optimum x̂0 keeps band l only to about exp(-l²r²/2), so
  their error stays ≈ 2l+1 per band whatever the network does (``band_errors``).
* **Signal to noise.** Under q(x_t | x0) each coefficient sees SNR_t = ᾱ_t/(1-ᾱ_t) (times w_l² for a
  weighted spectrum), but the *location* sums the evidence of all (L+1)² coefficients: correlating
  x_t with a candidate point's latent gives √SNR_t · (L+1) (``diffusion.location_snr``). At L = 64
  x_t locates the point by itself at noise levels where at L = 16 it says nothing
  (``noisy_latent_errors``), so training spends most timesteps on noise levels where the image is
  not needed, and the sampler has few steps in which the image decides the continent.

This module measures those quantities for notebook 02's diagnosis; ``diffusion`` holds the fixes
(``spectrum``, ``band_weight``, ``schedule_shift``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import geo, shdd
from .diffusion import Diffusion, DiffusionConfig
from .latent import degrees


def band_sums(x: torch.Tensor, L: int) -> torch.Tensor:
    """Σ over m of x within each degree band: [..., (L+1)²] -> [..., L+1]."""
    idx = degrees(L).to(x.device)
    out = torch.zeros(*x.shape[:-1], L + 1, dtype=x.dtype, device=x.device)
    return out.index_add_(-1, idx, x)


def band_errors(ld, emb, lat, lon, timesteps, seed: int = 0, batch: int = 512) -> pd.DataFrame:
    """The trained denoiser's error per degree band and timestep (``experiment.denoised``).

    Columns: t, abar, l, ``mse`` = mean over images of Σ_m (x̂0 - x0)²_lm in the latent (band l's
    part of the summed squared error), ``share`` = that band's share of the total at this t,
    ``relative`` = mse / Σ_m x0_lm² (0: exact; 1: as far off as predicting zero for that band).
    """
    from .experiment import denoised

    L = ld.settings.L
    acc: dict[int, list] = {}
    for t, x0, x0_hat in denoised(ld, emb, lat, lon, timesteps, seed, batch):
        e = band_sums((x0_hat - x0) ** 2, L).sum(0).double().cpu()
        s = band_sums(x0 ** 2, L).sum(0).double().cpu()
        a = acc.setdefault(t, [torch.zeros(L + 1, dtype=torch.float64), torch.zeros(L + 1, dtype=torch.float64), 0])
        a[0] += e
        a[1] += s
        a[2] += len(x0)
    rows = []
    for t, (e, s, n) in acc.items():
        for l in range(L + 1):
            rows.append({"t": t, "abar": float(ld.diffusion.abar[t]), "l": l, "mse": float(e[l]) / n,
                         "share": float(e[l] / e.sum()), "relative": float(e[l] / s[l])})
    return pd.DataFrame(rows)


def mode_errors(ld, emb, lat, lon, timesteps, seed: int = 0, batch: int = 512,
                thresholds_km=(25.0, 200.0, 750.0)) -> pd.DataFrame:
    """How precisely the trained denoiser places the truth from x_t: the top mode of x̂0(x_t, t,
    image) (``diffusion.to_coeffs``, ``shdd.decode``) against the true location, per timestep.
    At small t, x_t already pins the location (``noisy_latent_errors``), so the error there is the
    precision floor of the network's last denoising steps, the steps that place every sample.
    Columns: t, abar, acc@<d>km (share within d km, 0-1), median_km."""
    from .experiment import denoised

    lat, lon = (np.atleast_1d(np.asarray(a, np.float64)) for a in geo.validate_latlon(lat, lon))
    dists: dict[int, list] = {}
    for t, x0, x0_hat in denoised(ld, emb, lat, lon, timesteps, seed, batch):
        mlat, mlon, _ = shdd.decode(ld.diffusion.to_coeffs(x0_hat.cpu()), k=1)
        done = sum(len(d) for d in dists.get(t, []))           # batches come in order within each t
        truth = slice(done, done + len(x0))
        dists.setdefault(t, []).append(geo.distance_km(lat[truth], lon[truth], mlat[:, 0].double().numpy(),
                                                       mlon[:, 0].double().numpy()))
    rows = []
    for t, ds in dists.items():
        d = np.concatenate(ds)
        rows.append({"t": t, "abar": float(ld.diffusion.abar[t]),
                     **{f"acc@{k:g}km": float((d <= k).mean()) for k in thresholds_km}, "median_km": float(np.median(d))})
    return pd.DataFrame(rows)


def noisy_latent_errors(L: int, lat, lon, timesteps, config: DiffusionConfig | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """How far the mode of a noisy latent x_t itself lies from the true point (no network at all).

    For each t: x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε (seeded), decoded by ``shdd.decode`` after
    ``Diffusion.to_coeffs``. Columns: t, abar, location_snr (√SNR_t · (L+1)), median_km and
    acc@750km (share within 750 km). Where acc@750km is high, x_t already holds the answer, so the
    denoiser can read the location from x_t instead of from the image.
    """
    from .diffusion import location_snr

    d = Diffusion(config or DiffusionConfig(), L)
    lat, lon = geo.validate_latlon(lat, lon)
    x0 = d.encode(lat, lon)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in timesteps:
        tt = torch.full((len(x0),), int(t), dtype=torch.long)
        x_t = d.q_sample(x0, tt, torch.randn(x0.shape, generator=gen))
        plat, plon, _ = shdd.decode(d.to_coeffs(x_t), refine_iters=0)
        dist = geo.distance_km(lat, lon, plat[:, 0].numpy(), plon[:, 0].numpy())
        abar = float(d.abar[int(t)])
        rows.append({"t": int(t), "abar": abar, "location_snr": float(location_snr(torch.tensor(abar), L)),
                     "median_km": float(np.median(dist)), "acc@750km": float(np.mean(dist <= 750))})
    return pd.DataFrame(rows)


#: The timesteps of notebook 02's noisy-latent diagnosis: dense where ᾱ_t falls fastest.
DIAGNOSIS_TIMESTEPS = (0, 200, 400, 600, 700, 800, 850, 900, 925, 950, 975, 990, 999)


def noisy_latent_cases(cases: dict, lat, lon, timesteps=DIAGNOSIS_TIMESTEPS, seed: int = 0) -> pd.DataFrame:
    """``noisy_latent_errors`` for each case {name: (L, schedule_shift)} on the same points (lat, lon
    [N] in degrees), stacked, with columns ``case`` (the name) and ``n_points`` (N) added."""
    if not cases:
        raise ValueError("cases must name at least one (L, schedule_shift) pair")
    return pd.concat([noisy_latent_errors(L, lat, lon, timesteps, DiffusionConfig(schedule_shift=shift), seed=seed)
                      .assign(case=name, n_points=len(np.atleast_1d(lat)))
                      for name, (L, shift) in cases.items()], ignore_index=True)


def band_error_table(models: dict, emb, lat, lon, timesteps, seed: int = 0, by: str = "run") -> pd.DataFrame:
    """``band_errors`` of each model {name: LocDiff} on the same tiles (emb [N, E], lat / lon [N] in
    degrees), stacked, the name in column ``by``."""
    if not models:
        raise ValueError("models must hold at least one trained LocDiff")
    taken = ("t", "abar", "l", "mse", "share", "relative")
    if by in taken:
        raise ValueError(f"by must name a new column, not one of {taken}; got {by!r}")
    return pd.concat([band_errors(m, emb, lat, lon, timesteps, seed=seed).assign(**{by: name})
                      for name, m in models.items()], ignore_index=True)
