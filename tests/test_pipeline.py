"""LocDiffPipeline and the ``locdiff`` command line: round trip, inputs, errors, shipped weights."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_tiles as _tiles
from conftest import run_cli as _cli

from locdiff import pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_round_trip_gives_identical_predictions(tiny, tmp_path):
    imgs = list(_tiles(3))
    before = tiny.predict(imgs, top_k=3, n=4, steps=5, seed=7, progress=False)
    tiny.save_pretrained(tmp_path / "w")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(pipeline.FILES)
    back = pipeline.LocDiffPipeline.from_pretrained(tmp_path / "w", device="cpu")
    after = back.predict(imgs, top_k=3, n=4, steps=5, seed=7, progress=False)
    np.testing.assert_array_equal(before.to_numpy(), after.to_numpy())
    assert list(after.columns) == ["image", "rank", "lat", "lon", "score"] and len(after) == 9
    assert (np.diff(after.score.to_numpy().reshape(3, 3), axis=1) <= 1e-9).all()     # ranked by score


def test_half_precision_weights_halve_the_files_and_load_as_float32(tiny, tmp_path):
    from safetensors.torch import load_file

    tiny.save_pretrained(tmp_path / "full")
    tiny.save_pretrained(tmp_path / "half", half=True)
    for f in ("encoder.safetensors", "model.safetensors"):
        full, half = (tmp_path / "full" / f).stat().st_size, (tmp_path / "half" / f).stat().st_size
        assert half < 0.55 * full, f
        stored = load_file(str(tmp_path / "half" / f))
        assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    back = pipeline.LocDiffPipeline.from_pretrained(tmp_path / "half", device="cpu")
    assert {p.dtype for p in back.locdiff.model.parameters()} == {torch.float32}
    for name, p in tiny.locdiff.model.state_dict().items():          # each weight rounded to float16, no more
        torch.testing.assert_close(back.locdiff.model.state_dict()[name], p.half().float(), rtol=0, atol=0)
    with pytest.raises(pipeline.PretrainedError, match="half must be True or False"):
        tiny.save_pretrained(tmp_path / "x", half="yes")


def test_accepts_arrays_tensors_pil_and_paths(tiny, tmp_path):
    t = _tiles(1)[0]
    path = tmp_path / "t.png"
    Image.fromarray(t).save(path)
    forms = [t, t.transpose(2, 0, 1), torch.from_numpy(t), t.astype(np.float32) / 255, Image.fromarray(t), path, str(path)]
    embs = [tiny.embed(f) for f in forms]
    for e in embs[1:]:
        torch.testing.assert_close(e, embs[0], atol=1e-5, rtol=0)
    assert tiny.embed(_tiles(5)).shape == (5, 256)                  # a 4-D batch
    lat, lon = tiny.sample([t, t], n=3, steps=2, progress=False)
    assert lat.shape == (2, 3) and np.all(np.abs(lat) <= 90)


def test_bad_inputs_have_clear_messages(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        tiny.embed(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        tiny.embed(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="grayscale"):
        tiny.embed(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="4 channels"):
        tiny.embed(np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny.embed(np.full((32, 32, 3), 2.0, np.float32))
    with pytest.warns(UserWarning, match="resized"):
        e = tiny.embed(np.zeros((64, 48, 3), np.uint8))
    assert e.shape == (1, 256)
    with pytest.raises(ValueError, match="top_k"):
        tiny.predict(_tiles(1), top_k=0, progress=False)
    with pytest.raises(ValueError, match="resolution_deg"):
        tiny.density(_tiles(1)[0], resolution_deg=0.0)


def _flip_last_byte(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 0xFF])


def test_corrupt_or_foreign_weights_are_refused(tiny, tmp_path):
    good = tiny.save_pretrained(tmp_path / "good")
    with pytest.raises(pipeline.PretrainedError, match="not a folder"):
        pipeline.LocDiffPipeline.from_pretrained(tmp_path / "nothing")
    import shutil

    for name, damage, message in [
        ("version", lambda p: (p / "config.json").write_text(json.dumps(
            {**json.loads((good / "config.json").read_text()), "format_version": 99})), "format version 99"),
        ("json", lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
        ("missing", lambda p: (p / "model.safetensors").unlink(), "missing model.safetensors"),
        ("truncated", lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:1000]),
         "model.safetensors does not match its SHA-256"),
        ("altered", lambda p: (p / "encoder.safetensors").write_bytes(_flip_last_byte((p / "encoder.safetensors").read_bytes())),
         "encoder.safetensors does not match its SHA-256"),
        ("no sums", lambda p: (p / "config.json").write_text(json.dumps(
            {k: v for k, v in json.loads((good / "config.json").read_text()).items() if k != "sha256"})),
         "does not match its config_sha256"),            # the config's own checksum catches the edit first
    ]:
        bad = tmp_path / name
        shutil.copytree(good, bad)
        damage(bad)
        with pytest.raises(pipeline.PretrainedError, match=message):
            pipeline.LocDiffPipeline.from_pretrained(bad)


def test_density_and_localizability(tiny):
    t = _tiles(1)[0]
    lat, lon, dens = tiny.density(t, resolution_deg=5.0, n=4)
    assert dens.shape == (36, 72) and lat.shape == (36,) and lon.shape == (72,)
    cell = np.radians(5.0) ** 2 * np.cos(np.radians(lat))[:, None]
    assert (dens * cell).sum() == pytest.approx(1.0, rel=1e-6)               # a probability density
    loc = tiny.localizability(t, resolution_deg=5.0, n=4)
    assert 0.0 < loc <= 1.0


@pytest.mark.skipif(not (pipeline.shipped_weights() / "config.json").exists(), reason="no shipped weights")
def test_cli_tile_then_predict_json_with_shipped_weights(tmp_path):
    r = _cli("tile", 48.8566, 2.3522, "--out", tmp_path / "paris.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "paris.png").size == (32, 32)
    r = _cli("predict", tmp_path / "paris.png", "--top-k", 5, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out) == 1 and len(out[0]["predictions"]) == 5
    assert all(-90 <= p["lat"] <= 90 and -180 <= p["lon"] < 180 for p in out[0]["predictions"])


def _main(capsys, *args) -> tuple[int, str, str]:
    """``locdiff`` in this process (``cli.main``): (exit code, stdout, stderr)."""
    from locdiff import cli

    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as e:                   # argparse: --help, or its own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_errors_exit_non_zero_with_messages(tmp_path, tiny, capsys, monkeypatch):
    weights = tiny.save_pretrained(tmp_path / "w")
    r = _cli("predict", tmp_path / "missing.png", "--weights", weights, cwd=tmp_path)   # the console script itself
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.chdir(tmp_path)                                   # the rest in-process: the same main()
    (tmp_path / "x.txt").write_text("hello")
    code, _, err = _main(capsys, "predict", tmp_path / "x.txt", "--weights", weights)
    assert code == 2 and "not an image file" in err
    code, _, err = _main(capsys, "predict", tmp_path / "x.txt", "--weights", tmp_path / "nowhere")
    assert code == 2 and "not a folder of pretrained" in err
    code, _, err = _main(capsys, "tile", 95, 0)
    assert code == 2 and "lat" in err and "[-90, 90]" in err
    code, _, err = _main(capsys, "predict", "a.png", "--top-k", 0)
    assert code == 2 and "--top-k must be an integer >= 1" in err
    for sub in ("predict", "tile", "train", "evaluate"):
        code, out, _ = _main(capsys, sub, "--help")
        assert code == 0 and "usage: locdiff" in out
    code, _, err = _main(capsys, "train", "--profile", "laptop")
    assert code == 2 and "profile must be one of" in err
    big = tmp_path / "big.png"
    Image.fromarray(_tiles(1, size=64)[0]).save(big)
    code, _, err = _main(capsys, "predict", big, "--weights", weights, "--top-k", 2, "--samples", 2)
    assert code == 0 and "resized" in err
    code, _, err = _main(capsys, "evaluate", "--checkpoint", tmp_path / "nowhere", "--split", "val")
    assert code == 2 and "not a checkpoint folder" in err


def test_cli_train_then_evaluate_smoke(tmp_path):
    """``locdiff train`` on the smoke profile into a folder, then ``locdiff evaluate`` on it."""
    r = _cli("train", "--profile", "smoke", "--out", tmp_path / "run", cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()
    r = _cli("evaluate", "--checkpoint", tmp_path / "run", "--split", "val", "--profile", "smoke", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["split"] == "val" and 0 <= out["acc@2500km"] <= 100 and out["median_km"] > 0
