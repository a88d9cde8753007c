"""The SHDD codec: spherical-harmonic Dirac-delta encoding of locations and its mode-seeking decoder.

A location x on the unit sphere is the Dirac delta δ_x; its real spherical-harmonic coefficients up
to degree L are a_i = ∫ δ_x Y_i dΩ = Y_i(x), a vector of D = (L+1)² numbers (the SHDD vector).
Any vector a represents the band-limited field

    f(y) = Σ_i a_i Y_i(y),      for one point: f(y) = Σ_l (2l+1)/(4π) P_l(x·y),

which peaks at x with height (L+1)²/(4π) and has a main lobe of angular radius ≈ 3.83/(L+1) rad.
Decoding reads f as a density and returns its highest modes (LocDiff's learning-free decoder).

Conventions (the package's, shared by every module): real orthonormal harmonics (∫ Y² dΩ = 1), θ = colatitude, φ = longitude,
no Condon–Shortley phase, flat index i = l² + l + m:
    Y_l0 = N_l0 P_l(cos θ);  m > 0: √2 N_lm P_l^m(cos θ) cos(mφ);  m < 0: √2 N_l|m| P_l^|m|(cos θ) sin(|m|φ)
with N_lm = sqrt((2l+1)/(4π) (l-m)!/(l+m)!). This equals pyshtools' 'ortho' real harmonics with
csphase=1.

Numerics: the normalized associated Legendre functions P̄_lm = N_lm P_l^m are built by the stable
three-term recurrence in l (Holmes & Featherstone 2002, eq. 11-12) in float64,
    P̄_mm     = sqrt((2m+1)/(2m)) sin θ P̄_{m-1,m-1},   P̄_00 = 1/sqrt(4π)
    P̄_lm     = a_lm (cos θ P̄_{l-1,m} - b_lm P̄_{l-2,m}),
    a_lm     = sqrt((4l²-1)/(l²-m²)),   b_lm = sqrt(((l-1)²-m²)/(4(l-1)²-1)),
looping over l only (every m at once), which stays accurate to well beyond L = 256.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from . import geo, sh_cpu
from .checks import is_positive_finite, is_real

__all__ = [
    "num_coeffs", "degree_of", "encode", "decode", "taper_weights", "field", "density", "Grid", "grid",
    "peak_value", "peak_half_width", "field_pairs",
]

_SQRT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------- sizes and checks


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


# ----------------------------------------------------------------------------- Legendre machinery
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


# ----------------------------------------------------------------------------- encoder
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
    work = _device_float64(device)
    lat = torch.as_tensor(lat, device=device).to(work)
    lon = torch.as_tensor(lon, device=device).to(work)
    z, s, phi = _zsphi_from_latlon(lat, lon)
    if torch.is_grad_enabled() and (lat.requires_grad or lon.requires_grad):
        return _basis(z, s, phi, L).to(dtype)
    shape = z.shape
    if z.numel() == 0:                                     # no points: an empty [..., (L+1)²]
        return torch.empty(*shape, (L + 1) ** 2, dtype=dtype, device=device)
    z, s, phi = z.reshape(-1), s.reshape(-1), phi.reshape(-1)
    if device.type == "cpu" and dtype in (torch.float32, torch.float64) and sh_cpu.available():
        T = _tables(L, "cpu", torch.float64)
        y = sh_cpu.basis(z.contiguous().numpy(), s.contiguous().numpy(), phi.contiguous().numpy(), L,
                         T.a.numpy(), T.b.numpy(), T.sect.numpy(), dtype,
                         threads=torch.get_num_threads())
        return y.reshape(*shape, -1)
    return _basis_flat(z, s, phi, L, dtype).reshape(*shape, -1)


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


# ----------------------------------------------------------------------------- fields
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


def _split_orders(a: torch.Tensor, L: int):
    """Coefficients [N, D] -> cosine and sine parts [N, L+1 (m), L+1 (l)]: a_{l,m} and a_{l,-m}.

    Zero where m > l, and for the sine part where m = 0.
    """
    T = _tables(L, str(a.device), torch.float64)
    N = a.shape[0]
    ac = torch.where(T.valid, a[:, T.cos_idx].reshape(N, L + 1, L + 1), 0.0)
    as_ = torch.where(T.valid_sin, a[:, T.sin_idx].reshape(N, L + 1, L + 1), 0.0)
    return ac, as_


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


# ----------------------------------------------------------------------------- equiangular grid + fast transform
class Grid:
    """An equiangular lat/lon grid with a cached inverse spherical-harmonic transform.

    Cell centres: colatitude θ_j = π (j + ½)/H (j < H), longitude φ_k = -π + 2π k/W (k < W).
    Synthesis of f on the grid: G_m(θ_j) by one matrix product per order m against the cached
    P̄_lm(cos θ_j) table, then an inverse real FFT over longitude,
        f(θ_j, φ_k) = Re Σ_m C_m(θ_j) e^{imφ_k},  C_0 = G^c_0,  C_m = √2 (G^c_m - i G^s_m),
    O(H L² + H W log W) per field instead of O(H W L²) for a dense basis matrix.
    ``weights`` are exact cell areas (sr), summing to 4π: the quadrature rule for integrals.
    """

    def __init__(self, L: int, nlat: int, nlon: int | None = None, device="cpu",
                 dtype: torch.dtype = torch.float32):
        self.L = _check_degree(L)
        for name, v in (("nlat", nlat), ("nlon", nlon)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise ValueError(f"{name} must be an integer (nlat >= 2, nlon > 2L = {2 * self.L}); got {v!r}")
        nlat = int(nlat)
        nlon = 2 * nlat if nlon is None else int(nlon)
        if nlat < 2 or nlon <= 2 * self.L:
            raise ValueError(f"nlat must be >= 2 and nlon > 2L = {2 * self.L}; got nlat={nlat}, nlon={nlon}")
        self.nlat, self.nlon, self.device, self.dtype = nlat, nlon, torch.device(device), dtype
        work = _device_float64(self.device)
        theta = (torch.arange(nlat, dtype=work, device=self.device) + 0.5) * (math.pi / nlat)
        self.lat = 90.0 - torch.rad2deg(theta)                       # [H], north to south
        self.lon = -180.0 + torch.arange(nlon, dtype=work, device=self.device) * (360.0 / nlon)  # [W]
        # P̄_lm(cos θ_j) stored as [m, l, H] for one matrix product per order
        self.P = _legendre(torch.cos(theta), torch.sin(theta), self.L).permute(2, 1, 0).to(dtype).contiguous()
        edges = torch.cos(torch.arange(nlat + 1, dtype=work, device=self.device) * (math.pi / nlat))
        self.weights = ((edges[:-1] - edges[1:]) * (2 * math.pi / nlon)).unsqueeze(1).expand(nlat, nlon)
        m = torch.arange(self.L + 1, device=self.device)
        # irfft(X)[k] = (1/W)(X_0 + 2 Re Σ_m X_m e^{2πimk/W}); φ_k = -π + 2πk/W adds (-1)^m
        sign = 1.0 - 2.0 * (m % 2).to(work)
        half_root2 = torch.full((self.L + 1,), _SQRT2 / 2, dtype=work, device=self.device)
        half_root2[0] = 1.0
        self._phase = (sign * half_root2 * nlon).to(dtype)

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
        spec = (torch.complex(gc, -gs) * self._phase).contiguous()
        if out is not None:
            return torch.fft.irfft(spec, n=self.nlon, dim=-1, out=out)
        return torch.fft.irfft(spec, n=self.nlon, dim=-1)


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


# ----------------------------------------------------------------------------- decoder
def _tangent_basis(p: torch.Tensor):
    """Two orthonormal tangent vectors at unit vectors p [..., 3] (well defined at the poles too)."""
    ref = torch.zeros_like(p)
    polar = p[..., 2].abs() > 0.9
    ref[..., 0] = polar.to(p.dtype)
    ref[..., 2] = (~polar).to(p.dtype)
    e1 = F.normalize(torch.cross(ref, p, dim=-1), dim=-1)
    return e1, torch.cross(p, e1, dim=-1)


def _exp_map(p, e1, e2, u, v):
    """Move from p along the tangent vector u e1 + v e2 (radians) on the great circle."""
    d = u.unsqueeze(-1) * e1 + v.unsqueeze(-1) * e2
    n = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    dir_ = d / n.clamp_min(1e-300)
    return torch.cos(n) * p + torch.sin(n) * dir_


# 3x3 stencil in local (east, north) units of h; entry 0 is the centre
_STENCIL = torch.tensor([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]],
                        dtype=torch.float64)
_POLAR_CAP_DEG = 75.0   # beyond this latitude the stencil lives in the tangent plane


def _stencil_latlon(a: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor, h: torch.Tensor, L: int):
    """f at the stencil around (lat, lon) [n] (radians) in the chart x = λ cos φ0, y = φ.

    The stencil is separable in latitude and longitude, so only 3 Legendre recurrences (one per
    stencil latitude) are needed instead of 9. Returns [n, 9] in _STENCIL order.
    """
    offs = torch.tensor([0.0, 1.0, -1.0], dtype=lat.dtype, device=lat.device)
    lats = lat[:, None] + offs * h[:, None]                                   # [n, 3]
    lons = lon[:, None] + offs * (h / torch.cos(lat))[:, None]               # [n, 3]
    gc, gs = _legendre_sums(torch.sin(lats), torch.cos(lats), a, L)          # [n, 3, m]
    f = torch.einsum("nkm,njm->nkj", _cos_sin_sum(gc, gs), _trig(lons, L))  # [n, lat, lon]
    # _STENCIL (u, v): u = east index, v = north index; offs index 0 -> 0, 1 -> +1, 2 -> -1
    u_idx = torch.tensor([0, 1, 2, 0, 0, 1, 1, 2, 2])
    v_idx = torch.tensor([0, 0, 0, 1, 2, 1, 2, 1, 2])
    return f[:, v_idx, u_idx]


def _stencil_tangent(a: torch.Tensor, p: torch.Tensor, h: torch.Tensor, L: int):
    """f at the stencil around unit vectors p [n, 3] in tangent-plane coordinates. -> [n, 9]."""
    e1, e2 = _tangent_basis(p)
    uv = _STENCIL.to(p)[None] * h[:, None, None]
    q = _exp_map(p[:, None], e1[:, None], e2[:, None], uv[..., 0], uv[..., 1])
    return _pairs_field(a, q, L)


def _move(p: torch.Tensor, d: torch.Tensor, polar: torch.Tensor) -> torch.Tensor:
    """Apply chart steps d [n, 2] (radians): tangent exp map in the caps, (λ, φ) chart elsewhere."""
    e1, e2 = _tangent_basis(p)
    by_tangent = _exp_map(p, e1, e2, d[:, 0], d[:, 1])
    z, s, lon = _zsphi_from_xyz(p)
    lat = torch.atan2(z, s)
    lat2 = (lat + d[:, 1]).clamp(-math.pi / 2, math.pi / 2)
    lon2 = lon + d[:, 0] / torch.cos(lat)
    by_chart = torch.stack([torch.cos(lat2) * torch.cos(lon2), torch.cos(lat2) * torch.sin(lon2), torch.sin(lat2)], -1)
    return torch.where(polar[:, None], by_tangent, by_chart)


def _stencil(a: torch.Tensor, p: torch.Tensor, h: torch.Tensor, L: int):
    """f on the 3x3 stencil of half-width h [n] around p [n, 3], in the chart chosen per point."""
    z, s, lon = _zsphi_from_xyz(p)
    lat = torch.atan2(z, s)
    polar = lat.abs() > math.radians(_POLAR_CAP_DEG)
    f = torch.empty(p.shape[0], 9, dtype=p.dtype, device=p.device)
    rows = (lambda m: a[:, :, m]) if a.ndim == 5 else (lambda m: a[m])     # order weights or coefficients
    if (~polar).any():
        f[~polar] = _stencil_latlon(rows(~polar), lat[~polar], lon[~polar], h[~polar], L)
    if polar.any():
        f[polar] = _stencil_tangent(rows(polar), p[polar], h[polar], L)
    return f, polar


def _refine(a: torch.Tensor, p: torch.Tensor, L: int, step0: float, iters: int = 10,
            h_min: float = 1e-7, tol: float = 1e-8):
    """Maximize each field a_n [N, D] (float64) starting from p_n [N, 3]: damped Newton on the sphere.

    Each iteration fits the gradient g and Hessian H of f in a local chart (longitude-latitude
    scaled to be locally isometric; the tangent plane in the polar caps) by central differences on
    a 3x3 stencil of half-width h, then steps to the quadratic's maximum -H⁻¹g (or along g where the
    fit is not concave), at most ``radius`` rad. A step that lowers f is undone and the radius
    halved; h follows the step length down to ``h_min``. Stops when every step is below ``tol`` rad.
    Returns refined unit vectors [N, 3] and field values [N].
    """
    N = p.shape[0]
    a = _order_weights(a.to(p.dtype), L)              # rearranged once for every stencil below
    radius = torch.full((N,), step0, dtype=p.dtype, device=p.device)
    h = radius / 4
    f, polar = _stencil(a, p, h, L)
    for _ in range(iters):
        f0, h2 = f[:, 0], h * h
        g = torch.stack([(f[:, 1] - f[:, 2]) / (2 * h), (f[:, 3] - f[:, 4]) / (2 * h)], -1)
        hxx = (f[:, 1] - 2 * f0 + f[:, 2]) / h2
        hyy = (f[:, 3] - 2 * f0 + f[:, 4]) / h2
        hxy = (f[:, 5] - f[:, 6] - f[:, 7] + f[:, 8]) / (4 * h2)
        det = hxx * hyy - hxy * hxy
        concave = (hxx < 0) & (det > 0)
        safe_det = torch.where(concave, det, torch.ones_like(det))
        newton = -torch.stack([hyy * g[:, 0] - hxy * g[:, 1], hxx * g[:, 1] - hxy * g[:, 0]], -1) / safe_det[:, None]
        gnorm = torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(1e-300)
        d = torch.where(concave[:, None], newton, g / gnorm * radius[:, None])
        dn = torch.linalg.vector_norm(d, dim=-1)
        d = d * (radius / dn.clamp_min(1e-300)).clamp(max=1.0)[:, None]
        dn = torch.linalg.vector_norm(d, dim=-1)
        if bool((dn < tol).all()):
            break
        cand = _move(p, d, polar)
        h_new = dn.clamp(min=h_min).minimum(h)
        f_new, polar_new = _stencil(a, cand, h_new, L)
        ok = f_new[:, 0] >= f0
        p = torch.where(ok[:, None], cand, p)
        f = torch.where(ok[:, None], f_new, f)
        polar = torch.where(ok, polar_new, polar)
        h = torch.where(ok, h_new, h)
        radius = torch.where(ok, radius, radius / 2)
    return F.normalize(p, dim=-1), f[:, 0]


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


def decode(coeffs, k: int = 1, *, taper: str | None = "gauss", taper_width: float = 0.35,
           oversample: int = 2, refine_iters: int = 8, min_separation_deg: float | None = None,
           chunk: int = 256):
    """The k highest distinct modes of the field of each coefficient vector (the SHDD decoder).

    Algorithm (learning-free mode seeking):
      1. smooth: a_lm <- w_l a_lm with ``taper_weights(L, taper, taper_width)``;
      2. evaluate the field on the equiangular grid of ``grid(L, oversample)`` by the fast transform;
      3. candidates: the argmax (k = 1), else the highest grid local maxima (3x3 neighbourhoods,
         wrapping in longitude) chosen greedily at least ``min_separation_deg`` apart
         (default 180/(L+1) degrees, the field's resolution), k + 2 of them;
      4. refine each candidate by damped Newton steps on the analytic (smoothed) field in float64;
      5. keep the k highest refined modes that are at least the separation apart (greedy by value);
      6. when a field has fewer such modes than k, fill the remaining slots with the highest points
         of a grid of spacing ≤ half the separation that are at least the separation away from
         every answer before them (not maxima: their value, lower than every mode's, ranks them).
    So the k answers are always k distinct points, pairwise at least the separation apart. That is
    possible only for k up to ``max_modes(L, oversample, min_separation_deg)`` (64 at L = 16 with
    the defaults); a larger k is refused. A constant field (every coefficient of degree >= 1 zero)
    has no mode and is refused.

    Args:
        coeffs: [D] or [N, D], D = (L+1)², L >= 1 (numpy or torch, any device).
        k: number of modes per field, 1 <= k <= max_modes(L, oversample, min_separation_deg).
    Returns:
        (lat, lon, value): [N, k] each ([k] for 1-D input), sorted by value, highest first.
        Coordinates in degrees (float64); value = the smoothed field at the mode, in coeffs' dtype.
        An empty batch [0, D] gives empty [0, k] answers.
    Cost: a grid of 4·oversample·(L+1) x 8·oversample·(L+1) values per field of a chunk; a call
    whose grid buffer and tables would exceed 2 GiB warns with the estimate (``MemoryWarning``).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (number of modes); got {k!r}")
    coeffs, L, single = _as_coeffs(coeffs)
    if L < 1:
        raise ValueError("coeffs must have degree L >= 1 (at least 4 entries): a degree-0 field is constant")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1; got {chunk!r}")
    _check_taper_width(taper_width)
    if isinstance(refine_iters, bool) or not isinstance(refine_iters, (int, np.integer)) or refine_iters < 0:
        raise ValueError(f"refine_iters must be an integer >= 0 (Newton steps per mode); got {refine_iters!r}")
    if min_separation_deg is not None and not (is_real(min_separation_deg) and 0 <= min_separation_deg <= 180):
        raise ValueError(f"min_separation_deg must be None or a number of degrees in [0, 180]; got {min_separation_deg!r}")
    cap = max_modes(L, oversample, min_separation_deg)
    if k > cap:
        raise ValueError(f"k must be <= {cap} for a degree-{L} field (at most that many modes at least "
                         f"{_separation_deg(L, min_separation_deg):.3g} degrees apart can be guaranteed; "
                         f"lower min_separation_deg for more); got {k}")
    flat = (coeffs[:, 1:] == 0).all(1)
    if bool(flat.any()):
        raise ValueError(f"coeffs row {int(flat.nonzero()[0, 0])} is a constant field (every coefficient of degree "
                         f">= 1 is zero): it has no mode to decode")
    chunk, refine_iters = int(chunk), int(refine_iters)
    device, work = coeffs.device, _device_float64(coeffs.device)
    sep = math.radians(_separation_deg(L, min_separation_deg))
    w = taper_weights(L, taper, taper_width).to(device=device, dtype=work)
    G = grid(L, oversample, device=device)
    _warn_memory(min(chunk, coeffs.shape[0]) * G.nlat * G.nlon * 4 * (3 if k > 1 else 1)
                 + G.P.numel() * G.P.element_size(), f"decode at L = {L}, oversample = {oversample}, chunk = {chunk}")
    if coeffs.shape[0] == 0:                          # an empty batch: empty answers of the right shapes
        empty = torch.empty(0, k, dtype=work, device=device)
        return empty, empty.clone(), empty.to(coeffs.dtype)
    lat_g, lon_g = G.lat.to(work), G.lon.to(work)
    lats, lons, vals = [], [], []
    buffer = torch.empty(min(chunk, coeffs.shape[0]), G.nlat, G.nlon, device=device)  # reused grid
    for i in range(0, coeffs.shape[0], chunk):
        a = coeffs[i:i + chunk].detach().to(work) * w
        with torch.no_grad():
            f = G.synthesize(a.to(torch.float32), out=buffer[:a.shape[0]])  # [n, H, W]
            if k == 1:                                # row maxima first: faster than a flat argmax
                row = f.amax(2).argmax(1)
                col = f[torch.arange(f.shape[0], device=device), row].argmax(1)
                idx = (row * G.nlon + col)[:, None]
            else:
                padded = F.pad(F.pad(f.unsqueeze(1), (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1),
                               value=-math.inf)
                is_max = (f.unsqueeze(1) >= F.max_pool2d(padded, 3, stride=1)).squeeze(1)
                below = f.amax((1, 2), keepdim=True) - f.amin((1, 2), keepdim=True) + 1
                score = torch.where(is_max, f, f - below)                   # maxima rank first
                top = score.flatten(1).topk(min(4 * k + 4, f[0].numel()), dim=1)
                p_top = geo.latlon_to_xyz(lat_g[top.indices // G.nlon], lon_g[top.indices % G.nlon])
                sel, _ = _greedy_separated(p_top, top.values.to(work), min(k + 2, top.indices.shape[1]), sep)
                idx = top.indices.gather(1, sel)
            p0 = geo.latlon_to_xyz(lat_g[idx // G.nlon], lon_g[idx % G.nlon])   # [n, c, 3]
            n, c = idx.shape
            p, v = _refine(a.repeat_interleave(c, 0), p0.reshape(-1, 3), L, step0=2 * G.spacing_rad,
                           iters=refine_iters)
            p, v = p.reshape(n, c, 3), v.reshape(n, c)
            if k > 1:
                sel, ok = _greedy_separated(p, v, k, sep)                   # [n, k]
                p, v = p.gather(1, sel[..., None].expand(-1, -1, 3)), v.gather(1, sel)
                if not bool(ok.all()):                                      # fewer separated modes than k
                    p, v = _fill(p, v, ok, f, lat_g, lon_g, sep)
                    order = v.argsort(1, descending=True)
                    p, v = p.gather(1, order[..., None].expand(-1, -1, 3)), v.gather(1, order)
        la, lo = geo.xyz_to_latlon(p)
        lats.append(la), lons.append(lo), vals.append(v.to(coeffs.dtype))
    lat, lon, val = torch.cat(lats), torch.cat(lons), torch.cat(vals)
    return (lat[0], lon[0], val[0]) if single else (lat, lon, val)


def _separation_deg(L: int, min_separation_deg: float | None) -> float:
    """The decoder's separation: ``min_separation_deg``, default 180/(L+1) degrees."""
    return 180.0 / (L + 1) if min_separation_deg is None else float(min_separation_deg)


def max_modes(L: int, oversample: int = 2, min_separation_deg: float | None = None) -> int:
    """The most modes ``decode`` returns per field: the number of points pairwise at least the
    separation s apart that its greedy choice is sure to find.

    The fill grid (every other point of ``grid(L, oversample)``) has spacing d = π/(2·oversample·(L+1)),
    so every point of the sphere lies within h = d/√2 of a grid point. When the greedy choice stops,
    every grid point lies within s of a chosen point, so caps of radius s + h around the chosen
    points cover the sphere: their number is at least 4π / (2π (1 - cos(s + h))). With s = 0 it is
    the number of grid points.
    """
    L = _check_degree(L)
    G = grid(L, oversample)
    n_grid = ((G.nlat + 1) // 2) * ((G.nlon + 1) // 2)
    s = math.radians(_separation_deg(L, min_separation_deg))
    if s == 0:
        return n_grid
    h = 2 * G.spacing_rad / math.sqrt(2)
    return max(1, min(n_grid, int(2 / (1 - math.cos(min(math.pi, s + h))))))


def _greedy_separated(p: torch.Tensor, v: torch.Tensor, k: int, sep: float,
                      taken: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy choice by value of k of the c candidates (unit vectors p [n, c, 3], values v [n, c]),
    each at least ``sep`` rad from those chosen before and from the points ``taken`` [n, t, 3]
    (NaN rows ignored). Returns (indices [n, k], ok [n, k]: False where no candidate was left; the
    index there repeats the last valid one)."""
    n, c = v.shape
    cos_sep = math.cos(sep)
    avail = torch.ones(n, c, dtype=torch.bool, device=v.device)
    if taken is not None:
        near = (torch.einsum("ncd,ntd->nct", p.to(taken.dtype), taken) > cos_sep).any(2)
        avail &= ~near
    rows = torch.arange(n, device=v.device)
    idx, ok = [], []
    for _ in range(k):
        j = torch.where(avail, v, torch.full_like(v, -math.inf)).argmax(1)
        good = avail[rows, j]
        if idx:
            j = torch.where(good, j, idx[-1])
        idx.append(j), ok.append(good)
        q = p[rows, j]                                                     # [n, 3]
        near = (p * q[:, None]).sum(-1) > cos_sep
        near[rows, j] = True
        avail &= ~(near & good[:, None])
    return torch.stack(idx, 1), torch.stack(ok, 1)


def _fill(p: torch.Tensor, v: torch.Tensor, ok: torch.Tensor, f: torch.Tensor, lat_g, lon_g, sep: float):
    """Replace the slots of p [n, k, 3], v [n, k] that are not ``ok`` by the highest points of every
    other node of the field grid f [n, H, W] that are at least ``sep`` from the modes kept."""
    rows = (~ok).any(1).nonzero()[:, 0]
    fs = f[rows][:, ::2, ::2]                                              # [r, H/2, W/2]
    la, lo = torch.meshgrid(lat_g[::2], lon_g[::2], indexing="ij")
    q = geo.latlon_to_xyz(la.reshape(-1), lo.reshape(-1)).to(p.dtype)      # [G, 3]
    kept = torch.where(ok[rows][..., None], p[rows], torch.full_like(p[rows], math.nan))
    need = int((~ok[rows]).sum(1).max())
    sel, good = _greedy_separated(q.expand(len(rows), -1, -1), fs.flatten(1).to(v.dtype), need, sep,
                                  taken=kept)                 # NaN rows compare False: ignored
    p, v = p.clone(), v.clone()
    for r_i, r in enumerate(rows.tolist()):
        slots = (~ok[r]).nonzero()[:, 0]
        p[r, slots] = q[sel[r_i, :len(slots)]]
        v[r, slots] = fs[r_i].flatten()[sel[r_i, :len(slots)]].to(v.dtype)
    return p, v


class MemoryWarning(UserWarning):
    """A call whose working memory is large enough to matter (the estimate is in the message)."""


def _warn_memory(nbytes: int, what: str, limit: int = 2 << 30) -> None:
    if nbytes > limit:
        import warnings

        warnings.warn(f"{what} needs about {nbytes / 2 ** 30:.1f} GiB of working memory", MemoryWarning,
                      stacklevel=3)


# ----------------------------------------------------------------------------- densities
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
