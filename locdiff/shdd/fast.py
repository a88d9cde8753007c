"""Fast paths of the reference recurrence (``legendre``): the encoder's compiled CPU kernel
(``locdiff.sh_cpu``) and, elsewhere, the recurrence run on the harmonics themselves in ring buffers
(same numbers as ``legendre._basis``); and the decoder's order sums accumulated inside the
recurrence without storing the Legendre table (``_legendre_sums``)."""
from __future__ import annotations

import torch

from .. import sh_cpu
from .legendre import _SQRT2, _order_weights, _tables


def fast_basis(z: torch.Tensor, s: torch.Tensor, phi: torch.Tensor, L: int, dtype: torch.dtype) -> torch.Tensor:
    """Y [N, (L+1)²] for 1-D float64 z = cos θ, s = sin θ, φ, without autograd: the compiled CPU
    kernel where it runs (float32 or float64 output on the CPU; contiguous), else ``_basis_flat``
    (a strided view with the points along the fast axis)."""
    if z.device.type == "cpu" and dtype in (torch.float32, torch.float64) and sh_cpu.available():
        T = _tables(L, "cpu", torch.float64)
        return sh_cpu.basis(z.contiguous().numpy(), s.contiguous().numpy(), phi.contiguous().numpy(), L,
                            T.a.numpy(), T.b.numpy(), T.sect.numpy(), dtype, threads=torch.get_num_threads())
    return _basis_flat(z, s, phi, L, dtype)


def _basis_flat(z: torch.Tensor, s: torch.Tensor, phi: torch.Tensor, L: int, dtype: torch.dtype,
                chunk: int | None = None) -> torch.Tensor:
    """Y [N, D] for 1-D z, s, phi (float64): the fast, non-differentiable path of ``encode``.

    Because Y_lm = P̄_lm(cos θ) T_m(φ) and T_m does not depend on l, the Legendre recurrence holds
    for the harmonics themselves: Y_lm = a_lm (cos θ Y_{l-1,m} - b_lm Y_{l-2,m}) for |m| < l, and
    the sectoral ends are Y_{l,±l} = √2 P̄_ll {sin, cos}(lφ). So each degree's block of 2l+1 entries
    is three vector operations on the previous two blocks, computed in float64 with the points
    along the fast axis, in chunks of points (2048 on CPU, the fastest measured), and cast into
    the output as soon as it is done. The result is the transpose of a [D, N] buffer: a strided view (``.contiguous()``
    gives row-major memory).
    """
    N, D = z.shape[0], (L + 1) ** 2
    out = torch.empty(D, N, dtype=dtype, device=z.device)
    chunk = chunk or (2048 if z.device.type == "cpu" else 1 << 16)
    n = min(chunk, N)
    ring = [torch.empty(2 * L + 1, n, dtype=z.dtype, device=z.device) for _ in range(3)]  # degrees l-2, l-1, l
    for i in range(0, N, chunk):
        _basis_block(z, s, phi, L, out, i, chunk, ring)
    return out.T


def _basis_block(z, s, phi, L: int, out: torch.Tensor, i: int, chunk: int, ring: list) -> None:
    """Fill out[:, i:i+chunk] with the harmonics of those points (see ``_basis_flat``).

    Only the blocks of degrees l-2, l-1 and l are kept in float64 (a ring of three small buffers
    that stay in cache); each finished block is cast straight into ``out``.
    """
    T = _tables(L, str(z.device), z.dtype)
    m = torch.arange(1, L + 1, dtype=z.dtype, device=z.device)[:, None]
    zc, sc, pc = z[None, i:i + chunk], s[None, i:i + chunk], phi[None, i:i + chunk]
    n = zc.shape[1]
    sect = T.sect[1:, None] * _SQRT2 * sc ** m                           # [L, n] √2 P̄_mm
    sin_end, cos_end = sect * torch.sin(m * pc), sect * torch.cos(m * pc)
    out[0, i:i + n] = T.sect[0]
    ring[0][0, :n] = T.sect[0]
    for l in range(1, L + 1):
        r0, r1 = l * l, (l + 1) ** 2
        cur, prev, prev2 = ring[l % 3][:2 * l + 1, :n], ring[(l - 1) % 3][:2 * l - 1, :n], ring[(l - 2) % 3]
        cur[0], cur[2 * l] = sin_end[l - 1], cos_end[l - 1]
        inner = cur[1:2 * l]
        torch.mul(prev, zc, out=inner)
        if l >= 2:
            cur[2:2 * l - 1].addcmul_(prev2[:2 * l - 3, :n], T.b_flat[r0 + 2:r1 - 2])
        inner.mul_(T.a_flat[r0 + 1:r1 - 1])
        out[r0:r1, i:i + n] = cur


@torch.no_grad()
def _legendre_sums(z: torch.Tensor, s: torch.Tensor, a: torch.Tensor, L: int):
    """Per-field order sums at per-field points, without storing the Legendre table.

    z, s [n, k] (cos θ, sin θ of k points for each of n fields), a [n, D] ->
    (G^c, G^s) [n, k, L+1] with G^c_m = Σ_l a_{l,m} P̄_lm(z), G^s_m = Σ_l a_{l,-m} P̄_lm(z),
    accumulated degree by degree inside the recurrence (orders m <= l only; not differentiable).
    """
    T = _tables(L, str(z.device), z.dtype)
    w = a if a.ndim == 5 else _order_weights(a.to(z.dtype), L)        # [l, 2, n, 1, m]
    sect = T.sect * s.unsqueeze(-1) ** T.m                            # [n, k, m]
    z = z.unsqueeze(-1)
    g = torch.zeros((2,) + sect.shape, dtype=sect.dtype, device=sect.device)
    prev2 = prev = None
    for l in range(L + 1):
        cur = torch.empty(sect.shape[:-1] + (l + 1,), dtype=sect.dtype, device=sect.device)
        if l >= 1:
            torch.mul(prev, z, out=cur[..., :l])
            if l >= 2:
                cur[..., :l - 1].addcmul_(prev2, T.b[l, :l - 1], value=-1.0)
            cur[..., :l].mul_(T.a[l, :l])
        cur[..., l] = sect[..., l]
        g[..., :l + 1].addcmul_(w[l, ..., :l + 1], cur)
        prev2, prev = prev, cur
    return g[0], g[1]
