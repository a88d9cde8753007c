"""Training-seed replicates (locdiff.seeds): the profile plumbing, and summaries and verdicts
checked against hand-computed values on small tables."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from locdiff import compare, datasets, profiles, seeds
from locdiff.profiles import ReplicateSettings


def _table(values: dict, split: str = "test_iid") -> pd.DataFrame:
    """Rows (replicate, method, split, metric, value, ci_low, ci_high) from {(method, metric): [v per replicate]}."""
    rows = []
    for (method, metric), vals in values.items():
        for r, v in enumerate(vals):
            rows.append({"replicate": r, "method": method, "split": split, "metric": metric, "value": v,
                         "ci_low": v - 1.0, "ci_high": v + 1.0})
    return pd.DataFrame(rows)


def test_replicates_change_only_the_training_seed():
    P = profiles.get("cpu")
    R = replace(P, replicate=2)
    assert (P.train_seed, R.train_seed) == (P.seed, P.seed + 2000)
    assert (P.tag, R.tag) == ("cpu", "cpu-r2")
    assert (R.data, R.encoder, R.seed) == (P.data, P.encoder, P.seed)      # the same benchmark and encoder caches
    assert datasets.settings_key(P) != datasets.settings_key(R)
    # the replicate settings do not decide the main run's results: changing them keeps its cache key
    assert datasets.settings_key(P) == datasets.settings_key(replace(P, replicates=ReplicateSettings(count=5)))
    assert [p.replicate for p in seeds.replicate_profiles(P)] == list(range(P.replicates.count))
    assert profiles.get("cpu").replicates.count >= 3 and profiles.get("gpu").replicates.count >= 3
    assert set(profiles.get("gpu").replicates.methods) == set(compare.METHODS)


@pytest.mark.parametrize("bad, match", [
    (ReplicateSettings(count=0), "replicates.count"), (ReplicateSettings(count=2.5), "replicates.count"),
    (ReplicateSettings(methods=("Nearest",)), "replicates.methods"), (ReplicateSettings(methods=()), "replicates.methods"),
])
def test_bad_replicate_settings_are_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        seeds.replicate_profiles(replace(profiles.get("smoke"), replicates=bad))
    with pytest.raises(ValueError, match="replicate must be 0"):
        seeds.replicate_profiles(replace(profiles.get("smoke"), replicate=1))


def test_summary_matches_numpy():
    vals = {("A", "acc@25km"): [10.0, 14.0, 12.0], ("B", "acc@25km"): [11.0, 11.0, 17.0]}
    s = seeds.summary(_table(vals), "test_iid", metrics=("acc@25km",))
    for m, v in (("A", vals["A", "acc@25km"]), ("B", vals["B", "acc@25km"])):
        row = s.loc[(m, "acc@25km")]
        assert row["mean"] == pytest.approx(np.mean(v)) and row["sd"] == pytest.approx(np.std(v, ddof=1))
        assert (row["min"], row["max"], row["seeds"], row["seed 0"]) == (min(v), max(v), 3, v[0])
        assert (row["seed 0 ci_low"], row["seed 0 ci_high"]) == (v[0] - 1.0, v[0] + 1.0)
    with pytest.raises(ValueError, match="split"):
        seeds.summary(_table(vals), "test_unseen")


def test_verdicts_hold_only_when_every_seed_agrees():
    vals = {
        # A's mean is higher and A wins every replicate: a verdict
        ("A", "acc@25km"): [20.0, 21.0, 22.0], ("B", "acc@25km"): [19.0, 20.5, 10.0],
        # B's mean is higher but A wins replicate 1: no verdict
        ("A", "acc@750km"): [50.0, 70.0, 50.0], ("B", "acc@750km"): [60.0, 65.0, 60.0],
        # errors: lower is better; B wins every replicate
        ("A", "median_km"): [300.0, 280.0, 310.0], ("B", "median_km"): [200.0, 250.0, 100.0],
    }
    v = seeds.verdicts(_table(vals), "test_iid", metrics=("acc@25km", "acc@750km", "median_km")).set_index("metric")
    assert (v.loc["acc@25km", "best"], v.loc["acc@25km", "holds in every seed"]) == ("A", True)
    assert v.loc["acc@25km", "smallest margin"] == pytest.approx(0.5)
    assert (v.loc["acc@750km", "best"], v.loc["acc@750km", "holds in every seed"]) == ("B", False)
    assert v.loc["acc@750km", "smallest margin"] == pytest.approx(-5.0)
    assert (v.loc["median_km", "best"], v.loc["median_km", "holds in every seed"]) == ("B", True)
    assert v.loc["median_km", "best mean"] == pytest.approx(550.0 / 3)


def test_hybrid_check_against_hand_computed_cases():
    vals = {("LocDiff-H", "acc@25km"): [30.0, 31.0], ("Retrieval", "acc@25km"): [30.0, 29.0],
            ("LocDiff", "acc@25km"): [10.0, 12.0],
            ("LocDiff-H", "median_km"): [50.0, 40.0], ("Retrieval", "median_km"): [45.0, 60.0],
            ("LocDiff", "median_km"): [80.0, 70.0]}
    h = seeds.hybrid_check(_table(vals), "test_iid", metrics=("acc@25km", "median_km")).set_index("metric")
    assert h.loc["acc@25km", ">= Retrieval in every seed"] and h.loc["acc@25km", ">= LocDiff in every seed"]
    assert not h.loc["median_km", ">= Retrieval in every seed"] and h.loc["median_km", ">= LocDiff in every seed"]
    assert h.loc["acc@25km", "LocDiff-H"] == pytest.approx(30.5)
    with pytest.raises(ValueError, match="hybrid_check needs"):
        seeds.hybrid_check(_table({("LocDiff", "acc@25km"): [1.0]}), "test_iid", metrics=("acc@25km",))


@pytest.mark.slow
def test_a_replicate_retrains_with_its_own_seed(private_cache, tmp_path, monkeypatch, one_torch_thread):
    """Two replicates of one cheap method on the smoke benchmark, trained side by side in two worker
    processes: two trainings with different seeds (different numbers), their own run folders, one
    stacked CSV; and the same numbers as the two trained one after the other in this process (one
    torch thread in both, so the float sums run in the same order)."""
    monkeypatch.setenv("LOCDIFF_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("LOCDIFF_WORKERS", "2")
    P = replace(profiles.get("smoke"), replicates=ReplicateSettings(count=2, methods=("Regression",)))
    df = seeds.run(P, n_boot=20, progress=False, main_methods=("Regression",))
    monkeypatch.setenv("LOCDIFF_ROOT", str(tmp_path / "sequential"))
    monkeypatch.setenv("LOCDIFF_WORKERS", "1")
    one_by_one = seeds.run(P, n_boot=20, progress=False, main_methods=("Regression",))
    assert not (tmp_path / "sequential" / "checkpoints" / "smoke-r1").samefile(tmp_path / "root" / "checkpoints" / "smoke-r1")
    pd.testing.assert_series_equal(df.value, one_by_one.value)
    assert sorted(df.replicate.unique()) == [0, 1] and sorted(df.train_seed.unique()) == [P.seed, P.seed + 1000]
    assert (tmp_path / "root" / "data" / "results" / "smoke" / "replicates.csv").exists()
    assert (tmp_path / "root" / "checkpoints" / "smoke-r1" / "baselines").is_dir()
    wide = df[df.split == "test_iid"].pivot_table(index="metric", columns="replicate", values="value")
    assert (wide[0] != wide[1]).any(), "a second seed must train a different model"
    assert seeds.summary(df, "test_iid").loc[("Regression", "median_km"), "seeds"] == 2


def test_pairwise_and_the_generalization_sentences_name_the_seeds():
    from locdiff import report

    vals = {("LocDiff", "acc@750km"): [40.0, 42.0, 41.0], ("Classification", "acc@750km"): [38.0, 43.0, 39.0],
            ("Retrieval", "acc@750km"): [20.0, 21.0, 22.0]}
    rep = _table(vals, "test_unseen").assign(train_seed=lambda d: 1000 * d.replicate)
    assert seeds.pairwise(rep, "test_unseen", "acc@750km", "LocDiff", "Retrieval")["verdict"] == "better in every seed"
    pw = seeds.pairwise(rep, "test_unseen", "acc@750km", "LocDiff", "Classification")
    assert pw["verdict"] == "order changes between seeds" and pw["seeds"] == [0, 1000, 2000]
    assert pw["mean_b"] == pytest.approx(40.0)
    assert seeds.pairwise(rep, "test_unseen", "acc@750km", "Retrieval", "LocDiff")["verdict"] == "worse in every seed"
    main = pd.concat([rep[rep.replicate == 0], rep[rep.replicate == 0].assign(split="test_iid")])
    text = report.generalization_summary(main, "acc@750km", splits=("test_unseen",), replicates=rep)
    assert "over train seeds 0, 1000, 2000" in text and "changes between seeds" in text


def test_replicates_keep_the_main_runs_tuned_choices():
    P = profiles.get("cpu")
    tuning = pd.DataFrame([
        {"method": "Classification", "cell_max_count": 300.0, "label_tau_km": 75.0, "chosen": True},
        {"method": "Classification", "cell_max_count": 100.0, "label_tau_km": 300.0, "chosen": False},
        {"method": "LocDiff-H", "hybrid_k": 10.0, "chosen": True},
        {"method": "LocDiff", "guidance": 2.0, "chosen": True}])
    R = seeds.with_chosen(replace(P, replicate=1), tuning)
    assert (R.baselines.cell_max_count, R.baselines.label_tau_km, R.baselines.hybrid_k) == ((300,), (75.0,), (10,))
    assert isinstance(R.baselines.cell_max_count[0], int) and R.baselines.guidance == P.baselines.guidance
    assert seeds.with_chosen(P, tuning.iloc[:0]) == P
