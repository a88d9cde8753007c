"""The figure builders of ``locdiff.figures`` draw exactly the numbers they are given, and the
curves they add come from closed forms checked here independently (scipy's Legendre polynomials,
hand-computed projections and medians, the paper's published rows)."""
import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import brentq  # noqa: E402
from scipy.special import eval_legendre  # noqa: E402

from locdiff import figures  # noqa: E402

R_KM = 6371.0088


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _lines(ax):
    return [ln for ln in ax.get_lines()]


def _addition_field(L, lat0, lon0, lat, lon):
    """f(y) = Σ_l (2l+1)/(4π) P_l(cos γ) (addition theorem), scipy's Legendre polynomials."""
    la, lo = np.radians(np.meshgrid(lat, lon, indexing="ij"))
    p0, l0 = np.radians(lat0), np.radians(lon0)
    cg = np.clip(np.sin(la) * np.sin(p0) + np.cos(la) * np.cos(p0) * np.cos(lo - l0), -1, 1)
    return sum((2 * l + 1) / (4 * np.pi) * eval_legendre(l, cg) for l in range(L + 1))


# --------------------------------------------------------------------------------------- 00
def _split(n, seed=0):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(lat=rng.uniform(-60, 60, n), lon=rng.uniform(-180, 180, n),
                           tiles=rng.integers(0, 255, (n, 3, 4, 4), dtype=np.uint8),
                           place_name=[f"P{i}" for i in range(n)], country=["FR"] * n,
                           continent=np.array(["EU", "AS"] * (n // 2)))


def test_split_maps_title_each_split_with_its_size_and_reject_a_missing_split():
    splits = {"train": _split(10), "test_iid": _split(4), "test_uniform": _split(4), "test_unseen": _split(6)}
    fig = figures.split_maps(splits, [(0, 10, 0, 10)], max_points=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["train (10 tiles, first 5 shown)", "test_iid (4 tiles)", "test_uniform (4 tiles)",
                      "test_unseen (6 tiles, first 5 shown)"]
    from matplotlib.collections import PathCollection

    drawn = [sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)) for ax in fig.axes]
    assert drawn == [5, 4, 4, 5]
    with pytest.raises(ValueError, match="names must be splits"):
        figures.split_maps({"train": _split(3)}, [])
    with pytest.raises(ValueError, match="max_points"):
        figures.split_maps(splits, [], max_points=0)


def test_random_tiles_draw_what_numpy_draws_and_check_n():
    s = _split(30)
    fig, pick = figures.random_tiles(s, 6, seed=3, ncols=3)
    np.testing.assert_array_equal(pick, np.random.default_rng(3).choice(30, 6, replace=False))
    assert [ax.get_title() for ax in fig.axes[:6]] == [f"P{i} (FR)" for i in pick]
    with pytest.raises(ValueError, match=r"n must lie in \[1, 30\]"):
        figures.random_tiles(s, 31)


def test_encoder_training_draws_recall_in_percent():
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.5, 2.2],
                      "val_recall_at_1": [0.1, 0.25, 0.4]})
    a1, a2 = figures.encoder_training(h).axes[:2]
    np.testing.assert_allclose(_lines(a2)[0].get_ydata(), [10, 25, 40])
    np.testing.assert_allclose(_lines(a1)[1].get_ydata(), h.val_loss)
    assert "recall@1 (%)" in a2.get_ylabel()


def test_embeddings_pca_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 6)) * np.array([5, 2, 1, 1, 1, 1])
    cont = np.array(["EU", "AS"] * 20)
    ax = figures.embeddings_pca(emb, cont, {"EU": "Europe", "AS": "Asia", "AF": "Africa"}).axes[0]
    assert [c.get_label() for c in ax.collections] == ["Europe", "Asia"]       # Africa has no row
    x = emb - emb.mean(0)
    w, v = np.linalg.eigh(x.T @ x)
    oracle = x @ v[:, ::-1][:, :2]
    got = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.abs(got), np.abs(oracle[cont == "EU"]), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="one code per embedding"):
        figures.embeddings_pca(emb, cont[:5], {})


# --------------------------------------------------------------------------------------- 01
def test_fields_by_degree_draw_the_addition_theorem_field_over_the_peak_height():
    fig = figures.fields_by_degree(30.0, 10.0, [3, 5], resolution_deg=10.0)
    lat, lon = figures.map_axes(10.0)
    for ax, L in zip(fig.axes[:2], [3, 5]):
        mesh = [c for c in ax.collections if hasattr(c, "get_array") and c.get_array() is not None][0]
        want = _addition_field(L, 30.0, 10.0, lat, lon) / ((L + 1) ** 2 / (4 * np.pi))
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(want.shape), want, atol=2e-5)
        assert ax.get_title().startswith(f"L = {L}  ({(L + 1) ** 2} coefficients)")
    with pytest.raises(ValueError, match="resolution_deg"):
        figures.map_axes(0)


def test_half_width_closed_form_agrees_with_the_legendre_half_maximum():
    widths = pd.DataFrame({"L": [16, 64], "measured_km": [700.0, 200.0]})
    ax = figures.half_width(widths).axes[0]
    pts, curve = _lines(ax)
    np.testing.assert_allclose(pts.get_ydata(), widths.measured_km)
    L = 64          # half maximum of Σ (2l+1) P_l(cos θ), found by root search: the closed form is within 1%
    peak = (L + 1) ** 2
    theta = brentq(lambda th: sum((2 * l + 1) * eval_legendre(l, np.cos(th)) for l in range(L + 1)) - peak / 2,
                   1e-4, 3.0 / (L + 1))
    drawn = np.interp(L, curve.get_xdata(), curve.get_ydata())
    assert abs(drawn / (theta * R_KM) - 1) < 0.01


def test_noise_robustness_leaves_out_the_clean_rows():
    noise = pd.DataFrame({"L": [8, 8, 8, 16, 16, 16], "noise": [0, 0.5, 1.0] * 2,
                          "median_km": [1, 100, 300, 1, 50, 200]})
    ax = figures.noise_robustness(noise, 20).axes[0]
    assert [ln.get_label() for ln in _lines(ax)] == ["L = 8", "L = 16"]
    np.testing.assert_allclose(_lines(ax)[1].get_ydata(), [50, 200])
    assert ax.get_yscale() == "log"


def test_mixture_modes_and_codec_speed_draw_their_inputs():
    from locdiff import shdd

    L = 8
    mix = (shdd.encode(10.0, 20.0, L) + shdd.encode(-30.0, 100.0, L)) / 2
    modes = pd.DataFrame({"mode_lat": [10.0, -30.0], "mode_lon": [20.0, 100.0]})
    ax = figures.mixture_modes(mix, L, [10.0, -30.0], [20.0, 100.0], modes, resolution_deg=10.0).axes[0]
    assert "top-2 modes" in ax.get_title()
    lat, lon = figures.map_axes(10.0)
    want = (_addition_field(L, 10.0, 20.0, lat, lon) + _addition_field(L, -30.0, 100.0, lat, lon)) / 2
    mesh = [c for c in ax.collections if c.get_array() is not None][0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(want.shape), want / ((L + 1) ** 2 / (4 * np.pi)),
                               atol=2e-5)
    speed = pd.DataFrame({"L": [8, 16], "encode_points_per_s": [1e6, 5e5], "decode_fields_per_s": [1e3, 2e2],
                          "threads": [2, 2]})
    ax = figures.codec_speed(speed).axes[0]
    np.testing.assert_allclose(_lines(ax)[1].get_ydata(), [1e3, 2e2])
    assert "2 CPU threads" in ax.get_title()


# --------------------------------------------------------------------------------------- 02
def test_training_figures_draw_their_tables():
    log = pd.DataFrame({"step": [1, 2, 3, 4], "mse": [1.0, 0.5, 0.4, 0.3], "time_s": [0, 60, 120, 180],
                        "val_acc@750km": [np.nan, 40.0, np.nan, 60.0], "val_acc@2500km": [np.nan, 70.0, np.nan, 80.0]})
    den = pd.DataFrame({"t": [0, 500], "mse": [0.01, 0.5], "shdd_kl": [0.1, 2.0]})
    a1, a2 = figures.loss_curves(log, den, 10).axes[:2]
    np.testing.assert_allclose(_lines(a1)[0].get_ydata(), log.mse)
    np.testing.assert_allclose(_lines(a2)[1].get_ydata(), den.shdd_kl)
    ax = figures.val_accuracy(log).axes[0]
    np.testing.assert_allclose(_lines(ax)[0].get_xdata(), [2, 4])        # the NaN rows are not validation rows
    b1, b2 = figures.loss_comparison({"MSE": log, "KL": log.assign(**{"val_acc@750km": log["val_acc@750km"] / 2})},
                                     16).axes[:2]
    np.testing.assert_allclose(_lines(b2)[0].get_xdata(), [1.0, 3.0])    # minutes
    np.testing.assert_allclose(_lines(b1)[1].get_ydata(), [20.0, 30.0])


def test_location_snr_and_band_error_figures():
    noisy = pd.DataFrame({"case": ["a", "a", "b", "b"], "t": [0, 999] * 2, "location_snr": [100, 0.1, 50, 0.05],
                          "acc@750km": [1.0, 0.0, 1.0, 0.5], "n_points": 7})
    a1, a2 = figures.location_snr(noisy).axes[:2]
    np.testing.assert_allclose(_lines(a2)[1].get_ydata(), [100, 50])
    assert "7 val points" in a2.get_title()
    bands = pd.DataFrame({"run": ["x"] * 4 + ["y"] * 4, "t": [100, 100, 500, 500] * 2, "l": [0, 1] * 4,
                          "abar": [0.9, 0.9, 0.5, 0.5] * 2, "relative": np.arange(8) / 10, "loss": "MSE"})
    fig = figures.band_errors(bands, 5)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["x", "y"]
    np.testing.assert_allclose(_lines(fig.axes[1])[1].get_ydata(), [0.6, 0.7])
    ax = figures.loss_band_errors(bands[bands.run == "x"], 16, t=500).axes[0]
    np.testing.assert_allclose(_lines(ax)[0].get_ydata(), [0.2, 0.3])
    with pytest.raises(ValueError, match=r"t must be a timestep of the table \(\[100, 500\]\)"):
        figures.loss_band_errors(bands, 16, t=900)


# --------------------------------------------------------------------------------------- 03
def test_reverse_process_draws_the_field_of_each_shown_step():
    from locdiff import experiment
    from locdiff.diffusion import Diffusion, DiffusionConfig
    from locdiff.latent import Latent
    from locdiff.profiles import LocDiffSettings

    L = 6
    d = Diffusion(DiffusionConfig(T=1000), L)
    ld = experiment.LocDiff(torch.nn.Identity(), d, LocDiffSettings(L=L))
    x0 = Latent(L).encode(np.array([20.0]), np.array([40.0]))
    traj = torch.stack([torch.zeros_like(x0), x0 / 2, x0])[:, None]          # [3, 1, 1, D]
    fig = figures.reverse_process(ld, traj, 20.0, 40.0, n_show=3, resolution_deg=10.0)
    lat, lon = figures.map_axes(10.0)
    want = _addition_field(L, 20.0, 40.0, lat, lon) / ((L + 1) ** 2 / (4 * np.pi))
    for ax, scale, k in zip(fig.axes, (0.0, 0.5, 1.0), (1, 2, 3)):
        mesh = [c for c in ax.collections if c.get_array() is not None][0]
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(want.shape), scale * want, atol=1e-4)
        assert ax.get_title() == f"DDIM step {k} of 3"


def test_sampling_knobs_has_one_panel_per_knob_with_log_counts():
    sweeps = pd.DataFrame({"knob": ["samples"] * 2 + ["DDIM steps"] * 2 + ["guidance"] * 2,
                           "value": [1, 8, 5, 20, 0.0, 2.0], "acc@2500km": [50, 60, 55, 61, 30, 62],
                           "acc@750km": [30] * 6, "acc@200km": [10] * 6})
    fig = figures.sampling_knobs(sweeps, "test_iid", 100)
    a = fig.axes[:3]
    assert [ax.get_xscale() for ax in a] == ["log", "log", "linear"]
    np.testing.assert_allclose(_lines(a[2])[0].get_ydata(), [30, 62])
    assert "(100 test_iid images)" in fig.get_suptitle()


# ------------------------------------------------------------------------------------ 04 / 05
THR = [1, 25, 200, 750, 2500]


def _results(methods, splits=("test_iid",)):
    rows = []
    for i, m in enumerate(methods):
        for s in splits:
            for j, t in enumerate(THR):
                v = 10.0 * j + i
                rows.append({"method": m, "split": s, "metric": f"acc@{t}km", "value": v, "ci_low": v - 1,
                             "ci_high": v + 2})
    return pd.DataFrame(rows)


def test_accuracy_panels_draw_intervals_and_the_papers_rows():
    lat = np.array([0.0, 0.0, 0.0])
    lon = np.array([0.0, 0.0, 0.0])
    preds = {("LocDiff", "test_iid"): {"lat": lat, "lon": np.array([0.0, 1.0, 10.0])},
             ("Retrieval", "test_iid"): {"lat": lat, "lon": lon}}
    fig = figures.accuracy_panels(_results(["LocDiff", "Retrieval"]), preds, {"test_iid": (lat, lon)}, "test_iid",
                                  ["LocDiff", "Retrieval"])
    right = fig.axes[1]
    data = {ln.get_label(): np.asarray(ln.get_ydata(), float) for ln in right.get_lines() if not ln.get_label().startswith("_")}
    # published Im2GPS3k rows (LocDiff paper, Table 1): GeoCLIP 14.1/34.5/50.7/69.7/83.8
    np.testing.assert_allclose(data["GeoCLIP on Im2GPS3k (as reported)"], [14.1, 34.5, 50.7, 69.7, 83.8])
    err = [c for c in right.containers][0]             # LocDiff's error bars: value, from value - 1 to value + 2
    np.testing.assert_allclose(np.asarray(err.lines[0].get_ydata(), float), [0, 10, 20, 30, 40])
    segs = np.array(err.lines[2][0].get_segments())
    np.testing.assert_allclose(segs[:, :, 1], [[v - 1, v + 2] for v in (0, 10, 20, 30, 40)])
    # the CDF: LocDiff has errors 0, 111.2 and 1,112 km, so 2/3 of images lie within 200 km
    cdf = fig.axes[0].get_lines()[0]
    x, y = cdf.get_xdata(), cdf.get_ydata()
    assert y[np.searchsorted(x, 200)] == pytest.approx(200 / 3)


def test_reliability_has_one_panel_per_split_and_the_diagonal():
    table = pd.DataFrame({"split": ["a"] * 4 + ["b"] * 4, "method": (["LocDiff"] * 2 + ["Classification"] * 2) * 2,
                          "alpha": [0.5, 0.9] * 4, "coverage": [0.4, 0.8, 0.5, 0.9, 0.1, 0.2, 0.3, 0.4]})
    fig = figures.reliability(table)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]
    lines = fig.axes[1].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [10, 20])
    np.testing.assert_allclose(lines[-1].get_ydata(), [0, 100])


def test_generalization_bars_heights_are_the_values():
    res = _results(["LocDiff", "Retrieval"], splits=("test_iid", "test_unseen"))
    fig = figures.generalization_bars(res, ["test_iid", "test_unseen"], ["LocDiff", "Retrieval"])
    ax = fig.axes[0]                                   # acc@750km: value 30 + method index
    heights = [p.get_height() for p in ax.patches]
    assert heights == [30.0, 31.0, 30.0, 31.0]
    with pytest.raises(ValueError, match="metrics must be accuracies"):
        figures.generalization_bars(res, ["test_iid"], ["LocDiff"], metrics=("median_km",))


def test_error_maps_draw_log10_of_the_hand_computed_box_median():
    lat = np.array([1.0, 2.0, 3.0])
    lon = np.array([1.0, 2.0, 3.0])
    preds = {("LocDiff", "s"): {"lat": lat, "lon": lon + np.array([1.0, 2.0, 3.0])}}
    fig = figures.error_maps(preds, {"s": (lat, lon)}, ["s"], ["LocDiff"])
    mesh = [c for c in fig.axes[0].collections if c.get_array() is not None][0]
    arr = np.asarray(np.ma.filled(mesh.get_array(), np.nan)).reshape(12, 24)
    # box (lat 0-15, lon 0-15): row 5, column 12; median error is the middle one, 2° of longitude at 2° N
    med = 2 * R_KM * np.arcsin(np.cos(np.radians(2.0)) * np.sin(np.radians(1.0)))
    assert arr[5, 12] == pytest.approx(np.log10(med), rel=1e-6)
    assert np.isnan(arr).sum() == arr.size - 1


# --------------------------------------------------------------------------------------- 06
def test_degree_sweep_and_coarse_bands():
    table = pd.DataFrame({"variant": ["L = 8", "L = 16"] * 3, "metric": ["acc@25km"] * 2 + ["acc@200km"] * 2
                          + ["acc@750km"] * 2, "value": [1.0, 2.0, 80.0, 90.0, 95.0, 96.0],
                          "ci_low": [0.5, 1.5, 78, 88, 94, 95], "ci_high": [1.5, 2.5, 82, 92, 96, 97]})
    fig = figures.degree_sweep(table, "test_iid", 500, 4000)
    np.testing.assert_allclose(np.asarray(fig.axes[1].containers[0].lines[0].get_ydata(), float), [80, 90])
    segs = np.array(fig.axes[1].containers[0].lines[2][0].get_segments())
    np.testing.assert_allclose(segs[:, :, 1], [[78, 82], [88, 92]])
    with pytest.raises(ValueError, match="metrics must be metrics of the table"):
        figures.degree_sweep(table, "test_iid", 500, 4000, metrics=("acc@1km",))
    coarse = pd.DataFrame({"L": [16, 16, 64, 64], "t": [100, 500] * 2, "relative": [0.01, 0.1, 0.03, 0.2],
                           "loss_share": [0.3, 0.3, 0.02, 0.02]})
    ax = figures.coarse_bands(coarse, 8).axes[0]
    assert [ln.get_label() for ln in ax.get_lines()] == ["L = 16 (loss share of l ≤ 8: 30%)",
                                                          "L = 64 (loss share of l ≤ 8: 2%)"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.03, 0.2])


def test_every_builder_is_exported():
    import inspect

    for name in figures.__all__:
        assert inspect.isfunction(getattr(figures, name)), name
