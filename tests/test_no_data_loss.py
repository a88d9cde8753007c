"""Nothing a user made is lost, and no wrong answer is silent (the hostile audit's numbered items).

1. ``save_pretrained`` never deletes what it did not write (a user's folder, a sibling ``.tmp``).
2. ``train`` keeps files a user put in the run folder and its ``checkpoint/``.
3. An existing run is refused unless resumed or overwritten (API and ``locdiff train``, exit 2).
4. ``--out ""`` is refused.
5. A leftover ``checkpoint.old`` neither blocks later saves nor hides a complete checkpoint.
6. Two processes training into one folder: the second stops, naming the holder.
7. A full disk during a save: a clear error, no temporary left, the previous checkpoint kept.
8. ``locdiff evaluate`` refuses a checkpoint of another profile before building any data.
9. A pretrained config.json is checksummed and every field validated.
10. ``predict(top_k)`` and ``shdd.decode(k)`` give distinct modes or a clear limit, shape [B, k].
11. ``shdd.decode`` of a constant field is refused.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from locdiff import cli, experiment, io, pipeline, pretrained, profiles, shdd
from locdiff.train import (CheckpointError, RunExistsError, TrainConfig, read_checkpoint_config, recover_checkpoint,
                           train)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import make_tiles as _tiles  # noqa: E402


# ----------------------------------------------------------------------------- helpers
def _problem(width: int = 8):
    torch.manual_seed(0)
    model = torch.nn.Linear(width, 2)
    x = torch.randn(N_ITEMS, width)

    def loss_fn(m, idx, gen):
        return {"loss": m(x[idx]).pow(2).mean()}
    return model, loss_fn


N_ITEMS = 256
CFG = TrainConfig(steps=4, batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)


def _run(out: Path, model_config=None, cfg: TrainConfig = CFG, **kw):
    model, loss_fn = _problem()
    return train(model, loss_fn, N_ITEMS, cfg, out, {"k": 1} if model_config is None else model_config,
                 progress=False, **kw)


def _interrupted(out: Path, model_config: dict, cfg: TrainConfig, stop_after: int):
    """A run stopped (KeyboardInterrupt) after ``stop_after`` steps, its checkpoint written at a multiple
    of checkpoint_every before that."""
    model, loss_fn = _problem()
    calls = [0]

    def stopping(m, idx, gen):
        calls[0] += 1
        if calls[0] > stop_after:
            raise KeyboardInterrupt
        return loss_fn(m, idx, gen)
    with pytest.raises(KeyboardInterrupt):
        train(model, stopping, N_ITEMS, cfg, out, model_config, progress=False)


def _cli(capsys, *argv) -> tuple[int, str]:
    """``locdiff`` in this process: (exit code, stderr)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:                 # argparse
        code = e.code
    return code, capsys.readouterr().err


def _smoke_settings():
    P = profiles.get("smoke")
    s = P.locdiff
    cfg = TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, warmup=s.warmup, ema_decay=s.ema_decay,
                      eval_every=s.eval_every, checkpoint_every=max(s.eval_every, s.steps // 4), seed=P.seed)
    return P, experiment.run_config(P, s, P.encoder.embed_dim), cfg


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".lock")


# ----------------------------------------------------------------------------- 1. save_pretrained
def test_save_pretrained_refuses_a_users_folder_and_keeps_a_sibling_tmp(tiny, tmp_path):
    docs, sibling = tmp_path / "mydocs", tmp_path / "out.tmp"
    docs.mkdir(), sibling.mkdir()
    (docs / "thesis.txt").write_text("years of work")
    (sibling / "notes.txt").write_text("mine")
    with pytest.raises(pipeline.PretrainedError, match="not a pretrained LocDiff folder"):
        tiny.save_pretrained(docs)
    assert (docs / "thesis.txt").read_text() == "years of work"
    tiny.save_pretrained(tmp_path / "out")
    assert (sibling / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(pipeline.FILES)
    assert _hidden(tmp_path) == []                                   # no temporary left behind
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(pipeline.PretrainedError, match="is a file"):
        tiny.save_pretrained(tmp_path / "a-file")
    with pytest.raises(pipeline.PretrainedError, match="folder path"):
        tiny.save_pretrained("")


def test_save_pretrained_over_a_pretrained_folder_keeps_the_users_files(tiny, tmp_path):
    out = tiny.save_pretrained(tmp_path / "w")
    (out / "README.txt").write_text("how I trained it")
    tiny.save_pretrained(out)                                         # replace the weights
    assert (out / "README.txt").read_text() == "how I trained it"
    pipeline.LocDiffPipeline.from_pretrained(out)                     # and it loads
    empty = tmp_path / "empty"
    empty.mkdir()
    tiny.save_pretrained(empty)                                       # an empty folder is fine too
    assert sorted(p.name for p in empty.iterdir()) == sorted(pipeline.FILES)
    assert _hidden(tmp_path) == []


# ----------------------------------------------------------------------------- 2-3. run folders
def test_overwrite_keeps_files_the_user_put_in_the_run_folder(tmp_path):
    out = tmp_path / "run"
    _run(out)
    (out / "notes.md").write_text("run notes")
    (out / "checkpoint" / "my-eval.csv").write_text("a,b\n1,2\n")
    _run(out, {"k": 2}, overwrite=True)
    assert (out / "notes.md").read_text() == "run notes"
    assert (out / "checkpoint" / "my-eval.csv").read_text() == "a,b\n1,2\n"
    assert read_checkpoint_config(out / "checkpoint")["model"] == {"k": 2}
    assert _hidden(out) == []


def test_existing_runs_are_refused_unless_resumed_or_overwritten(tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(steps=8, batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
    _interrupted(out, {"k": 1}, cfg, stop_after=5)
    before = {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()}
    with pytest.raises(RunExistsError, match=r"interrupted run \(checkpoint at step 4 of 8\).*resume=True"):
        _run(out, cfg=cfg)
    with pytest.raises(RunExistsError, match="other settings"):
        _run(out, {"k": 2}, cfg=cfg)
    assert {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()} == before   # untouched
    log = _run(out, cfg=cfg, resume=True)
    assert log.step.iloc[-1] == 8
    with pytest.raises(RunExistsError, match="finished run"):
        _run(out, cfg=cfg)
    (tmp_path / "logonly").mkdir()
    (tmp_path / "logonly" / "log.csv").write_text("step,loss\n")
    with pytest.raises(RunExistsError, match="log.csv"):
        _run(tmp_path / "logonly")


def test_cli_train_refuses_an_interrupted_run_before_building_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))
    P, model_config, cfg = _smoke_settings()
    out = tmp_path / "run"
    _interrupted(out, model_config, cfg, stop_after=cfg.checkpoint_every + 1)
    t = time.perf_counter()
    code, err = _cli(capsys, "train", "--profile", "smoke", "--out", str(out))
    assert code == 2 and "locdiff train: error:" in err and "interrupted run" in err, err
    assert "--resume" in err and "--overwrite" in err and "--out" in err
    assert time.perf_counter() - t < 30 and not (tmp_path / "cache").exists()   # refused before any data
    _run(tmp_path / "other", {"k": 1})
    code, err = _cli(capsys, "train", "--profile", "smoke", "--out", str(tmp_path / "other"))
    assert code == 2 and "other settings" in err, err
    code, err = _cli(capsys, "train", "--profile", "smoke", "--out", str(out), "--resume", "--overwrite")
    assert code == 2 and "not allowed with" in err


def test_cli_train_refuses_an_empty_out(capsys):
    code, err = _cli(capsys, "train", "--profile", "smoke", "--out", "")
    assert code == 2 and "--out must be a folder path" in err, err


# ----------------------------------------------------------------------------- 5. leftovers of a killed save
def test_a_leftover_checkpoint_old_neither_blocks_saves_nor_hides_a_checkpoint(tmp_path):
    cfg = TrainConfig(steps=8, batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
    out = tmp_path / "run"
    _interrupted(out, {"k": 1}, cfg, stop_after=5)
    shutil.copytree(out / "checkpoint", out / "checkpoint.old")       # a kill between the two renames
    log = _run(out, cfg=cfg, resume=True)                             # later saves succeed
    assert log.step.iloc[-1] == 8 and not (out / "checkpoint.old").exists()
    assert read_checkpoint_config(out / "checkpoint")["step"] == 8

    only_old = tmp_path / "only-old"
    _interrupted(only_old, {"k": 1}, cfg, stop_after=5)
    (only_old / "checkpoint").rename(only_old / "checkpoint.old")
    assert read_checkpoint_config(only_old / "checkpoint")["step"] == 4          # recovered, not "no checkpoint"
    (only_old / "checkpoint").rename(only_old / ".checkpoint.old-x1")            # the new naming
    assert recover_checkpoint(only_old / "checkpoint")
    assert _run(only_old, cfg=cfg, resume=True).step.iloc[-1] == 8
    damaged = tmp_path / "damaged"
    _interrupted(damaged, {"k": 1}, cfg, stop_after=5)
    (damaged / "checkpoint" / "state.pt").write_bytes(b"oops")
    (damaged / "checkpoint").rename(damaged / "checkpoint.old")
    assert not recover_checkpoint(damaged / "checkpoint")              # an incomplete one is not put back
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        read_checkpoint_config(damaged / "checkpoint")


# ----------------------------------------------------------------------------- 6. two processes
HOLD = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    import torch
    from locdiff.train import TrainConfig, train
    out, marker = Path(sys.argv[1]), Path(sys.argv[2])
    torch.manual_seed(0)
    model, x = torch.nn.Linear(8, 2), torch.randn(64, 8)
    def loss_fn(m, idx, gen):
        marker.write_text("training")
        time.sleep(0.05)
        return {"loss": m(x[idx]).pow(2).mean()}
    train(model, loss_fn, 64, TrainConfig(steps=%d, batch_size=16, log_every=2, eval_every=2, checkpoint_every=2),
          out, {"k": 1}, progress=False)
    print("finished", flush=True)
''')


def test_two_processes_in_one_run_folder(tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "marker"
    script = tmp_path / "hold.py"
    script.write_text(HOLD % 60)
    first = subprocess.Popen([sys.executable, str(script), str(out), str(marker)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert first.poll() is None and time.time() < deadline, first.stderr.read() if first.poll() else "stalled"
            time.sleep(0.05)
        with pytest.raises(io.FolderBusyError, match=rf"in use by process {first.pid} on "):
            _run(out, overwrite=True)                                 # even overwrite=True waits its turn
        code, err = _cli(capsys, "train", "--profile", "smoke", "--out", str(out), "--overwrite")
        assert code == 2 and f"in use by process {first.pid}" in err, err
        stdout, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0 and "finished" in stdout, stderr[-2000:]
    assert read_checkpoint_config(out / "checkpoint")["step"] == 60   # the holder's run is intact
    _run(out, overwrite=True)                                         # the lock died with its holder


# ----------------------------------------------------------------------------- 7. a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only); skipped with the reason where it cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("the disk-full test mounts a small tmpfs, which needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder: Path, leave: int) -> None:
    """Write a filler file until at most ``leave`` bytes are free."""
    with open(folder / "filler", "wb") as f:
        try:
            while shutil.disk_usage(folder).free > leave:
                f.write(b"\0" * min(1 << 16, max(4096, shutil.disk_usage(folder).free - leave)))
                f.flush()
        except OSError:
            pass


def test_a_full_disk_keeps_the_previous_checkpoint(small_disk):
    out = small_disk / "run"
    cfg = TrainConfig(steps=8, batch_size=16, log_every=4, eval_every=4, checkpoint_every=4)
    wide = {"k": 1}
    torch.manual_seed(0)
    model = torch.nn.Linear(128, 256)                                 # ~130 KB per weight file
    x = torch.randn(64, 128)
    calls = [0]

    def loss_fn(m, idx, gen):
        calls[0] += 1
        if calls[0] == 5:                                             # after the step-4 checkpoint
            _fill(small_disk, leave=20_000)
        return {"loss": m(x[idx]).pow(2).mean()}
    with pytest.raises(io.DiskFullError, match="no space left on the device") as err:
        train(model, loss_fn, 64, cfg, out, wide, progress=False)
    assert "kept" in str(err.value)
    assert read_checkpoint_config(out / "checkpoint")["step"] == 4    # verified: complete and intact
    assert _hidden(out) == []                                         # no temporary left behind
    (small_disk / "filler").unlink()
    model2 = torch.nn.Linear(128, 256)
    log = train(model2, lambda m, idx, g: {"loss": m(x[idx]).pow(2).mean()}, 64, cfg, out, wide, resume=True,
                progress=False)
    assert log.step.iloc[-1] == 8


def test_a_full_disk_during_save_pretrained(tiny, small_disk):
    _fill(small_disk, leave=50_000)
    with pytest.raises(io.DiskFullError, match="no space left"):
        tiny.save_pretrained(small_disk / "w")
    assert not (small_disk / "w").exists() and _hidden(small_disk) == []


# ----------------------------------------------------------------------------- 8. evaluate under another profile
def test_evaluate_refuses_a_checkpoint_of_another_profile_before_building_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))
    P, model_config, cfg = _smoke_settings()
    _run(tmp_path / "run", model_config)
    t = time.perf_counter()
    code, err = _cli(capsys, "evaluate", "--checkpoint", str(tmp_path / "run"), "--split", "val", "--profile", "cpu")
    assert code == 2 and "other data or another encoder" in err, err
    assert "data.n_train 2000 (checkpoint) vs 50000" in err and "matches --profile smoke" in err
    assert time.perf_counter() - t < 30 and not (tmp_path / "cache").exists()


# ----------------------------------------------------------------------------- 9. pretrained config.json
def _edit(folder: Path, change, resum: bool) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    change(cfg)
    if resum:
        cfg["config_sha256"] = pretrained.config_sha256(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(tile_size=1), r"tile_size must be an integer in \[8, 1024\]"),
    (lambda c: c["locdiff"].update(L=0), r"locdiff.L must be an integer in \[1, 256\]"),
    (lambda c: c["locdiff"].update(schedule="sigmoid"), "locdiff.schedule must be one of cosine, linear"),
    (lambda c: c["locdiff"].update(guidance=float("nan")), "locdiff.guidance must be"),
    (lambda c: c["locdiff"].pop("dropout"), "locdiff must hold exactly .*missing dropout"),
    (lambda c: c["encoder"].update(widths=[]), "encoder.widths must be a non-empty list"),
    (lambda c: c.update(embed_dim=7), "embed_dim must equal encoder.embed_dim"),
    (lambda c: c.update(seed=-1), r"seed must be an integer >= 0"),
    (lambda c: c.update(extra=1), r"unknown field\(s\) extra"),
], ids=["tile_size", "L", "schedule", "guidance", "missing", "widths", "embed_dim", "seed", "unknown"])
def test_pretrained_config_is_checksummed_and_validated(tiny, tmp_path, change, message):
    good = tiny.save_pretrained(tmp_path / "good")
    edited = tmp_path / "edited"
    shutil.copytree(good, edited)
    _edit(edited, change, resum=False)
    with pytest.raises(pipeline.PretrainedError, match="does not match its config_sha256"):
        pipeline.LocDiffPipeline.from_pretrained(edited)
    _edit(edited, lambda c: None, resum=True)                         # the checksum forged too: the field check
    with pytest.raises(pipeline.PretrainedError, match=message):
        pipeline.LocDiffPipeline.from_pretrained(edited)


def test_config_checksum_is_the_sha256_of_the_canonical_json(tiny, tmp_path):
    import hashlib

    cfg = json.loads((tiny.save_pretrained(tmp_path / "w") / "config.json").read_text())
    body = {k: v for k, v in cfg.items() if k != "config_sha256"}
    oracle = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert cfg["config_sha256"] == oracle


def test_shipped_weights_load_with_the_config_checksum():
    """The shipped folder loads (its config checksum holds) and is the cpu profile's model."""
    from locdiff import experiment, profiles

    p = pipeline.LocDiffPipeline.from_pretrained()
    cpu = profiles.get("cpu")
    assert experiment.training_settings(p.locdiff.settings) == experiment.training_settings(cpu.locdiff)
    assert p.tile_size == cpu.data.tile_size


# ----------------------------------------------------------------------------- 10-11. modes
def _pairwise_min_km(lat: np.ndarray, lon: np.ndarray) -> float:
    from conftest import haversine_km

    d = haversine_km(lat[:, None], lon[:, None], lat[None], lon[None])
    return float((d + np.eye(len(lat)) * 1e9).min())


@pytest.mark.parametrize("L", [8, 16, 32])
def test_decode_gives_k_distinct_modes_up_to_its_limit(L):
    """At k = max_modes(L) every answer is a distinct point at least 180/(L+1) degrees from the others
    (checked with the haversine oracle), the values are sorted and the shape is [N, k]."""
    k = shdd.max_modes(L)
    torch.manual_seed(L)
    pts = shdd.encode(torch.tensor([10.0, -35.0, 48.0]), torch.tensor([20.0, 140.0, -3.0]), L)
    fields = torch.stack([pts[0], pts.mean(0), torch.randn((L + 1) ** 2, dtype=pts.dtype)])
    lat, lon, val = shdd.decode(fields, k=k)
    assert lat.shape == lon.shape == val.shape == (3, k)
    sep_km = np.radians(180 / (L + 1)) * 6371.0
    for i in range(3):
        assert _pairwise_min_km(lat[i].numpy(), lon[i].numpy()) >= sep_km * (1 - 1e-6)
    assert (val[:, :-1] >= val[:, 1:]).all()
    assert abs(float(lat[0, 0]) - 10.0) < 0.01 and abs(float(lon[0, 0]) - 20.0) < 0.01   # the point's mode first


def test_decode_refuses_more_modes_than_it_can_separate_at_once():
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"k must be <= 66 for a degree-16 field"):
        shdd.decode(shdd.encode(10.0, 20.0, 16), k=100_000)
    assert time.perf_counter() - t < 2
    assert shdd.max_modes(16, min_separation_deg=0) == shdd.max_modes(16, min_separation_deg=0.0) > 66


def test_predict_top_k_is_distinct_or_refused(tiny):
    cap = shdd.max_modes(tiny.locdiff.settings.L)
    table = tiny.predict(_tiles(2), top_k=cap, n=4, steps=3, progress=False)
    assert len(table) == 2 * cap
    sep_km = np.radians(180 / (tiny.locdiff.settings.L + 1)) * 6371.0
    for _, g in table.groupby("image"):
        assert list(g["rank"]) == list(range(1, cap + 1))
        assert _pairwise_min_km(g.lat.to_numpy(), g.lon.to_numpy()) >= sep_km * (1 - 1e-6)
    with pytest.raises(ValueError, match=rf"top_k must be an integer in \[1, {cap}\]"):
        tiny.predict(_tiles(1), top_k=cap + 1, progress=False)


@pytest.mark.parametrize("coeffs", [torch.zeros(25), torch.cat([torch.ones(1), torch.zeros(24)])],
                         ids=["zero", "constant"])
def test_decode_refuses_a_field_without_a_mode(coeffs):
    with pytest.raises(ValueError, match="constant field"):
        shdd.decode(coeffs)
    with pytest.raises(ValueError, match="coeffs row 1 is a constant field"):
        shdd.decode(torch.stack([shdd.encode(0.0, 0.0, 4).float(), coeffs]), k=2)


def test_compare_cache_never_pairs_predictions_with_another_runs_results(tmp_path):
    """The prediction cache's manifest holds the results CSV's checksum: a methods.csv written by
    another run (other settings, left over in the folder) makes the cache stale instead of being
    read back beside predictions it was not computed from."""
    import numpy as np

    from locdiff import compare, evaluate

    row = {"profile": "p", "method": "LocDiff", "split": "test_iid", "metric": "acc@25km", "value": 40.0,
           "ci_low": 38.0, "ci_high": 42.0, "n_images": 10, "train_seconds": 1.0, "predict_seconds": 1.0}
    out = tmp_path / "results" / "p"
    out.mkdir(parents=True)
    csv, cache = out / "methods.csv", tmp_path / "predictions-p.npz"
    manifest = cache.with_suffix(".json")
    evaluate.write_results([row], csv)
    preds = {("LocDiff", "test_iid"): {"lat": np.zeros(3), "lon": np.ones(3)}}
    compare._write_cache(preds, cache, manifest, "key", csv)
    res, got = compare._read_cache(csv, cache, manifest, "key", progress=False)
    assert res.value.tolist() == [40.0] and got[("LocDiff", "test_iid")]["lon"].tolist() == [1.0, 1.0, 1.0]
    assert compare._read_cache(csv, cache, manifest, "other key", progress=False) is None
    evaluate.write_results([{**row, "value": 94.0}], csv)          # another run's results in the same place
    assert compare._read_cache(csv, cache, manifest, "key", progress=False) is None
