"""The frozen image encoder of the embedded benchmark: a small CNN trained contrastively once.

Every learned method (LocDiff and every baseline) consumes the same frozen tile embeddings, as all
methods in the paper consume the same frozen CLIP backbone; the comparison is about the location
head. The encoder is trained once per profile on ``train`` with a GeoCLIP/SatCLIP-style symmetric
InfoNCE objective between

- ``TileCNN``: a ResNet-style CNN for 32 x 32 tiles (340,560 parameters at the cpu widths), and
- ``RFFLocationEncoder``: a multi-scale random-Fourier-feature encoder of the unit vector (not
  spherical harmonics, so that it favours no method), one small MLP per scale, summed;

with augmentations (colour jitter, Gaussian noise, shifts of up to 2 pixels; no flips or
rotations, since tiles are north up and a mirrored coastline is another place). Afterwards only
``TileCNN`` is kept; its L2-normalized 256-d outputs are cached for every split.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import geo, precision
from .io import atomic_write, cache_problem, savez, sha256
from .profiles import DataSettings, EncoderSettings

FORMAT_VERSION = 1


class _Block(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN plus a (strided 1x1) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class TileCNN(nn.Module):
    """uint8 tiles [N, 3, S, S] -> embeddings [N, embed_dim] (L2-normalized).

    Input scaling: x/255 standardized with per-channel mean and std (buffers, set from the training
    tiles). Stem conv, one residual block per width (stride 2 after the first), global average
    pooling, a linear projection.
    """

    def __init__(self, widths=(32, 64, 128), embed_dim: int = 256):
        super().__init__()
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.3))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.2))
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(c, w, 1 if i == 0 else 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, embed_dim)
        self.to(memory_format=torch.channels_last)     # NHWC convolutions: about 15% faster on CPU

    def normalize_input(self, tiles: torch.Tensor) -> torch.Tensor:
        return (tiles.float() / 255.0 - self.mean) / self.std

    def forward(self, tiles: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        x = (tiles if normalized else self.normalize_input(tiles)).contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x)).mean((2, 3))
        return F.normalize(self.head(x), dim=-1)


class RFFLocationEncoder(nn.Module):
    """Unit vectors [N, 3] -> embeddings [N, embed_dim] (L2-normalized).

    For each scale σ (km): random Fourier features [cos(Bx), sin(Bx)] with B ~ N(0, (R/σ)²) of
    shape [n_features, 3] (fixed, seeded), then an MLP; the scales' outputs are summed.
    """

    def __init__(self, sigmas_km=(2500.0, 500.0, 100.0), n_features: int = 128, embed_dim: int = 256,
                 hidden: int = 256, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        for i, s in enumerate(sigmas_km):
            self.register_buffer(f"B{i}", torch.randn(n_features, 3, generator=g) * (geo.EARTH_RADIUS_KM / s))
        self.n_scales = len(sigmas_km)
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(2 * n_features, hidden), nn.ReLU(),
                                                nn.Linear(hidden, embed_dim)) for _ in sigmas_km)

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        out = 0
        for i, mlp in enumerate(self.mlps):
            proj = xyz @ getattr(self, f"B{i}").T
            out = out + mlp(torch.cat([torch.cos(proj), torch.sin(proj)], -1))
        return F.normalize(out, dim=-1)


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Augment standardized tiles [N, 3, S, S]: colour jitter, shifts, Gaussian noise (seeded)."""
    n = x.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    brightness = (u(n, 1, 1, 1) - 0.5) * 0.4
    contrast = 1 + (u(n, 1, 1, 1) - 0.5) * 0.4
    channel = 1 + (u(n, 3, 1, 1) - 0.5) * 0.2
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * contrast * channel + mean + brightness
    if max_shift:
        pad = F.pad(x, (max_shift,) * 4, mode="reflect")
        dx, dy = (torch.randint(0, 2 * max_shift + 1, (2,), generator=gen)).tolist()
        x = pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
    return x + 0.05 * torch.randn(x.shape, generator=gen)


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: cross-entropy of the matching pairs in both directions."""
    logits = logit_scale.exp().clamp(max=100) * a @ b.T
    target = torch.arange(a.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _recall_at_1(img: torch.Tensor, loc: torch.Tensor) -> float:
    return float(((img @ loc.T).argmax(1) == torch.arange(img.shape[0])).float().mean())


@torch.no_grad()
def _set_input_normalization(cnn: "TileCNN", x: torch.Tensor, gen: torch.Generator) -> None:
    """The CNN's per-channel input mean and std from up to 4096 random training tiles (uint8 / 255)."""
    sample = x[torch.randperm(len(x), generator=gen)[:4096]].float() / 255.0
    cnn.mean.copy_(sample.mean((0, 2, 3)).reshape(1, 3, 1, 1))
    cnn.std.copy_(sample.std((0, 2, 3)).reshape(1, 3, 1, 1))


def _adamw(params: list, settings: EncoderSettings) -> torch.optim.AdamW:
    """AdamW, with the fused kernel where this torch has it (CPU from 2.4)."""
    try:
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)


def train_encoder(train_tiles: np.ndarray, train_lat: np.ndarray, train_lon: np.ndarray,
                  val_tiles: np.ndarray, val_lat: np.ndarray, val_lon: np.ndarray,
                  settings: EncoderSettings, seed: int = 0, progress: bool = True):
    """Train TileCNN + RFFLocationEncoder contrastively; returns (TileCNN in eval mode, history).

    history: one row per epoch with the mean training loss and, on val (up to 1000 tiles), the
    contrastive loss and the image -> location recall@1 among the val batch. The CNN's training
    products run at ``settings.precision`` (``locdiff.precision``); the location tower, the logits
    and the embeddings are computed in float32.

    Its own loop rather than ``train.train``: two towers and a learned temperature train together,
    by epochs with a one-cycle schedule and a validation per epoch, and the result is a cache keyed
    by the settings (``datasets.embeddings``), rebuilt rather than resumed.
    """
    precision.check(settings.precision, "encoder precision")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cnn = TileCNN(settings.widths, settings.embed_dim)
    loc = RFFLocationEncoder(settings.rff_sigmas_km, embed_dim=settings.embed_dim, seed=seed)
    x = torch.from_numpy(train_tiles)
    _set_input_normalization(cnn, x, gen)
    xyz = torch.as_tensor(geo.latlon_to_xyz(train_lat, train_lon), dtype=torch.float32)
    vx = torch.from_numpy(val_tiles[:1000])
    vxyz = torch.as_tensor(geo.latlon_to_xyz(val_lat[:1000], val_lon[:1000]), dtype=torch.float32)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / settings.temperature)))
    opt = _adamw(list(cnn.parameters()) + list(loc.parameters()) + [logit_scale], settings)
    steps_per_epoch = len(x) // settings.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {settings.batch_size} exceeds the {len(x)} training tiles")
    total = steps_per_epoch * settings.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=total, pct_start=0.1)
    history = []
    bar = tqdm(total=total, desc="training the tile encoder", disable=not progress)
    for epoch in range(settings.epochs):
        cnn.train(), loc.train()
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * settings.batch_size:(s + 1) * settings.batch_size]
            with precision.autocast(settings.precision):
                img = cnn(augment(cnn.normalize_input(x[idx]), gen), normalized=True)
            pos = loc(xyz[idx])             # float32: bf16 would blur the 100 km Fourier features' phases
            loss = info_nce(img.float(), pos, logit_scale)     # the logits in float32
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-50:]):.3f}")
        cnn.eval(), loc.eval()
        with torch.no_grad():
            vi, vl = cnn(vx), loc(vxyz)
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                            "val_loss": float(info_nce(vi, vl, logit_scale)), "val_recall_at_1": _recall_at_1(vi, vl)})
    bar.close()
    cnn.eval()
    for p in cnn.parameters():
        p.requires_grad_(False)
    return cnn, pd.DataFrame(history)


@torch.no_grad()
def embed(cnn: TileCNN, tiles: np.ndarray, batch: int = 1024, progress: bool = False) -> np.ndarray:
    """Embeddings [N, embed_dim] float32 of uint8 tiles [N, 3, S, S] (eval mode, no augmentation)."""
    cnn.eval()
    out = [cnn(torch.from_numpy(tiles[i:i + batch])).numpy()
           for i in tqdm(range(0, len(tiles), batch), desc="embedding tiles", disable=not progress)]
    return np.concatenate(out) if out else np.zeros((0, cnn.head.out_features), np.float32)


def nearest_neighbour_locate(query: np.ndarray, gallery: np.ndarray, gallery_lat: np.ndarray,
                             gallery_lon: np.ndarray, batch: int = 2048):
    """1-NN in embedding space (cosine): the location of each query's most similar gallery item."""
    g = torch.from_numpy(gallery)
    idx = np.concatenate([(torch.from_numpy(query[i:i + batch]) @ g.T).argmax(1).numpy()
                          for i in range(0, len(query), batch)])
    return gallery_lat[idx], gallery_lon[idx]


def pca_2d(emb: np.ndarray) -> np.ndarray:
    """Project embeddings [N, d] onto their first two principal components: [N, 2]."""
    x = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def nearest_neighbour_check(embeddings: dict, splits: dict, test_splits=("test_iid", "test_uniform", "test_unseen")):
    """Accuracy table of two location rules on the test splits, from the frozen embeddings:

    - "1-NN": the location of the most similar training tile (cosine similarity of embeddings);
    - "train mean": always the normalized mean of the training locations (a floor any method beats).
    Returns a DataFrame with one row per (split, rule): accuracy (%) at 1/25/200/750/2500 km,
    median and mean error (km), GeoScore.
    """
    train = splits["train"]
    mlat, mlon = geo.mean_location(train.lat, train.lon)
    rows = []
    for name in test_splits:
        s = splits[name]
        la, lo = nearest_neighbour_locate(embeddings[name], embeddings["train"], train.lat, train.lon)
        for rule, (plat, plon) in {"1-NN": (la, lo), "train mean": (np.full(len(s), mlat), np.full(len(s), mlon))}.items():
            rows.append({"split": name, "rule": rule, **geo.summarize(geo.distance_km(s.lat, s.lon, plat, plon))})
    return pd.DataFrame(rows)


def nearest_neighbour_summary(check: pd.DataFrame, split: str = "test_iid", unseen: str = "test_unseen") -> str:
    """Three sentences from ``nearest_neighbour_check``'s table: 1-NN against the train mean at 750
    and 2500 km on ``split`` (the embeddings carry location when 1-NN is far ahead), and 1-NN's
    median error on ``unseen`` against ``split`` (how much the held-out cells cost)."""
    have = set(check.split)
    if split not in have or unseen not in have:
        raise ValueError(f"split and unseen must be splits of the table ({sorted(have)}); got {split!r}, {unseen!r}")
    a, u = check[check.split == split].set_index("rule"), check[check.split == unseen].set_index("rule")
    lines = [f"{split} {t}: 1-NN {a.loc['1-NN', t]:.1f}% vs train mean {a.loc['train mean', t]:.1f}%"
             f"  (difference {a.loc['1-NN', t] - a.loc['train mean', t]:+.1f} points)" for t in ("acc@750km", "acc@2500km")]
    lines.append(f"{unseen} median error: 1-NN {u.loc['1-NN', 'median_km']:.0f} km vs {split} "
                 f"{a.loc['1-NN', 'median_km']:.0f} km")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- caching
def _key(data_settings: DataSettings, settings: EncoderSettings, seed: int) -> str:
    blob = json.dumps({"data": asdict(data_settings), "encoder": asdict(settings), "seed": seed,
                       "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]







def load_embeddings(data_settings: DataSettings, settings: EncoderSettings, seed: int = 0,
                    progress: bool = True) -> dict:
    """Frozen embeddings of every split, training (and caching) the encoder when needed.

    Returns {"embeddings": {split: [N, d] float32}, "history": DataFrame, "encoder": TileCNN}.
    Cached under data/cache/ as encoder-<key>.safetensors (weights), encoder-<key>.json (config,
    training history, checksums) and encoder-<key>-emb.npz (embeddings); rebuilt with a message
    when missing or when a checksum does not match.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from .data import SPLITS, load
    from .data.bluemarble import cache_dir

    key = _key(data_settings, settings, seed)
    d = cache_dir()
    weights, meta_path, emb_path = d / f"encoder-{key}.safetensors", d / f"encoder-{key}.json", d / f"encoder-{key}-emb.npz"
    problem, meta = cache_problem(meta_path, {p.name: p for p in (weights, emb_path)},
                                  "no trained encoder for these settings")
    if problem is None:
        try:
            cnn = TileCNN(tuple(meta["config"]["widths"]), meta["config"]["embed_dim"])
            cnn.load_state_dict(load_file(str(weights)))
            cnn.eval()
            with np.load(emb_path, allow_pickle=False) as z:
                emb = {s: z[s] for s in SPLITS}
            return {"embeddings": emb, "history": pd.DataFrame(meta["history"]), "encoder": cnn}
        except (KeyError, TypeError, ValueError, RuntimeError, OSError, SafetensorError) as err:
            # a manifest of another shape (no config, a garbled one) or weights that do not fit it
            problem = f"the cached encoder does not fit its manifest {meta_path.name} ({type(err).__name__})"
    print(f"tile encoder: training ({problem}); cache: {d}")
    data = load(data_settings, seed, progress=progress)
    cnn, history = train_encoder(data["train"].tiles, data["train"].lat, data["train"].lon,
                                 data["val"].tiles, data["val"].lat, data["val"].lon, settings, seed, progress)
    emb = {s: embed(cnn, data[s].tiles, progress=progress) for s in SPLITS}
    atomic_write(weights, lambda tmp: save_file({k: v.contiguous() for k, v in cnn.state_dict().items()}, tmp))
    atomic_write(emb_path, lambda tmp: savez(tmp, **emb))
    meta = {"format": FORMAT_VERSION, "config": asdict(settings), "data": asdict(data_settings), "seed": seed,
            "history": history.to_dict("records"),
            "sha256": {weights.name: sha256(weights), emb_path.name: sha256(emb_path)}}
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return {"embeddings": emb, "history": history, "encoder": cnn}
