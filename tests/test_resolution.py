"""The resolution of a degree-L field (locdiff.resolution) against independent oracles: scipy's
Legendre polynomials for the kernel, the decoder itself on two-point mixtures, and hand-computed
nearest-neighbour distances."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import eval_legendre

from locdiff import geo, resolution, shdd


@pytest.mark.parametrize("L", [4, 16, 64])
def test_kernel_matches_scipy_legendre_and_the_decoded_field(L):
    theta = np.linspace(0, np.pi, 37)
    w = np.exp(-np.arange(L + 1) * np.arange(1, L + 2) / (2 * (0.35 * (L + 1)) ** 2))
    oracle = sum((2 * l + 1) / (4 * np.pi) * w[l] * eval_legendre(l, np.cos(theta)) for l in range(L + 1))
    np.testing.assert_allclose(resolution.kernel(L, theta), oracle, rtol=1e-9, atol=1e-12)
    # the same kernel is what the decoder evaluates around one encoded point (field_pairs, tapered)
    a = shdd.encode(torch.tensor([0.0]), torch.tensor([0.0]), L, dtype=torch.float64)
    lat = torch.tensor(np.degrees(theta[None, :19]))         # along a meridian up to the pole
    got = shdd.field_pairs(a, lat, torch.zeros_like(lat)).numpy()[0]
    np.testing.assert_allclose(got, oracle[:19], rtol=1e-6, atol=1e-8)


def _top_mode_error_km(L: int, sep_km: float) -> float:
    """Distance from the decoded top mode of an equal two-point mixture to the nearer point."""
    lat2, lon2 = geo.destination(10.0, 20.0, 90.0, sep_km)
    lat = torch.tensor([10.0, float(lat2)])
    lon = torch.tensor([20.0, float(lon2)])
    field = shdd.encode(lat, lon, L, dtype=torch.float64).mean(0, keepdim=True)
    mlat, mlon, _ = shdd.decode(field, k=1)
    return float(min(geo.distance_km(mlat[0, 0].item(), mlon[0, 0].item(), la, lo) for la, lo in zip(lat.tolist(), lon.tolist())))


@pytest.mark.parametrize("L", [16, 64])
def test_merge_distance_separates_one_mode_from_two(L):
    d = resolution.merge_distance_km(L)
    inside, outside = _top_mode_error_km(L, 0.8 * d), _top_mode_error_km(L, 1.3 * d)
    assert inside > 0.3 * d, "below the merge distance the mode lies between the points"
    assert outside < 0.15 * d, "beyond it the mode sits on (or next to) one of the points"


def test_merge_distance_shrinks_like_one_over_L():
    d = {L: resolution.merge_distance_km(L) for L in (16, 32, 64, 128)}
    assert d[16] > d[32] > d[64] > d[128]
    for L in (32, 64, 128):
        assert (L + 1) * d[L] == pytest.approx(17 * d[16], rel=0.1)
    # K'' = 0 there, checked by finite differences on scipy's kernel
    theta_i = d[64] / 2 / geo.EARTH_RADIUS_KM
    w = np.exp(-np.arange(65) * np.arange(1, 66) / (2 * (0.35 * 65) ** 2))
    K = lambda t: sum((2 * l + 1) * w[l] * eval_legendre(l, np.cos(t)) for l in range(65))  # noqa: E731
    h = 1e-4
    second = lambda t: (K(t + h) - 2 * K(t) + K(t - h)) / h**2  # noqa: E731
    assert second(0.95 * theta_i) < 0 < second(1.05 * theta_i)


def test_nearest_other_against_hand_computed_distances(haversine):
    ref_lat = np.array([0.0, 0.0, 0.0, 45.0])
    ref_lon = np.array([0.0, 0.1, 2.0, 0.0])          # 11 km and 222 km east of the first point
    d = resolution.nearest_other_km([0.0, 45.0, -80.0], [0.0, 0.0, 0.0], ref_lat, ref_lon, exclude_km=25.0)
    assert d[0] == pytest.approx(haversine(0.0, 0.0, 0.0, 2.0))     # 0 and 11 km are "its own place"
    assert d[1] == pytest.approx(haversine(45.0, 0.0, 0.0, 0.0))          # its own place excluded
    assert d[2] == pytest.approx(haversine(-80.0, 0.0, 0.0, 0.0))
    assert np.isinf(resolution.nearest_other_km([0.0], [0.0], [0.0], [0.05], exclude_km=25.0)).all()
    with pytest.raises(ValueError, match="exclude_km"):
        resolution.nearest_other_km([0.0], [0.0], [1.0], [1.0], exclude_km=-1)


def test_nearest_of_all_by_kd_tree_matches_brute_force_haversine(haversine):
    """exclude_km=None takes a k-d tree path: the same distances as the minimum of every haversine
    (random points, poles and the antimeridian included); no reference point gives inf."""
    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.uniform(-90, 90, 200), [90.0, -90.0, 0.0]])
    lon = np.concatenate([rng.uniform(-180, 180, 200), [0.0, 0.0, 179.99]])
    ref_lat, ref_lon = rng.uniform(-90, 90, 500), rng.uniform(-180, 180, 500)
    ref_lat[0], ref_lon[0] = 0.0, -179.99                # 2.2 km across the antimeridian from the last point
    want = np.array([min(haversine(a, b, c, d) for c, d in zip(ref_lat, ref_lon)) for a, b in zip(lat, lon)])
    got = resolution.nearest_other_km(lat, lon, ref_lat, ref_lon, exclude_km=None)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-6)
    assert got[-1] < 2.3
    for exclude in (None, 25.0):
        assert np.isinf(resolution.nearest_other_km([0.0], [0.0], [], [], exclude_km=exclude)).all()
    with pytest.raises(ValueError, match="L must be"):
        resolution.merge_distance_km(-1)


def test_mode_errors_of_an_oracle_denoiser():
    """A denoiser that returns x_t / √ᾱ_t (exact at t = 0): its mode is the truth at t = 0 and
    drifts away as the noise grows, measured against the haversine distance."""
    from dataclasses import replace

    from locdiff import experiment, profiles, spectrum

    S = replace(profiles.get("smoke").locdiff, L=16, schedule_shift=1.0)
    ld = experiment.build(S, embed_dim=4, seed=0)

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x_t, t, emb):
            return x_t / ld.diffusion.abar[t].sqrt().to(x_t.dtype)[:, None]

    ld.model = Oracle()
    lat, lon = geo.uniform_points(60, seed=3)
    out = spectrum.mode_errors(ld, torch.zeros(60, 4), lat, lon, [0, 990], seed=0).set_index("t")
    assert out.loc[0, "acc@25km"] == 1.0 and out.loc[0, "median_km"] < 5.0
    assert out.loc[990, "median_km"] > 1000.0 and out.loc[990, "acc@750km"] < 0.5
