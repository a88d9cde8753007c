"""Independent oracles shared by the tests (plain numpy, written from the textbook formulas).

Nothing here calls ``locdiff``: the tests compare the package against these.
"""
from __future__ import annotations

import os

# Under pytest-xdist (``make unit`` runs ``-n auto``) every worker shares the cores: give each its
# share of threads, or torch's and numba's pools oversubscribe them and spin (minutes, not seconds).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = _THREADS        # before numba is imported; inherited by the tests' subprocesses

# Independent runs train one after the other here (locdiff.parallel): tests that replace a function
# (monkeypatch) must see it called in this process. The tests of the parallel path set it themselves.
os.environ.setdefault("LOCDIFF_WORKERS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

if _WORKERS > 1:
    torch.set_num_threads(int(_THREADS))

R_KM = 6371.0


def haversine_km(lat1, lon1, lat2, lon2, radius_km: float = R_KM) -> np.ndarray:
    """Great-circle distance by the haversine formula, float64, degrees in, km out."""
    p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * radius_km * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def destination(lat, lon, bearing_deg, dist_km, radius_km: float = R_KM):
    """Destination point at ``dist_km`` along the initial ``bearing_deg`` (clockwise from north).

    lat2 = asin(sin φ1 cos δ + cos φ1 sin δ cos θ),
    lon2 = λ1 + atan2(sin θ sin δ cos φ1, cos δ - sin φ1 sin φ2);  δ = d / R.
    """
    p1, l1, b = np.radians(lat), np.radians(lon), np.radians(bearing_deg)
    d = np.asarray(dist_km, dtype=np.float64) / radius_km
    p2 = np.arcsin(np.clip(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(b), -1, 1))
    l2 = l1 + np.arctan2(np.sin(b) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    return np.degrees(p2), (np.degrees(l2) + 180.0) % 360.0 - 180.0


def uniform_sphere(n: int, seed: int):
    """n area-uniform points (lat, lon) in degrees, drawn with numpy alone."""
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


@pytest.fixture(scope="session")
def haversine():
    return haversine_km


@pytest.fixture(scope="session")
def dest_point():
    return destination


@pytest.fixture(scope="session")
def sphere_points():
    return uniform_sphere


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: small tensors gain nothing from more, and a busy machine makes threads spin."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Never touch <repo>/data/cache: every test gets its own cache folder."""
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
