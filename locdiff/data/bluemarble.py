"""BlueMarble-Geo, the embedded benchmark: where on Earth was this satellite tile taken?

Locations are GeoNames places drawn with probability ∝ population^α (α = 0.5 by default), each
moved by a Gaussian jitter of a few km, which makes them dense in Europe, North America and East
Asia and present on every inhabited continent, like photo-sharing data. Each location becomes a
north-up Blue Marble tile (``tiles.TileRenderer``). Splits, all seeded:

- ``train``, ``val``: the population-weighted distribution, outside the held-out cells;
- ``test_iid``: the same distribution, separate draws (analogue of Im2GPS3k against MP16);
- ``test_uniform``: every place outside the held-out cells equally likely, whatever its population
  (analogue of GWS15k, which covers land more evenly than Flickr);
- ``test_unseen``: population-weighted places inside held-out cells: a seeded set of ~1000 km
  equal-area cells (``cells.CellGrid``) holding about 15% of the places, where no train or val
  location ever falls (jittered points that cross a cell border are redrawn).

Each split is cached under ``data/cache/`` as a compressed ``.npz`` (uint8 tiles, lat, lon,
country, continent, population, place id and name), keyed by the settings and the seed, written
atomically, with SHA-256 checksums in a JSON manifest; a missing or corrupt file is rebuilt with a
message saying why.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import geo
from ..io import atomic_write, cache_problem, savez, sha256
from ..profiles import DataSettings
from .cells import CellGrid
from .places import load_places
from .tiles import TileRenderer

SPLITS = ("train", "val", "test_iid", "test_uniform", "test_unseen")
FORMAT_VERSION = 2
_FIELDS = ("tiles", "lat", "lon", "country", "continent", "population", "place_id", "place_name")


@dataclass
class Split:
    """One split: tiles [N, 3, S, S] uint8 and per-tile metadata (numpy arrays of length N)."""

    name: str
    tiles: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray
    continent: np.ndarray
    population: np.ndarray
    place_id: np.ndarray
    place_name: np.ndarray

    def __len__(self) -> int:
        return len(self.lat)

    def frame(self) -> pd.DataFrame:
        """The metadata as a DataFrame (no tiles)."""
        return pd.DataFrame({f: getattr(self, f) for f in _FIELDS if f != "tiles"})


def summary(splits: dict[str, Split]) -> pd.DataFrame:
    """Counts, distinct places, median population and continent shares (%) per split."""
    from .places import CONTINENTS

    rows = []
    for name, s in splits.items():
        row = {"split": name, "tiles": len(s), "places": len(np.unique(s.place_id)),
               "median population": int(np.median(s.population))}
        for code in ("EU", "AS", "NA", "SA", "AF", "OC"):
            row[CONTINENTS[code]] = 100.0 * float(np.mean(s.continent == code))
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def check_split(name: str) -> str:
    if name not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {name!r}")
    return name


def cache_dir() -> Path:
    """``$LOCDIFF_CACHE`` or, when it is not set, ``<repo>/data/cache`` (created).

    ValueError naming LOCDIFF_CACHE when the variable is set but empty, or when the folder cannot be
    used: it is a file, lies under a file, cannot be created, or is not writable.
    """
    raw = os.environ.get("LOCDIFF_CACHE")
    if raw is not None and not raw.strip():
        raise ValueError("LOCDIFF_CACHE is set but empty; set it to a writable folder for the caches, or unset it "
                         "to use <repo>/data/cache")
    if raw is not None:
        d = Path(raw).expanduser()
    else:
        from ..plots import repo_root         # (imports matplotlib: only when needed)

        d = repo_root() / "data" / "cache"
    where = f"LOCDIFF_CACHE={raw}" if raw is not None else f"the default cache folder {d} (LOCDIFF_CACHE is not set)"
    fix = "set LOCDIFF_CACHE to a writable folder"
    try:
        blocker = next((p for p in (d, *d.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            what = "is a file" if blocker == d else f"lies under the file {blocker}"
            raise ValueError(f"{where}: the cache folder {d} {what}, not a folder; {fix}")
        d.mkdir(parents=True, exist_ok=True)
    except OSError as err:                    # a name too long, a permission denied, a read-only file system
        raise ValueError(f"{where}: cannot create the cache folder {d} ({err.strerror or err}); {fix}") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise ValueError(f"{where}: the cache folder {d} is not writable; {fix}")
    return d


def settings_key(settings: DataSettings, seed: int) -> str:
    """Short hash of everything that determines the data (settings, seed, format version)."""
    blob = json.dumps({"settings": asdict(settings), "seed": int(seed), "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def heldout_cells(settings: DataSettings, seed: int) -> np.ndarray:
    """Ids of the held-out cells: cells with places, in a seeded random order, taken until they
    hold at least ``holdout_share`` of all places."""
    places = load_places(settings.min_population)
    grid = CellGrid(settings.cell_km)
    cell = grid.cell_of(places.lat.values, places.lon.values)
    cells, counts = np.unique(cell, return_counts=True)
    order = np.random.default_rng([seed, 7919]).permutation(len(cells))
    share = np.cumsum(counts[order]) / len(places)
    n = int(np.searchsorted(share, settings.holdout_share) + 1)
    return np.sort(cells[order[:n]])


def _draw(pool: pd.DataFrame, n: int, weights: np.ndarray, rng, jitter_km: float, keep) -> tuple:
    """n jittered draws from pool (probabilities ``weights``) whose positions satisfy ``keep``."""
    idx_all, lat_all, lon_all, have = [], [], [], 0
    p = weights / weights.sum()
    while have < n:
        m = int((n - have) * 1.3) + 16
        idx = rng.choice(len(pool), size=m, p=p)
        dx, dy = rng.normal(0.0, jitter_km, (2, m))
        lat, lon = geo.destination(pool.lat.values[idx], pool.lon.values[idx],
                                   np.degrees(np.arctan2(dx, dy)), np.hypot(dx, dy))
        ok = keep(lat, lon)
        idx_all.append(idx[ok]), lat_all.append(lat[ok]), lon_all.append(lon[ok])
        have += int(ok.sum())
    return (np.concatenate(idx_all)[:n], np.concatenate(lat_all)[:n], np.concatenate(lon_all)[:n])


def build(settings: DataSettings, seed: int, progress: bool = True) -> dict[str, Split]:
    """Sample every split and render its tiles (no caching; see ``load``)."""
    places = load_places(settings.min_population)
    grid = CellGrid(settings.cell_km)
    held = heldout_cells(settings, seed)
    in_held = np.isin(grid.cell_of(places.lat.values, places.lon.values), held)
    seen, unseen = places[~in_held].reset_index(drop=True), places[in_held].reset_index(drop=True)

    def outside(lat, lon):
        return ~np.isin(grid.cell_of(lat, lon), held)

    def inside(lat, lon):
        return np.isin(grid.cell_of(lat, lon), held)

    def pop_w(df):
        return np.maximum(df.population.values, settings.min_population).astype(float) ** settings.alpha

    plan = {
        "train": (seen, settings.n_train, pop_w(seen), outside),
        "val": (seen, settings.n_val, pop_w(seen), outside),
        "test_iid": (seen, settings.n_test, pop_w(seen), outside),
        "test_uniform": (seen, settings.n_test, np.ones(len(seen)), outside),
        "test_unseen": (unseen, settings.n_test, pop_w(unseen), inside),
    }
    renderer = TileRenderer(settings.tile_size, settings.footprint_km)
    out = {}
    for i, (name, (pool, n, w, keep)) in enumerate(plan.items()):
        rng = np.random.default_rng([seed, i])
        idx, lat, lon = _draw(pool, n, w, rng, settings.jitter_km, keep)
        rows = pool.iloc[idx]
        out[name] = Split(
            name=name, tiles=renderer.render(lat, lon, progress=progress).numpy(), lat=lat, lon=lon,
            country=rows.country.to_numpy(dtype="U2"), continent=rows.continent.to_numpy(dtype="U2"),
            population=rows.population.to_numpy(dtype=np.int64), place_id=rows.place_id.to_numpy(dtype=np.int64),
            place_name=rows.name.to_numpy(dtype=str),
        )
    return out






def _paths(settings: DataSettings, seed: int) -> tuple[Path, dict[str, Path]]:
    key = settings_key(settings, seed)
    d = cache_dir()
    return d / f"bluemarble-{key}.json", {s: d / f"bluemarble-{key}-{s}.npz" for s in SPLITS}


def load(settings: DataSettings, seed: int = 0, splits=SPLITS, progress: bool = True) -> dict[str, Split]:
    """The requested splits, from the cache, building (and caching) every split when needed."""
    splits = [check_split(s) for s in ([splits] if isinstance(splits, str) else splits)]
    manifest, files = _paths(settings, seed)
    problem, _ = cache_problem(manifest, files, "no cached copy for these settings")
    if problem is None:
        try:
            return {name: _read(files[name], name) for name in splits}
        except (OSError, ValueError, KeyError) as err:
            problem = f"a cached file cannot be read ({err})"
    if problem is not None:
        print(f"BlueMarble-Geo: building the benchmark ({problem}); cache: {manifest.parent}")
        data = build(settings, seed, progress=progress)
        sums = {}
        for name, split in data.items():
            arrays = {f: getattr(split, f) for f in _FIELDS}
            atomic_write(files[name], lambda tmp: savez(tmp, **arrays))
            sums[name] = sha256(files[name])
        meta = {"format": FORMAT_VERSION, "seed": int(seed), "settings": asdict(settings), "sha256": sums}
        atomic_write(manifest, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
        return {s: data[s] for s in splits}



def _read(path: Path, name: str) -> Split:
    with np.load(path, allow_pickle=False) as z:
        return Split(name=name, **{f: z[f] for f in _FIELDS})


def load_split(name: str, settings: DataSettings, seed: int = 0) -> Split:
    """One split (see ``load``)."""
    return load(settings, seed, [name])[name]
