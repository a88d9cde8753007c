"""The decoder: the k highest separated modes of a field, by grid search and Newton refinement."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import geo
from ..checks import is_real
from ._sizes import _as_coeffs, _check_degree, _check_taper_width, _device_float64, _warn_memory
from .fast import _legendre_sums
from .legendre import _cos_sin_sum, _order_weights, _trig, _zsphi_from_xyz
from .transform import _pairs_field, grid, taper_weights


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
    coeffs, L, single, chunk, refine_iters = _check_decode(coeffs, k, taper_width, oversample, refine_iters,
                                                           min_separation_deg, chunk)
    device, work = coeffs.device, _device_float64(coeffs.device)
    sep = math.radians(_separation_deg(L, min_separation_deg))
    w = taper_weights(L, taper, taper_width).to(device=device, dtype=work)
    G = grid(L, oversample, device=device)
    _warn_memory(min(chunk, coeffs.shape[0]) * G.nlat * G.nlon * 4 * (3 if k > 1 else 1)
                 + G.P.numel() * G.P.element_size(), f"decode at L = {L}, oversample = {oversample}, chunk = {chunk}")
    if coeffs.shape[0] == 0:                          # an empty batch: empty answers of the right shapes
        empty = torch.empty(0, k, dtype=work, device=device)
        return empty, empty.clone(), empty.to(coeffs.dtype)
    lats, lons, vals = [], [], []
    buffer = torch.empty(min(chunk, coeffs.shape[0]), G.nlat, G.nlon, device=device)  # reused grid
    for i in range(0, coeffs.shape[0], chunk):
        a = coeffs[i:i + chunk].detach().to(work) * w
        with torch.no_grad():
            f = G.synthesize(a.to(torch.float32), out=buffer[:a.shape[0]])  # [n, H, W]
            p, v = _modes_of_chunk(a, f, k, G, sep, refine_iters)
        la, lo = geo.xyz_to_latlon(p)
        lats.append(la), lons.append(lo), vals.append(v.to(coeffs.dtype))
    lat, lon, val = torch.cat(lats), torch.cat(lons), torch.cat(vals)
    return (lat[0], lon[0], val[0]) if single else (lat, lon, val)


def _check_decode(coeffs, k, taper_width, oversample, refine_iters, min_separation_deg, chunk):
    """``decode``'s arguments checked (ValueError naming the first wrong one): (coeffs [N, D], L,
    whether the input was 1-D, chunk, refine_iters)."""
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
    return coeffs, L, single, int(chunk), int(refine_iters)


def _modes_of_chunk(a: torch.Tensor, f: torch.Tensor, k: int, G, sep: float, refine_iters: int):
    """Steps 3-6 of ``decode`` for the smoothed fields a [n, D] (float64) and their grid values
    f [n, H, W]: unit vectors [n, k, 3] and values [n, k] of the k modes, highest first."""
    work, L = a.dtype, G.L
    lat_g, lon_g = G.lat.to(work), G.lon.to(work)
    if k == 1:                                # row maxima first: faster than a flat argmax
        row = f.amax(2).argmax(1)
        col = f[torch.arange(f.shape[0], device=f.device), row].argmax(1)
        idx = (row * G.nlon + col)[:, None]
    else:
        padded = F.pad(F.pad(f.unsqueeze(1), (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1), value=-math.inf)
        is_max = (f.unsqueeze(1) >= F.max_pool2d(padded, 3, stride=1)).squeeze(1)
        below = f.amax((1, 2), keepdim=True) - f.amin((1, 2), keepdim=True) + 1
        score = torch.where(is_max, f, f - below)                   # maxima rank first
        top = score.flatten(1).topk(min(4 * k + 4, f[0].numel()), dim=1)
        p_top = geo.latlon_to_xyz(lat_g[top.indices // G.nlon], lon_g[top.indices % G.nlon])
        sel, _ = _greedy_separated(p_top, top.values.to(work), min(k + 2, top.indices.shape[1]), sep)
        idx = top.indices.gather(1, sel)
    p0 = geo.latlon_to_xyz(lat_g[idx // G.nlon], lon_g[idx % G.nlon])   # [n, c, 3]
    n, c = idx.shape
    p, v = _refine(a.repeat_interleave(c, 0), p0.reshape(-1, 3), L, step0=2 * G.spacing_rad, iters=refine_iters)
    p, v = p.reshape(n, c, 3), v.reshape(n, c)
    if k > 1:
        sel, ok = _greedy_separated(p, v, k, sep)                   # [n, k]
        p, v = p.gather(1, sel[..., None].expand(-1, -1, 3)), v.gather(1, sel)
        if not bool(ok.all()):                                      # fewer separated modes than k
            p, v = _fill(p, v, ok, f, lat_g, lon_g, sep)
            order = v.argsort(1, descending=True)
            p, v = p.gather(1, order[..., None].expand(-1, -1, 3)), v.gather(1, order)
    return p, v


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
