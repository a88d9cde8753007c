"""Baselines on toy problems with known answers, and their geometric pieces against closed forms.

Toy problem: 8-dimensional embeddings that are one of two codes. Code A: the location is Paris
(jittered by ~20 km). Code B: bimodal, half Tokyo and half Sydney (7,800 km apart). A point
predictor must put A near Paris and must not crash on B; a generative method must put its samples
for B near both modes, in roughly equal shares, and almost none elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from locdiff import geo, profiles, shdd
from locdiff.baselines import classification, common, generative, hybrid, regression, retrieval

PARIS, TOKYO, SYDNEY = (48.8566, 2.3522), (35.6762, 139.6503), (-33.8688, 151.2093)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, dest_point):
    rng = np.random.default_rng(0)
    n = 1200
    code = rng.integers(0, 2, n)                                  # 0: A (Paris), 1: B (Tokyo or Sydney)
    mode = np.where(code == 0, 0, 1 + rng.integers(0, 2, n))
    centers = np.array([PARIS, TOKYO, SYDNEY])
    lat, lon = dest_point(centers[mode, 0], centers[mode, 1], rng.uniform(0, 360, n), rng.uniform(0, 20, n))
    emb = np.zeros((n, 8), np.float32)
    emb[code == 0, 0] = 1.0
    emb[code == 1, 1] = 1.0
    emb += 0.01 * rng.standard_normal(emb.shape).astype(np.float32)
    base = profiles.get("smoke")
    prof = replace(base, name="toy", locdiff=replace(base.locdiff, L=16, samples=32, ddim_steps=20, cond_dim=64),
                   baselines=replace(base.baselines, hidden=(64, 64), steps=600, tune_steps=200, batch_size=128,
                                     lr=3e-3, warmup=20, ema_decay=0.95, cell_max_count=(50, 200),
                                     label_tau_km=(75.0,), queue_negatives=64, gen_widths=(64, 64), gen_steps=1500,
                                     gen_dropout=0.0, guidance=(1.0,), hybrid_k=(1, 5)))
    v = 200
    ctx = common.Context(prof, torch.from_numpy(emb), lat, lon, emb[:v], lat[:v], lon[:v])
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setattr(common, "run_dir", lambda profile, name: root / name)
    yield ctx
    mp.undo()


def _queries():
    e = np.zeros((200, 8), np.float32)
    e[:100, 0] = 1.0
    e[100:, 1] = 1.0
    return e


def _check_point_predictor(fitted, haversine, max_km):
    p = fitted.predict(_queries())
    assert p["lat"].shape == (200,) and np.isfinite(p["lat"]).all() and np.isfinite(p["lon"]).all()
    assert np.all(np.abs(p["lat"]) <= 90) and np.all((p["lon"] >= -180) & (p["lon"] < 180))
    d_paris = haversine(p["lat"][:100], p["lon"][:100], *PARIS)
    assert np.median(d_paris) < max_km, f"{fitted.name}: median {np.median(d_paris):.0f} km from Paris on code A"
    assert fitted.train_seconds > 0


def test_classification_toy(toy, haversine, one_torch_thread):
    f = classification.fit(toy, progress=False)
    _check_point_predictor(f, haversine, 100.0)
    assert f.tuning["chosen"].sum() == 1 and len(f.tuning) == 2


def test_retrieval_toy(toy, haversine, one_torch_thread):
    f = retrieval.fit(toy, progress=False)
    _check_point_predictor(f, haversine, 100.0)
    top = f.predict(_queries()[:3], top_k=4)
    assert top["top_lat"].shape == (3, 4) and np.all(np.diff(top["top_sim"], axis=1) <= 1e-6)


def test_regression_toy(toy, haversine, one_torch_thread):
    f = regression.fit(toy, progress=False)
    _check_point_predictor(f, haversine, 300.0)


@pytest.mark.parametrize("fit", [generative.fit_raw_diffusion, generative.fit_flow_matching], ids=["raw", "flow"])
def test_generative_toy_splits_bimodal_condition(toy, haversine, fit, one_torch_thread):
    f = fit(toy, progress=False)
    p = f.predict(_queries())
    slat, slon = p["sample_lat"], p["sample_lon"]
    assert slat.shape == (200, 32)
    near_paris = haversine(slat[:100], slon[:100], *PARIS) < 500
    assert near_paris.mean() > 0.8, f"{f.name}: {near_paris.mean():.2f} of code-A samples near Paris"
    b_lat, b_lon = slat[100:].ravel(), slon[100:].ravel()
    tokyo = haversine(b_lat, b_lon, *TOKYO) < 1000
    sydney = haversine(b_lat, b_lon, *SYDNEY) < 1000
    assert (tokyo | sydney).mean() > 0.8, f"{f.name}: {(tokyo | sydney).mean():.2f} of code-B samples near a mode"
    assert 0.2 < tokyo.mean() / (tokyo | sydney).mean() < 0.8, f"{f.name}: Tokyo share {tokyo.mean():.2f}"
    d_pred = haversine(p["lat"][:100], p["lon"][:100], *PARIS)
    assert np.median(d_pred) < 300


# ----------------------------------------------------------------------------- pieces vs closed forms
def test_adaptive_cells_bound_and_uniform_count(sphere_points):
    lat, lon = sphere_points(20_000, seed=3)
    cell, clat, clon = classification.adaptive_cells(lat, lon, 200)
    counts = np.bincount(cell)
    assert counts.max() <= 200 and counts.min() >= 1 and len(clat) == counts.size
    # the representative is the normalized mean of the cell's points
    k = int(np.argmax(counts))
    m = geo.latlon_to_xyz(lat[cell == k], lon[cell == k]).sum(0)
    m /= np.linalg.norm(m)
    np.testing.assert_allclose(geo.latlon_to_xyz(clat[k], clon[k]), m, atol=1e-9)
    # equal-area boxes: 20,000 uniform points hold ~2,500 per level-0 box, ~625 at level 1 and ~156
    # at level 2, so a split above 200 stops at level 2: 8·4² = 128 cells
    assert len(clat) == 128
    # points sharing a cell lie in one box: a level-2 box spans 1/4 in z = sin(lat), 360/16 deg in lon
    z = np.sin(np.radians(lat))
    for c in range(0, len(clat), 7):
        assert np.ptp(z[cell == c]) <= 0.25 and np.ptp(lon[cell == c]) <= 22.5
    with pytest.raises(ValueError, match="max_count"):
        classification.adaptive_cells(lat, lon, 0)


def test_haversine_label_smoothing_closed_form(haversine):
    y = torch.tensor(geo.latlon_to_xyz(np.array([PARIS[0]]), np.array([PARIS[1]]))).float()
    cells = np.array([PARIS, TOKYO, (50.0, 3.0)])
    c = torch.tensor(geo.latlon_to_xyz(cells[:, 0], cells[:, 1])).float()
    q = classification.smoothed_targets(y, c, 75.0)[0].double().numpy()
    d = haversine(PARIS[0], PARIS[1], cells[:, 0], cells[:, 1])
    expect = np.exp(-d / 75.0) / np.exp(-d / 75.0).sum()
    np.testing.assert_allclose(q, expect, atol=1e-4)


def test_regression_angle_matches_haversine(sphere_points, haversine):
    lat, lon = sphere_points(500, seed=4)
    lat2, lon2 = sphere_points(500, seed=5)
    u = torch.tensor(geo.latlon_to_xyz(lat, lon))
    v = torch.tensor(geo.latlon_to_xyz(lat2, lon2))
    np.testing.assert_allclose(regression.angle(u, v).numpy() * 6371.0, haversine(lat, lon, lat2, lon2), atol=1e-3)
    u.requires_grad_(True)
    regression.angle(u, u.detach()).sum().backward()             # identical points: finite gradient
    assert torch.isfinite(u.grad).all()


def test_geodesic_velocity_and_exp_map():
    g = torch.Generator().manual_seed(0)
    x0 = torch.nn.functional.normalize(generative.uniform_sphere(64, g).double(), dim=-1)
    x1 = torch.nn.functional.normalize(generative.uniform_sphere(64, g).double(), dim=-1)
    t = torch.rand(64, generator=g).double() * 0.9 + 0.05
    xt, ut = generative.geodesic(x0, x1, t)
    np.testing.assert_allclose(xt.norm(dim=-1).numpy(), 1.0, atol=1e-9)
    np.testing.assert_allclose((xt * ut).sum(-1).numpy(), 0.0, atol=1e-9)          # tangent
    h = 1e-6
    fd = (generative.geodesic(x0, x1, t + h)[0] - generative.geodesic(x0, x1, t - h)[0]) / (2 * h)
    np.testing.assert_allclose(fd.numpy(), ut.numpy(), atol=1e-6)                   # u_t = dx_t/dt
    np.testing.assert_allclose(generative.geodesic(x0, x1, torch.ones(64).double())[0].numpy(), x1.numpy(), atol=1e-6)
    # exp map: moving along the velocity for the remaining time lands on x1 (constant speed)
    np.testing.assert_allclose(generative.exp_map(xt, ut * (1 - t)[:, None]).numpy(), x1.numpy(), atol=1e-6)
    # a quarter turn from the north pole towards +x reaches (1, 0, 0)
    north = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    np.testing.assert_allclose(generative.exp_map(north, torch.tensor([[math.pi / 2, 0, 0]], dtype=torch.float64)).numpy(),
                               [[1.0, 0.0, 0.0]], atol=1e-12)


def test_vote_picks_the_majority_cluster(dest_point, haversine):
    rng = np.random.default_rng(1)
    lat, lon = dest_point(np.full(12, TOKYO[0]), np.full(12, TOKYO[1]), rng.uniform(0, 360, 12), rng.uniform(0, 50, 12))
    lat = np.concatenate([lat, [SYDNEY[0]] * 5])[None]
    lon = np.concatenate([lon, [SYDNEY[1]] * 5])[None]
    plat, plon = common.vote(lat, lon, 16)
    assert haversine(plat[0], plon[0], *TOKYO) < 60


def test_hybrid_rerank_picks_the_candidate_with_the_highest_field():
    cand_lat = np.array([[10.0, 40.0, -20.0], [0.0, 1.0, 2.0]])
    cand_lon = np.array([[0.0, 100.0, -60.0], [0.0, 1.0, 2.0]])
    coeffs = shdd.encode(np.array([40.0, 2.0]), np.array([100.0, 2.0]), 16, dtype=torch.float64)
    lat, lon = hybrid.rerank(coeffs, cand_lat, cand_lon, 3)
    np.testing.assert_array_equal(lat, [40.0, 2.0])
    lat1, _ = hybrid.rerank(coeffs, cand_lat, cand_lon, 1)                 # K = 1: retrieval's choice
    np.testing.assert_array_equal(lat1, [10.0, 0.0])


def test_generative_learning_rates_per_method_and_the_search(toy, monkeypatch, one_torch_thread):
    """Raw diffusion trains at its own ``raw_diffusion_lr`` candidates and flow matching at
    ``flow_matching_lr``; with two or more candidates each is trained, scored on val, and the
    winner (one row marked chosen) is reloaded rather than trained again."""
    short = replace(toy.profile, baselines=replace(toy.settings, gen_steps=40, raw_diffusion_lr=(1e-3, 2e-3),
                                                   flow_matching_lr=(5e-4,)))
    ctx = replace(toy, profile=short)
    seen = []
    real = generative.fit_model

    def recording(ctx_, name, *args):
        seen.append((name, args[-1]))                 # run name, lr
        return real(ctx_, name, *args)
    monkeypatch.setattr(generative, "fit_model", recording)
    raw = generative.fit_raw_diffusion(ctx, progress=False)
    raw_lrs = [lr for name, lr in seen if name.startswith("raw-diffusion")]
    assert raw_lrs[:2] == [1e-3, 2e-3] and len(raw_lrs) == 3 and raw_lrs[2] in (1e-3, 2e-3)
    searched = raw.tuning[raw.tuning["guidance"].isna()]
    assert sorted(searched.lr) == [1e-3, 2e-3] and searched.chosen.sum() == 1
    assert float(searched.lr[searched.chosen].iloc[0]) == raw_lrs[2]
    seen.clear()
    flow = generative.fit_flow_matching(ctx, progress=False)
    assert [lr for _, lr in seen] == [5e-4] and "lr" in flow.tuning and set(flow.tuning.lr) == {5e-4}


def test_cells_locate_the_training_points_and_have_the_chart_areas():
    """Every training point is located in the cell adaptive_cells gave it; a box's area is
    (sin lat₂ - sin lat₁)·Δlon (the sphere's area element), 4π/(8·4^level) in the equal-area chart."""
    rng = np.random.default_rng(0)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 3000)))
    lon = rng.uniform(-180, 180, 3000)
    cell, _, _, cells = classification.adaptive_cells(lat, lon, 100, return_cells=True)
    np.testing.assert_array_equal(cells.locate(lat, lon), cell)
    assert cells.area.sum() == pytest.approx(4 * math.pi)            # uniform points leave no empty leaf
    # one level-0 box: latitudes 0..90, longitudes -180..-90: (sin 90° - sin 0°) · π/2
    one = classification.adaptive_cells([45.0, 50.0], [-170.0, -100.0], 100, return_cells=True)[3]
    assert one.area.tolist() == pytest.approx([math.pi / 2])
    assert one.locate([10.0, -10.0, 60.0], [-120.0, -120.0, 0.0]).tolist() == [0, -1, -1]


def test_classification_predicts_cell_probabilities(toy, one_torch_thread):
    fitted = classification.fit(toy, progress=False)
    out = fitted.predict(toy.emb[:5].cpu().numpy())
    np.testing.assert_allclose(out["cell_prob"].sum(1), 1.0, rtol=1e-5)
    assert out["cell_prob"].shape[1] == len(fitted.cells.keys)


class _KnowsX0(torch.nn.Module):
    """x0-prediction stand-in: row argmax(emb) of a table; the mean row without an image."""

    def __init__(self, table):
        from types import SimpleNamespace

        super().__init__()
        self.table = torch.nn.Parameter(table.clone(), requires_grad=False)
        self.config = SimpleNamespace(embed_dim=len(table))

    def forward(self, x_t, t, emb, drop_cond=None):
        return self.table.mean(0).expand(len(x_t), -1) if emb is None else self.table[emb.argmax(1)]


def test_locdiff_val_predictions_are_computed_once_per_guidance_and_seed(monkeypatch):
    """LocDiff's guidance choice samples val once per candidate (seed 1); LocDiff-H's tuning asks for
    the chosen guidance at seed 1 again and gets those predictions back without sampling; another
    seed or other embeddings sample anew."""
    from types import SimpleNamespace

    import pandas as pd

    from locdiff import compare, experiment
    from locdiff.diffusion import Diffusion, DiffusionConfig
    from locdiff.latent import Latent
    from locdiff.profiles import LocDiffSettings

    rng = np.random.default_rng(3)
    n, L = 10, 6
    lat, lon = np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)
    ld = experiment.LocDiff(_KnowsX0(Latent(L).encode(lat, lon)), Diffusion(DiffusionConfig(T=1000), L),
                            LocDiffSettings(L=L, samples=2, ddim_steps=3))
    calls, sample = [], ld.sample
    ld.sample = lambda emb, **kw: (calls.append(kw), sample(emb, **kw))[1]
    monkeypatch.setattr(experiment, "fit", lambda profile, progress=True: (ld, pd.DataFrame({"time_s": [1.0]})))
    ctx = SimpleNamespace(profile=None, settings=SimpleNamespace(guidance=(1.0, 2.0)),
                          val_emb=np.eye(n, dtype=np.float32), val_lat=lat, val_lon=lon)
    f = compare.fit_locdiff(ctx, progress=False)
    assert [c["guidance"] for c in calls] == [1.0, 2.0]
    again = f.predict(ctx.val_emb, seed=1)                       # LocDiff-H's val call
    assert len(calls) == 2 and set(again) >= {"lat", "lon", "sample_lat", "field_coeffs"}
    f.predict(ctx.val_emb, seed=0)
    f.predict(ctx.val_emb.copy(), seed=1)
    assert len(calls) == 4
