"""Predicted distributions scored as distributions: the likelihood of the truth and the calibration
of highest-density regions (HDRs), for every method that predicts more than a point.

Each method's prediction for an image is a density p on the sphere (per steradian):

* **samples** (LocDiff, raw diffusion, flow matching): a von Mises–Fisher kernel density of the n
  samples s_i, p(y) = (1/n) Σ_i κ/(2π(1 - e^{-2κ})) · exp(κ(s_i·y - 1)), κ = 1/σ² with σ the
  kernel's angular width (``kappa``, from a width in km chosen on val by the same rule for every
  method);
* **cells** (classification): the softmax probability P(c) of the cell c that holds y, spread
  uniformly over it, p(y) = P(c)/A(c) (the quadtree cells of ``baselines.classification`` are
  boxes in (sin lat, lon), so A(c) = 4π/(8·4^level)).

Every density is mixed with the uniform one, p' = (1 - ε) p + ε/(4π) (ε = ``UNIFORM_MIX``), so a
truth that falls where a method puts no mass costs a finite, large NLL instead of infinity.

Scores per image: NLL = -log p'(truth) (nats; add log(R²) = 17.5 for nats per km²) and the HDR
level of the truth, h = P_{y~p'}[p'(y) > p'(truth)], the mass of the smallest highest-density
region that contains the truth. For a calibrated method h is uniform on [0, 1], so the share of
images with h ≤ α (the "coverage" of the α-HDR) equals α: the reliability diagram plots coverage
against α. For kernel densities h is estimated by Monte Carlo (``draws`` points from p'); for cell
densities it is exact.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import geo
from .checks import check_distances_km, check_radius_km

UNIFORM_MIX = 1e-3
LEVELS = np.linspace(0.05, 0.95, 19)


def kappa(width_km: float) -> float:
    """vMF concentration κ = 1/σ² for an angular width σ = width_km / R."""
    if not (isinstance(width_km, (int, float)) and not isinstance(width_km, bool) and 1 <= width_km <= 20_000):
        raise ValueError(f"width_km must be a number of km in [1, 20000]; got {width_km!r}")
    return (geo.EARTH_RADIUS_KM / float(width_km)) ** 2


def _log_vmf_norm(k: float) -> float:
    """log of κ/(2π(1 - e^{-2κ})), the vMF normalizer times e^{-κ} (stable for large κ)."""
    return math.log(k) - math.log(2 * math.pi) - math.log1p(-math.exp(-2 * k))


def _mix(logp: torch.Tensor) -> torch.Tensor:
    """log((1 - ε) p + ε/(4π)) from log p."""
    return torch.logaddexp(logp + math.log1p(-UNIFORM_MIX), torch.full_like(logp, math.log(UNIFORM_MIX / (4 * math.pi))))


def kde_logpdf(samples: torch.Tensor, points: torch.Tensor, k: float) -> torch.Tensor:
    """log p'(y) of the mixed vMF kernel density: samples [B, n, 3], points [B, M, 3] -> [B, M]."""
    logk = k * (points @ samples.transpose(1, 2) - 1) + _log_vmf_norm(k)        # [B, M, n]
    return _mix(torch.logsumexp(logk, -1) - math.log(samples.shape[1]))


def sample_vmf(mu: torch.Tensor, k: float, generator: torch.Generator) -> torch.Tensor:
    """One draw from vMF(μ, κ) per row of mu [N, 3]: w = 1 + log(u + (1-u)e^{-2κ})/κ along μ, a
    uniform direction in the tangent plane (Wood 1994, the exact inverse CDF on S²)."""
    N = mu.shape[0]
    u = torch.rand(N, generator=generator, dtype=mu.dtype)
    w = (1 + torch.log(u + (1 - u) * math.exp(-2 * k)) / k).clamp(-1, 1)
    v = torch.randn(N, 3, generator=generator, dtype=mu.dtype)
    v = v - (v * mu).sum(-1, keepdim=True) * mu
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return w[:, None] * mu + torch.sqrt((1 - w * w).clamp_min(0))[:, None] * v


def kde_scores(sample_lat, sample_lon, lat, lon, width_km: float, draws: int = 1000, seed: int = 0,
               batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(NLL [B], HDR level [B]) of the truths (lat, lon [B]) under each image's kernel density of its
    samples (sample_lat, sample_lon [B, n]); degrees in, nats out. ``draws`` = 0 skips the HDR
    levels (NaN), e.g. to choose a width by NLL."""
    k = kappa(width_km)
    S = torch.from_numpy(geo.latlon_to_xyz(np.asarray(sample_lat, np.float64), np.asarray(sample_lon, np.float64)))
    X = torch.from_numpy(geo.latlon_to_xyz(np.asarray(lat, np.float64), np.asarray(lon, np.float64)))
    gen = torch.Generator().manual_seed(seed)
    nll, level = [], []
    for i in range(0, len(X), batch):
        s, x = S[i:i + batch], X[i:i + batch, None]
        b, n = s.shape[:2]
        lp_truth = kde_logpdf(s, x, k)[:, 0]
        nll.append(-lp_truth)
        if draws == 0:
            level.append(torch.full((b,), float("nan"), dtype=torch.float64))
            continue
        # draws from p': a kernel around a random sample, or (share ε) a uniform point
        pick = torch.randint(0, n, (b, draws), generator=gen)
        centre = torch.gather(s, 1, pick[..., None].expand(-1, -1, 3)).reshape(-1, 3)
        y = sample_vmf(centre, k, gen).reshape(b, draws, 3)
        uni = torch.rand(b, draws, generator=gen) < UNIFORM_MIX
        y[uni] = torch.nn.functional.normalize(torch.randn(int(uni.sum()), 3, generator=gen, dtype=y.dtype), dim=-1)
        lp_y = kde_logpdf(s, y, k)
        level.append((lp_y > lp_truth[:, None]).double().mean(1))
    return torch.cat(nll).numpy(), torch.cat(level).numpy()


def cell_scores(prob: np.ndarray, area: np.ndarray, truth_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(NLL [B], HDR level [B]) for cell densities: prob [B, K] (rows sum to 1), area [K] (sr), truth_cell
    [B] the index of the cell holding each truth, or -1 where no cell holds it (it then has the uniform
    floor's density only). Exact: the HDR level sums the mass of the cells denser than the truth's."""
    prob, area = np.asarray(prob, np.float64), np.asarray(area, np.float64)
    dens = (1 - UNIFORM_MIX) * prob / area + UNIFORM_MIX / (4 * math.pi)          # [B, K]
    rows = np.arange(len(prob))
    has = truth_cell >= 0
    d_truth = np.where(has, dens[rows, np.maximum(truth_cell, 0)], UNIFORM_MIX / (4 * math.pi))
    mass = dens * area
    level = (mass * (dens > d_truth[:, None])).sum(1)
    return -np.log(d_truth), np.minimum(level, 1.0)


def coverage(levels: np.ndarray, alphas=LEVELS) -> np.ndarray:
    """Share of images whose truth lies in the α-HDR (HDR level ≤ α), for each α: [len(alphas)]."""
    levels = np.asarray(levels)
    return np.array([(levels <= a).mean() for a in alphas])


KDE_WIDTHS_KM = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)


def choose_width(sample_lat, sample_lon, lat, lon, widths=KDE_WIDTHS_KM) -> float:
    """The kernel width (km) of ``widths`` with the lowest mean NLL of the truths (use val, not test)."""
    nll = [kde_scores(sample_lat, sample_lon, lat, lon, w, draws=0)[0].mean() for w in widths]
    return float(widths[int(np.argmin(nll))])


def summary(nll, level, n_boot: int = 1000, seed: int = 0, alphas=(0.5, 0.9)) -> dict:
    """Mean NLL and the coverage of the α-HDRs, each with a 95% percentile-bootstrap interval over
    images: {"nll": (value, low, high), "coverage@50": ..., "coverage@90": ...}."""
    nll, level = np.asarray(nll, np.float64), np.asarray(level, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(nll), size=(n_boot, len(nll)))
    out = {"nll": (nll.mean(), *np.percentile(nll[idx].mean(1), [2.5, 97.5]))}
    for a in alphas:
        inside = level <= a
        out[f"coverage@{round(100 * a)}"] = (100 * inside.mean(), *np.percentile(100 * inside[idx].mean(1), [2.5, 97.5]))
    return {k: tuple(float(x) for x in v) for k, v in out.items()}


def sample_spread_km(sample_lat, sample_lon) -> np.ndarray:
    """Mean great-circle distance (km) between pairs of an image's samples [B, n] -> [B]: how many
    places a method's samples cover (0 when they all agree)."""
    S = torch.from_numpy(geo.latlon_to_xyz(np.asarray(sample_lat, np.float64), np.asarray(sample_lon, np.float64)))
    cos = (S @ S.transpose(1, 2)).clamp(-1, 1)
    n = S.shape[1]
    return (geo.EARTH_RADIUS_KM * torch.arccos(cos)).sum((1, 2)).numpy() / max(n * (n - 1), 1)


def spread_by_outcome(sample_lat, sample_lon, err_km, radius_km: float = 200.0):
    """Does the sample spread tell a hit from a miss? The share of images (%) within ``radius_km``
    of the truth and beyond it, and the median ``sample_spread_km`` of each group (NaN if empty).
    sample_* [B, n] degrees, err_km [B] the point prediction's error."""
    import pandas as pd

    radius_km = check_radius_km(radius_km)
    spread = sample_spread_km(sample_lat, sample_lon)
    if np.shape(err_km) != spread.shape:
        raise ValueError(f"err_km must hold one error per image ({len(spread)}); got shape {np.shape(err_km)}")
    err_km = check_distances_km(err_km, "err_km")
    hit = err_km <= radius_km
    med = [float(np.median(spread[m])) if m.any() else float("nan") for m in (hit, ~hit)]
    return pd.DataFrame({"tiles (%)": [100 * hit.mean(), 100 * (~hit).mean()], "median sample spread (km)": med},
                        index=[f"within {radius_km:g} km", f"beyond {radius_km:g} km"])
