"""Experiments on the SHDD codec itself (notebook 01): resolution, robustness to noise, speed.

Each function returns a tidy pandas DataFrame, so notebooks only plot and discuss.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import geo, shdd


def half_widths(degrees: Sequence[int]) -> pd.DataFrame:
    """Half width at half maximum (km) of one point's field against L: measured vs closed form.

    Measured: bisection on γ for f(γ) = f(0)/2 along a meridian from the north pole, with the
    field evaluated by ``shdd.field`` (the main lobe falls monotonically from γ = 0 to its first
    zero near 3.83/(L+1) rad, so the half-maximum crossing is unique there).
    Closed form: ``shdd.peak_half_width(L)`` = 2.2151/(L+1) rad (Mehler–Heine asymptotics).
    """
    rows = []
    for L in degrees:
        a = shdd.encode(90.0, 0.0, L, dtype=torch.float64)
        peak = float(shdd.field(a, 90.0, 0.0))
        lo, hi = 0.0, 3.0 / (L + 1)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if float(shdd.field(a, 90.0 - math.degrees(mid), 0.0)) > peak / 2:
                lo = mid
            else:
                hi = mid
        rows.append({"L": L, "measured_km": lo * geo.EARTH_RADIUS_KM,
                     "closed_form_km": shdd.peak_half_width(L) * geo.EARTH_RADIUS_KM,
                     "resolution_km_20000_over_L": 20000.0 / L})
    return pd.DataFrame(rows)


def noise_robustness(degrees: Sequence[int], noise_levels: Sequence[float], n_points: int,
                     seed: int = 0) -> pd.DataFrame:
    """Decoding error (km) when Gaussian noise is added to clean SHDD vectors.

    Noise level σ is relative to the RMS entry of a clean vector, which is 1/sqrt(4π) for every L
    (|Y(x)|² = (L+1)²/(4π) spread over (L+1)² entries): a = Y(x) + σ/sqrt(4π) · ε, ε ~ N(0, I).
    Returns one row per (L, σ) with median, mean and 90th-percentile error and the share < 25 km.
    """
    lat, lon = geo.uniform_points(n_points, seed)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for L in tqdm(degrees, desc="noise study (L)"):
        clean = shdd.encode(lat, lon, L)
        for sigma in noise_levels:
            noisy = clean + (sigma / math.sqrt(4 * math.pi)) * torch.randn(clean.shape, generator=gen)
            la, lo, _ = shdd.decode(noisy)
            d = geo.distance_km(lat, lon, la[:, 0].numpy(), lo[:, 0].numpy())
            rows.append({"L": L, "noise": sigma, "median_km": float(np.median(d)), "mean_km": float(d.mean()),
                         "p90_km": float(np.quantile(d, 0.9)), "acc25_%": 100 * float((d <= 25).mean())})
    return pd.DataFrame(rows)


def mixture_modes(lat: Sequence[float], lon: Sequence[float], L: int, weights: Sequence[float] | None = None):
    """Encode several points, average the encodings (weighted), decode the top-k modes (k = #points).

    Returns (coeffs [D], modes DataFrame with each mode's nearest true point and its distance in km).
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    w = np.full(len(lat), 1 / len(lat)) if weights is None else np.asarray(weights, float) / np.sum(weights)
    coeffs = (torch.as_tensor(w, dtype=torch.float32)[:, None] * shdd.encode(lat, lon, L)).sum(0)
    mlat, mlon, val = shdd.decode(coeffs, k=len(lat))
    d = geo.distance_km(mlat.numpy()[:, None], mlon.numpy()[:, None], lat[None], lon[None])
    modes = pd.DataFrame({"mode_lat": mlat.numpy(), "mode_lon": mlon.numpy(), "value": val.numpy(),
                          "nearest_point": d.argmin(1), "bias_km": d.min(1)})
    return coeffs, modes


def _best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def codec_speed(degrees: Sequence[int], n_points: int, repeats: int = 2, seed: int = 0) -> pd.DataFrame:
    """Encode throughput (points/s) and decode throughput (fields/s, k = 1) against L, on this machine.

    Encode: ``n_points`` random points per call; decode: n_points/4 clean encodings per call.
    Best of ``repeats`` after one warm-up call (which also builds the cached grids).
    """
    lat, lon = geo.uniform_points(n_points, seed)
    n_dec = max(1, n_points // 4)
    rows = []
    for L in tqdm(degrees, desc="speed (L)"):
        coeffs = shdd.encode(lat[:n_dec], lon[:n_dec], L)
        shdd.decode(coeffs[:2]), shdd.encode(lat[:10], lon[:10], L)
        t_enc = _best_time(lambda: shdd.encode(lat, lon, L), repeats)
        t_dec = _best_time(lambda: shdd.decode(coeffs), repeats)
        rows.append({"L": L, "D": shdd.num_coeffs(L), "encode_points_per_s": n_points / t_enc,
                     "decode_fields_per_s": n_dec / t_dec, "threads": torch.get_num_threads()})
    return pd.DataFrame(rows)
