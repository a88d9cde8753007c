"""The frozen tile encoder (locdiff.encoders): shapes, norms, sizes, the InfoNCE closed form,
nearest-neighbour lookup, a short training run and the embedding cache. Kept fast (small data).

Every test runs with ``LOCDIFF_CACHE`` pointing into a pytest temporary folder.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import R_KM, uniform_sphere

from locdiff import data as D
from locdiff import encoders as E
from locdiff import profiles

EXPECTED_HISTORY = ["epoch", "train_loss", "val_loss", "val_recall_at_1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread", "private_cache")


@pytest.fixture(scope="module")
def small_data():
    return dataclasses.replace(profiles.get("smoke").data, n_train=300, n_val=64, n_test=40)


@pytest.fixture(scope="module")
def splits(small_data):
    return D.build(small_data, 0, progress=False)


def _split(name, lat, lon):
    n = len(lat)
    return D.Split(name=name, tiles=np.zeros((n, 3, 8, 8), np.uint8), lat=lat, lon=lon,
                   country=np.full(n, "FR"), continent=np.full(n, "EU"), population=np.zeros(n, np.int64),
                   place_id=np.arange(n), place_name=np.full(n, "x"))


def _unit_rows(x: np.ndarray):
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- modules
@pytest.mark.parametrize("size", [32, 16])
def test_tile_cnn_shape_and_unit_norm(size):
    torch.manual_seed(0)
    cnn = E.TileCNN(profiles.get("cpu").encoder.widths, 256).eval()
    tiles = torch.randint(0, 256, (5, 3, size, size), dtype=torch.uint8)
    with torch.no_grad():
        out = cnn(tiles)
    assert out.shape == (5, 256) and out.dtype == torch.float32
    _unit_rows(out.numpy())


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_tile_cnn_is_small(profile):
    s = profiles.get(profile).encoder
    n = sum(p.numel() for p in E.TileCNN(s.widths, s.embed_dim).parameters())
    assert 20_000 < n < 2_000_000


def test_rff_location_encoder():
    lat, lon = uniform_sphere(50, seed=1)
    xyz = torch.as_tensor(np.stack([np.cos(np.radians(lat)) * np.cos(np.radians(lon)),
                                    np.cos(np.radians(lat)) * np.sin(np.radians(lon)),
                                    np.sin(np.radians(lat))], -1), dtype=torch.float32)
    enc = E.RFFLocationEncoder(embed_dim=64, seed=3)
    with torch.no_grad():
        out = enc(xyz)
    assert out.shape == (50, 64)
    _unit_rows(out.numpy())
    # the random frequencies are seeded and scaled as B ~ N(0, (R / sigma)^2)
    again = E.RFFLocationEncoder(embed_dim=64, seed=3)
    other = E.RFFLocationEncoder(embed_dim=64, seed=4)
    assert torch.equal(enc.B0, again.B0) and not torch.equal(enc.B0, other.B0)
    for i, sigma in enumerate((2500.0, 500.0, 100.0)):
        B = getattr(enc, f"B{i}")
        assert B.shape == (128, 3)
        assert float(B.std()) == pytest.approx(R_KM / sigma, rel=0.15)


# --------------------------------------------------------------------------- InfoNCE
def _info_nce_oracle(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """Symmetric InfoNCE written out: mean over rows of -log softmax(scale a b^T)_ii, both directions."""
    logits = scale * (a.astype(np.float64) @ b.astype(np.float64).T)

    def ce(m):
        m = m - m.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(m).sum(1)) - np.diag(m)))
    return 0.5 * (ce(logits) + ce(logits.T))


def test_info_nce_closed_forms():
    N = 8
    eye = torch.eye(N, 16)
    # matched one-hot pairs: loss = log(1 + (N - 1) exp(-s)) in each direction
    for s in (1.0, 5.0, 20.0):
        loss = float(E.info_nce(eye, eye, torch.tensor(math.log(s))))
        assert loss == pytest.approx(math.log1p((N - 1) * math.exp(-s)), rel=1e-5, abs=1e-7)
    # a large scale (clamped at 100) makes the matched loss vanish
    assert float(E.info_nce(eye, eye, torch.tensor(math.log(1e4)))) < 1e-6
    # every image matched to the wrong location: the true logit is 0, one other is s: log(N - 1 + e^s)
    perm = eye[torch.roll(torch.arange(N), 1)]
    assert float(E.info_nce(eye, perm, torch.tensor(math.log(5.0)))) == pytest.approx(
        math.log(N - 1 + math.exp(5.0)), rel=1e-5)


def test_info_nce_random_and_oracle():
    g = torch.Generator().manual_seed(0)
    N = 64
    a = torch.nn.functional.normalize(torch.randn(N, 256, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(N, 256, generator=g), dim=-1)
    # unrelated embeddings: about log N
    assert float(E.info_nce(a, b, torch.tensor(0.0))) == pytest.approx(math.log(N), abs=0.1)
    for s in (1.0, 3.0, 14.3):
        got = float(E.info_nce(a, b, torch.tensor(math.log(s))))
        assert got == pytest.approx(_info_nce_oracle(a.numpy(), b.numpy(), s), rel=1e-5)
    assert float(E.info_nce(a, b, torch.tensor(1.0))) == pytest.approx(float(E.info_nce(b, a, torch.tensor(1.0))), rel=1e-6)


# --------------------------------------------------------------------------- retrieval helpers
def test_nearest_neighbour_locate_finds_duplicates():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(50, 16)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    glat, glon = uniform_sphere(50, seed=2)
    pick = np.array([3, 17, 42, 0, 49, 17])
    query = gallery[pick] + 0.01 * rng.normal(size=(len(pick), 16)).astype(np.float32)
    for batch in (2048, 4):
        la, lo = E.nearest_neighbour_locate(query, gallery, glat, glon, batch=batch)
        np.testing.assert_array_equal(la, glat[pick])
        np.testing.assert_array_equal(lo, glon[pick])


def test_nearest_neighbour_check_table():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(30, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    lat, lon = uniform_sphere(30, seed=3)
    train, test = _split("train", lat, lon), _split("test_iid", lat[:10], lon[:10])
    table = E.nearest_neighbour_check({"train": emb, "test_iid": emb[:10]}, {"train": train, "test_iid": test},
                                      test_splits=("test_iid",))
    one_nn = table[(table.split == "test_iid") & (table.rule == "1-NN")].iloc[0]
    assert one_nn["acc@1km"] == pytest.approx(100.0) and one_nn["median_km"] == pytest.approx(0.0, abs=1e-6)
    mean_rule = table[table.rule == "train mean"].iloc[0]
    assert mean_rule["median_km"] > 1000                                  # spread-out points: the mean is far


def test_pca_2d_matches_eigendecomposition():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    p = E.pca_2d(x)
    assert p.shape == (200, 2)
    top = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1][:2]
    np.testing.assert_allclose(p.var(0), top, rtol=1e-8)


def test_embed_batches_and_empty():
    torch.manual_seed(0)
    cnn = E.TileCNN((8, 16), 32)
    tiles = np.random.default_rng(0).integers(0, 256, (9, 3, 16, 16), dtype=np.uint8)
    full, parts = E.embed(cnn, tiles), E.embed(cnn, tiles, batch=4)
    assert full.shape == (9, 32) and full.dtype == np.float32
    np.testing.assert_allclose(full, parts, atol=1e-6)
    _unit_rows(full)
    assert E.embed(cnn, tiles[:0]).shape == (0, 32)


def test_augment_is_seeded_and_keeps_shape():
    x = torch.randn(4, 3, 16, 16)
    a = E.augment(x, torch.Generator().manual_seed(1))
    b = E.augment(x, torch.Generator().manual_seed(1))
    c = E.augment(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- training
def test_train_encoder_short_run(splits):
    tr, va = splits["train"], splits["val"]
    settings = dataclasses.replace(profiles.get("smoke").encoder, epochs=1, batch_size=100)
    cnn, history = E.train_encoder(tr.tiles, tr.lat, tr.lon, va.tiles, va.lat, va.lon, settings, seed=0, progress=False)
    assert list(history.columns) == EXPECTED_HISTORY and len(history) == 1
    assert np.isfinite(history[EXPECTED_HISTORY[1:]].to_numpy()).all()
    assert 0.0 <= history.val_recall_at_1.iloc[0] <= 1.0
    assert not cnn.training and not any(p.requires_grad for p in cnn.parameters())
    # the input standardization was set from the training tiles
    ref = tr.tiles.astype(np.float64) / 255.0
    np.testing.assert_allclose(cnn.mean.flatten().numpy(), ref.mean((0, 2, 3)), atol=2e-3)
    _unit_rows(E.embed(cnn, va.tiles))
    with pytest.raises(ValueError, match="batch_size"):
        E.train_encoder(tr.tiles[:50], tr.lat[:50], tr.lon[:50], va.tiles, va.lat, va.lon, settings, progress=False)


def test_train_encoder_fits_a_tiny_set(splits):
    """32 tiles (downsampled to 16 x 16) seen 15 times: the contrastive loss falls far below log 32."""
    tr = splits["train"]
    x = np.ascontiguousarray(tr.tiles[:32, :, ::2, ::2])
    settings = dataclasses.replace(profiles.get("smoke").encoder, epochs=15, batch_size=32, lr=3e-3)
    _, history = E.train_encoder(x, tr.lat[:32], tr.lon[:32], x, tr.lat[:32], tr.lon[:32], settings, seed=0,
                                 progress=False)
    assert len(history) == 15 and history.epoch.tolist() == list(range(1, 16))
    first, last = history.train_loss.iloc[0], history.train_loss.iloc[-3:].mean()
    assert first == pytest.approx(math.log(32), abs=0.6)
    assert last < 0.5 * first


def test_load_embeddings_cache(small_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "enc"))
    settings = dataclasses.replace(profiles.get("smoke").encoder, epochs=1, batch_size=100)
    first = E.load_embeddings(small_data, settings, seed=0, progress=False)
    assert "training" in capsys.readouterr().out
    assert set(first["embeddings"]) == set(D.SPLITS)
    for name, n in {"train": 300, "val": 64, "test_iid": 40, "test_uniform": 40, "test_unseen": 40}.items():
        assert first["embeddings"][name].shape == (n, settings.embed_dim)
        _unit_rows(first["embeddings"][name])
    assert list(first["history"].columns) == EXPECTED_HISTORY
    second = E.load_embeddings(small_data, settings, seed=0, progress=False)
    assert "training" not in capsys.readouterr().out
    for name in D.SPLITS:
        np.testing.assert_array_equal(first["embeddings"][name], second["embeddings"][name])
    # the reloaded encoder reproduces the cached embeddings
    np.testing.assert_allclose(E.embed(second["encoder"], D.load_split("val", small_data, 0).tiles),
                               first["embeddings"]["val"], atol=1e-5)
    # a corrupted weights file is noticed and the encoder retrained
    weights = next((tmp_path / "enc").glob("encoder-*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-10])
    third = E.load_embeddings(small_data, settings, seed=0, progress=False)
    assert "checksum" in capsys.readouterr().out
    np.testing.assert_allclose(third["embeddings"]["test_iid"], first["embeddings"]["test_iid"], atol=1e-5)
    leftovers = [p.name for p in (tmp_path / "enc").iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not leftovers


def test_tile_cnn_channels_last_matches_the_standard_layout():
    """TileCNN runs its convolutions channels-last (NHWC, faster on CPU); the same weights applied
    in the standard NCHW layout, module by module, give the same embeddings (float tolerance)."""
    import copy

    import torch.nn.functional as F

    torch.manual_seed(0)
    cnn = E.TileCNN((8, 16), 32).eval()
    assert cnn.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    ref = copy.deepcopy(cnn).to(memory_format=torch.contiguous_format)
    tiles = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        x = ref.normalize_input(tiles).contiguous()
        want = F.normalize(ref.head(ref.blocks(ref.stem(x)).mean((2, 3))), dim=-1)
        torch.testing.assert_close(cnn(tiles), want, atol=1e-5, rtol=1e-5)


def test_train_encoder_location_tower_runs_in_float32_under_bf16(splits, monkeypatch):
    """With bf16 products the CNN runs under autocast, the location tower does not (its 100 km
    Fourier features need float32 phases)."""
    seen = []
    forward = E.RFFLocationEncoder.forward

    def spy(self, xyz):
        out = forward(self, xyz)
        if self.training:
            seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out

    monkeypatch.setattr(E.RFFLocationEncoder, "forward", spy)
    tr, va = splits["train"], splits["val"]
    settings = dataclasses.replace(profiles.get("smoke").encoder, epochs=1, batch_size=100, precision="bf16")
    E.train_encoder(tr.tiles, tr.lat, tr.lon, va.tiles, va.lat, va.lon, settings, seed=0, progress=False)
    assert seen and all(s == (False, torch.float32) for s in seen)
