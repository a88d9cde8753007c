"""Robustness audit: images, real-data metadata and specs, cache folders and manifests.

"No traceback from torch, PIL, pandas or pathlib reaches a user; a failed write leaves no temporary
file behind." Each test feeds one family of bad input to the public entry point and checks that
the error is a ValueError / FileNotFoundError whose message names the argument (the image index,
the CSV column and line, the spec field and file, ``LOCDIFF_CACHE``) and what is allowed. Nothing
here trains a model or loads CLIP; the whole file runs in a few seconds.
"""
from __future__ import annotations

import gc
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from locdiff import encoders, io, pipeline, profiles
from locdiff.data import bluemarble
from locdiff.data import real as R

S = 16                                              # the tile size asked of load_images


def _rgb(size=S, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h RGB pixels and holds none: what a decompression bomb looks like
    to Image.open (which reads only the header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def _refused(images, *patterns, error=ValueError):
    """load_images(images) raises ``error`` whose message contains every pattern (plain text)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)                  # "resized" is not the point here
        with pytest.raises(error) as err:
            pipeline.load_images(images, S)
    msg = str(err.value)
    for p in patterns:
        assert p in msg, f"{p!r} not in {msg!r}"
    assert "Traceback" not in msg
    return msg


# ----------------------------------------------------------------------------- image files
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_file_is_refused(tmp_path, fmt):
    """PIL reads lazily and raises OSError('image file is truncated') on conversion: a ValueError here."""
    good = tmp_path / f"good.{fmt.lower()}"
    Image.fromarray(_rgb(32)).save(good, fmt)
    raw = good.read_bytes()
    bad = tmp_path / f"half.{fmt.lower()}"
    bad.write_bytes(raw[: len(raw) // 2])
    msg = _refused([good, bad], "image 1", "truncated", str(bad))
    assert "image 0" not in msg
    with Image.open(bad) as lazy:                                # a lazily opened PIL image, same answer
        _refused([lazy], "image 0", "truncated")


@pytest.mark.parametrize("w,h", [(30000, 30000), (10000, 10000)])   # over 2x PIL's limit (error), over 1x (warning)
def test_decompression_bomb_is_refused(tmp_path, w, h):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(w, h))
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # and no DecompressionBombWarning leaks out
        with pytest.raises(ValueError) as err:
            pipeline.load_images([_rgb(), bomb], S)
    msg = str(err.value)
    assert "image 1" in msg and str(limit) in msg and "MAX_IMAGE_PIXELS" in msg and str(w * h) in msg


def test_pixel_limit_applies_to_pil_images_and_honours_pil_setting(monkeypatch, tmp_path):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    _refused([Image.fromarray(_rgb())], "image 0", "256", "100")
    path = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(path)
    _refused([path], "image 0", "256", "100")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)         # PIL's own switch to turn the guard off
    assert pipeline.load_images([path], S).shape == (1, 3, S, S)


@pytest.mark.parametrize("content", [b"", b"just some notes\n", b"P6\nhello world", b"BM" + bytes(60),
                                     b"\x89PNG\r\n\x1a\n" + bytes(40), bytes(range(256)) * 4])
def test_file_that_is_not_an_image_is_refused(tmp_path, content):
    p = tmp_path / "x.png"
    p.write_bytes(content)
    _refused([_rgb(), p], "image 1", str(p))


def test_directory_given_as_image_path(tmp_path):
    _refused([tmp_path], "image 0", "folder", str(tmp_path))
    _refused(str(tmp_path), "image 0", "folder")


@pytest.mark.parametrize("bad", ["", "   ", "x" * 5000, "a\0b.png"])
def test_string_that_is_not_a_path(bad):
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        pipeline.load_images([_rgb(), bad], S)
    assert "image 1" in str(err.value)
    assert len(str(err.value)) < 400                             # the 5000-character name is shortened


@pytest.mark.parametrize("bad,what", [({}, "dict"), (None, "None"), (5, "int"), (2.5, "float"), (b"\x89PNG", "bytes"),
                                      ([[1, 2, 3]], "list"), (object(), "object"), ({"image": _rgb()}, "dict")])
def test_non_image_objects_are_refused(bad, what):
    msg = _refused([_rgb(), bad], "image 1", what)
    assert "numpy array" in msg and "PIL" in msg and "path" in msg


def test_non_image_objects_alone(tmp_path):
    _refused(None, "image 0", "None")
    _refused({"a": 1}, "image 0", "dict")


# ----------------------------------------------------------------------------- dtypes
def test_integer_and_float_dtypes_in_range_are_accepted():
    rgb = _rgb()
    want = pipeline.load_images(rgb, S)
    same = [rgb.astype(np.int16), rgb.astype(np.int32), rgb.astype(np.int64), rgb.astype(np.uint16),
            rgb.astype(np.uint32), rgb.astype(np.uint64), rgb.astype(">i4"),
            torch.from_numpy(rgb.astype(np.int32)).to(torch.uint16), torch.from_numpy(rgb.astype(np.int16))]
    for img in same:
        assert torch.equal(pipeline.load_images(img, S), want), getattr(img, "dtype", type(img))
    for f in (rgb / 255.0, (rgb / 255.0).astype(np.float16), (rgb / 255.0).astype(">f4"),
              torch.from_numpy(rgb / 255.0).to(torch.bfloat16), torch.from_numpy(rgb / 255.0).half()):
        got = pipeline.load_images(f, S)
        assert (got.int() - want.int()).abs().max() <= 1, getattr(f, "dtype", type(f))   # float16 rounding


@pytest.mark.parametrize("bad,allowed", [
    (np.zeros((S, S, 3), bool), "boolean"),
    (torch.zeros(S, S, 3, dtype=torch.bool), "boolean"),
    (_rgb().astype(np.complex64), "complex"),
    (torch.zeros(S, S, 3, dtype=torch.complex64), "complex"),
    (_rgb().astype(object), "object"),
    (np.full((S, S, 3), "a"), "str"),
    (np.full((S, S, 3), 300, np.uint16), "[0, 255]"),
    (np.full((S, S, 3), 2**63 + 5, np.uint64), "[0, 255]"),
    (np.full((S, S, 3), -1, np.int16), "[0, 255]"),
    (torch.full((S, S, 3), 300, dtype=torch.int32).to(torch.uint16), "[0, 255]"),
    (np.full((S, S, 3), 1.5, np.float16), "[0, 1]"),
    (np.full((S, S, 3), np.nan, np.float64), "[0, 1]"),
])
def test_unusual_dtypes_are_refused_clearly(bad, allowed):
    _refused([_rgb(), bad], "image 1", allowed)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("shape", [(0, S, 3), (S, 0, 3), (3, 0, S), (0, 0, 3), (S, S, 0)])
def test_empty_dimensions_are_refused(shape):
    for dtype in (np.uint8, np.float32):
        _refused([_rgb(), np.zeros(shape, dtype)], "image 1", "empty", str(shape))


@pytest.mark.parametrize("shape", [(), (3,), (1, S, S, 3), (1, 1, S, S, 3)])
def test_rank_other_than_three_inside_a_list(shape):
    msg = _refused([_rgb(), np.zeros(shape, np.uint8)], "image 1", "[H, W, 3] or [3, H, W]", str(shape))
    if len(shape) == 4:
        assert "batch" in msg                         # a batch inside a list: say how to pass it


@pytest.mark.parametrize("shape", [(S, S, 1), (1, S, S), (S, S)])
def test_single_channel_is_refused_as_grayscale(shape):
    _refused([np.zeros(shape, np.uint8)], "image 0", "grayscale", "RGB")


def test_five_dimensional_batch_is_refused():
    _refused(np.zeros((2, 1, S, S, 3), np.uint8), "image 0", "[H, W, 3] or [3, H, W]")


# ----------------------------------------------------------------------------- PIL modes
@pytest.mark.parametrize("mode", ["RGB", "RGBX", "P", "CMYK", "YCbCr", "HSV"])
def test_colour_pil_modes_are_converted(mode, tmp_path):
    img = Image.fromarray(_rgb()).convert(mode)
    want = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(pipeline.load_images(img, S)[0], want)
    if mode in ("RGB", "P", "CMYK"):                             # the same through a file
        p = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
        img.save(p)
        with Image.open(p) as back:
            want = torch.from_numpy(np.array(back.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(pipeline.load_images(p, S)[0], want)


@pytest.mark.parametrize("mode,kind", [("L", "grayscale"), ("1", "grayscale"), ("I", "grayscale"),
                                       ("I;16", "grayscale"), ("F", "grayscale"), ("LA", "alpha"), ("La", "alpha"),
                                       ("PA", "alpha"), ("RGBA", "alpha"), ("RGBa", "alpha"), ("LAB", "LAB")])
def test_grayscale_and_alpha_pil_modes_are_refused(mode, kind, tmp_path):
    msg = _refused([Image.new(mode, (S, S))], "image 0", f"'{mode}'", kind, "RGB")
    assert "convert" in msg
    if mode in ("L", "LA", "RGBA", "I;16"):                       # the same through a file
        p = tmp_path / "x.png"
        Image.new(mode, (S, S)).save(p)
        _refused([p], "image 0", kind, "RGB")


# ----------------------------------------------------------------------------- real data: image ids
def _csv(tmp_path, ids) -> Path:
    p = tmp_path / "meta.csv"
    p.write_text("IMG_ID,LAT,LON\n" + "".join(f"{i},1.0,2.0\n" for i in ids))
    return p


@pytest.mark.parametrize("bad", ["../x.jpg", "/etc/passwd", "a/../../x.jpg", "..", "a/b/../../../x.jpg",
                                 "..\\x.jpg", "C:/x.jpg", "\\\\server\\share\\x.jpg"])
def test_image_ids_outside_the_folder_are_refused(tmp_path, bad):
    p = _csv(tmp_path, ["ok.jpg", bad, "also/ok.jpg"])
    with pytest.raises(ValueError) as err:
        R.read_metadata(p)
    msg = str(err.value)
    assert "IMG_ID" in msg and "line 3" in msg and "outside the image folder" in msg and str(p) in msg
    assert "line 2" not in msg and "line 4" not in msg


def test_image_ids_that_stay_inside_are_kept(tmp_path):
    ids = ["a/../b.jpg", "./c.jpg", "..d.jpg", "e..jpg", "f/..g/h.jpg", "~/i.jpg", "jk:l.jpg", "m/n:o.jpg"]
    assert R.read_metadata(_csv(tmp_path, ids)).id.tolist() == ids


def test_image_path_helper_refuses_escapes(tmp_path):
    """Where ids become paths (embedding, RealSplit.paths) an escaping id is refused too."""
    assert R._image_path(tmp_path, "a/b.jpg") == tmp_path / "a" / "b.jpg"
    for bad in ("../x.jpg", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside the image folder"):
            R._image_path(tmp_path, bad)


# ----------------------------------------------------------------------------- real data: the spec JSON
SPEC = {"name": "tiny", "train_csv": "mp16.csv", "train_images": "mp16", "eval_csvs": {"im2gps3k": "t.csv"},
        "eval_images": {"im2gps3k": "t"}, "backbone": "./clip"}


def _spec(tmp_path, body) -> Path:
    p = tmp_path / "spec.json"
    p.write_text(body if isinstance(body, str) else json.dumps(body))
    return p


def test_good_spec_still_parses(tmp_path):
    ds = R.RealDataset.from_json(_spec(tmp_path, {**SPEC, "val_images": 10, "max_train": 1e3, "image_size": None}))
    assert ds.val_images == 10 and ds.max_train == 1000 and isinstance(ds.max_train, int)


@pytest.mark.parametrize("body,field", [
    ("[1, 2]", "JSON object"), ("42", "JSON object"), ('"spec"', "JSON object"), ("null", "JSON object"),
    ({k: v for k, v in SPEC.items() if k != "backbone"}, "backbone"),
    ({"name": "x"}, "train_csv"),
    ({**SPEC, "train_csv": 5}, "train_csv"),
    ({**SPEC, "train_images": ["a"]}, "train_images"),
    ({**SPEC, "backbone": None}, "backbone"),
    ({**SPEC, "name": 5}, "name"),
    ({**SPEC, "name": ""}, "name"),
    ({**SPEC, "eval_csvs": "t.csv"}, "eval_csvs"),
    ({**SPEC, "eval_csvs": [1, 2]}, "eval_csvs"),
    ({**SPEC, "eval_images": {"im2gps3k": 3}}, "eval_images"),
    ({**SPEC, "val_images": "abc"}, "val_images"),
    ({**SPEC, "val_images": 2.5}, "val_images"),
    ({**SPEC, "val_images": True}, "val_images"),
    ({**SPEC, "val_images": -1}, "val_images"),
    ({**SPEC, "batch_size": None}, "batch_size"),
    ({**SPEC, "image_size": []}, "image_size"),
    ({**SPEC, "max_train": "all"}, "max_train"),
    ({**SPEC, "seed": "x"}, "seed"),
    ({**SPEC, "seed": -1}, "seed"),
    ({**SPEC, "val_images": float("nan")}, "val_images"),
    ({**SPEC, "colour": 1}, "colour"),
])
def test_malformed_spec_names_field_and_file(tmp_path, body, field):
    p = _spec(tmp_path, body)
    with pytest.raises(ValueError) as err:
        R.RealDataset.from_json(p)
    msg = str(err.value)
    assert field in msg and str(p) in msg, msg
    assert "__init__" not in msg and "positional argument" not in msg


def test_spec_file_missing_or_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        R.RealDataset.from_json(tmp_path / "nowhere.json")
    with pytest.raises(ValueError, match="folder"):
        R.RealDataset.from_json(tmp_path)


# ----------------------------------------------------------------------------- the cache folder
def test_locdiff_cache_empty(monkeypatch):
    monkeypatch.setenv("LOCDIFF_CACHE", "")
    with pytest.raises(ValueError, match="LOCDIFF_CACHE.*empty"):
        bluemarble.cache_dir()


def test_locdiff_cache_is_a_file_or_under_one(monkeypatch, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for value in (f, f / "sub", f / "a" / "b"):
        monkeypatch.setenv("LOCDIFF_CACHE", str(value))
        with pytest.raises(ValueError) as err:
            bluemarble.cache_dir()
        assert "LOCDIFF_CACHE" in str(err.value) and str(f) in str(err.value) and "folder" in str(err.value)


def test_locdiff_cache_unwritable(monkeypatch, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == d else real_access(p, mode, **kw))
    monkeypatch.setenv("LOCDIFF_CACHE", str(d))
    with pytest.raises(ValueError, match="LOCDIFF_CACHE.*writable"):
        bluemarble.cache_dir()
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / ("x" * 300) / "cache"))     # mkdir fails: name too long
    with pytest.raises(ValueError, match="LOCDIFF_CACHE.*writable folder"):
        bluemarble.cache_dir()


def test_locdiff_cache_good_values(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "new" / "cache"))
    assert bluemarble.cache_dir() == tmp_path / "new" / "cache"
    assert bluemarble.cache_dir().is_dir()


# ----------------------------------------------------------------------------- cache manifests
@pytest.mark.parametrize("body", ["[1, 2]", "3", '"text"', "null", "true", '{"sha256": [1]}', '{"sha256": "abc"}',
                                  '{"sha256": null}', "{}", "{not json", b"\xff\xfe\x00garbage"])
def test_manifest_that_is_not_a_dict_is_stale(tmp_path, body):
    m = tmp_path / "m.json"
    (m.write_bytes if isinstance(body, bytes) else m.write_text)(body)
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    problem, meta = io.cache_problem(m, {"f": f}, "none yet")
    assert problem is not None and "unreadable" in problem and meta == {}


def test_manifest_that_is_a_folder_is_stale(tmp_path):
    (tmp_path / "m.json").mkdir()
    problem, meta = io.cache_problem(tmp_path / "m.json", {}, "none yet")
    assert "unreadable" in problem and meta == {}


def test_manifest_with_odd_checksums_is_stale(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    for sums in ({"f": 5}, {"f": None}, {}):
        (tmp_path / "m.json").write_text(json.dumps({"sha256": sums}))
        problem, _ = io.cache_problem(tmp_path / "m.json", {"f": f}, "none yet")
        assert "checksum" in problem


def test_real_split_cache_with_a_list_manifest_starts_afresh(tmp_path, capsys):
    """The real-data chunk cache reads its manifest through cache_problem: a list there is 'no embeddings'."""
    import pandas as pd

    plan = R._Plan("val", pd.DataFrame({"id": ["a.jpg"], "lat": [0.0], "lon": [0.0]}), tmp_path, "k", {})
    ds = R.RealDataset("tiny", "a.csv", "a", {}, {}, "./clip")
    (tmp_path / "val-k.json").write_text("[1, 2, 3]")
    cache = R._SplitCache(tmp_path, plan, None, ds)
    assert cache.sums == {} and cache.chunk_problem(0) == "absent"
    (tmp_path / "val-k.json").write_text(json.dumps({"format": R.FORMAT_VERSION, "rows": 1, "sha256": [1]}))
    assert R._SplitCache(tmp_path, plan, None, ds).sums == {}


def _encoder_cache(monkeypatch, tmp_path, meta: dict):
    """The encoder cache of the smoke profile with intact files and the manifest ``meta`` (+ their sums)."""
    from safetensors.torch import save_file

    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path))
    P = profiles.get("smoke")
    key = encoders._key(P.data, P.encoder, 0)
    w, e = tmp_path / f"encoder-{key}.safetensors", tmp_path / f"encoder-{key}-emb.npz"
    save_file({"x": torch.zeros(2)}, str(w))
    np.savez(e, train=np.zeros((1, 2), np.float32))
    meta = {**meta, "sha256": {w.name: io.sha256(w), e.name: io.sha256(e)}}
    (tmp_path / f"encoder-{key}.json").write_text(json.dumps(meta))
    return P


@pytest.mark.parametrize("meta", [{}, {"config": [1]}, {"config": {"widths": [8], "embed_dim": 4}},
                                  {"config": {"widths": "x", "embed_dim": None}, "history": 3}])
def test_encoder_cache_with_a_stale_manifest_is_rebuilt(monkeypatch, tmp_path, capsys, meta):
    """Checksums match but the manifest lacks (or garbles) the config: retrain, don't crash."""
    import locdiff.data

    P = _encoder_cache(monkeypatch, tmp_path, meta)

    class Rebuilt(Exception):
        pass

    def rebuild(*args, **kwargs):
        raise Rebuilt

    monkeypatch.setattr(locdiff.data, "load", rebuild)
    with pytest.raises(Rebuilt):
        encoders.load_embeddings(P.data, P.encoder, 0, progress=False)
    assert "tile encoder: training" in capsys.readouterr().out


# ----------------------------------------------------------------------------- writes
def _tiny_splits(n=3, size=4):
    rng = np.random.default_rng(0)
    return {s: bluemarble.Split(s, rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), np.zeros(n), np.zeros(n),
                                np.array(["FR"] * n), np.array(["EU"] * n), np.ones(n, np.int64),
                                np.arange(n, dtype=np.int64), np.array(["x"] * n))
            for s in bluemarble.SPLITS}


def test_benchmark_cache_write_closes_files_and_reads_back(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path))
    monkeypatch.setattr(bluemarble, "build", lambda *a, **k: _tiny_splits())
    small = profiles.get("smoke").data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        bluemarble.load(small, 0, progress=False)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    monkeypatch.setattr(bluemarble, "build", lambda *a, **k: pytest.fail("rebuilt an intact cache"))
    assert len(bluemarble.load(small, 0, progress=False)["val"]) == 3
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".") or f.endswith(".tmp")]


def test_failed_benchmark_write_leaves_no_temporary_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path))
    monkeypatch.setattr(bluemarble, "build", lambda *a, **k: _tiny_splits())

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    with pytest.raises(OSError):
        bluemarble.load(profiles.get("smoke").data, 0, progress=False)
    assert os.listdir(tmp_path) == []
