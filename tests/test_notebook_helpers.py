"""The small table and sentence helpers that keep the notebooks' cells short, against hand-computed
oracles: great-circle distances on the equator, a denoiser that knows x0 (error 0) or predicts
zeros (relative error 1), the closed-form location SNR, and hand-made tables."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import lookup_locdiff
from locdiff import ablations, calibration, encoders, experiment, resolution, spectrum
from locdiff.latent import Latent

R_KM = 6371.0088
KM_PER_DEG = np.pi * R_KM / 180          # one degree of a great circle
L = 6


def _points(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def _ld(table):
    return lookup_locdiff(table, L)


COLUMNS = ["acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km"]


def test_score_table_rows_per_model_and_per_sampler(monkeypatch):
    lat, lon = _points()
    emb = np.eye(len(lat), dtype=np.float32)
    models = {"knows x0": _ld(Latent(L).encode(lat, lon))}
    one = experiment.score_table(models, emb, lat, lon)
    assert list(one.columns) == COLUMNS and list(one.index) == ["knows x0"]
    assert one.loc["knows x0", "acc@25km"] == 100.0 and one.loc["knows x0", "median_km"] < 1.0
    two = experiment.score_table(models, emb, lat, lon, samplers={"chain": 4, "one step": 1})
    assert list(two.index) == [("knows x0", "chain"), ("knows x0", "one step")]
    assert (two["acc@25km"] == 100.0).all()
    # each row is scored with its own number of DDIM steps (a score that reports what it was given)
    seen = []
    monkeypatch.setattr(experiment, "score", lambda m, e, la, lo, steps=None, seed=0: seen.append(steps) or
                        dict.fromkeys(COLUMNS, float(steps or 0)) | {"acc@1km": 0.0})
    three = experiment.score_table({"a": None, "b": None}, emb, lat, lon, samplers={"chain": None, "one": 1})
    assert seen == [None, 1, None, 1] and three["acc@25km"].tolist() == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="models"):
        experiment.score_table({}, emb, lat, lon)
    with pytest.raises(ValueError, match="samplers must hold at least one"):
        experiment.score_table(models, emb, lat, lon, samplers={})


def test_band_error_table_stacks_models_zero_and_unit_error():
    lat, lon = _points()
    emb = np.eye(len(lat), dtype=np.float32)
    x0 = Latent(L).encode(lat, lon)
    out = spectrum.band_error_table({"exact": _ld(x0), "zeros": _ld(torch.zeros_like(x0))}, emb, lat, lon, [0, 500],
                                    by="loss")
    assert set(out.loss) == {"exact", "zeros"} and len(out) == 2 * 2 * (L + 1)
    np.testing.assert_allclose(out[out.loss == "exact"].relative, 0.0, atol=1e-10)
    np.testing.assert_allclose(out[out.loss == "zeros"].relative, 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="models"):
        spectrum.band_error_table({}, emb, lat, lon, [0])
    with pytest.raises(ValueError, match="by must name a new column"):
        spectrum.band_error_table({"exact": _ld(x0)}, emb, lat, lon, [0], by="t")


def test_noisy_latent_cases_at_t0_is_exact_and_the_snr_is_the_closed_form():
    lat, lon = _points(5, seed=1)
    cases = {"L = 4": (4, 1.0), "L = 8": (8, 1.0), "L = 8, shifted": (8, 3.0)}
    out = spectrum.noisy_latent_cases(cases, lat, lon, timesteps=(0, 500))
    assert list(out.case.unique()) == list(cases) and (out.n_points == 5).all()
    assert (out[out.t == 0]["acc@750km"] == 1.0).all()
    # √(ᾱ/(1-ᾱ))·(L+1), ᾱ of the cosine schedule recomputed here (s = 0.008); a shift k divides the SNR by k²
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
    snr = np.sqrt(f(501) / f(0) / (1 - f(501) / f(0)))
    got = out[(out.t == 500)].set_index("case").location_snr
    np.testing.assert_allclose(got, [snr * 5, snr * 9, snr * 9 / 3], rtol=1e-3)
    with pytest.raises(ValueError, match="cases"):
        spectrum.noisy_latent_cases({}, lat, lon)


def test_crowding_table_bins_by_the_nearest_other_training_place():
    # training places on the equator at lon 0 and 2°; test points at lon 0 (nearest other: 2°, 222 km),
    # lon 0.5 (nearest other beyond 25 km: 0.5° = 55.6 km) and lon 60 (58° = 6,449 km)
    train_lat, train_lon = np.zeros(2), np.array([0.0, 2.0])
    lat, lon = np.zeros(3), np.array([0.0, 0.5, 60.0])
    errs = {"A": np.array([10.0, 30.0, 5.0]), "B": np.array([100.0, 1.0, 1.0])}
    table = resolution.crowding_table(lat, lon, train_lat, train_lon, errs, L=32)
    merge = resolution.merge_distance_km(32)
    assert 300 < merge < 6000
    assert list(table.tiles) == [1, 1, 0, 1]           # (0,100], (100,300], (300,merge], (merge,inf)
    np.testing.assert_allclose(table["A acc@25km (%)"].values, [0.0, 100.0, np.nan, 100.0])
    np.testing.assert_allclose(table["B acc@25km (%)"].values, [100.0, 0.0, np.nan, 100.0])
    with pytest.raises(ValueError, match=r"errors\['A'\] must hold one error"):
        resolution.crowding_table(lat, lon, train_lat, train_lon, {"A": np.zeros(2)}, L=32)
    with pytest.raises(ValueError, match=r"errors\['A'\] must hold finite distances"):
        resolution.crowding_table(lat, lon, train_lat, train_lon, {"A": np.array([1.0, np.nan, 2.0])}, L=32)
    with pytest.raises(ValueError, match="radius_km"):
        resolution.crowding_table(lat, lon, train_lat, train_lon, errs, L=32, radius_km=0)


def test_spread_by_outcome_separates_hits_from_misses():
    # image 0: all samples at one place (spread 0); image 1: two samples 90° apart (mean pair distance
    # πR/2); image 2: two samples 10° apart on the equator
    slat = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    slon = np.array([[5.0, 5.0], [0.0, 90.0], [0.0, 10.0]])
    out = calibration.spread_by_outcome(slat, slon, err_km=[50.0, 900.0, 150.0], radius_km=200)
    assert list(out.index) == ["within 200 km", "beyond 200 km"]
    np.testing.assert_allclose(out["tiles (%)"], [200 / 3, 100 / 3])
    np.testing.assert_allclose(out["median sample spread (km)"], [5 * KM_PER_DEG, 90 * KM_PER_DEG], rtol=1e-5)   # R = 6371.0 or 6371.0088 km
    with pytest.raises(ValueError, match="radius_km"):
        calibration.spread_by_outcome(slat, slon, [1, 2, 3], radius_km=0)
    with pytest.raises(ValueError, match="err_km must hold one error"):
        calibration.spread_by_outcome(slat, slon, [1, 2])
    with pytest.raises(ValueError, match="err_km must hold finite distances"):
        calibration.spread_by_outcome(slat, slon, [1, -2, 3])


def test_degree_verdict_reads_the_tables():
    coarse = pd.DataFrame({"L": [16, 16, 32, 32, 64, 64], "t": [100, 500] * 3,
                           "relative": [0.01, 0.1, 0.01, 0.1, 0.03, 0.15]})
    m = pd.DataFrame({"acc@200km": [90.0, 94.2, 92.6], "coverage@200km": [90.0, 95.8, 93.0]},
                     index=["L = 16", "L = 32", "L = 64"])
    s = ablations.degree_verdict(coarse, m, [16, 32, 64])
    assert s == ("L = 32 -> 64: acc@200km 94.2 -> 92.6%, coverage@200km 95.8 -> 93.0%; coarse-band error "
                 "higher at L = 64 at every t (ratio 1.5-3.0x)")
    coarse.loc[5, "relative"] = 0.05
    assert "not higher" in ablations.degree_verdict(coarse, m, [16, 32, 64])
    with pytest.raises(ValueError, match="two distinct degrees"):
        ablations.degree_verdict(coarse, m, [64, 64])
    with pytest.raises(ValueError, match="L = 128 is missing from coarse"):
        ablations.degree_verdict(coarse, m, [64, 128])


def test_nearest_neighbour_summary_reads_the_table():
    check = pd.DataFrame({"split": ["test_iid"] * 2 + ["test_unseen"] * 2, "rule": ["1-NN", "train mean"] * 2,
                          "acc@750km": [60.0, 5.5, 10.0, 1.0], "acc@2500km": [80.0, 20.0, 30.0, 10.0],
                          "median_km": [400.0, 5000.0, 2500.0, 6000.0]})
    lines = encoders.nearest_neighbour_summary(check).splitlines()
    assert lines == ["test_iid acc@750km: 1-NN 60.0% vs train mean 5.5%  (difference +54.5 points)",
                     "test_iid acc@2500km: 1-NN 80.0% vs train mean 20.0%  (difference +60.0 points)",
                     "test_unseen median error: 1-NN 2500 km vs test_iid 400 km"]
    with pytest.raises(ValueError, match="splits of the table"):
        encoders.nearest_neighbour_summary(check, split="val")
