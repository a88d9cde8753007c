"""``LocDiffPipeline``: from images to locations in one call, with weights saved as plain files.

A pretrained folder holds
    config.json            {"format_version", "tile_size", "embed_dim", "encoder": {...},
                            "locdiff": LocDiffSettings, "profile", "data": DataSettings, "seed"}
    encoder.safetensors    the frozen tile encoder (``encoders.TileCNN``)
    model.safetensors      the CS-UNet's EMA weights
Loading reads JSON and safetensors only: nothing is unpickled.

Images: numpy arrays ([H, W, 3] or [3, H, W], uint8 0-255 or float 0-1), torch tensors (same
layouts), PIL images or file paths, alone or in a list. An image of another size than the
model's tiles is resized (bilinear) with a warning; grayscale or 4-channel images are refused
with a message, since the tile encoder was trained on RGB.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import geo, shdd
from .diffusion import LATENT_SCALE, _check_sampling
from .encoders import TileCNN
from .experiment import LocDiff, build
from .io import sha256
from .profiles import LocDiffSettings

FORMAT_VERSION = 2          # 2: config.json carries the SHA-256 of both weight files
FILES = ("config.json", "encoder.safetensors", "model.safetensors")


class PretrainedError(ValueError):
    """A pretrained folder that cannot be used (missing, corrupt, or of another format)."""


def _to_uint8_chw(img, index: int, size: int) -> torch.Tensor:
    """One image in any accepted form -> uint8 tensor [3, size, size]."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(img, (str, os.PathLike)):
        path = Path(img)
        if not path.is_file():
            raise FileNotFoundError(f"image {index}: no such file: {path}")
        try:
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB") if im.mode in ("P", "RGB", "CMYK", "YCbCr") else im)
        except UnidentifiedImageError:
            raise ValueError(f"image {index}: {path} is not an image file PIL can read") from None
    elif isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB") if img.mode in ("P", "CMYK", "YCbCr") else img)
    t = torch.from_numpy(np.array(img)) if not isinstance(img, torch.Tensor) else img.detach().cpu()
    if t.ndim == 2:
        raise ValueError(f"image {index}: a grayscale image [H, W]; the tile encoder needs RGB with 3 channels")
    if t.ndim != 3:
        raise ValueError(f"image {index}: expected [H, W, C] or [C, H, W]; got shape {tuple(t.shape)}")
    if t.shape[0] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4):
        t = t.permute(1, 2, 0)                                      # [C, H, W] -> [H, W, C]
    if t.shape[-1] != 3:
        raise ValueError(f"image {index}: has {t.shape[-1]} channels; the tile encoder needs RGB with 3 channels")
    if t.is_floating_point():
        if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
            raise ValueError(f"image {index}: float images must hold values in [0, 1]")
        t = (t * 255).round()
    elif t.dtype != torch.uint8:
        if t.min() < 0 or t.max() > 255:
            raise ValueError(f"image {index}: integer images must hold values in [0, 255]")
    t = t.permute(2, 0, 1).float()
    if t.shape[1:] != (size, size):
        warnings.warn(f"image {index}: size {tuple(t.shape[1:])} resized to the model's {size}x{size} tiles",
                      stacklevel=3)
        t = F.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return t.round().clamp(0, 255).to(torch.uint8)


def _check_int(value, name: str, low: int) -> None:
    """ValueError naming ``name`` unless value is an integer (not a bool) >= low."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


def load_images(images, size: int) -> torch.Tensor:
    """Images (see the module docstring) -> uint8 tensor [B, 3, size, size]."""
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)) and not (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4):
        images = [images]
    if len(images) == 0:
        raise ValueError("images is empty; give at least one image")
    return torch.stack([_to_uint8_chw(im, i, size) for i, im in enumerate(images)])


class LocDiffPipeline:
    """A trained tile encoder and LocDiff, ready to locate images."""

    def __init__(self, encoder: TileCNN, locdiff: LocDiff, tile_size: int, meta: dict | None = None,
                 device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.encoder = encoder.eval().to(self.device)
        self.locdiff = locdiff
        self.locdiff.model.eval().to(self.device)
        self.tile_size = tile_size
        self.meta = meta or {}

    # ------------------------------------------------------------------ weights
    @classmethod
    def from_experiment(cls, profile, progress: bool = True) -> "LocDiffPipeline":
        """The pipeline of a profile's trained LocDiff (training what is missing)."""
        from . import encoders, experiment

        if profile.dataset != "bluemarble":
            raise ValueError("LocDiffPipeline wraps the embedded benchmark's tile encoder; on a real data set "
                             f"({profile.dataset}) use experiment.fit / experiment.load with the CLIP embeddings "
                             "of locdiff.data.real")
        enc = encoders.load_embeddings(profile.data, profile.encoder, profile.seed, progress=progress)
        ld, _ = experiment.fit(profile, progress=progress)
        meta = {"profile": profile.name, "data": asdict(profile.data), "seed": profile.seed,
                "encoder": {"widths": list(profile.encoder.widths), "embed_dim": profile.encoder.embed_dim}}
        return cls(enc["encoder"], ld, profile.data.tile_size, meta, device="cpu")

    def save_pretrained(self, path) -> Path:
        """Write the folder atomically (a temporary folder renamed into place)."""
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cfg = {"format_version": FORMAT_VERSION, "tile_size": self.tile_size,
               "embed_dim": self.locdiff.model.config.embed_dim,
               "encoder": {"widths": list(self.meta["encoder"]["widths"]), "embed_dim": self.encoder.head.out_features},
               "locdiff": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.locdiff.settings).items()},
               **{k: v for k, v in self.meta.items() if k not in ("encoder",)}}
        save_file({k: v.detach().contiguous().cpu() for k, v in self.encoder.state_dict().items()},
                  str(tmp / "encoder.safetensors"))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.locdiff.model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        cfg["sha256"] = {f: sha256(tmp / f) for f in FILES[1:]}
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
        old = path.with_name(path.name + ".old")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
        return path

    @classmethod
    def from_pretrained(cls, path=None, device=None) -> "LocDiffPipeline":
        """Load a folder written by ``save_pretrained`` (default: the weights shipped with locdiff)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise PretrainedError(f"path must be a folder path (str or os.PathLike) or None; got {type(path).__name__}")
        path = Path(path) if path is not None else shipped_weights()
        if not path.is_dir():
            raise PretrainedError(f"{path} is not a folder of pretrained LocDiff weights")
        missing = [f for f in FILES if not (path / f).is_file()]
        if missing:
            raise PretrainedError(f"{path} is missing {', '.join(missing)}; expected {', '.join(FILES)}")
        try:
            cfg = json.loads((path / "config.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PretrainedError(f"{path / 'config.json'} is not valid JSON ({e})") from None
        if cfg.get("format_version") != FORMAT_VERSION:
            raise PretrainedError(f"{path} has format version {cfg.get('format_version')!r}; this locdiff reads "
                                  f"version {FORMAT_VERSION} (upgrade locdiff or re-export the weights)")
        for f in FILES[1:]:
            if sha256(path / f) != cfg.get("sha256", {}).get(f):
                raise PretrainedError(f"{path / f} does not match its SHA-256 in config.json (truncated or altered); "
                                      f"refusing to load it")
        try:
            settings = LocDiffSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["locdiff"].items()})
            encoder = TileCNN(tuple(cfg["encoder"]["widths"]), cfg["encoder"]["embed_dim"])
            encoder.load_state_dict(load_file(str(path / "encoder.safetensors")))
            ld = build(settings, cfg["embed_dim"])
            ld.model.load_state_dict(load_file(str(path / "model.safetensors")))
        except (SafetensorError, KeyError, TypeError, RuntimeError) as e:
            raise PretrainedError(f"{path} holds weights or a config this locdiff cannot load: {e}") from None
        meta = {k: v for k, v in cfg.items() if k in ("profile", "data", "seed", "encoder")}
        return cls(encoder, ld, int(cfg["tile_size"]), meta, device)

    # ------------------------------------------------------------------ inference
    def embed(self, images, batch: int = 512) -> torch.Tensor:
        """Embeddings [B, E] of images (any accepted form), ``batch`` images per encoder call."""
        _check_int(batch, "batch", 1)
        x = load_images(images, self.tile_size)
        with torch.no_grad():
            return torch.cat([self.encoder(x[i:i + batch].to(self.device)).cpu() for i in range(0, len(x), batch)])

    def _check_run(self, n, steps, guidance, seed, batch) -> int:
        """Validate the sampling arguments before any work; returns n (None: the model's default)."""
        n = self.locdiff.settings.samples if n is None else n
        _check_sampling(n, steps, 1.0 if guidance is None else guidance)
        _check_int(seed, "seed", 0)
        _check_int(batch, "batch", 1)
        return n

    def _latents(self, images, n, steps, guidance, seed, batch, progress):
        emb = self.embed(images)
        out = []
        for i in tqdm(range(0, len(emb), batch), desc="locating images", disable=not progress or len(emb) <= batch):
            out.append(self.locdiff.sample(emb[i:i + batch].to(self.device), n=n, steps=steps, guidance=guidance,
                                           seed=seed + i).cpu())
        return torch.cat(out)

    def sample(self, images, n: int = 16, steps: int | None = None, guidance: float | None = None, seed: int = 0,
               batch: int = 256, progress: bool = True):
        """Decoded samples (lat, lon), each numpy [B, n] in degrees."""
        n = self._check_run(n, steps, guidance, seed, batch)
        lat, lon, _ = shdd.decode(self._latents(images, n, steps, guidance, seed, batch, progress).flatten(0, 1)
                                  / LATENT_SCALE)
        B = lat.shape[0] // n
        return lat[:, 0].reshape(B, n).numpy(), lon[:, 0].reshape(B, n).numpy()

    def predict(self, images, top_k: int = 5, n: int | None = None, steps: int | None = None,
                guidance: float | None = None, seed: int = 0, batch: int = 256, progress: bool = True) -> pd.DataFrame:
        """The top-k distinct modes of each image's predicted field: a DataFrame with columns image,
        rank (1 = the point prediction), lat, lon (degrees) and score (field value relative to the
        peak of one certain location, so 1 means all samples agree there)."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1; got {top_k!r}")
        n = self._check_run(n, steps, guidance, seed, batch)
        z = self._latents(images, n, steps, guidance, seed, batch, progress)
        mean = z.mean(1) / LATENT_SCALE
        lat, lon, val = shdd.decode(mean, k=top_k)
        peak = _tapered_peak(self.locdiff.settings.L)
        B = lat.shape[0]
        return pd.DataFrame({"image": np.repeat(np.arange(B), top_k), "rank": np.tile(np.arange(1, top_k + 1), B),
                             "lat": lat.reshape(-1).numpy().astype(float), "lon": lon.reshape(-1).numpy().astype(float),
                             "score": (val.reshape(-1).double() / peak).numpy()})

    def density(self, image, resolution_deg: float = 1.0, n: int | None = None, seed: int = 0):
        """The predicted density of one image on a lat/lon grid: (lat [H], lon [W], density [H, W]),
        cell centres in degrees, the density per steradian (softmax of the mean sample's field)."""
        if isinstance(resolution_deg, bool) or not (isinstance(resolution_deg, (int, float, np.integer, np.floating))
                                                    and 0.1 <= resolution_deg <= 30):
            raise ValueError(f"resolution_deg must be a number in [0.1, 30]; got {resolution_deg!r}")
        n = self._check_run(n, None, None, seed, 256)
        z = self._latents([image] if not isinstance(image, list) else image[:1], n, None, None, seed, 256, False)
        mean = z.mean(1)[0] / LATENT_SCALE
        lat = np.arange(90 - resolution_deg / 2, -90, -resolution_deg)
        lon = np.arange(-180 + resolution_deg / 2, 180, resolution_deg)
        f = shdd.field(mean.double() * shdd.taper_weights(self.locdiff.settings.L), lat, lon, grid=True)
        f = f / _tapered_peak(self.locdiff.settings.L)
        w = torch.softmax((f / 0.1).flatten(), 0).reshape(f.shape)           # temperature as shdd.density
        area = np.radians(resolution_deg) ** 2 * np.cos(np.radians(lat))[:, None]
        return lat, lon, (w.numpy() / area)

    def localizability(self, image, radius_km: float = 750.0, **kwargs) -> float:
        """Share (0..1) of the predicted density within ``radius_km`` of its highest mode: near 1 for
        an image the model can place, near the area share of that disc (~1.4% for 750 km) for an
        image it cannot place at all."""
        if isinstance(radius_km, bool) or not (isinstance(radius_km, (int, float, np.integer, np.floating))
                                               and 0 < radius_km < np.inf):
            raise ValueError(f"radius_km must be a positive finite number (km); got {radius_km!r}")
        lat, lon, dens = self.density(image, **kwargs)
        res = abs(lat[1] - lat[0])
        mass = dens * np.radians(res) ** 2 * np.cos(np.radians(lat))[:, None]
        i, j = np.unravel_index(np.argmax(dens), dens.shape)
        LA, LO = np.meshgrid(lat, lon, indexing="ij")
        near = geo.distance_km(LA, LO, lat[i], lon[j]) <= radius_km
        return float(mass[near].sum() / mass.sum())


def _tapered_peak(L: int) -> float:
    """Height of one point's field after the decoder's taper: Σ_l w_l (2l+1) / (4π)."""
    return float(shdd.taper_weights(L).sum() / (4 * np.pi))


def shipped_weights() -> Path:
    """The folder of the weights that ship inside the package (``make weights`` writes them)."""
    return Path(__file__).resolve().parent / "weights" / "locdiff-cpu"


__all__ = ["LocDiffPipeline", "PretrainedError", "load_images", "shipped_weights", "FORMAT_VERSION"]
