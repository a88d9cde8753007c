"""SHDD-KL: a divergence between the densities on the sphere of two SHDD vectors.

The field of an SHDD vector a, f(y) = Σ_i a_i Y_i(y), is not a density: a truncated delta has
negative side lobes. Smoothing it with the heat kernel on the sphere makes it one. With
g_l = exp(-l(l+1)/(2σ²)), σ = ``width``·(L+1),

    p_a(y) = Σ_lm g_l a_lm Y_lm(y),

and for one point x (a = Y(x)), p_x(y) = Σ_l g_l (2l+1)/(4π) P_l(x·y): the heat kernel (a spherical
Gaussian of angular standard deviation ≈ 1/σ rad) centred on x, positive, integrating to
√(4π) a_00 = 1. With the default width 0.27, g_L ≈ 1e-3: the truncation at L changes p_x by about a
thousandth of its peak, and the densities resolve what degree L resolves.

p_a is *linear* in a. So for a prediction â and targets x drawn from a posterior π(x | x_t),

    E_π[ KL(p_x || p_â) ] = const - ∫ E_π[p_x] log p_â dΩ + ∫ p_â dΩ,

which is minimized by p_â = E_π[p_x] = p_{E_π[a]}: the posterior mean of the SHDD vector, the same
optimum as the MSE loss. The loss is a proper objective for a network that predicts x0 under noise
(it does not ask for a delta where the image leaves the location uncertain).

A prediction's field may dip below zero, so both densities pass through the same smooth floor
ρ(u) = ½(u + √(u² + ε²)) (ε = ``floor`` times the peak of one point's p_x; ρ(u) ≈ u for u ≫ ε, ρ > 0)
and the divergence is the generalized KL between positive measures on the sphere,

    D(a, â) = ∫ [ ρ(p_a) log(ρ(p_a)/ρ(p_â)) - ρ(p_a) + ρ(p_â) ] dΩ   (nats),

evaluated with the exact cell areas of an equiangular grid that resolves degree L. Every integrand
value is ≥ 0 (u log(u/v) - u + v ≥ 0 for u, v > 0, with equality iff u = v), so D ≥ 0; D = 0 iff
ρ(p_a) = ρ(p_â) on the grid, iff the two fields agree on the grid, iff â = a (the grid has more
than 2L+1 longitudes and L+1 latitudes, so a degree-L field that vanishes on it is zero; ρ and g_l
are injective). D is smooth (C^∞) in â.
"""
from __future__ import annotations

import math

import torch

from . import shdd

DEFAULT_WIDTH = 0.27       # σ = width·(L+1): g_L = exp(-L(L+1)/(2σ²)) ≈ 1e-3
DEFAULT_FLOOR = 1e-3       # ε relative to the peak of one point's smoothed density


def heat_weights(L: int, width: float = DEFAULT_WIDTH) -> torch.Tensor:
    """g_l = exp(-l(l+1)/(2 (width·(L+1))²)) for every coefficient: [(L+1)²] float64."""
    return shdd.taper_weights(L, "gauss", width)


def point_peak(L: int, width: float = DEFAULT_WIDTH) -> float:
    """The peak of one point's smoothed density, Σ_l g_l (2l+1)/(4π) (per steradian)."""
    return float(heat_weights(L, width).sum()) / (4 * math.pi)


def smoothed_density(coeffs: torch.Tensor, width: float = DEFAULT_WIDTH, oversample: int = 1):
    """p_a on the grid of ``shdd.grid(L, oversample)``: coeffs [N, (L+1)²] -> ([N, H, W], Grid).

    Linear and differentiable in coeffs; one point's density integrates to 1."""
    L = shdd.degree_of(coeffs.shape[-1])
    G = shdd.grid(L, oversample, device=coeffs.device, dtype=coeffs.dtype)
    g = heat_weights(L, width).to(device=coeffs.device, dtype=coeffs.dtype)
    return G.synthesize(coeffs * g), G


def shdd_kl(coeffs: torch.Tensor, coeffs_hat: torch.Tensor, width: float = DEFAULT_WIDTH,
            floor: float = DEFAULT_FLOOR) -> torch.Tensor:
    """D(a, â) per row (nats): coeffs, coeffs_hat [N, (L+1)²] (unscaled SHDD vectors) -> [N].

    See the module docstring: generalized KL(ρ(p_a) || ρ(p_â)) of the heat-kernel-smoothed fields.
    """
    if not (isinstance(coeffs, torch.Tensor) and isinstance(coeffs_hat, torch.Tensor)
            and coeffs.ndim == 2 and coeffs.shape == coeffs_hat.shape):
        raise ValueError("coeffs and coeffs_hat must be tensors of the same shape [N, (L+1)^2]; got "
                         f"{getattr(coeffs, 'shape', type(coeffs).__name__)} and "
                         f"{getattr(coeffs_hat, 'shape', type(coeffs_hat).__name__)}")
    if not (isinstance(floor, (int, float)) and not isinstance(floor, bool) and 0 < floor < 1):
        raise ValueError(f"floor must be a number in (0, 1) (relative to one point's peak density); got {floor!r}")
    L = shdd.degree_of(coeffs.shape[-1])
    both, G = smoothed_density(torch.cat([coeffs, coeffs_hat]).float(), width)
    eps = floor * point_peak(L, width)
    rho = 0.5 * (both + torch.sqrt(both * both + eps * eps))
    u, v = rho.chunk(2)
    w = G.weights.to(u)
    return (w * (u * (torch.log(u) - torch.log(v)) - u + v)).flatten(1).sum(1)
