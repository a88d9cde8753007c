"""Real data sets (locdiff.data.real) on a dozen generated images and a tiny random CLIP; no network.

Oracles: preprocessing computed by hand with Pillow + numpy (and, where its crop convention
agrees, transformers' own CLIPImageProcessorPil); embeddings from calling the transformers model
directly on the same pixels; positions from the CSVs written here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from locdiff.data import real as R  # noqa: E402

OPENAI_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)   # OpenAI CLIP, clip/clip.py
OPENAI_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
HEADER = ["IMG_ID", "AUTHOR", "LAT", "LON", "S3_Label", "S16_Label", "S365_Label",
          "Prob_indoor", "Prob_natural", "Prob_urban"]
S = 32          # the tiny backbone's image size


def vision_config():
    return transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=S, patch_size=8, projection_dim=16)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network (any connection attempt fails the test), the cache in tmp_path, one thread."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def vision_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = transformers.CLIPVisionModelWithProjection(vision_config()).eval()
    d = tmp_path_factory.mktemp("tiny-clip-vision")
    model.save_pretrained(d)
    return d


def _rgb(rng, w, h):
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """MP16-style train CSV (10 rows: 9 images + 1 corrupt file), Im2GPS3k-style CSV (4 rows: 3 + 1 absent)."""
    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(1)
    train_dir, test_dir = root / "mp16", root / "im2gps3k"
    sizes = [(40, 30), (30, 40), (64, 48), (33, 33), (45, 32), (20, 52), (50, 50), (37, 29), (64, 20)]
    rows = []
    for k, (w, h) in enumerate(sizes):
        ident = f"{k:02x}/{(7 * k) % 256:02x}/{1000 + k}.{'png' if k in (1, 2) else 'jpg'}"
        img = _rgb(rng, w, h)
        if k == 1:
            img = img.convert("L")                             # grayscale PNG
        if k == 2:
            img = img.convert("RGBA")                          # transparent PNG
            a = np.asarray(img).copy()
            a[:, : w // 2, 3] = 0
            img = Image.fromarray(a, "RGBA")
        if k == 3:
            img = img.convert("CMYK")                          # CMYK JPEG
        (train_dir / ident).parent.mkdir(parents=True, exist_ok=True)
        img.save(train_dir / ident)
        rows.append([ident, f"author{k}", float(rng.uniform(-60, 70)), float(rng.uniform(-180, 180))])
    (train_dir / "zz").mkdir()
    (train_dir / "zz" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 3)
    rows.insert(4, ["zz/corrupt.jpg", "author-x", 10.0, 20.0])
    pd.DataFrame([r + ["x", "y", "z", 0.1, 0.2, 0.7] for r in rows], columns=HEADER).to_csv(root / "mp16.csv", index=False)

    test_rows = []
    for k, (w, h) in enumerate([(48, 32), (32, 32), (40, 60)]):
        ident = f"{5000 + k}_photo.jpg"
        test_dir.mkdir(exist_ok=True)
        _rgb(rng, w, h).save(test_dir / ident)
        test_rows.append([ident, f"a{k}", float(rng.uniform(-50, 60)), float(rng.uniform(-180, 180))])
    test_rows.insert(1, ["not_downloaded.jpg", "a9", 1.0, 2.0])
    pd.DataFrame([r + ["x", "y", "z", 0.1, 0.2, 0.7] for r in test_rows], columns=HEADER).to_csv(
        root / "im2gps3k_places365.csv", index=False)
    return {"root": root, "train_csv": root / "mp16.csv", "train_dir": train_dir,
            "test_csv": root / "im2gps3k_places365.csv", "test_dir": test_dir,
            "train_rows": rows, "test_rows": test_rows}


def make_ds(files, backbone, **kw) -> R.RealDataset:
    args = dict(name="tiny", train_csv=str(files["train_csv"]), train_images=str(files["train_dir"]),
                eval_csvs={"im2gps3k": str(files["test_csv"])}, eval_images={"im2gps3k": str(files["test_dir"])},
                backbone=str(backbone), val_images=2, batch_size=2, seed=3)
    args.update(kw)
    return R.RealDataset(**args)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(R, "CHUNK_ROWS", 3)


# ----------------------------------------------------------------------------- oracles
def hand_pixels(img: Image.Image, size: int, mean=OPENAI_MEAN, std=OPENAI_STD) -> np.ndarray:
    """CLIP's recipe written out: RGB (alpha over white), bicubic resize of the shorter side to
    ``size`` (longer side floored), centre crop with offset round((L - size) / 2), /255, standardize."""
    if img.mode == "RGBA":
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    img = img.convert("RGB")
    w, h = img.size
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    a = np.asarray(img.resize((nw, nh), Image.BICUBIC), dtype=np.float64) / 255.0
    top, left = round((nh - size) / 2), round((nw - size) / 2)
    a = a[top:top + size, left:left + size]
    return ((a - mean) / std).transpose(2, 0, 1).astype(np.float32)


def transformers_embed(model, pixels: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(pixels))
    return out.image_embeds.numpy()


# ----------------------------------------------------------------------------- metadata
def test_read_metadata_headers_and_values(files, tmp_path):
    df = R.read_metadata(files["train_csv"])
    assert list(df.columns) == ["id", "lat", "lon"] and len(df) == 10
    want = files["train_rows"]
    assert df.id.tolist() == [r[0] for r in want]
    np.testing.assert_array_equal(df.lat.to_numpy(), [r[2] for r in want])
    assert df.lat.dtype == np.float64 and df.lon.dtype == np.float64

    p = tmp_path / "other.csv"
    p.write_text("image_id,latitude,longitude,extra\n00123,45.5,190.0,a\nabc.jpg,-90,-180,b\n")
    df = R.read_metadata(p)
    assert df.id.tolist() == ["00123", "abc.jpg"]          # ids stay strings (leading zeros kept)
    np.testing.assert_allclose(df.lon.to_numpy(), [-170.0, -180.0])   # wrapped into [-180, 180)
    p.write_text("img_id,lat,lon\nq,1,2\n")
    assert R.read_metadata(p).id.tolist() == ["q"]


def test_read_metadata_errors(tmp_path):
    p = tmp_path / "no_lat.csv"
    p.write_text("IMG_ID,AUTHOR,LON\na.jpg,x,3\n")
    with pytest.raises(ValueError, match=r"no_lat\.csv.*no lat column"):
        R.read_metadata(p)
    p = tmp_path / "bad_rows.csv"
    p.write_text("IMG_ID,LAT,LON\na.jpg,10,20\nb.jpg,91,20\nc.jpg,5,abc\nd.jpg,,3\ne.jpg,1,2\n")
    with pytest.raises(ValueError, match=r"bad_rows\.csv: 3 row\(s\).*line 3.*b\.jpg.*line 4.*c\.jpg.*line 5.*d\.jpg"):
        R.read_metadata(p)
    p.write_text("IMG_ID,LAT,LON\n,10,20\n")
    with pytest.raises(ValueError, match="empty image id"):
        R.read_metadata(p)
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        R.read_metadata(tmp_path / "nowhere.csv")


# ----------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("wh", [(48, 32), (32, 48), (45, 32), (64, 20), (16, 16), (10, 13)])
def test_preprocess_by_hand(wh):
    img = _rgb(np.random.default_rng(wh[0] * 100 + wh[1]), *wh)
    got = R.preprocess(img, 16)
    assert got.shape == (3, 16, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, hand_pixels(img, 16), atol=1e-5)


def test_preprocess_matches_transformers_processor():
    """transformers' PIL processor floors the crop offset; on even offsets it must agree exactly."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    proc = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    rng = np.random.default_rng(5)
    for wh in [(48, 32), (32, 48), (40, 40), (70, 35)]:
        img = _rgb(rng, *wh)
        ref = proc(images=img, return_tensors="np")["pixel_values"][0]
        np.testing.assert_allclose(R.preprocess(img, 16), ref, atol=1e-5)


def test_mode_conversion():
    gray = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L")
    a = np.asarray(R.to_rgb(gray))
    assert a.shape == (8, 8, 3) and (a[..., 0] == a[..., 1]).all() and (a[..., 0] == np.arange(64).reshape(8, 8)).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 2:, 3] = 255                       # left half fully transparent -> white
    a = np.asarray(R.to_rgb(Image.fromarray(rgba, "RGBA")))
    assert (a[:, :2] == 255).all() and (a[:, 2:] == [200, 0, 0]).all()
    assert R.to_rgb(Image.new("CMYK", (3, 3), (0, 0, 0, 0))).mode == "RGB"


# ----------------------------------------------------------------------------- the backbone
def test_backbone_matches_transformers(vision_dir):
    bb = R.ClipBackbone.from_pretrained(vision_dir, device="cpu")
    assert (bb.dim, bb.image_size, bb.resize) == (16, S, S)
    model = transformers.CLIPVisionModelWithProjection.from_pretrained(vision_dir).eval()
    rng = np.random.default_rng(2)
    images = [_rgb(rng, 40, 30), _rgb(rng, 32, 64).convert("L"), _rgb(rng, 33, 33)]
    pixels = np.stack([hand_pixels(im, S) for im in images])
    ref = transformers_embed(model, pixels)
    np.testing.assert_allclose(bb.embed(pixels, normalize=False), ref, rtol=1e-4, atol=1e-5)
    got = bb.embed(images)
    assert got.shape == (3, 16) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=1e-4, atol=1e-5)
    assert bb.embed([]).shape == (0, 16)


def test_full_clip_checkpoint_and_preprocessor_config(tmp_path):
    torch.manual_seed(1)
    cfg = transformers.CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=50, max_position_embeddings=8),
        vision_config=vision_config().to_dict(), projection_dim=16)
    model = transformers.CLIPModel(cfg).eval()
    d = tmp_path / "full-clip"
    model.save_pretrained(d)
    (d / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "crop_size": {"height": S, "width": S},
         "size": {"shortest_edge": S}}))
    bb = R.ClipBackbone.from_pretrained(d, device="cpu")
    assert bb.mean == (0.5, 0.5, 0.5) and bb.std == (0.25, 0.25, 0.25)
    img = _rgb(np.random.default_rng(3), 50, 40)
    pixels = hand_pixels(img, S, mean=np.float32(0.5), std=np.float32(0.25))[None]
    with torch.no_grad():
        feats = model.get_image_features(pixel_values=torch.from_numpy(pixels))
    feats = getattr(feats, "pooler_output", feats).numpy()          # a tensor before transformers 5
    np.testing.assert_allclose(bb.embed([img], normalize=False), feats, rtol=1e-4, atol=1e-5)


def test_missing_backbone_is_a_clear_error(tmp_path, vision_dir):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no-such-model"))):
        R.ClipBackbone.from_pretrained(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        R.ClipBackbone.from_pretrained("nobody-here/no-such-clip-model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        R.ClipBackbone.from_pretrained(empty)
    no_proj = tmp_path / "no-projection"
    transformers.CLIPVisionModel(vision_config()).save_pretrained(no_proj)
    with pytest.raises(ValueError, match="no visual projection"):
        R.ClipBackbone.from_pretrained(no_proj)


# ----------------------------------------------------------------------------- splits and cache
def test_load_excludes_bad_images_and_aligns(files, vision_dir, small_chunks):
    ds = make_ds(files, vision_dir)
    with pytest.warns(RuntimeWarning) as rec:
        out = R.load_embeddings(ds, progress=False)
    text = " | ".join(str(w.message) for w in rec)
    assert "1 unreadable" in text and "zz/corrupt.jpg" in text and "1 missing" in text and "not_downloaded.jpg" in text
    with pytest.warns(RuntimeWarning):
        splits = R.load(ds, progress=False)
    assert tuple(splits) == ds.splits == ("train", "val", "im2gps3k") and ds.test_splits == ("im2gps3k",)
    assert set(out["embeddings"]) == set(ds.splits) and out["history"].empty
    assert isinstance(out["encoder"], R.ClipBackbone)

    # train + val: the 9 good images, disjoint, the corrupt one excluded; positions as written
    truth = {r[0]: (r[2], r[3]) for r in files["train_rows"]}
    tr, va = splits["train"], splits["val"]
    assert len(va) + len(va.excluded) == 2 and len(tr) + len(tr.excluded) == 8
    assert set(tr.ids) | set(va.ids) == set(truth) - {"zz/corrupt.jpg"} and not set(tr.ids) & set(va.ids)
    assert "zz/corrupt.jpg" in tr.excluded + va.excluded
    te = splits["im2gps3k"]
    assert te.excluded == ("not_downloaded.jpg",) and len(te) == 3
    tests = {r[0]: (r[2], r[3]) for r in files["test_rows"]}
    model = transformers.CLIPVisionModelWithProjection.from_pretrained(vision_dir).eval()
    for name, s in splits.items():
        src = tests if name == "im2gps3k" else truth
        np.testing.assert_array_equal(s.lat, [src[i][0] for i in s.ids])
        np.testing.assert_array_equal(s.lon, [src[i][1] for i in s.ids])
        e = out["embeddings"][name]
        assert e.shape == (len(s), 16) and e.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
        # row i is the embedding of image ids[i]: recomputed with transformers directly
        ref = transformers_embed(model, np.stack([hand_pixels(Image.open(p), S) for p in s.paths]))
        np.testing.assert_allclose(e, ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=1e-4, atol=1e-5)
    assert len(tr.frame()) == len(tr) and {"id", "lat", "lon", "path", "country"} <= set(tr.frame().columns)
    t = tr.tiles[[0, 1]]
    assert t.shape == (2, 3, 64, 64) and t.dtype == np.uint8 and tr.tiles[0].shape == (3, 64, 64)


def test_split_is_seeded(files, vision_dir):
    plans = R._plans(make_ds(files, vision_dir), ["train", "val"])
    again = R._plans(make_ds(files, vision_dir), ["train", "val"])
    other = R._plans(make_ds(files, vision_dir, seed=4), ["train", "val"])
    assert plans["val"].frame.id.tolist() == again["val"].frame.id.tolist()
    assert len(plans["val"].frame) == 2 and len(plans["train"].frame) == 8
    assert plans["val"].key != other["val"].key
    sub = R._plans(make_ds(files, vision_dir, max_train=3), ["train", "val"])
    assert len(sub["train"].frame) == 3 and set(sub["train"].frame.id) <= set(plans["train"].frame.id)
    assert sub["val"].frame.id.tolist() == plans["val"].frame.id.tolist()     # val does not move


def count_embed_calls(monkeypatch, fail_after: int | None = None, exc=KeyboardInterrupt):
    calls = []
    real = R.ClipBackbone.embed

    def embed(self, images, normalize=True):
        if fail_after is not None and len(calls) >= fail_after:
            raise exc("stop")
        calls.append(len(images))
        return real(self, images, normalize)

    monkeypatch.setattr(R.ClipBackbone, "embed", embed)
    return calls


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cache_reused_and_damaged_chunk_rebuilt(files, vision_dir, small_chunks, monkeypatch, capsys):
    ds = make_ds(files, vision_dir)
    first = R.load_embeddings(ds, progress=False)["embeddings"]

    def boom(*a, **k):
        raise AssertionError("the backbone must not run (nor load) on a cached data set")

    with monkeypatch.context() as m:
        m.setattr(R.ClipBackbone, "embed", boom)
        m.setattr(R.ClipBackbone, "_load", boom)
        second = R.load_embeddings(ds, progress=False)["embeddings"]
    for s in ds.splits:
        np.testing.assert_array_equal(first[s], second[s])

    folder = next((Path(os.environ["LOCDIFF_CACHE"]) / "real").iterdir())
    train_chunks = sorted(folder.glob("train-*-*.npz"))
    assert len(train_chunks) == 3                                # 8 rows in chunks of 3
    victim = train_chunks[1]
    victim.write_bytes(victim.read_bytes()[:100])                # truncated
    capsys.readouterr()
    calls = count_embed_calls(monkeypatch)
    third = R.load_embeddings(ds, progress=False)["embeddings"]
    assert "does not match its checksum" in capsys.readouterr().out
    assert sum(calls) <= 3 and 1 <= len(calls) <= 2              # only that chunk (3 rows, batches of 2)
    for s in ds.splits:
        np.testing.assert_allclose(first[s], third[s], rtol=0, atol=1e-6)
    victim.unlink()                                              # deleted: recomputed as well
    fourth = R.load_embeddings(ds, progress=False)["embeddings"]
    np.testing.assert_allclose(first["train"], fourth["train"], rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_resume_after_interruption(files, vision_dir, small_chunks, monkeypatch, tmp_path):
    ds = make_ds(files, vision_dir)
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "reference"))
    ref = R.load_embeddings(ds, progress=False)["embeddings"]
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "interrupted"))
    with monkeypatch.context() as m:
        count_embed_calls(m, fail_after=3)                       # Ctrl-C during the 4th batch: chunk 2 of train
        with pytest.raises(KeyboardInterrupt):
            R.load_embeddings(ds, progress=False)
    calls = count_embed_calls(monkeypatch)
    out = R.load_embeddings(ds, progress=False)["embeddings"]
    full = sum(len(ref[s]) for s in ds.splits)
    assert sum(calls) < full                                     # the first train chunk was kept
    for s in ds.splits:
        np.testing.assert_allclose(out[s], ref[s], rtol=0, atol=1e-6)


def test_all_images_missing_and_absent_folder(files, vision_dir, tmp_path):
    ds = make_ds(files, vision_dir, eval_images={"im2gps3k": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="nowhere"):
        R.load(ds, splits=["im2gps3k"], progress=False)
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    ds = make_ds(files, vision_dir, eval_images={"im2gps3k": str(empty)})
    with pytest.raises(ValueError, match="none of the 4 images"):
        R.load(ds, splits="im2gps3k", progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        R.load(ds, splits="test_iid", progress=False)


# ----------------------------------------------------------------------------- spec and extras
def test_spec_json_round_trip(files, vision_dir, tmp_path):
    ds = make_ds(files, vision_dir)
    p = tmp_path / "specs" / "tiny.json"
    p.parent.mkdir()
    ds.to_json(p)
    raw = json.loads(p.read_text())
    assert not Path(raw["train_csv"]).is_absolute() and raw["backbone"].startswith(".")
    assert R.RealDataset.from_json(p) == ds
    moved = tmp_path / "moved"
    shutil.copytree(files["root"], moved / "real")
    shutil.copytree(vision_dir, moved / "model")
    spec = {"name": "m", "train_csv": "real/mp16.csv", "train_images": "real/mp16", "backbone": "./model",
            "eval_csvs": {"im2gps3k": "real/im2gps3k_places365.csv"}, "eval_images": {"im2gps3k": "real/im2gps3k"}}
    (moved / "spec.json").write_text(json.dumps(spec))
    d = R.RealDataset.from_json(moved / "spec.json")
    assert d.train_csv == str(moved / "real" / "mp16.csv") and d.backbone == str(moved / "model")
    assert d.val_images == 5000 and d.max_train is None
    (moved / "hub.json").write_text(json.dumps({**spec, "backbone": "openai/clip-vit-large-patch14"}))
    assert R.RealDataset.from_json(moved / "hub.json").backbone == "openai/clip-vit-large-patch14"
    (moved / "bad.json").write_text(json.dumps({**spec, "val_image": 3}))
    with pytest.raises(ValueError, match="unknown field.*val_image"):
        R.RealDataset.from_json(moved / "bad.json")
    with pytest.raises(ValueError, match="differ from 'train'"):
        make_ds(files, vision_dir, eval_csvs={"train": "a"}, eval_images={"train": "b"})


def test_example_spec_parses():
    root = Path(__file__).resolve().parents[1] / "examples"
    ds = R.RealDataset.from_json(root / "real_dataset.json")
    assert ds.test_splits == ("im2gps3k", "yfcc4k")
    assert Path(ds.train_csv) == root / "mp16" / "mp16_places365.csv"
    assert Path(ds.backbone) == root / "models" / "clip-vit-large-patch14"
    assert Path(ds.eval_images["yfcc4k"]).is_relative_to(root)


def test_nearest_place_fields():
    s = R.RealSplit("x", np.array(["a", "b"], object), np.array([48.857, -33.87]), np.array([2.352, 151.21]),
                    np.array(["a.jpg", "b.jpg"], object))
    assert s.country.tolist() == ["FR", "AU"] and s.continent.tolist() == ["EU", "OC"]
    assert s.place_name[0].startswith("Paris") and s.place_name[1] == "Sydney"
