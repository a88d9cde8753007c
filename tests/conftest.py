"""What the tests share: independent oracles, and a few helpers that build test inputs.

The oracles (plain numpy and scipy, written from the textbook formulas) never call ``locdiff``:
the tests compare the package against them. The helpers at the end (``make_tiles``, ``run_cli``,
the ``tiny`` pipeline fixture) only build inputs. Test files import them from here
(``from conftest import ...``), never from one another.
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

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.special as sps  # noqa: E402
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


def degree_order(L: int) -> tuple[np.ndarray, np.ndarray]:
    """Degree l and order m of each flat index l² + l + m, l = 0..L."""
    ls = np.concatenate([np.full(2 * l + 1, l) for l in range(L + 1)])
    ms = np.concatenate([np.arange(-l, l + 1) for l in range(L + 1)])
    return ls, ms


def scipy_basis(L, lat, lon):
    """[n, (L+1)²] real orthonormal harmonics without the Condon-Shortley phase, from scipy's complex
    ``sph_harm_y`` (which carries the phase): m > 0 √2 (-1)^m Re Y_l^m, m < 0 √2 (-1)^|m| Im Y_l^|m|."""
    ls, ms = degree_order(L)
    theta = np.radians(90.0 - np.atleast_1d(np.asarray(lat, dtype=np.float64)))[:, None]
    phi = np.radians(np.atleast_1d(np.asarray(lon, dtype=np.float64)))[:, None]
    y = sps.sph_harm_y(ls, np.abs(ms), theta, phi)
    sign = (-1.0) ** np.abs(ms)
    return np.where(ms == 0, y.real, np.where(ms > 0, math.sqrt(2) * sign * y.real, math.sqrt(2) * sign * y.imag))


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


# ----------------------------------------------------------------------------- helpers (build inputs)
def make_tiles(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """n random RGB tiles [n, size, size, 3] uint8."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def run_cli(*args, cwd, timeout=600) -> subprocess.CompletedProcess:
    """Run the installed ``locdiff`` command (the console script beside this Python), else the module."""
    script = Path(sys.executable).parent / "locdiff"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "locdiff.cli"]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny():
    """An untrained smoke-sized pipeline (weights random but fixed): enough for I/O behaviour."""
    from locdiff import experiment, pipeline, profiles
    from locdiff.encoders import TileCNN

    P = profiles.get("smoke")
    torch.manual_seed(0)
    enc = TileCNN(P.encoder.widths, P.encoder.embed_dim)
    ld = experiment.build(P.locdiff, P.encoder.embed_dim, seed=0)
    meta = {"profile": "smoke", "seed": 0, "encoder": {"widths": list(P.encoder.widths), "embed_dim": P.encoder.embed_dim}}
    return pipeline.LocDiffPipeline(enc, ld, P.data.tile_size, meta, device="cpu")


class Lookup(torch.nn.Module):
    """x0-prediction 'network' that returns row argmax(emb) of a table, whatever x_t and t are: with
    the true latents as the table and one-hot embeddings, a denoiser that knows x0."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone(), requires_grad=False)
        self.config = type("Config", (), {"embed_dim": len(table)})()   # what sample() checks embeddings against

    def forward(self, x_t, t, emb, drop_cond=None):
        return self.table[emb.argmax(1)]


def lookup_locdiff(table: torch.Tensor, L: int):
    """A LocDiff (T = 1000, degree L) whose denoiser is ``Lookup(table)``."""
    from locdiff import experiment
    from locdiff.diffusion import Diffusion, DiffusionConfig
    from locdiff.profiles import LocDiffSettings

    return experiment.LocDiff(Lookup(table), Diffusion(DiffusionConfig(T=1000), L), LocDiffSettings(L=L))
