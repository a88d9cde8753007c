"""LocDiff's diffusion: schedules and forward process against closed forms, samplers, toy problems."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from locdiff import shdd
from locdiff.diffusion import Diffusion, DiffusionConfig, alpha_bar
from locdiff.latent import LATENT_SCALE, Latent
from locdiff.latent import decode_samples as predict
from locdiff.samplers import DDIMSampler, DDPMSampler
from locdiff.model import CSUNet, CSUNetConfig
from locdiff.train import TrainConfig, train


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_alpha_bar_decreases_from_one_to_zero(schedule):
    a = alpha_bar(1000, schedule)
    assert a.shape == (1000,)
    assert torch.all(a[1:] < a[:-1])
    assert a[0] > 0.99 and a[-1] < 0.01
    if schedule == "linear":  # closed form: prod (1 - beta_s), beta linear in [1e-4, 0.02]
        betas = np.linspace(1e-4, 0.02, 1000)
        np.testing.assert_allclose(a.numpy(), np.cumprod(1 - betas), rtol=1e-10)
    else:  # closed form of Nichol & Dhariwal away from the clipped end
        s, T = 0.008, 1000
        f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        for t in (0, 100, 500, 900):
            assert abs(float(a[t]) - f(t + 1) / f(0)) < 1e-9


def test_latent_has_unit_mean_square_for_every_point(haversine, sphere_points):
    lat, lon = sphere_points(50, seed=1)
    for L in (4, 16):
        x0 = Latent(L).encode(lat, lon)
        np.testing.assert_allclose((x0**2).mean(1).numpy(), 1.0, rtol=1e-5)


def test_q_sample_matches_closed_form_mean_and_variance():
    d = Diffusion(DiffusionConfig(), L=2)
    x0 = torch.randn(9)
    n = 200_000
    gen = torch.Generator().manual_seed(0)
    for t in (10, 500, 990):
        noise = torch.randn(n, 9, generator=gen)
        xt = d.q_sample(x0.expand(n, 9), torch.full((n,), t), noise)
        a = float(d.abar[t])
        np.testing.assert_allclose(xt.mean(0).numpy(), math.sqrt(a) * x0.numpy(), atol=5 * math.sqrt((1 - a) / n) + 1e-6)
        np.testing.assert_allclose(xt.var(0).numpy(), 1 - a, rtol=0.02)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_split_inverts_target(prediction):
    d = Diffusion(DiffusionConfig(prediction=prediction), L=3)
    x0, noise = torch.randn(5, 16), torch.randn(5, 16)
    t = torch.tensor([1, 50, 300, 700, 999])
    xt = d.q_sample(x0, t, noise)
    x0_hat, eps_hat = d.split(d.target(x0, noise, t), xt, t)
    torch.testing.assert_close(x0_hat, x0, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(eps_hat[:4], noise[:4], atol=2e-3, rtol=1e-3)


def _tiny(L=4, embed_dim=4):
    torch.manual_seed(0)
    return CSUNet(CSUNetConfig(L=L, embed_dim=embed_dim, widths=(64, 32), cond_dim=32, time_dim=32, dropout=0.0))


def test_ddim_eta0_is_deterministic_for_a_seed_and_ddpm_runs():
    d = Diffusion(DiffusionConfig(T=50), L=4)
    m = _tiny().eval()
    emb = torch.randn(2, 4)
    a = DDIMSampler(d, steps=10).sample(m, emb, n=3, generator=torch.Generator().manual_seed(5))
    b = DDIMSampler(d, steps=10).sample(m, emb, n=3, generator=torch.Generator().manual_seed(5))
    c = DDIMSampler(d, steps=10).sample(m, emb, n=3, generator=torch.Generator().manual_seed(6))
    assert a.shape == (2, 3, 25)
    assert torch.equal(a, b) and not torch.equal(a, c)
    p = DDPMSampler(d).sample(m, emb, n=2, generator=torch.Generator().manual_seed(0))
    assert p.shape == (2, 2, 25) and torch.isfinite(p).all()


def test_shdd_kl_is_zero_for_identical_and_positive_otherwise():
    d = Diffusion(DiffusionConfig(loss="shdd_kl"), L=8)
    x = Latent(8).encode([10.0, -40.0], [20.0, 100.0])
    assert abs(float(d.shdd_kl(x, x))) < 1e-5
    y = Latent(8).encode([12.0, 40.0], [20.0, -100.0])
    assert float(d.shdd_kl(x, y)) > 0.1


def test_bad_sampling_arguments():
    d = Diffusion(DiffusionConfig(T=20), L=2)
    with pytest.raises(ValueError, match="guidance"):
        DDIMSampler(d, steps=5, guidance=-1.0)
    with pytest.raises(ValueError, match="steps"):
        DDIMSampler(d, steps=0)
    with pytest.raises(ValueError, match="n \\(samples per image\\)"):
        DDIMSampler(d, steps=5).sample(_tiny(L=2), torch.randn(1, 4), n=0)
    with pytest.raises(ValueError, match="prediction"):
        DiffusionConfig(prediction="score")


CITIES = np.array([[48.8566, 2.3522], [40.7128, -74.006], [35.6762, 139.6503], [-33.8688, 151.2093]])


def _fit_toy(emb, lat, lon, L=8, steps=400, tmp_path=None):
    x0 = Latent(L).encode(lat, lon)
    torch.manual_seed(0)
    m = CSUNet(CSUNetConfig(L=L, embed_dim=emb.shape[1], widths=(256, 128), cond_dim=64, time_dim=32, dropout=0.0))
    d = Diffusion(DiffusionConfig(p_uncond=0.0), L)
    train(m, lambda model, idx, g: d.loss(model, x0[idx], emb[idx], g), len(x0),
          TrainConfig(steps=steps, batch_size=128, lr=2e-3, warmup=30, ema_decay=0.98, log_every=100,
                      eval_every=10**6, checkpoint_every=10**6), tmp_path, model_config={}, progress=False)
    m.eval()
    return m, d


def _decoded(samples):
    B, n, D = samples.shape
    la, lo, _ = shdd.decode(samples.reshape(B * n, D) / LATENT_SCALE)
    return la.reshape(B, n).numpy(), lo.reshape(B, n).numpy()


def test_toy_one_to_one(tmp_path, haversine):
    """One-hot condition -> one of four cities: >= 90% of samples within 100 km of the right one."""
    lab = np.arange(1024) % 4
    emb = F.one_hot(torch.from_numpy(lab), 4).float()
    m, d = _fit_toy(emb, CITIES[lab, 0], CITIES[lab, 1], tmp_path=tmp_path)
    s = DDIMSampler(d, steps=50).sample(m, torch.eye(4), n=32, generator=torch.Generator().manual_seed(0))
    la, lo = _decoded(s)
    for i in range(4):
        share = (haversine(CITIES[i, 0], CITIES[i, 1], la[i], lo[i]) < 100).mean()
        assert share >= 0.9, f"city {i}: only {share:.0%} of samples within 100 km"


def test_toy_multimodal(tmp_path, haversine):
    """One condition, two cities equally: samples split 35-65%, each group within 100 km."""
    n = 1024
    which = np.arange(n) % 2
    lat, lon = CITIES[which, 0], CITIES[which, 1]           # Paris or New York
    emb = torch.ones(n, 2)
    m, d = _fit_toy(emb, lat, lon, steps=500, tmp_path=tmp_path)
    s = DDIMSampler(d, steps=50).sample(m, torch.ones(1, 2), n=200, generator=torch.Generator().manual_seed(1))
    la, lo = _decoded(s)
    d_paris = haversine(CITIES[0, 0], CITIES[0, 1], la[0], lo[0])
    d_ny = haversine(CITIES[1, 0], CITIES[1, 1], la[0], lo[0])
    to_paris = d_paris < d_ny
    assert 0.35 <= to_paris.mean() <= 0.65, f"share decoding near Paris: {to_paris.mean():.2f}"
    near = np.where(to_paris, d_paris, d_ny)
    assert (near < 100).mean() >= 0.9, f"only {(near < 100).mean():.0%} of samples within 100 km of a city"
    # a point regression to this target would sit between the two cities: the mean of the latents
    plat, plon, _, _ = predict(s)
    assert min(haversine(CITIES[0, 0], CITIES[0, 1], plat[0, 0], plon[0, 0]),
               haversine(CITIES[1, 0], CITIES[1, 1], plat[0, 0], plon[0, 0])) < 100


# ---------------------------------------------------------------------- dropout
def test_dropout_rate_scale_and_gradient_match_inverted_dropout():
    """model.Dropout against the closed form of inverted dropout: a share p of zeros (within 5
    binomial standard deviations), the kept entries scaled by exactly 1/(1-p), the gradient equal
    to the mask over (1-p), the identity in eval mode."""
    from locdiff.model import Dropout

    p, n = 0.3, 1_000_000
    d = Dropout(p).train()
    torch.manual_seed(0)
    x = torch.ones(n, requires_grad=True)
    y = d(x)
    zero = (y == 0).double().mean().item()
    assert abs(zero - p) < 5 * (p * (1 - p) / n) ** 0.5
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())                  # d(x m/(1-p))/dx = m/(1-p) = y at x = 1
    d.eval()
    z = torch.randn(7, 5)
    assert d(z) is z
    assert Dropout(0.0).train()(z) is z


def test_dropout_keeps_dtype_under_bf16_and_refuses_bad_rates():
    from locdiff.model import Dropout

    x = torch.randn(64, 32, dtype=torch.bfloat16)
    assert Dropout(0.5).train()(x).dtype == torch.bfloat16
    for bad in (-0.1, 1.0, True, "0.3", float("nan")):
        with pytest.raises(ValueError, match="p must lie in"):
            Dropout(bad)
