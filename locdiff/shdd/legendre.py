"""The normalized associated Legendre functions by the one reference recurrence, and the
harmonics Y_lm built from them (see the package docstring for the recurrence and conventions)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class _Tables:
    """Recurrence coefficients and flat-index maps for degree L (float64, one device)."""

    a: torch.Tensor      # [L+1, L+1] a_lm for m < l, else 0
    b: torch.Tensor      # [L+1, L+1] b_lm for m < l, else 0
    diag: torch.Tensor   # [L+1, L+1] one-hot of m == l
    sect: torch.Tensor   # [L+1]  P̄_mm / sin^m θ = sqrt(1/4π) Π_{k≤m} sqrt((2k+1)/(2k))
    m: torch.Tensor      # [L+1]  0..L as float
    t_idx: torch.Tensor  # [D] column in the trig table [1, √2 cos mφ (m>0), √2 sin |m|φ (m<0)]
    p_idx: torch.Tensor  # [D] position l*(L+1)+|m| in the flattened Legendre table
    cos_idx: torch.Tensor  # [(L+1)²] flat index of a_{l,m} at position m*(L+1)+l (clamped where m > l)
    sin_idx: torch.Tensor  # [(L+1)²] flat index of a_{l,-m} at position m*(L+1)+l
    valid: torch.Tensor    # [L+1 (m), L+1 (l)] m <= l
    valid_sin: torch.Tensor  # [L+1 (m), L+1 (l)] 0 < m <= l
    a_flat: torch.Tensor   # [D, 1] a_{l,|m|} per flat entry (0 on the sectoral entries |m| = l)
    b_flat: torch.Tensor   # [D, 1] -b_{l,|m|} per flat entry (0 where |m| >= l-1)


@lru_cache(maxsize=32)
def _tables(L: int, device: str, dtype: torch.dtype) -> _Tables:
    l = np.arange(L + 1, dtype=np.float64)[:, None]
    m = np.arange(L + 1, dtype=np.float64)[None, :]
    below = m < l
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(below, np.sqrt((4 * l**2 - 1) / (l**2 - m**2)), 0.0)
        b = np.where(below & (l >= 1), np.sqrt(((l - 1) ** 2 - m**2) / (4 * (l - 1) ** 2 - 1)), 0.0)
    b = np.nan_to_num(b)
    k = np.arange(1, L + 1, dtype=np.float64)
    sect = np.concatenate([[1.0], np.cumprod(np.sqrt((2 * k + 1) / (2 * k)))]) / math.sqrt(4 * math.pi)
    ls = np.concatenate([np.full(2 * j + 1, j) for j in range(L + 1)])
    ms = np.concatenate([np.arange(-j, j + 1) for j in range(L + 1)])
    t_idx = np.where(ms > 0, ms, np.where(ms < 0, L - ms, 0))  # sin columns after the cos ones
    mm, ll = np.meshgrid(np.arange(L + 1), np.arange(L + 1), indexing="ij")
    valid = mm <= ll
    cos_idx = np.where(valid, ll**2 + ll + mm, 0).reshape(-1)
    sin_idx = np.where(valid, ll**2 + ll - mm, 0).reshape(-1)
    lsf, amf = ls.astype(np.float64), np.abs(ms).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_flat = np.where(amf < lsf, np.sqrt((4 * lsf**2 - 1) / (lsf**2 - amf**2)), 0.0)
        b_flat = np.where(amf <= lsf - 2, -np.sqrt(((lsf - 1) ** 2 - amf**2) / (4 * (lsf - 1) ** 2 - 1)), 0.0)
    kw = dict(device=device)
    return _Tables(
        a_flat=torch.tensor(a_flat[:, None], dtype=dtype, **kw),
        b_flat=torch.tensor(np.nan_to_num(b_flat)[:, None], dtype=dtype, **kw),
        a=torch.tensor(a, dtype=dtype, **kw), b=torch.tensor(b, dtype=dtype, **kw),
        diag=torch.eye(L + 1, dtype=dtype, **kw), sect=torch.tensor(sect, dtype=dtype, **kw),
        m=torch.arange(L + 1, dtype=dtype, **kw),
        t_idx=torch.tensor(t_idx, **kw), p_idx=torch.tensor(ls * (L + 1) + np.abs(ms), **kw),
        cos_idx=torch.tensor(cos_idx, **kw), sin_idx=torch.tensor(sin_idx, **kw),
        valid=torch.tensor(valid, **kw), valid_sin=torch.tensor(valid & (mm > 0), **kw),
    )


def _legendre(z: torch.Tensor, s: torch.Tensor, L: int) -> torch.Tensor:
    """Normalized associated Legendre functions P̄_lm(cos θ) for z = cos θ, s = sin θ ≥ 0.

    Shapes: z, s [...] (float64) -> P [..., L+1 (l), L+1 (m)], zero where m > l.
    One step per degree l, all orders m at once (see the module docstring for the recurrence).
    """
    T = _tables(L, str(z.device), z.dtype)
    sect = T.sect * s.unsqueeze(-1) ** T.m          # P̄_mm for every m
    z = z.unsqueeze(-1)
    rows, prev2, prev = [], torch.zeros_like(sect), torch.zeros_like(sect)
    for l in range(L + 1):
        cur = T.a[l] * (z * prev - T.b[l] * prev2) + T.diag[l] * sect
        rows.append(cur)
        prev2, prev = prev, cur
    return torch.stack(rows, -2)


def _split_orders(a: torch.Tensor, L: int):
    """Coefficients [N, D] -> cosine and sine parts [N, L+1 (m), L+1 (l)]: a_{l,m} and a_{l,-m}.

    Zero where m > l, and for the sine part where m = 0.
    """
    T = _tables(L, str(a.device), torch.float64)
    N = a.shape[0]
    ac = torch.where(T.valid, a[:, T.cos_idx].reshape(N, L + 1, L + 1), 0.0)
    as_ = torch.where(T.valid_sin, a[:, T.sin_idx].reshape(N, L + 1, L + 1), 0.0)
    return ac, as_


def _order_weights(a: torch.Tensor, L: int) -> torch.Tensor:
    """Coefficients [n, D] rearranged for ``_legendre_sums``: [l, 2 (cos, sin), n, 1, m].

    The refinement computes this once per call and passes it instead of the coefficients.
    """
    ac, as_ = _split_orders(a, L)                                     # [n, m, l]
    return torch.stack([ac, as_]).permute(3, 0, 1, 2).unsqueeze(3).contiguous()


def _cos_sin_sum(gc: torch.Tensor, gs: torch.Tensor) -> torch.Tensor:
    """Order sums [..., L+1] each -> [..., 2L+1] laid out like _trig's columns."""
    return torch.cat([gc, gs[..., 1:]], -1)


def _trig(phi: torch.Tensor, L: int) -> torch.Tensor:
    """[..., 2L+1] trig factors: column 0 is 1, 1..L are √2 cos(mφ), L+1..2L are √2 sin(mφ)."""
    m = torch.arange(1, L + 1, dtype=phi.dtype, device=phi.device)
    mphi = phi.unsqueeze(-1) * m
    return torch.cat([torch.ones_like(phi).unsqueeze(-1), _SQRT2 * torch.cos(mphi), _SQRT2 * torch.sin(mphi)], -1)


def _basis(z: torch.Tensor, s: torch.Tensor, phi: torch.Tensor, L: int) -> torch.Tensor:
    """Y [..., (L+1)²] at points given by cos θ, sin θ and φ (radians), in the dtype of z."""
    T = _tables(L, str(z.device), z.dtype)
    P = _legendre(z, s, L).flatten(-2)                       # [..., (L+1)²] indexed l*(L+1)+m
    trig = _trig(phi, L)
    return P[..., T.p_idx] * trig[..., T.t_idx]


def _zsphi_from_latlon(lat: torch.Tensor, lon: torch.Tensor):
    """cos θ, sin θ, φ from degrees; sin θ is exactly 0 at the poles so longitude cannot matter."""
    phi_lat = torch.deg2rad(lat)
    s = torch.where(lat.abs() == 90, torch.zeros_like(lat), torch.cos(phi_lat))
    return torch.sin(phi_lat), s, torch.deg2rad(lon)


def _zsphi_from_xyz(xyz: torch.Tensor):
    x, y, z = xyz.unbind(-1)
    return z, torch.hypot(x, y), torch.atan2(y, x)
