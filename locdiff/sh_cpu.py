"""A compiled CPU kernel for the SHDD encoder: all harmonics of many points in one fused loop.

``shdd.encode`` on CPU tensors that need no gradient lands here. It evaluates the same
Holmes–Featherstone recurrence as ``shdd._legendre`` (see the docstring of ``locdiff.shdd``),

    Y_{l,±m}(θ, φ) = P̄_lm(cos θ) · √2 {cos, sin}(mφ)   (m > 0),      Y_l0 = P̄_l0(cos θ),
    P̄_mm = sqrt((2m+1)/(2m)) sin θ P̄_{m-1,m-1},      P̄_lm = a_lm (cos θ P̄_{l-1,m} - b_lm P̄_{l-2,m}),

in float64, but as one numba-compiled loop instead of a sequence of array operations: a block of
``BLOCK`` points keeps its recurrence state (two degrees, every order) in a small array that stays
in the L1 cache, the innermost loop runs over the points of the block (vectorizable), and each
finished value is written once into the row-major output [N, (L+1)²] of the requested dtype. The
trig factors come from the angle-addition recurrence cos((m+1)φ) = cos mφ cos φ - sin mφ sin φ
(error grows like m·eps, negligible to L = 256 and beyond).

Parallelism: the points are cut into one contiguous slice per torch CPU thread and the kernel,
which releases the GIL, runs on each slice in a Python thread (no numba threading layer, so it
cannot clash with torch's OpenMP runtime).

numba is a dependency of locdiff; if it cannot be imported (an unusual platform) ``available()``
is False and ``shdd.encode`` uses its torch path, which gives the same numbers more slowly.
The compiled code is cached on disk (numba ``cache=True``) after the first call.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency
    numba = None

BLOCK = 16               # points per block: the state is 2 x (L+1) x BLOCK float64 values
MIN_VALUES_PER_THREAD = 1 << 20   # N·(L+1)² output values below which one thread does it all
_SQRT2 = math.sqrt(2.0)


def available() -> bool:
    """True when the compiled kernel can run (numba importable)."""
    return numba is not None


def _kernel(z, s, phi, a, b, sect, out, L):
    """Fill out[n, l² + l + m] with Y_lm at the points (z = cos θ, s = sin θ, φ), n < len(z)."""
    N = z.shape[0]
    B = BLOCK
    cm = np.empty((L + 1, B))             # √2 cos(mφ) per order and point (1 for m = 0)
    sm = np.empty((L + 1, B))             # √2 sin(mφ)
    pmm = np.empty((L + 1, B))            # sectoral P̄_mm
    p1 = np.zeros((L + 1, B))             # P̄_{l-1,m}, then P̄_lm
    p2 = np.zeros((L + 1, B))             # P̄_{l-2,m}
    zb = np.empty(B)
    for i0 in range(0, N, B):
        nb = min(B, N - i0)
        for k in range(nb):
            c1 = math.cos(phi[i0 + k])
            s1 = math.sin(phi[i0 + k])
            zb[k] = z[i0 + k]
            cm[0, k] = 1.0
            sm[0, k] = 0.0
            if L >= 1:
                cm[1, k] = _SQRT2 * c1
                sm[1, k] = _SQRT2 * s1
            for m in range(2, L + 1):
                cm[m, k] = cm[m - 1, k] * c1 - sm[m - 1, k] * s1
                sm[m, k] = sm[m - 1, k] * c1 + cm[m - 1, k] * s1
            power = 1.0
            for m in range(L + 1):
                pmm[m, k] = sect[m] * power
                power *= s[i0 + k]
        for l in range(L + 1):
            row = l * l + l
            for m in range(l + 1):
                if m == l:
                    for k in range(nb):
                        p2[m, k] = 0.0
                        p1[m, k] = pmm[m, k]
                else:
                    alm = a[l, m]
                    blm = b[l, m]
                    for k in range(nb):
                        p = alm * (zb[k] * p1[m, k] - blm * p2[m, k])
                        p2[m, k] = p1[m, k]
                        p1[m, k] = p
                for k in range(nb):
                    out[i0 + k, row + m] = p1[m, k] * cm[m, k]
                if m > 0:
                    for k in range(nb):
                        out[i0 + k, row - m] = p1[m, k] * sm[m, k]


if numba is not None:
    _kernel = numba.njit(nogil=True, cache=True, fastmath=True)(_kernel)


def basis(z: np.ndarray, s: np.ndarray, phi: np.ndarray, L: int, a: np.ndarray, b: np.ndarray,
          sect: np.ndarray, dtype: torch.dtype, threads: int = 1) -> torch.Tensor:
    """Y [N, (L+1)²] (a contiguous CPU tensor of ``dtype``) at N points.

    Args:
        z, s, phi: float64 [N]: cos θ, sin θ (>= 0, exactly 0 at the poles) and φ in radians.
        a, b: float64 [L+1, L+1] recurrence coefficients a_lm, b_lm (``shdd._tables``).
        sect: float64 [L+1] P̄_mm / sin^m θ.
        dtype: torch.float32 or torch.float64, the output's dtype.
        threads: number of Python threads, each running the kernel on a contiguous slice.
    """
    if numba is None:  # pragma: no cover
        raise RuntimeError("locdiff.sh_cpu needs numba; install it with `pip install numba`")
    N = z.shape[0]
    # torch's allocator, not np.empty: numpy asks for transparent huge pages on large arrays, and
    # the kernel's synchronous compaction for them made first touch up to 10x slower here
    result = torch.empty((N, (L + 1) ** 2), dtype=dtype)
    out = result.numpy()
    parts = max(1, min(threads, N * (L + 1) ** 2 // MIN_VALUES_PER_THREAD, N))
    if parts == 1:
        _kernel(z, s, phi, a, b, sect, out, L)
        return result
    cuts = np.linspace(0, N, parts + 1).astype(int)

    def run(j: int) -> None:
        sl = slice(cuts[j], cuts[j + 1])
        _kernel(z[sl], s[sl], phi[sl], a, b, sect, out[sl], L)

    with ThreadPoolExecutor(parts) as pool:
        list(pool.map(run, range(parts)))
    return result
