"""Evaluation: bootstrap intervals cover known values, precision/recall and coverage on hand-made
sets, and the results CSV keeps its schema."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from locdiff import evaluate


def test_bootstrap_interval_covers_known_values_at_nominal_rate():
    """Errors ~ Exponential(scale 500 km): the true median is 500·ln 2 km and the true share within
    750 km is 1 - e^{-1.5}. Over 200 independent samples the 95% intervals must cover them in about
    95% of cases (binomial 99.9% band for 200 trials: [0.90, 0.99])."""
    rng = np.random.default_rng(0)
    true_median, true_acc = 500 * np.log(2), 100 * (1 - np.exp(-1.5))
    hits_med = hits_acc = 0
    for i in range(200):
        d = rng.exponential(500.0, 400)
        ci = evaluate.bootstrap_intervals(d, n_boot=300, seed=i)
        hits_med += ci["median_km"][1] <= true_median <= ci["median_km"][2]
        hits_acc += ci["acc@750km"][1] <= true_acc <= ci["acc@750km"][2]
    assert 0.90 <= hits_med / 200 <= 0.99, hits_med
    assert 0.90 <= hits_acc / 200 <= 0.99, hits_acc


def test_bootstrap_values_and_validation():
    d = np.array([0.5, 10.0, 100.0, 1000.0, 3000.0])
    ci = evaluate.bootstrap_intervals(d, n_boot=200)
    assert ci["acc@1km"][0] == pytest.approx(20.0) and ci["acc@2500km"][0] == pytest.approx(80.0)
    assert ci["median_km"][0] == 100.0 and ci["mean_km"][0] == pytest.approx(822.1)
    assert ci["geoscore"][0] == pytest.approx(np.mean(5000 * np.exp(-d / 1492.7)))
    for v, lo, hi in ci.values():
        assert lo <= v <= hi or np.isclose(lo, v) or np.isclose(hi, v)
    with pytest.raises(ValueError, match="d_km"):
        evaluate.bootstrap_intervals(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="d_km"):
        evaluate.bootstrap_intervals(np.array([]))
    with pytest.raises(ValueError, match="level"):
        evaluate.bootstrap_intervals(d, level=1.5)


def test_precision_recall_hand_made_sets(haversine):
    rng = np.random.default_rng(2)
    real_lat, real_lon = rng.uniform(40, 50, 40), rng.uniform(0, 10, 40)          # Western Europe
    p, r = evaluate.precision_recall(real_lat, real_lon, real_lat, real_lon)
    assert p == 100.0 and r == 100.0                                             # identical sets
    far_lat, far_lon = rng.uniform(-40, -30, 40), rng.uniform(140, 150, 40)      # Australia
    assert evaluate.precision_recall(real_lat, real_lon, far_lat, far_lon) == (0.0, 0.0)
    # generated = the real half in the west only: every sample is realistic (precision 100) but
    # the eastern real points (lon > 7) are more than every sample's k-NN radius away
    west = real_lon < 3
    p, r = evaluate.precision_recall(real_lat, real_lon, real_lat[west], real_lon[west])
    assert p == 100.0 and r < 100.0
    # recall by hand: a real point counts when some sample lies within that sample's 3rd-NN radius
    g_lat, g_lon = real_lat[west], real_lon[west]
    dgg = haversine(g_lat[:, None], g_lon[:, None], g_lat[None], g_lon[None])
    radius = np.sort(dgg, 1)[:, 3]
    drg = haversine(real_lat[:, None], real_lon[:, None], g_lat[None], g_lon[None])
    assert r == pytest.approx(100 * (drg <= radius[None]).any(1).mean())


def test_generative_metrics_coverage():
    lat, lon = np.array([0.0, 0.0]), np.array([0.0, 90.0])
    s_lat = np.array([[0.0, 50.0, 1.0, 10.0, 20.0], [30.0, 40.0, 50.0, 60.0, 70.0]])
    s_lon = np.zeros_like(s_lat)
    cov = evaluate.generative_metrics(np.repeat(s_lat, 3, 0), np.repeat(s_lon, 3, 0),
                                      np.repeat(lat, 3), np.repeat(lon, 3))["coverage@200km"]
    assert cov == pytest.approx(50.0)          # image 1 has a sample at its truth; image 2 none within 200 km
    with pytest.raises(ValueError, match="sample_lat"):
        evaluate.generative_metrics(s_lat[0], s_lon[0], lat, lon)


def test_results_schema_round_trip_and_errors(tmp_path):
    rows = evaluate.result_rows("cpu", "M", "test_iid", np.zeros(20), np.zeros(20), np.zeros(20), np.linspace(0, 5, 20),
                                train_seconds=3.0, predict_seconds=0.1, n_boot=50)
    assert [r["metric"] for r in rows] == list(evaluate.POINT_METRICS)
    df = evaluate.write_results(rows, tmp_path / "r.csv")
    back = evaluate.read_results(tmp_path / "r.csv")
    assert tuple(back.columns) == evaluate.RESULT_COLUMNS and len(back) == len(df) == 8
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    with_samples = evaluate.result_rows("cpu", "G", "test_iid", np.zeros(8), np.arange(8.0), np.zeros(8), np.arange(8.0),
                                        sample_lat=np.zeros((8, 3)), sample_lon=np.tile(np.arange(8.0)[:, None], 3),
                                        n_boot=50)
    assert {r["metric"] for r in with_samples} >= set(evaluate.GENERATIVE_METRICS)
    bad = df.rename(columns={"value": "score"})
    with pytest.raises(ValueError, match="columns"):
        evaluate.check_results(bad)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate.check_results(df.assign(metric="accuracy"))
    with pytest.raises(ValueError, match="duplicate"):
        evaluate.check_results(pd.concat([df, df]))
    t = evaluate.table(df, "test_iid", intervals=True)
    assert list(t.columns) == list(evaluate.POINT_METRICS) and t.index.tolist() == ["M"]


def _rows(split, metric, values):
    """Results rows {method: (value, low, high)} for one split and metric."""
    return [{"split": split, "metric": metric, "method": m, "value": v, "ci_low": lo, "ci_high": hi}
            for m, (v, lo, hi) in values.items()]


def test_best_vs_runner_up_orders_by_direction_and_tests_the_intervals():
    df = pd.DataFrame(
        _rows("test_iid", "acc@750km", {"A": (80.0, 78.0, 82.0), "B": (90.0, 88.0, 92.0), "C": (85.0, 83.0, 87.5)})
        + _rows("test_iid", "median_km", {"A": (40.0, 35.0, 45.0), "B": (60.0, 55.0, 65.0), "C": (42.0, 38.0, 46.0)})
        + _rows("test_unseen", "acc@750km", {"A": (99.0, 98.0, 100.0), "B": (1.0, 0.0, 2.0)}))
    out = evaluate.best_vs_runner_up(df, "test_iid", ["acc@750km", "median_km", "geoscore"]).set_index("metric")
    assert list(out.index) == ["acc@750km", "median_km"]          # geoscore absent: no row
    assert (out.loc["acc@750km", "best"], out.loc["acc@750km", "runner-up"]) == ("B", "C")
    assert bool(out.loc["acc@750km", "intervals separate"]) is True     # 88.0 > 87.5
    assert (out.loc["median_km", "best"], out.loc["median_km", "runner-up"]) == ("A", "C")   # lower is better
    assert bool(out.loc["median_km", "intervals separate"]) is False    # 45 > 38: overlap
