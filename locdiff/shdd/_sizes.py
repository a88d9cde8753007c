"""Sizes and argument checks of the codec: degrees, coefficient counts, taper widths, memory."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import geo
from ..checks import is_positive_finite


TAPER_WIDTHS = (1e-3, 1e3)     # taper_width range: σ² = (width·(L+1))² stays a normal float


def _check_taper_width(taper_width, name: str = "taper_width") -> float:
    lo, hi = TAPER_WIDTHS
    if not is_positive_finite(taper_width) or not lo <= float(taper_width) <= hi:
        raise ValueError(f"{name} must be a positive finite number in [{lo:g}, {hi:g}] (σ = {name}·(L+1)); "
                         f"got {taper_width!r}")
    return float(taper_width)


MAX_DEGREE = 10_000            # (L+1)² = 1e8 coefficients per point: far beyond any use here


def _check_degree(L) -> int:
    if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)) or not 0 <= L <= MAX_DEGREE:
        raise ValueError(f"L must be a non-negative integer (the maximum SH degree) at most {MAX_DEGREE}; got {L!r}")
    return int(L)


def num_coeffs(L: int) -> int:
    """D = (L+1)², the length of a degree-L SHDD vector."""
    return (_check_degree(L) + 1) ** 2


def degree_of(n_coeffs: int, name: str = "coeffs") -> int:
    """L such that (L+1)² = n_coeffs; ValueError if n_coeffs is not a positive perfect square."""
    if isinstance(n_coeffs, bool) or not isinstance(n_coeffs, (int, np.integer)):
        raise ValueError(f"{name} must have (L+1)^2 entries in its last dimension; got a count of {n_coeffs!r}")
    root = math.isqrt(max(int(n_coeffs), 0))
    if n_coeffs < 1 or root * root != n_coeffs:
        raise ValueError(
            f"{name} must have (L+1)^2 entries in its last dimension (1, 4, 9, 16, ...); got {n_coeffs}"
        )
    return root - 1


def peak_value(L: int) -> float:
    """Height of a single point's field at the point, (L+1)²/(4π)."""
    return num_coeffs(L) / (4 * math.pi)


def _as_coeffs(coeffs, name: str = "coeffs") -> tuple[torch.Tensor, int, bool]:
    """Coefficients as a 2-D floating tensor [N, D], the degree L, and whether the input was 1-D."""
    if not isinstance(coeffs, torch.Tensor):
        try:
            arr = np.asarray(coeffs)
        except (TypeError, ValueError):                       # ragged nested lists
            raise ValueError(f"{name} must be numeric with shape [D] or [N, D] (SH coefficients)") from None
        if arr.dtype.kind == "c" or arr.dtype.kind == "O" and any(isinstance(v, complex) for v in arr.reshape(-1)):
            raise ValueError(f"{name} must be real (SH coefficients); got complex values")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric (SH coefficients); got an array of {arr.dtype}")
        keep64 = arr.dtype == np.float64
        try:
            coeffs = torch.as_tensor(arr.astype(np.float64 if keep64 else np.float32, copy=False))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric (SH coefficients); got an array of {arr.dtype}") from None
    if coeffs.is_complex():
        raise ValueError(f"{name} must be real (SH coefficients); got {coeffs.dtype}")
    if not coeffs.is_floating_point():
        coeffs = coeffs.float()
    if coeffs.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape [D] or [N, D]; got {tuple(coeffs.shape)}")
    single = coeffs.ndim == 1
    coeffs = coeffs.reshape(1, -1) if single else coeffs
    L = degree_of(coeffs.shape[-1], name)
    geo.check_finite(coeffs, name)
    return coeffs, L, single


def _device_float64(device: torch.device) -> torch.dtype:
    """float64 where the device supports it (not on Apple MPS), else float32."""
    return torch.float32 if device.type == "mps" else torch.float64


class MemoryWarning(UserWarning):
    """A call whose working memory is large enough to matter (the estimate is in the message)."""


def _warn_memory(nbytes: int, what: str, limit: int = 2 << 30) -> None:
    if nbytes > limit:
        import warnings

        warnings.warn(f"{what} needs about {nbytes / 2 ** 30:.1f} GiB of working memory", MemoryWarning,
                      stacklevel=3)
