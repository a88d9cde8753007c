"""The latent's spectrum (latent.spectral_weights, band weights, schedule shift), the SHDD-KL
divergence (locdiff.divergence) and the band diagnostics (locdiff.spectrum), against closed forms."""
import math

import numpy as np
import pytest
import torch
from scipy.special import eval_legendre

from locdiff import diffusion, divergence, geo, latent, shdd, spectrum
from locdiff.diffusion import Diffusion, DiffusionConfig


# ---------------------------------------------------------------------------- spectral weights
@pytest.mark.parametrize("spec", latent.SPECTRA)
@pytest.mark.parametrize("L", [4, 16, 33])
def test_every_spectrum_keeps_unit_mean_square_and_decodes_the_same_point(spec, L):
    rng = np.random.default_rng(L)
    lat, lon = rng.uniform(-80, 80, 20), rng.uniform(-180, 180, 20)
    d = Diffusion(DiffusionConfig(spectrum=spec), L)
    z = d.encode(lat, lon)
    # addition theorem: Σ_m Y_lm² = (2l+1)/(4π), so Σ_l (2l+1) w_l² = (L+1)² gives mean square 1
    np.testing.assert_allclose((z.double() ** 2).mean(1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(d.to_coeffs(z).numpy(), shdd.encode(lat, lon, L).numpy(), atol=2e-6)
    plat, plon, _ = shdd.decode(d.to_coeffs(z))
    assert geo.distance_km(lat, lon, plat[:, 0].numpy(), plon[:, 0].numpy()).max() < 1.0


def test_spectral_weights_closed_forms():
    L = 10
    l = np.repeat(np.arange(L + 1), 2 * np.arange(L + 1) + 1)
    band = latent.spectral_weights(L, "band").numpy()
    np.testing.assert_allclose(band, math.sqrt(L + 1) / np.sqrt(2 * l + 1))          # (2l+1) w² = L+1 per band
    heat = latent.spectral_weights(L, "heat", 0.5).numpy()
    g = np.exp(-l * (l + 1) / (2 * (0.5 * (L + 1)) ** 2))
    np.testing.assert_allclose(heat, g * (L + 1) / np.sqrt((g ** 2).sum()))
    lam = diffusion.band_loss_weights(L, "band").numpy()
    assert lam.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(np.bincount(l, weights=lam), L + 1)                   # equal share per band
    decay = diffusion.band_loss_weights(L, "decay").numpy()
    assert decay.mean() == pytest.approx(1.0)
    share = np.bincount(l, weights=decay)                                                 # ∝ 1/√(l+1), sum (L+1)²
    np.testing.assert_allclose(share, (L + 1) ** 2 / np.sqrt(np.arange(1, L + 2)) / (1 / np.sqrt(np.arange(1, L + 2))).sum())
    with pytest.raises(ValueError, match="spectrum must be one of"):
        latent.spectral_weights(L, "pink")
    with pytest.raises(ValueError, match="band_weight must be one of"):
        DiffusionConfig(band_weight="l2")


def test_band_weighted_mse_is_the_weighted_mean_of_squared_errors():
    L = 3
    d = Diffusion(DiffusionConfig(band_weight="band", p_uncond=0.0), L)

    class Zero(torch.nn.Module):
        def forward(self, x, t, emb, drop_cond=None):
            return torch.zeros_like(x)

    x0 = d.encode([10.0, -20.0], [30.0, 40.0])
    out = d.loss(Zero(), x0, torch.zeros(2, 1))
    l = np.repeat(np.arange(L + 1), 2 * np.arange(L + 1) + 1)
    expected = (x0.double().numpy() ** 2 * ((L + 1) / (2 * l + 1))).mean()           # x0 target, prediction 0
    assert float(out["mse"]) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------- schedule shift
def test_schedule_shift_divides_the_snr_by_k_squared():
    k = 65 / 17
    a = diffusion.alpha_bar(1000).float()
    shifted = Diffusion(DiffusionConfig(schedule_shift=k), 64).abar
    snr, snr_s = a / (1 - a), shifted / (1 - shifted)
    ok = (a > 1e-6) & (a < 1 - 1e-6)
    np.testing.assert_allclose((snr / snr_s)[ok].numpy(), k ** 2, rtol=1e-3)
    # location SNR √SNR·(L+1): degree 64 shifted by (65/17) equals degree 16 unshifted at every t
    np.testing.assert_allclose(diffusion.location_snr(shifted.double(), 64)[ok].numpy(),
                               diffusion.location_snr(a.double(), 16)[ok].numpy(), rtol=1e-3)
    assert diffusion.shift_for_degree(64) == pytest.approx(k)
    with pytest.raises(ValueError, match="schedule_shift must be a number in"):
        DiffusionConfig(schedule_shift=0.0)


def test_a_noisy_latent_locates_its_point_by_itself_when_the_location_snr_is_high():
    """The matched-filter argument: with location SNR ≫ 5 the mode of x_t is at the point, with
    SNR ≪ 1 it is anywhere; L = 64 at t = 900 of the cosine schedule has SNR ≈ 10, L = 16 ≈ 2.6."""
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 60, 120), rng.uniform(-180, 180, 120)
    d16 = spectrum.noisy_latent_errors(16, lat, lon, [900])
    d64 = spectrum.noisy_latent_errors(64, lat, lon, [900])
    assert d64["location_snr"].iloc[0] == pytest.approx(d16["location_snr"].iloc[0] * 65 / 17)
    assert d64["acc@750km"].iloc[0] > 0.95 and d16["acc@750km"].iloc[0] < 0.5
    shifted = spectrum.noisy_latent_errors(64, lat, lon, [900], DiffusionConfig(schedule_shift=65 / 17))
    assert shifted["acc@750km"].iloc[0] < 0.5


def test_band_sums_match_a_loop():
    L = 5
    x = torch.randn(3, (L + 1) ** 2, dtype=torch.float64)
    want = torch.stack([x[:, l * l:(l + 1) ** 2].sum(1) for l in range(L + 1)], 1)
    torch.testing.assert_close(spectrum.band_sums(x, L), want)


# ---------------------------------------------------------------------------- SHDD-KL
def _points(n, L, seed=0):
    rng = np.random.default_rng(seed)
    return shdd.encode(rng.uniform(-80, 80, n), rng.uniform(-180, 180, n), L).float()


def test_one_points_density_is_the_heat_kernel_normalized_with_its_closed_form_peak():
    L, width = 12, divergence.DEFAULT_WIDTH
    a = _points(1, L)
    p, G = divergence.smoothed_density(a.double(), width)
    assert float((p * G.weights).sum()) == pytest.approx(1.0, abs=2e-3)                # ∫ p = √(4π) a_00 = 1
    l = np.arange(L + 1)
    g = np.exp(-l * (l + 1) / (2 * (width * (L + 1)) ** 2))
    peak = (g * (2 * l + 1)).sum() / (4 * math.pi)
    assert divergence.point_peak(L, width) == pytest.approx(peak)
    # a point at the north pole: p(θ) = Σ g_l (2l+1)/(4π) P_l(cos θ) on every grid latitude (scipy's P_l)
    p, G = divergence.smoothed_density(shdd.encode([90.0], [0.0], L).double(), width)
    theta = np.radians(90.0 - G.lat.numpy())
    want = (g[:, None] * (2 * l + 1)[:, None] * eval_legendre(l[:, None], np.cos(theta)[None])).sum(0) / (4 * math.pi)
    np.testing.assert_allclose(p[0].numpy(), np.repeat(want[:, None], G.nlon, 1), atol=1e-6 * peak)


def test_shdd_kl_is_zero_exactly_at_equality_and_positive_for_any_change():
    L = 8
    a = _points(6, L)
    assert torch.allclose(divergence.shdd_kl(a, a), torch.zeros(6), atol=1e-6)
    b = _points(6, L, seed=1)
    assert (divergence.shdd_kl(a, b) > 0.1).all()
    for i in (0, 1, 5, L * L + L, (L + 1) ** 2 - 1):            # one coefficient of degree 0, 1, 2, L, L
        bumped = a.clone()
        bumped[:, i] += 0.05
        assert (divergence.shdd_kl(a, bumped) > 1e-6).all(), i


def test_shdd_kl_is_non_negative_on_random_pairs_including_negative_fields():
    L = 6
    g = torch.Generator().manual_seed(0)
    a = torch.cat([_points(20, L), torch.randn(20, (L + 1) ** 2, generator=g)])
    b = torch.cat([torch.randn(20, (L + 1) ** 2, generator=g) * 0.3, _points(20, L, seed=3)])
    assert (divergence.shdd_kl(a, b) >= -1e-6).all()


def test_shdd_kl_is_smooth_autograd_matches_finite_differences():
    L = 4
    a = _points(1, L).double()
    b = (a + 0.1 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    b.requires_grad_(True)

    def f(v):
        p, G = divergence.smoothed_density(torch.cat([a, v]), divergence.DEFAULT_WIDTH)
        eps = divergence.DEFAULT_FLOOR * divergence.point_peak(L)
        r = 0.5 * (p + torch.sqrt(p * p + eps * eps))
        u, w = r.chunk(2)
        return (G.weights * (u * torch.log(u / w) - u + w)).sum()

    grad, = torch.autograd.grad(f(b), b)
    h = 1e-6
    for i in (0, 3, 10, 24):
        e = torch.zeros_like(b)
        e[0, i] = h
        fd = (f(b.detach() + e) - f(b.detach() - e)) / (2 * h)
        assert float(grad[0, i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)
    # the float32 public function agrees with this float64 restatement
    assert float(divergence.shdd_kl(a.float(), b.detach().float())) == pytest.approx(float(f(b.detach())), rel=1e-3)


def test_the_expected_shdd_kl_over_a_posterior_is_minimized_by_the_posterior_mean():
    """E_π KL(p_x || p_â) is smallest at â = E_π[Y(x)] (the MSE optimum), not at either point."""
    L = 10
    pts = shdd.encode([10.0, 14.0], [20.0, 26.0], L).float()        # two nearby points, 600 km apart
    pi = torch.tensor([0.7, 0.3])
    mean = (pi[:, None] * pts).sum(0, keepdim=True)

    def risk(a_hat):
        return float((pi * divergence.shdd_kl(pts, a_hat.expand(2, -1))).sum())

    r_mean = risk(mean)
    assert r_mean < risk(pts[:1]) and r_mean < risk(pts[1:])
    g = torch.Generator().manual_seed(0)
    for _ in range(5):                                               # and below nearby perturbations
        assert r_mean < risk(mean + 0.02 * torch.randn(mean.shape, generator=g))


def test_shdd_kl_refuses_mismatched_shapes_and_floors():
    a = _points(2, 4)
    with pytest.raises(ValueError, match="same shape"):
        divergence.shdd_kl(a, a[:1])
    with pytest.raises(ValueError, match="floor must be a number in"):
        divergence.shdd_kl(a, a, floor=0.0)
