"""The encoder: a location's SHDD vector Y(x)."""
from __future__ import annotations

import numpy as np
import torch

from .. import geo
from ._sizes import _check_degree, _device_float64, _warn_memory
from .fast import fast_basis
from .legendre import _basis, _zsphi_from_latlon


def encode(lat, lon, L: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """SHDD vectors of points: Y_i(lat, lon) for i < (L+1)².

    Args:
        lat, lon: degrees, any shape (broadcast); numpy, lists or tensors. Latitude in [-90, 90];
            longitude wrapped into [-180, 180).
        L: maximum degree (>= 0).
        dtype: output dtype; default the input tensor's floating dtype, else float32.
    Returns:
        tensor [..., (L+1)²] on the input's device, computed in float64. Differentiable w.r.t.
        tensor inputs that require grad (a recurrence kept for autograd). Otherwise a fast path
        runs: on CPU (float32/float64 output) the compiled kernel of ``locdiff.sh_cpu``, whose
        result is contiguous; on other devices ``_basis_flat``, whose result is a strided view
        with the points along the fast axis (call ``.contiguous()`` before ``.view``).
    Cost: N·(L+1)² output values; a call above 2 GiB warns with the estimate (``MemoryWarning``).
    """
    L = _check_degree(L)
    ref = lat if isinstance(lat, torch.Tensor) else lon if isinstance(lon, torch.Tensor) else None
    if dtype is None:
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype (e.g. torch.float32); got {dtype!r}")
    lat, lon = geo.validate_latlon(lat, lon)
    _warn_memory(int(np.broadcast(np.empty(np.shape(lat), bool), np.empty(np.shape(lon), bool)).size) * (L + 1) ** 2
                 * torch.empty(0, dtype=dtype).element_size(), f"encode at L = {L}")
    device = ref.device if ref is not None else torch.device("cpu")
    lat = torch.as_tensor(lat, device=device).to(_device_float64(device))
    lon = torch.as_tensor(lon, device=device).to(_device_float64(device))
    z, s, phi = _zsphi_from_latlon(lat, lon)              # cos θ, sin θ, φ
    if torch.is_grad_enabled() and (lat.requires_grad or lon.requires_grad):
        return _basis(z, s, phi, L).to(dtype)              # Y_lm = P̄_lm(cos θ) T_m(φ), differentiable
    if z.numel() == 0:                                     # no points: an empty [..., (L+1)²]
        return torch.empty(*z.shape, (L + 1) ** 2, dtype=dtype, device=device)
    return fast_basis(z.reshape(-1), s.reshape(-1), phi.reshape(-1), L, dtype).reshape(*z.shape, -1)
