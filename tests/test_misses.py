"""locdiff.misses against hand-computed distances (1 degree of a great circle = 111.195 km on the 6371-km sphere)."""
import numpy as np
import pandas as pd
import pytest

from locdiff import misses

KM_PER_DEG = 6371.0 * np.pi / 180


def test_decompose_splits_images_by_point_and_samples():
    lat, lon = np.zeros(4), np.zeros(4)
    # image 0: point on the truth; 1: point 10 deg off, one sample 1 deg off; 2: point and samples 10 deg off;
    # 3: point 1 deg off (within 200 km), samples far
    pred_lat = np.array([0.0, 10.0, 10.0, 1.0])
    s_lat = np.array([[5.0, 5.0], [10.0, 1.0], [10.0, -10.0], [30.0, 30.0]])
    out = misses.decompose(pred_lat, np.zeros(4), s_lat, np.zeros((4, 2)), lat, lon, 200.0)
    assert out == {"within": 50.0, "missed, a sample within": 25.0, "missed, every sample beyond": 25.0}
    # at 1000 km (9 deg): images 0 and 3 within, 1 a sample within, 2 all beyond... samples at 10 deg are 1112 km
    out = misses.decompose(pred_lat, np.zeros(4), s_lat, np.zeros((4, 2)), lat, lon, 1000.0)
    assert out["within"] == 50.0 and out["missed, a sample within"] == 25.0
    assert sum(out.values()) == pytest.approx(100.0)


def test_decompose_refuses_bad_threshold_and_shapes():
    with pytest.raises(ValueError, match="threshold_km must be a finite distance > 0"):
        misses.decompose([0.0], [0.0], [[0.0]], [[0.0]], [0.0], [0.0], 0.0)
    with pytest.raises(ValueError, match=r"sample_lat and sample_lon must have shape \[N, n\]"):
        misses.decompose([0.0], [0.0], [0.0], [0.0], [0.0], [0.0], 10.0)


def test_head_to_head_counts_each_cell():
    t = misses.head_to_head([10, 10, 500, 500], [10, 500, 10, 10], 200.0, names=("LocDiff", "Classification"))
    assert t.loc["LocDiff within", "Classification within"] == 25.0
    assert t.loc["LocDiff within", "Classification beyond"] == 25.0
    assert t.loc["LocDiff beyond", "Classification within"] == 50.0
    assert t.loc["LocDiff beyond", "Classification beyond"] == 0.0


def test_floor_and_support_table():
    train_lat, train_lon = np.array([0.0, 0.0]), np.array([0.0, 90.0])
    lat, lon = np.array([0.0, 0.0]), np.array([2.0, 45.0])          # 2 deg and 45 deg from the nearest
    np.testing.assert_allclose(misses.floor_km(lat, lon, train_lat, train_lon), [2 * KM_PER_DEG, 45 * KM_PER_DEG])
    preds = {"on training": {"lat": np.zeros(2), "lon": np.array([0.0, 90.0])}}
    t = misses.support_table(preds, lat, lon, train_lat, train_lon, near_km=100.0)
    assert t.loc["on training", "% within 100 km of one"] == 100.0
    assert t.loc["truth", "% within 100 km of one"] == 0.0
    # errors 2 deg and 45 deg: median 23.5 deg; floor equals the error on both: excess 0
    assert t.loc["on training", "median error (km)"] == pytest.approx(23.5 * KM_PER_DEG)
    assert t.loc["on training", "median error - floor (km)"] == pytest.approx(0.0, abs=1e-6)


def test_miss_table_rows_per_threshold():
    pred = {"lat": np.array([0.0]), "lon": np.array([0.0]), "sample_lat": np.array([[0.0]]),
            "sample_lon": np.array([[0.0]])}
    t = misses.miss_table(pred, [0.0], [3.0], thresholds_km=(100.0, 1000.0))
    assert isinstance(t, pd.DataFrame) and list(t.index) == [100.0, 1000.0]
    assert t.loc[100.0, "missed, every sample beyond"] == 100.0 and t.loc[1000.0, "within"] == 100.0
