"""Probability densities on the sphere from fields, and the width of one point's peak."""
from __future__ import annotations

import torch

from ..checks import is_positive_finite
from ._sizes import _as_coeffs, _check_degree, peak_value
from .transform import Grid, grid


MAX_DENSITY_COEFF = 1e6        # |a| bound (in units of one point's peak) for an exactly normalized density
def density(coeffs, *, method: str = "softmax", temperature: float = 0.1, oversample: int = 1,
            eps: float = 1e-6) -> tuple[torch.Tensor, Grid]:
    """Probability densities (per steradian) on the sphere from fields, on the equiangular grid.

    The field of an SHDD vector is not a density (it has negative side lobes), so we map it:
      - "softmax" (default): p ∝ exp(f / (τ f_peak)), f_peak = (L+1)²/(4π) the height of one point's
        field; τ = ``temperature`` sets the sharpness relative to that height (τ = 0.1: the point's
        peak is e^10 times the background). Strictly positive and scale-aware.
      - "clamp": p ∝ max(f, 0) + eps · f_peak, the positive part with a small floor.
    Normalized with the grid's exact cell areas: Σ_j p_j w_j = 1.

    Args:
        coeffs: [D] or [N, D]. Returns (p [N, H, W] (or [H, W]) in coeffs' dtype, the Grid).
    Differentiable w.r.t. coeffs, for the SHDD-KL loss.
    """
    if method not in ("softmax", "clamp"):
        raise ValueError(f"method must be 'softmax' or 'clamp'; got {method!r}")
    if not is_positive_finite(temperature):
        raise ValueError(f"temperature must be a positive finite number; got {temperature!r}")
    if not is_positive_finite(eps):
        raise ValueError(f"eps must be a positive finite number; got {eps!r}")
    temperature, eps = float(temperature), float(eps)
    coeffs, L, single = _as_coeffs(coeffs)
    if coeffs.numel() and float(coeffs.detach().abs().max()) > MAX_DENSITY_COEFF * peak_value(L):
        raise ValueError(f"coeffs must have |values| <= {MAX_DENSITY_COEFF:g} x (L+1)²/(4π) for a density (one "
                         f"point's are below 1); larger ones overflow the normalization; got a maximum of "
                         f"{float(coeffs.detach().abs().max()):.3g}")
    out_dtype = coeffs.dtype
    if coeffs.dtype in (torch.float16, torch.bfloat16):   # the FFT has no half-precision path here
        coeffs = coeffs.float()
    G = grid(L, oversample, device=coeffs.device, dtype=coeffs.dtype)
    f = G.synthesize(coeffs) / peak_value(L)
    logw = torch.log(G.weights.to(coeffs.dtype))
    if method == "softmax":
        logits = f / temperature
        logp = logits - torch.logsumexp((logits + logw).flatten(1), 1)[:, None, None]
        p = logp.exp()
    else:
        u = f.clamp_min(0) + eps
        p = u / (u * logw.exp()).flatten(1).sum(1)[:, None, None]
    p = p.to(out_dtype)
    return (p[0] if single else p), G


def peak_half_width(L: int) -> float:
    """Closed-form half width at half maximum (radians) of one point's field, for large L.

    Mehler–Heine: P_l(cos(x/l)) → J₀(x), so Σ_{l≤L} (2l+1) P_l(cos γ) ≈ ∫₀^{L+1} 2t J₀(tγ) dt
    = (L+1)² · 2 J₁((L+1)γ)/((L+1)γ), which falls to half its peak at (L+1)γ = 2.21509 (the root
    of 2J₁(x)/x = ½), so γ½ ≈ 2.21509/(L+1).
    """
    return HALF_WIDTH_X / (_check_degree(L) + 1)


#: The root x of 2 J₁(x)/x = ½: one point's field falls to half its peak at γ ≈ x/(L+1).
HALF_WIDTH_X = 2.215089
