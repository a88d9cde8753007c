"""Approximately equal-area cells on the sphere, for holding out whole regions.

Latitude bands of height ``cell_km`` (about 9° for 1000 km); band b is cut into
n_b = max(1, round(A_b / cell_km²)) cells of equal longitude width, where A_b = 2πR²(sin φ_top -
sin φ_bottom) is the band's area. Within a band the cells are exactly equal in area; across bands
they differ only by the rounding of n_b (a few percent, more in the two polar caps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import geo


@dataclass(frozen=True)
class CellGrid:
    cell_km: float = 1000.0

    def __post_init__(self):
        if not (math.isfinite(self.cell_km) and 100 <= self.cell_km <= 5000):
            raise ValueError(f"cell_km must lie in [100, 5000] km; got {self.cell_km!r}")

    @cached_property
    def band_deg(self) -> float:
        """Height of a latitude band in degrees (180 / number of bands)."""
        n = max(1, round(math.pi * geo.EARTH_RADIUS_KM / self.cell_km))
        return 180.0 / n

    @cached_property
    def n_lon(self) -> np.ndarray:
        """Cells per band, south to north."""
        edges = np.radians(np.arange(-90.0, 90.0 + 1e-9, self.band_deg))
        area = 2 * math.pi * geo.EARTH_RADIUS_KM**2 * np.diff(np.sin(edges))
        return np.maximum(1, np.round(area / self.cell_km**2)).astype(np.int64)

    @cached_property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_lon)[:-1]])

    @property
    def n_cells(self) -> int:
        return int(self.n_lon.sum())

    def cell_of(self, lat, lon) -> np.ndarray:
        """Cell id (int64) of each point in degrees."""
        lat, lon = geo.validate_latlon(lat, lon)
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        band = np.minimum(((lat + 90.0) / self.band_deg).astype(np.int64), len(self.n_lon) - 1)
        n = self.n_lon[band]
        col = np.minimum(((lon + 180.0) / 360.0 * n).astype(np.int64), n - 1)
        return self.offsets[band] + col

    def bounds(self, cell: int) -> tuple[float, float, float, float]:
        """(lat_min, lat_max, lon_min, lon_max) of a cell, degrees."""
        band = int(np.searchsorted(self.offsets, cell, side="right") - 1)
        col = int(cell - self.offsets[band])
        width = 360.0 / self.n_lon[band]
        lat0 = -90.0 + band * self.band_deg
        return lat0, lat0 + self.band_deg, -180.0 + col * width, -180.0 + (col + 1) * width
