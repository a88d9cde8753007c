"""Distribution scores (locdiff.calibration) against closed forms, quadrature and self-consistency."""
import math

import numpy as np
import pytest
import torch

from locdiff import calibration, geo, shdd


def test_kde_density_integrates_to_one_and_peaks_at_the_closed_form():
    k = calibration.kappa(500.0)                                    # σ = 500 km
    s = torch.from_numpy(geo.latlon_to_xyz(np.array([[10.0, -40.0]]), np.array([[20.0, 100.0]])))   # [1, 2, 3]
    G = shdd.grid(60, 2, dtype=torch.float64)
    lat, lon = torch.meshgrid(G.lat, G.lon, indexing="ij")
    y = torch.from_numpy(geo.latlon_to_xyz(lat.reshape(-1).numpy(), lon.reshape(-1).numpy()))[None]
    p = calibration.kde_logpdf(s, y, k).exp().reshape(G.nlat, G.nlon)
    assert float((p * G.weights).sum()) == pytest.approx(1.0, abs=1e-3)
    # at a sample, far from the other: ½ κ/(4π sinh κ) e^κ, mixed with the uniform floor
    at = float(calibration.kde_logpdf(s, s[:, :1], k).exp())
    want = (1 - calibration.UNIFORM_MIX) * 0.5 * k / (2 * math.pi * (1 - math.exp(-2 * k))) \
        + calibration.UNIFORM_MIX / (4 * math.pi)
    assert at == pytest.approx(want, rel=1e-6)


def test_vmf_draws_have_the_closed_form_mean_cosine():
    k = 20.0
    mu = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(200_000, 3).contiguous()
    y = calibration.sample_vmf(mu, k, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(y.norm(dim=1).numpy(), 1.0, atol=1e-12)
    assert float(y[:, 2].mean()) == pytest.approx(1 / math.tanh(k) - 1 / k, abs=2e-3)   # E[w] = coth κ - 1/κ
    assert abs(float(y[:, 0].mean())) < 5e-3 and abs(float(y[:, 1].mean())) < 5e-3


def test_truths_drawn_from_the_predicted_density_are_calibrated():
    """If every truth is a draw from the method's own density, the HDR level is uniform: coverage = α."""
    rng = np.random.default_rng(0)
    B, n, width = 400, 8, 300.0
    slat, slon = rng.uniform(-60, 60, (B, n)), rng.uniform(-180, 180, (B, n))
    S = torch.from_numpy(geo.latlon_to_xyz(slat, slon))
    g = torch.Generator().manual_seed(1)
    centre = S[torch.arange(B), torch.randint(0, n, (B,), generator=g)]
    x = calibration.sample_vmf(centre, calibration.kappa(width), g)
    lat, lon = geo.xyz_to_latlon(x.numpy())
    nll, level = calibration.kde_scores(slat, slon, lat, lon, width, draws=2000)
    cov = calibration.coverage(level, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(cov, [0.1, 0.5, 0.9], atol=0.06)
    # and truths far from every sample are not: they sit outside every HDR below ~1
    far_nll, far_level = calibration.kde_scores(slat, slon, -lat, np.asarray(lon) - 180 * np.sign(lon), width)
    assert far_nll.mean() > nll.mean() + 3 and (far_level > 0.9).mean() > 0.8


def test_cell_scores_by_hand():
    prob = np.array([[0.5, 0.3, 0.2]])
    area = np.array([1.0, 0.5, 2.0])                   # densities 0.5, 0.6, 0.1 (before the floor)
    eps = calibration.UNIFORM_MIX
    for cell, denser_mass in ((0, 0.3), (1, 0.0), (2, 0.8)):
        nll, level = calibration.cell_scores(prob, area, np.array([cell]))
        d = (1 - eps) * prob[0, cell] / area[cell] + eps / (4 * math.pi)
        assert nll[0] == pytest.approx(-math.log(d))
        floor_mass = eps / (4 * math.pi) * area[(prob[0] / area) > prob[0, cell] / area[cell]].sum()
        assert level[0] == pytest.approx((1 - eps) * denser_mass + floor_mass)
    nll, level = calibration.cell_scores(prob, area, np.array([-1]))       # the truth in no cell
    assert nll[0] == pytest.approx(-math.log(eps / (4 * math.pi))) and level[0] == pytest.approx(1.0, abs=0.01)


def test_kappa_refuses_widths_outside_its_range():
    with pytest.raises(ValueError, match=r"width_km must be a number of km in \[1, 20000\]"):
        calibration.kappa(0.0)


def test_sample_spread_is_the_mean_pairwise_great_circle_distance():
    lat = np.array([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    lon = np.array([[0.0, 90.0, 180.0], [5.0, 5.0, 5.0]])
    quarter = math.pi / 2 * geo.EARTH_RADIUS_KM
    # pairs (0,90): quarter, (0,180): half, (90,180): quarter, each counted twice over 6 ordered pairs
    np.testing.assert_allclose(calibration.sample_spread_km(lat, lon), [(4 * quarter + 2 * 2 * quarter) / 6, 0.0],
                               atol=1e-2)   # arccos near 1: centimetres
