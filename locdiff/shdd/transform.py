"""Fields of coefficient vectors: at points, on grids, and the fast inverse transform on an
equiangular grid (``Grid``, a module holding its tables as buffers)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .. import geo
from ._sizes import _as_coeffs, _check_degree, _check_taper_width, _device_float64, _warn_memory, degree_of
from .fast import _legendre_sums
from .legendre import (_SQRT2, _basis, _cos_sin_sum, _legendre, _split_orders, _trig,
                       _zsphi_from_latlon, _zsphi_from_xyz)


def _pairs_field(a: torch.Tensor, xyz: torch.Tensor, L: int) -> torch.Tensor:
    """f_n(q_nk) for fields a [n, D] (float64), each at its own points xyz [n, k, 3]; -> [n, k]."""
    z, s, phi = _zsphi_from_xyz(xyz)
    gc, gs = _legendre_sums(z, s, a, L)
    return (_cos_sin_sum(gc, gs) * _trig(phi, L)).sum(-1)


def field(coeffs, lat, lon, grid: bool = False) -> torch.Tensor:
    """The field f(y) = Σ_i a_i Y_i(y) of each coefficient vector.

    Args:
        coeffs: [D] or [N, D] with D = (L+1)².
        lat, lon: degrees. With grid=False they broadcast to points [...] and every field is
            evaluated at every point. With grid=True they are 1-D axes [H] and [W] of a grid.
    Returns:
        [N, ...] (points) or [N, H, W] (grid); the leading N is dropped for 1-D coeffs. Same dtype
        and device as coeffs; computed in float64; differentiable w.r.t. coeffs.
    """
    coeffs, L, single = _as_coeffs(coeffs)
    device, work = coeffs.device, _device_float64(coeffs.device)
    a = coeffs.to(work)
    if grid:
        lat_axis = torch.as_tensor(geo.validate_lat(lat), device=device).to(work).reshape(-1)
        lon_axis = torch.as_tensor(geo.wrap_lon(lon), device=device).to(work).reshape(-1)
        z, s, _ = _zsphi_from_latlon(lat_axis, torch.zeros_like(lat_axis))
        out = _synthesize(a, _legendre(z, s, L).permute(2, 1, 0).contiguous(), _trig(torch.deg2rad(lon_axis), L), L)
    else:
        lat_t, lon_t = geo.validate_latlon(lat, lon)
        lat_t = torch.as_tensor(lat_t, device=device).to(work)
        lon_t = torch.as_tensor(lon_t, device=device).to(work)
        Y = _basis(*_zsphi_from_latlon(lat_t, lon_t), L)
        out = torch.einsum("nd,...d->n...", a, Y)
    out = out.to(coeffs.dtype)
    return out[0] if single else out


def taper_weights(L: int, taper: str | None = "gauss", width: float = 0.35) -> torch.Tensor:
    """Per-coefficient degree weights w_l (float64, [(L+1)²]) that smooth a field before decoding.

    - "gauss" (default): w_l = exp(-l(l+1) / (2σ²)), σ = width·(L+1). This is heat-kernel
      smoothing on the sphere (diffusion time 1/(2σ²)); it damps the truncation ringing (Gibbs side
      lobes) that otherwise pulls the modes of a mixture toward each other's side lobes.
    - "hann": w_l = ½(1 + cos(π l/(L+1))).
    - None: no smoothing (w_l = 1).
    An isotropic filter leaves the mode of a single point's field exactly at the point.
    """
    L = _check_degree(L)
    width = _check_taper_width(width, "width")
    l = torch.arange(L + 1, dtype=torch.float64).repeat_interleave(torch.arange(L + 1) * 2 + 1)
    if taper is None or taper == "none":
        return torch.ones_like(l)
    if taper == "gauss":
        return torch.exp(-l * (l + 1) / (2 * (width * (L + 1)) ** 2))
    if taper == "hann":
        return 0.5 * (1 + torch.cos(math.pi * l / (L + 1)))
    raise ValueError(f"taper must be 'gauss', 'hann' or None; got {taper!r}")


def field_pairs(coeffs, lat, lon, *, taper: str | None = "gauss", taper_width: float = 0.35) -> torch.Tensor:
    """Each field at its own points: f_n(lat_nk, lon_nk) -> [N, k] float64 (no grad).

    coeffs [N, D]; lat, lon [N, k] degrees. The field is smoothed by ``taper_weights`` first, as
    in ``decode``, so values compare with the decoder's modes (LocDiff-H ranks candidates with it).
    """
    coeffs, L, _ = _as_coeffs(coeffs)
    _check_taper_width(taper_width)
    if coeffs.ndim != 2:
        raise ValueError(f"coeffs must have shape [N, D]; got {tuple(coeffs.shape)}")
    lat_t, lon_t = geo.validate_latlon(lat, lon)
    work = _device_float64(coeffs.device)
    lat_t = torch.as_tensor(lat_t, device=coeffs.device).to(work)
    lon_t = torch.as_tensor(lon_t, device=coeffs.device).to(work)
    if lat_t.ndim != 2 or lat_t.shape[0] != coeffs.shape[0]:
        raise ValueError(f"lat and lon must have shape [N, k] with N = {coeffs.shape[0]} (rows of coeffs); "
                         f"got {tuple(lat_t.shape)}")
    a = coeffs.detach().to(work) * taper_weights(L, taper, taper_width).to(work).to(coeffs.device)
    xyz = torch.stack([torch.cos(torch.deg2rad(lat_t)) * torch.cos(torch.deg2rad(lon_t)),
                       torch.cos(torch.deg2rad(lat_t)) * torch.sin(torch.deg2rad(lon_t)),
                       torch.sin(torch.deg2rad(lat_t))], -1)
    return _pairs_field(a, xyz, L)


def _order_sums(a: torch.Tensor, Pm: torch.Tensor, L: int):
    """G^c_m(θ_h) = Σ_l a_{l,m} P̄_lm(θ_h), G^s_m(θ_h) = Σ_l a_{l,-m} P̄_lm(θ_h).

    a [N, D], Pm [L+1 (m), L+1 (l), H] -> (G^c, G^s) [N, H, L+1] each: one batched matrix product
    over the orders m.
    """
    ac, as_ = _split_orders(a.to(Pm.dtype), L)
    N = a.shape[0]
    both = torch.cat([ac, as_], 0).transpose(0, 1)                # [m, 2N, l]
    g = torch.bmm(both, Pm).permute(1, 2, 0)                      # [2N, H, m]
    return g[:N], g[N:]


def _synthesize(a: torch.Tensor, Pm: torch.Tensor, trig: torch.Tensor, L: int) -> torch.Tensor:
    """Field on the latitudes of Pm [L+1, L+1, H] x the longitudes of trig [W, 2L+1] -> [N, H, W]."""
    gc, gs = _order_sums(a, Pm, L)
    return torch.einsum("nhm,wm->nhw", _cos_sin_sum(gc, gs), trig.to(gc.dtype))


class Grid(torch.nn.Module):
    """An equiangular lat/lon grid with a cached inverse spherical-harmonic transform.

    Cell centres: colatitude θ_j = π (j + ½)/H (j < H), longitude φ_k = -π + 2π k/W (k < W).
    Synthesis of f on the grid: G_m(θ_j) by one matrix product per order m against the cached
    P̄_lm(cos θ_j) table, then an inverse real FFT over longitude,
        f(θ_j, φ_k) = Re Σ_m C_m(θ_j) e^{imφ_k},  C_0 = G^c_0,  C_m = √2 (G^c_m - i G^s_m),
    O(H L² + H W log W) per field instead of O(H W L²) for a dense basis matrix.
    ``weights`` are exact cell areas (sr), summing to 4π: the quadrature rule for integrals.

    A ``torch.nn.Module``: its tables (``P``, ``lat``, ``lon``, ``weights`` and the FFT phases) are
    buffers, so ``.to(device)`` moves them and ``state_dict`` holds them; ``grid(coeffs)`` synthesizes.
    """

    def __init__(self, L: int, nlat: int, nlon: int | None = None, device="cpu",
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.L = _check_degree(L)
        for name, v in (("nlat", nlat), ("nlon", nlon)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise ValueError(f"{name} must be an integer (nlat >= 2, nlon > 2L = {2 * self.L}); got {v!r}")
        nlat = int(nlat)
        nlon = 2 * nlat if nlon is None else int(nlon)
        if nlat < 2 or nlon <= 2 * self.L:
            raise ValueError(f"nlat must be >= 2 and nlon > 2L = {2 * self.L}; got nlat={nlat}, nlon={nlon}")
        self.nlat, self.nlon = nlat, nlon
        device = torch.device(device)
        work = _device_float64(device)
        theta = (torch.arange(nlat, dtype=work, device=device) + 0.5) * (math.pi / nlat)
        self.register_buffer("lat", 90.0 - torch.rad2deg(theta))                       # [H], north to south
        self.register_buffer("lon", -180.0 + torch.arange(nlon, dtype=work, device=device) * (360.0 / nlon))  # [W]
        # P̄_lm(cos θ_j) stored as [m, l, H] for one matrix product per order
        self.register_buffer("P", _legendre(torch.cos(theta), torch.sin(theta), self.L).permute(2, 1, 0)
                             .to(dtype).contiguous())
        edges = torch.cos(torch.arange(nlat + 1, dtype=work, device=device) * (math.pi / nlat))
        self.register_buffer("weights", ((edges[:-1] - edges[1:]) * (2 * math.pi / nlon)).unsqueeze(1)
                             .expand(nlat, nlon).contiguous())
        m = torch.arange(self.L + 1, device=device)
        # irfft(X)[k] = (1/W)(X_0 + 2 Re Σ_m X_m e^{2πimk/W}); φ_k = -π + 2πk/W adds (-1)^m
        sign = 1.0 - 2.0 * (m % 2).to(work)
        half_root2 = torch.full((self.L + 1,), _SQRT2 / 2, dtype=work, device=device)
        half_root2[0] = 1.0
        self.register_buffer("phase", (sign * half_root2 * nlon).to(dtype))

    @property
    def device(self) -> torch.device:
        """Where the tables are (``.to`` moves them)."""
        return self.P.device

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the synthesis (that of the Legendre table)."""
        return self.P.dtype

    @property
    def spacing_rad(self) -> float:
        """Latitude spacing of the grid in radians."""
        return math.pi / self.nlat

    def synthesize(self, coeffs: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Field of coeffs [N, (L+1)²] on the grid: [N, H, W] in the grid's dtype; differentiable.

        ``out`` (optional, [N, H, W]) receives the result without a new allocation (no autograd).
        """
        if not isinstance(coeffs, torch.Tensor) or coeffs.ndim != 2:
            raise ValueError(f"coeffs must be a tensor of shape [N, (L+1)^2] = [N, {(self.L + 1) ** 2}]; got "
                             f"{tuple(coeffs.shape) if isinstance(coeffs, torch.Tensor) else type(coeffs).__name__}")
        L = degree_of(coeffs.shape[-1])
        if L != self.L:
            raise ValueError(f"coeffs must have degree L = {self.L} for this grid; got L = {L}")
        if coeffs.shape[0] == 0:                               # an empty batch (the FFT refuses it)
            return torch.empty(0, self.nlat, self.nlon, dtype=self.dtype, device=self.device)
        gc, gs = _order_sums(coeffs.to(self.device), self.P, L)
        spec = (torch.complex(gc, -gs) * self.phase).contiguous()
        if out is not None:
            return torch.fft.irfft(spec, n=self.nlon, dim=-1, out=out)
        return torch.fft.irfft(spec, n=self.nlon, dim=-1)

    forward = synthesize


@lru_cache(maxsize=16)
def _cached_grid(L: int, nlat: int, device: str, dtype: torch.dtype) -> Grid:
    return Grid(L, nlat, device=device, dtype=dtype)


def grid(L: int, oversample: int = 2, device="cpu", dtype: torch.dtype = torch.float32) -> Grid:
    """The (cached) decoding grid for degree L: H = 2·oversample·(L+1) latitudes, W = 2H longitudes.

    H is rounded up to a number with no prime factor above 5 so that the FFT over W = 2H is fast.
    With oversample=2 the spacing is about π/(4(L+1)) rad, a fifth of the main lobe's radius.
    """
    L = _check_degree(L)
    if isinstance(oversample, bool) or not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ValueError(f"oversample must be an integer >= 1; got {oversample!r}")
    oversample = int(oversample)
    H = _smooth_at_least(2 * oversample * (L + 1))
    _warn_memory((L + 1) ** 2 * H * torch.empty(0, dtype=dtype).element_size(),
                 f"the decoding grid at L = {L}, oversample = {oversample} ({H} x {2 * H} points)")
    return _cached_grid(L, _smooth_at_least(2 * oversample * (L + 1)), str(torch.device(device)), dtype)


def _smooth_at_least(n: int) -> int:
    """Smallest integer >= n whose prime factors are all 2, 3 or 5."""
    while True:
        r = n
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return n
        n += 1
