"""The latent: a location as the vector the diffusion works on, and latents back to locations.

x0_i = √(4π) · w_l(i) · Y_i(x), the SHDD vector Y(x) of the point (``shdd.encode``) scaled and
optionally reshaped by degree. By the addition theorem Σ_m Y_lm(x)² = (2l+1)/(4π) for every x, so
with w_l normalized to Σ_l (2l+1) w_l² = (L+1)² the entries have mean square exactly 1 for every
point (``LATENT_SCALE`` = √(4π)). ``spectrum`` chooses w_l (``spectral_weights``): "flat" (w_l = 1,
the delta's own flat spectrum: every degree band carries 2l+1 units of energy, so at L = 64 the
bands above l = 32 hold 75% of it), "heat" (w_l ∝ exp(-l(l+1)/(2(width·(L+1))²)), a decaying
spectrum like a natural image's) or "band" (w_l ∝ 1/√(2l+1): every band the same energy).

``Latent.to_coeffs`` divides w_l and the scale away, so decoding sees the same SHDD vector whatever
the spectrum. ``decode_samples`` is LocDiff's point rule (ours): decode the mean of the n sampled
vectors and take its highest mode. Averaging vectors averages the deltas' fields, so the highest
mode of the mean is the location on which most samples agree (a vote that keeps sub-grid
precision); every sample is decoded too.
"""
from __future__ import annotations

import math

import torch

from . import shdd

__all__ = ["LATENT_SCALE", "SPECTRA", "Latent", "decode_samples", "degrees", "spectral_weights"]

LATENT_SCALE = math.sqrt(4 * math.pi)
SPECTRA = ("flat", "heat", "band")


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


class Latent:
    """The latent of degree ``L`` with spectral weights w_l (``spectral_weights``)."""

    def __init__(self, L: int, spectrum: str = "flat", width: float = 0.5):
        self.L = shdd._check_degree(L)
        self.weights = spectral_weights(self.L, spectrum, width).float()

    def encode(self, lat, lon) -> torch.Tensor:
        """x0 = √(4π) w ⊙ Y(lat, lon) of points (degrees): [N, (L+1)²] float32."""
        return LATENT_SCALE * shdd.encode(lat, lon, self.L).contiguous() * self.weights

    def to_coeffs(self, z: torch.Tensor) -> torch.Tensor:
        """SHDD vectors from latents [..., (L+1)²]: a = z / (√(4π) w) (what ``shdd.decode`` reads)."""
        dtype = z.dtype if z.is_floating_point() else torch.float32
        return z / (LATENT_SCALE * self.weights.to(device=z.device, dtype=dtype))

    def mean_coeffs(self, samples: torch.Tensor) -> torch.Tensor:
        """The SHDD vector of the samples' mean [B, (L+1)²] from latent samples [B, n, (L+1)²]: the
        field of the point prediction (the mean of the n deltas' fields)."""
        return self.to_coeffs(samples.mean(1))


def decode_samples(samples: torch.Tensor, k: int = 1, latent: Latent | None = None, each: bool = True):
    """Point predictions from latent samples [B, n, D] (of ``latent``; None: the flat latent).

    Returns (pred_lat [B, k], pred_lon [B, k], sample_lat [B, n], sample_lon [B, n]), degrees:
    the k highest modes of the samples' mean field, and every sample decoded (``each``; with
    ``each=False`` the last two are None: decoding the n samples costs n times the point
    prediction's decode, most of a prediction's time at L >= 32)."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 3 or samples.shape[1] < 1:
        got = tuple(samples.shape) if hasattr(samples, "shape") else type(samples).__name__
        raise ValueError(f"samples must be a tensor of shape [B, n, D] (n >= 1 latent samples per image); got {got}")
    if samples.is_complex():
        raise ValueError(f"samples must hold real numbers; got a complex tensor ({samples.dtype})")
    if not samples.is_floating_point():
        samples = samples.double()
    B, n, D = samples.shape
    coeffs = latent.to_coeffs(samples) if latent is not None else samples / LATENT_SCALE
    plat, plon, _ = shdd.decode(coeffs.mean(1), k=k)
    if not each:
        return plat, plon, None, None
    slat, slon, _ = shdd.decode(coeffs.reshape(B * n, D))
    return plat, plon, slat.reshape(B, n), slon.reshape(B, n)
