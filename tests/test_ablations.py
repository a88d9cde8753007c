"""The ablation plan and the plain-MLP denoiser."""
from __future__ import annotations

import pytest
import torch

from locdiff import ablations, compare, experiment, profiles
from locdiff.model import CSUNetConfig, PlainMLP


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_every_group_has_exactly_one_base_variant(name):
    P = profiles.get(name)
    groups = {}
    for group, variant, changes in ablations.trained_variants(P):
        groups.setdefault(group, []).append(ablations._is_base(P, changes))
        assert len(changes) == 1, "an ablation changes one setting at a time"
    assert set(groups) == set(P.ablations.groups)
    assert set(P.ablations.groups) <= set(profiles.ALL_GROUPS)
    assert all(sum(flags) == 1 for flags in groups.values()), groups
    assert P.ablations.samples in P.ablations.sample_counts


def test_plain_mlp_has_no_sine_and_no_skips():
    cfg = CSUNetConfig(L=4, embed_dim=8, widths=(32, 16), cond_dim=16, dropout=0.0)
    net = PlainMLP(cfg)
    x, t, e = torch.randn(5, 25), torch.randint(0, 1000, (5,)), torch.randn(5, 8)
    assert net(x, t, e).shape == (5, 25)
    assert net(x, t, None).shape == (5, 25)
    names = {type(m).__name__ for m in net.modules()}
    assert "FiLMSiren" not in names and "SirenBlock" not in names
    widths = [m.out_features for m in net.body if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 32, 25]
    drop = torch.tensor([True, False, True, False, False])       # condition dropout uses the null embedding
    torch.testing.assert_close(net(x[:1], t[:1], e[:1], drop_cond=drop[:1]), net(x[:1], t[:1], None))


def test_build_rejects_unknown_arch_and_methods():
    s = profiles.get("smoke").locdiff
    from dataclasses import replace

    assert isinstance(experiment.build(replace(s, arch="mlp"), 8).model, PlainMLP)
    with pytest.raises(ValueError, match="arch"):
        experiment.build(replace(s, arch="transformer"), 8)
    with pytest.raises(ValueError, match="methods"):
        compare.fit_all(profiles.get("smoke"), methods=("Classification", "kNN"))


def test_results_are_reused_only_for_the_same_settings(tmp_path, monkeypatch):
    """ablations.run returns a stored CSV only when the settings key this machine stored (in the
    cache folder) matches the profile's and its checksum is the CSV's; a changed setting (here the
    training steps), a CSV replaced since (another run's), or a CSV without a key here (a fresh clone's
    committed CSV) recomputes, unless LOCDIFF_REDRAW=1."""
    import json
    from dataclasses import replace

    import pandas as pd

    from locdiff import ablations, datasets, profiles

    monkeypatch.setenv("LOCDIFF_ROOT", str(tmp_path))
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCDIFF_REDRAW", raising=False)
    P = profiles.get("smoke")
    groups = sorted({g for g, _, _ in ablations.trained_variants(P)})
    stored = pd.DataFrame([{c: (g if c == "group" else 0) for c in ablations.ABLATION_COLUMNS} for g in groups])
    out = tmp_path / "data" / "results" / "smoke"
    out.mkdir(parents=True)
    stored.to_csv(out / "ablations.csv", index=False)
    key_path = tmp_path / "cache" / "ablations-smoke.json"
    key_path.parent.mkdir()
    from locdiff.io import sha256

    key_path.write_text(json.dumps({"key": datasets.settings_key(P, n_boot=1000), "sha256": sha256(out / "ablations.csv")}))

    class Recomputed(Exception):
        pass

    def refuse(*a, **k):
        raise Recomputed
    monkeypatch.setattr(datasets, "embeddings", refuse)
    assert len(ablations.run(P)) == len(groups)                          # same settings: reused
    changed = replace(P, ablations=replace(P.ablations, steps=P.ablations.steps + 1))
    assert datasets.settings_key(changed) != datasets.settings_key(P)
    with pytest.raises(Recomputed):
        ablations.run(changed)                                            # other settings: recomputed
    stored.assign(value=1).to_csv(out / "ablations.csv", index=False)
    with pytest.raises(Recomputed):
        ablations.run(P)                                                  # another run's CSV: recomputed
    stored.to_csv(out / "ablations.csv", index=False)
    assert len(ablations.run(P)) == len(groups)                          # the CSV the key was stored for
    key_path.unlink()
    with pytest.raises(Recomputed):
        ablations.run(P)                                                  # no key here: recomputed
    monkeypatch.setenv("LOCDIFF_REDRAW", "1")
    assert len(ablations.run(changed)) == len(groups)                   # explicit redraw: the CSV as it is
    (out / "ablations.csv").unlink()
    with pytest.raises(FileNotFoundError, match="LOCDIFF_REDRAW=1 redraws from the committed"):
        ablations.run(P)


def test_run_writes_the_settings_key_it_is_reused_with(tmp_path, monkeypatch):
    """The key file that run() writes (in the cache folder) holds the profile's settings key (not a variant's), so
    the next run with the same settings reuses the CSV. Training and data are replaced by an
    untrained smoke-sized LocDiff on random embeddings: only the bookkeeping is under test."""
    import json
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from locdiff import datasets

    monkeypatch.setenv("LOCDIFF_ROOT", str(tmp_path))
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCDIFF_REDRAW", raising=False)
    P = profiles.get("smoke")
    n, rng = 20, np.random.default_rng(0)
    emb = rng.standard_normal((n, P.encoder.embed_dim)).astype(np.float32)
    lat, lon = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n)
    monkeypatch.setattr(datasets, "embeddings", lambda *a, **k: {"embeddings": {"test_iid": emb}})
    split = type("Split", (SimpleNamespace,), {"__len__": lambda self: len(self.lat)})
    monkeypatch.setattr(datasets, "load", lambda *a, **k: {"test_iid": split(lat=lat, lon=lon)})
    monkeypatch.setattr(experiment, "fit", lambda profile, settings=None, **k: (
        experiment.build(settings or profile.locdiff, P.encoder.embed_dim), pd.DataFrame({"time_s": [1.0]})))
    df = ablations.run(P, n_boot=20, progress=False)
    written = json.loads((tmp_path / "cache" / "ablations-smoke.json").read_text())
    assert written["key"] == datasets.settings_key(P, n_boot=20)
    from locdiff.io import sha256

    assert written["sha256"] == sha256(tmp_path / "data" / "results" / "smoke" / "ablations.csv")

    def refuse(*a, **k):
        raise AssertionError("recomputed although the settings did not change")
    monkeypatch.setattr(datasets, "embeddings", refuse)
    again = ablations.run(P, n_boot=20, progress=False)
    assert len(again) == len(df)


def test_coarse_band_errors_against_band_errors_and_closed_form_shares(monkeypatch):
    """ablations.coarse_band_errors on small untrained variants (fit_variant and the data stubbed):
    its closed-form coarse signal Σ (2l+1) w_l² gives the same relative error as the empirical
    Σ x0² of spectrum.band_errors, and the loss share under the "band" weight is (l_max+1)/(L+1)."""
    import types
    from dataclasses import replace

    import numpy as np

    from locdiff import datasets, spectrum

    base = profiles.get("smoke")
    P = replace(base, ablations=replace(base.ablations, degrees=(4, 8)),
                locdiff=replace(base.locdiff, band_weight="band", spectrum="heat"))
    rng = np.random.default_rng(0)
    n, E = 40, 16
    emb = rng.normal(size=(n, E)).astype(np.float32)
    lat, lon = rng.uniform(-80, 80, n), rng.uniform(-180, 180, n)
    monkeypatch.setattr(datasets, "embeddings", lambda p, progress=False: {"embeddings": {"val": emb}})
    monkeypatch.setattr(datasets, "load", lambda p, s, progress=False: {"val": types.SimpleNamespace(lat=lat, lon=lon)})
    models = {L: experiment.build(replace(P.locdiff, L=L), E, seed=L) for L in (4, 8)}
    monkeypatch.setattr(ablations, "fit_variant", lambda p, ch, progress=False: (models[ch["L"]], None))
    got = ablations.coarse_band_errors(P, l_max=2, timesteps=(100, 700), images=n)
    assert sorted(set(got.L)) == [4, 8] and sorted(set(got.t)) == [100, 700]
    for L, m in models.items():
        b = spectrum.band_errors(m, emb, lat, lon, [100, 700], seed=P.seed)
        for t, g in b[b.l <= 2].groupby("t"):
            want = g.mse.sum() / (g.mse / g.relative).sum()
            row = got[(got.L == L) & (got.t == t)].iloc[0]
            assert row.relative == pytest.approx(want, rel=1e-5)
            assert row.loss_share == pytest.approx(3 / (L + 1))
    with pytest.raises(ValueError, match="l_max must be an integer in"):
        ablations.coarse_band_errors(P, l_max=4)


def test_best_vs_base_names_the_best_variant_and_checks_separation():
    import pandas as pd

    rows = [("degree L", "L = 16", False, 90.0, 88.0, 92.0), ("degree L", "L = 32", True, 93.0, 91.0, 95.0),
            ("degree L", "L = 64", False, 97.0, 95.5, 98.5), ("dropout", "dropout 0.1", True, 93.0, 91.0, 95.0),
            ("dropout", "dropout 0", False, 94.0, 92.0, 96.0)]
    df = pd.DataFrame([{"group": g, "variant": v, "base": b, "metric": "acc@750km", "value": x, "ci_low": lo,
                        "ci_high": hi} for g, v, b, x, lo, hi in rows])
    out = ablations.best_vs_base(df).set_index("group")
    assert out.loc["degree L", "best variant"] == "L = 64" and bool(out.loc["degree L", "separated"])   # 95.5 > 95.0
    assert out.loc["dropout", "best variant"] == "dropout 0" and not bool(out.loc["dropout", "separated"])
