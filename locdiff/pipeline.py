"""``LocDiffPipeline``: from images to locations in one call, with weights saved as plain files.

A pretrained folder holds
    config.json            {"format_version", "tile_size", "embed_dim", "encoder": {...},
                            "locdiff": LocDiffSettings, "profile", "data": DataSettings, "seed",
                            "sha256", "config_sha256"} (fields and checks: ``locdiff.pretrained``)
    encoder.safetensors    the frozen tile encoder (``encoders.TileCNN``)
    model.safetensors      the CS-UNet's EMA weights
Loading reads JSON and safetensors only: nothing is unpickled; every file, the config included,
is checked against its SHA-256 and every config field is validated. Saving writes a new folder
under a unique temporary name and never deletes what it did not write: it refuses a non-empty
folder that is not a pretrained folder, and files a user added to a pretrained folder are kept.

Images: numpy arrays ([H, W, 3] or [3, H, W], uint8 0-255 or float 0-1), torch tensors (same
layouts), PIL images or file paths, alone or in a list. An image of another size than the
model's tiles is resized (bilinear) with a warning; grayscale or 4-channel images are refused
with a message, since the tile encoder was trained on RGB.

In detail: integer arrays of any width (uint8, int16, uint16, int32, int64, ...) must hold values
in [0, 255], float arrays of any width (float16 to float64, bfloat16 tensors) values in [0, 1];
boolean, complex, object and string arrays, dimensions of size 0 and ranks other than 3 (a 4-D
batch is the array itself, not an element of a list) are refused. PIL images (and files) of mode
RGB, RGBX, P, CMYK, YCbCr or HSV are converted to RGB; grayscale modes (1, L, I, I;16, F), modes
with alpha (RGBA, LA, PA, ...) and LAB are refused. Files that are truncated, that PIL cannot
decode, folders, and images of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (PIL's guard
against decompression bombs) are refused; so are objects that are none of the accepted forms
(None, dicts, numbers, bytes). Every refusal is a ValueError (FileNotFoundError for a missing
file) naming the image's index in the list.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import geo, shdd
from .checks import check_int
from .samplers import check_sampling as _check_sampling
from .encoders import TileCNN
from .experiment import LocDiff, build
from .checkpoint import check_sums, file_sums
from .io import DiskFullError, write_folder
from .pretrained import FILES, FORMAT_VERSION, PretrainedError, config_sha256, validate, validate_locdiff


#: PIL modes that hold colour and convert to RGB faithfully (RGBX: RGB plus a padding byte).
_COLOUR_MODES = ("RGB", "RGBX", "P", "CMYK", "YCbCr", "HSV")
_GRAY_MODES = ("1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_ACCEPTED = ("a numpy array or torch tensor ([H, W, 3] or [3, H, W]), a PIL image, "
             "or the path of an image file (str or os.PathLike)")


def _short(text, limit: int = 160) -> str:
    """``text`` as a string of at most about ``limit`` characters (the middle elided)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-(limit // 2):]}"


def _pixel_limit_error(index: int, pixels: int | None, detail: str) -> ValueError:
    from PIL import Image

    count = f"{pixels} pixels, which" if pixels is not None else "more pixels than allowed, which"
    return ValueError(f"image {index}: {detail}{count} is more than the limit of {Image.MAX_IMAGE_PIXELS} "
                      "pixels (PIL.Image.MAX_IMAGE_PIXELS), a guard against decompression bombs; raise "
                      "PIL.Image.MAX_IMAGE_PIXELS (or set it to None) if you trust this image")


def _pil_to_array(im, index: int, source: str = "") -> np.ndarray:
    """A PIL image -> uint8 [H, W, 3]: colour modes converted to RGB; grayscale, alpha, other modes and
    images over ``PIL.Image.MAX_IMAGE_PIXELS`` refused; a decoding failure (a truncated file read
    lazily) is a ValueError."""
    from PIL import Image

    where = f" ({source})" if source else ""
    mode = im.mode
    if mode in _GRAY_MODES:
        raise ValueError(f"image {index}{where}: a grayscale PIL image (mode {mode!r}); the tile encoder needs RGB "
                         "with 3 channels (convert it with image.convert('RGB') if a gray tile is what you mean)")
    if mode in _ALPHA_MODES:
        raise ValueError(f"image {index}{where}: a PIL image with an alpha channel (mode {mode!r}, 4 channels or 2); "
                         "the tile encoder needs RGB with 3 channels (convert it with image.convert('RGB') to drop "
                         "the alpha)")
    if mode not in _COLOUR_MODES:
        hint = " (PIL converts 'LAB' to RGB incorrectly; use PIL.ImageCms)" if mode == "LAB" else ""
        raise ValueError(f"image {index}{where}: PIL image mode {mode!r} is not supported{hint}; the tile encoder "
                         f"needs RGB with 3 channels (modes {', '.join(_COLOUR_MODES)} are converted; otherwise "
                         "convert it to 'RGB' yourself)")
    w, h = im.size
    if Image.MAX_IMAGE_PIXELS is not None and w * h > Image.MAX_IMAGE_PIXELS:
        raise _pixel_limit_error(index, w * h, f"{w}x{h} = ")
    try:
        return np.array(im if mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoding failure: truncated file, broken stream, closed image
        what = "is truncated" if "truncated" in str(err) else "cannot be decoded"
        raise ValueError(f"image {index}{where}: the image data {what} ({type(err).__name__}: {_short(err)}); "
                         "re-save or re-download it") from None


def _read_image_file(img, index: int) -> np.ndarray:
    """An image file path -> uint8 [H, W, 3]; FileNotFoundError or ValueError naming the image otherwise."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(img, str) and not img.strip():
        raise ValueError(f"image {index}: an empty string is not an image path; give {_ACCEPTED}")
    path = Path(img)
    shown = _short(path)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as err:                                    # e.g. a name too long for the file system
        raise FileNotFoundError(f"image {index}: no such file: {shown} ({err.strerror})") from None
    if is_dir:
        raise ValueError(f"image {index}: {shown} is a folder, not an image file; give the paths of the images in it")
    if not is_file:
        raise FileNotFoundError(f"image {index}: no such file: {shown}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # _pil_to_array refuses it clearly
            im = Image.open(path)
    except Image.DecompressionBombError as err:                # over twice the limit: PIL refuses at open
        pixels = re.search(r"\((\d+) pixels\)", str(err))     # "Image size (N pixels) exceeds limit of ..."
        raise _pixel_limit_error(index, int(pixels.group(1)) if pixels else None, f"{shown} holds ") from None
    except UnidentifiedImageError:
        raise ValueError(f"image {index}: {shown} is not an image file PIL can read") from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - a header PIL recognizes but cannot parse, a file it cannot read
        raise ValueError(f"image {index}: {shown} is not an image file PIL can read "
                         f"({type(err).__name__}: {_short(err)})") from None
    with im:
        return _pil_to_array(im, index, shown)


def _not_an_image(img, index: int) -> ValueError:
    what = "None" if img is None else f"a {type(img).__name__}"
    hint = " (to decode an image file's bytes, use PIL.Image.open(io.BytesIO(data)))" if isinstance(
        img, (bytes, bytearray)) else ""
    return ValueError(f"image {index}: {what} is not an image; give {_ACCEPTED}{hint}")


def _as_tensor(img, index: int) -> torch.Tensor:
    """A numpy array, array-like or torch tensor -> a CPU tensor of dtype uint8, int64, float32 or float64
    (the values unchanged); booleans, complex numbers and other dtypes refused."""
    def refuse(dtype) -> ValueError:
        kind = ("boolean (a mask?)" if dtype in (np.bool_, torch.bool) else
                "complex" if getattr(dtype, "is_complex", False) or getattr(dtype, "kind", "") == "c" else
                "object" if getattr(dtype, "kind", "") == "O" else
                "str" if getattr(dtype, "kind", "") in "US" else f"{dtype}")
        return ValueError(f"image {index}: a {kind} array (dtype {dtype}) is not an image; give uint8 values in "
                          "[0, 255], other integers in [0, 255] or floats in [0, 1]")

    if isinstance(img, torch.Tensor):
        t = img.detach()
        if t.layout != torch.strided or t.is_quantized or t.is_meta:
            raise ValueError(f"image {index}: a {t.layout} / quantized / meta tensor is not supported; give a dense "
                             "tensor with real values (e.g. t.to_dense() or t.dequantize())")
        t = t.cpu()
        if t.dtype == torch.bool or t.is_complex():
            raise refuse(t.dtype)
        if t.is_floating_point():
            return t if t.dtype in (torch.float32, torch.float64) else t.float()
        return t if t.dtype == torch.uint8 else t.to(torch.int64)  # uint16..64 lack min/max; uint64 > 2^63 wraps < 0
    try:
        a = np.asarray(img)
    except Exception:  # noqa: BLE001 - an array-like that cannot become an array
        raise _not_an_image(img, index) from None
    kind = a.dtype.kind
    if kind not in "iuf":
        raise refuse(a.dtype.type if kind == "b" else a.dtype)
    # a fresh, writable, C-ordered copy in native byte order (torch.from_numpy takes nothing else)
    if kind == "f":
        a = a.astype(np.float64 if a.dtype.itemsize > 4 else np.float32, order="C")   # float16 -> float32
    elif a.dtype != np.uint8:
        a = a.astype(np.int64, order="C")              # a uint64 >= 2^63 wraps below 0 and is refused below
    else:
        a = np.array(a, order="C")
    return torch.from_numpy(a)


def _to_uint8_chw(img, index: int, size: int) -> torch.Tensor:
    """One image in any accepted form -> uint8 tensor [3, size, size]; ValueError / FileNotFoundError
    naming the image's index (and what is accepted) for anything else."""
    from PIL import Image

    if isinstance(img, (str, os.PathLike)):
        img = _read_image_file(img, index)
    elif isinstance(img, Image.Image):
        img = _pil_to_array(img, index)
    elif not isinstance(img, (np.ndarray, torch.Tensor)) and not (
            hasattr(img, "__array__") or hasattr(img, "__array_interface__")):
        raise _not_an_image(img, index)
    t = _as_tensor(img, index)
    shape = tuple(t.shape)
    if t.ndim == 2:
        raise ValueError(f"image {index}: a grayscale image [H, W] (shape {shape}); the tile encoder needs RGB with "
                         "3 channels")
    if t.ndim != 3:
        batch = (" (a batch of images: pass the 4-D array itself, not inside a list)" if t.ndim == 4 else "")
        raise ValueError(f"image {index}: expected one image of shape [H, W, 3] or [3, H, W]; got shape {shape}{batch}")
    if 0 in shape:
        raise ValueError(f"image {index}: an empty image (shape {shape}); every dimension must be at least 1, "
                         "as in [H, W, 3] or [3, H, W]")
    if t.shape[0] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4):
        t = t.permute(1, 2, 0)                                      # [C, H, W] -> [H, W, C]
    if t.shape[-1] == 1:
        raise ValueError(f"image {index}: a grayscale image with 1 channel (shape {shape}); the tile encoder needs "
                         "RGB with 3 channels")
    if t.shape[-1] != 3:
        raise ValueError(f"image {index}: has {t.shape[-1]} channels (shape {shape}); the tile encoder needs RGB "
                         "with 3 channels")
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


def load_images(images, size: int) -> torch.Tensor:
    """Images (see the module docstring) -> uint8 tensor [B, 3, size, size]."""
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)) and not (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4):
        images = [images]
    if len(images) == 0:
        raise ValueError("images is empty; give at least one image")
    check_int(size, "size", 1, 4096)
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

    def save_pretrained(self, path, half: bool = False) -> Path:
        """Write the folder atomically (``io.write_folder``: a new folder with a unique temporary name,
        renamed into place). ``path`` must be new, an empty folder, or a pretrained folder (which is
        replaced; other files in it are kept); anything else is refused with ``PretrainedError``.
        ``half`` stores the weights in float16 (half the size; ``from_pretrained`` loads them into the
        float32 model), as the shipped weights are."""
        from safetensors.torch import save_file

        if not isinstance(half, bool):
            raise PretrainedError(f"half must be True or False; got {half!r}")

        def tensors(module) -> dict:
            return {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().cpu()
                    for k, v in module.state_dict().items()}

        if not isinstance(path, (str, os.PathLike)) or str(path).strip() == "":
            raise PretrainedError(f"path must be a folder path (str or os.PathLike); got {path!r}")
        path = Path(path)
        try:
            blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
            occupied = path.is_dir() and any(path.iterdir()) and not _is_pretrained_folder(path)
        except OSError as e:                                   # a name too long, a permission denied
            raise PretrainedError(f"path {path} cannot be used: {e.strerror or e}") from None
        if blocker is not None:
            raise PretrainedError(f"path {path} is a file; save_pretrained writes a folder" if blocker == path else
                                  f"path {path} lies under the file {blocker}; save_pretrained writes a folder")
        if occupied:
            raise PretrainedError(f"path {path} is a non-empty folder that is not a pretrained LocDiff folder; "
                                  f"refusing to write into it (choose a new or empty folder)")
        cfg = {"format_version": FORMAT_VERSION, "tile_size": self.tile_size,
               "embed_dim": self.locdiff.model.config.embed_dim,
               "encoder": {"widths": list(self.meta["encoder"]["widths"]), "embed_dim": self.encoder.head.out_features},
               "locdiff": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.locdiff.settings).items()},
               **{k: v for k, v in self.meta.items() if k not in ("encoder",)}}

        def write(tmp: Path) -> None:
            save_file(tensors(self.encoder), str(tmp / "encoder.safetensors"))
            save_file(tensors(self.locdiff.model), str(tmp / "model.safetensors"))
            cfg["sha256"] = file_sums(tmp, FILES[1:])
            cfg["config_sha256"] = config_sha256(cfg)
            validate(json.loads(json.dumps(cfg)))          # never write a folder that would not load
            (tmp / "config.json").write_text(json.dumps(cfg, indent=1))

        try:
            return write_folder(path, write, FILES, what="pretrained weights")
        except DiskFullError:
            raise
        except OSError as e:                                   # e.g. a read-only folder: nothing was written
            raise PretrainedError(f"cannot write the pretrained folder {path}: {e.strerror or e}") from None

    @classmethod
    def from_pretrained(cls, path=None, device=None) -> "LocDiffPipeline":
        """Load a folder written by ``save_pretrained`` (default: the weights shipped with locdiff)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise PretrainedError(f"path must be a folder path (str or os.PathLike) or None; got {type(path).__name__}")
        path = Path(path) if path is not None else shipped_weights()
        try:
            is_dir = path.is_dir()
            missing = [f for f in FILES if not (path / f).is_file()] if is_dir else []
        except OSError as e:                                   # a name too long, a permission denied
            raise PretrainedError(f"{str(path)[:200]} cannot be read as a folder of pretrained LocDiff weights: "
                                  f"{e.strerror or e}") from None
        if not is_dir:
            raise PretrainedError(f"{path} is not a folder of pretrained LocDiff weights")
        if missing:
            raise PretrainedError(f"{path} is missing {', '.join(missing)}; expected {', '.join(FILES)}")
        try:
            cfg = json.loads((path / "config.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PretrainedError(f"{path / 'config.json'} is not valid JSON ({e})") from None
        try:
            validate(cfg)
        except PretrainedError as e:
            raise PretrainedError(f"{path}: {e}") from None
        problem = check_sums(path, FILES[1:], cfg.get("sha256", {}))
        if problem:
            raise PretrainedError(f"{path}: {problem}; refusing to load it")
        try:
            settings = validate_locdiff(cfg["locdiff"])
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
        check_int(batch, "batch", 1)
        x = load_images(images, self.tile_size)
        with torch.no_grad():
            return torch.cat([self.encoder(x[i:i + batch].to(self.device)).cpu() for i in range(0, len(x), batch)])

    def _check_run(self, n, steps, guidance, seed, batch) -> int:
        """Validate the sampling arguments before any work; returns n (None: the model's default)."""
        n = self.locdiff.settings.samples if n is None else n
        _check_sampling(n, steps, 1.0 if guidance is None else guidance)
        check_int(seed, "seed", 0, 2 ** 63 - 1 - 10 ** 9)      # seed + image index seeds a torch generator
        check_int(batch, "batch", 1)
        return n

    def _latents(self, images, n, steps, guidance, seed, batch, progress):
        emb = self.embed(images)
        out = []
        for i in tqdm(range(0, len(emb), batch), desc="locating images", disable=not progress or len(emb) <= batch):
            out.append(self.locdiff.sample(emb[i:i + batch].to(self.device), n=n, steps=steps, guidance=guidance,
                                           seed=int(seed) + i).cpu())
        return torch.cat(out)

    def sample(self, images, n: int | None = None, steps: int | None = None, guidance: float | None = None, seed: int = 0,
               batch: int = 256, progress: bool = True):
        """Decoded samples (lat, lon), each numpy [B, n] in degrees (n: default the model's ``samples``)."""
        n = self._check_run(n, steps, guidance, seed, batch)
        z = self._latents(images, n, steps, guidance, seed, batch, progress)
        lat, lon, _ = shdd.decode(self.locdiff.diffusion.to_coeffs(z.flatten(0, 1)))
        B = lat.shape[0] // n
        return lat[:, 0].reshape(B, n).numpy(), lon[:, 0].reshape(B, n).numpy()

    def predict(self, images, top_k: int = 5, n: int | None = None, steps: int | None = None,
                guidance: float | None = None, seed: int = 0, batch: int = 256, progress: bool = True) -> pd.DataFrame:
        """The top-k distinct modes of each image's predicted field: a DataFrame with columns image,
        rank (1 = the point prediction), lat, lon (degrees) and score (field value relative to the
        peak of one certain location, so 1 means all samples agree there). The top_k locations are
        distinct, pairwise at least 180/(L+1) degrees apart (``shdd.decode``); top_k can be at most
        ``shdd.max_modes(L)`` (953 at L = 64, 66 at L = 16)."""
        cap = shdd.max_modes(self.locdiff.settings.L)
        if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= cap:
            raise ValueError(f"top_k must be an integer in [1, {cap}] (at most {cap} distinct modes of a "
                             f"degree-{self.locdiff.settings.L} field); got {top_k!r}")
        top_k = int(top_k)
        n = self._check_run(n, steps, guidance, seed, batch)
        z = self._latents(images, n, steps, guidance, seed, batch, progress)
        mean = self.locdiff.diffusion.latent.mean_coeffs(z)
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
        mean = self.locdiff.diffusion.latent.mean_coeffs(z)[0]
        lat, lon = geo.grid_axes(resolution_deg)
        f = shdd.field(mean.double() * shdd.taper_weights(self.locdiff.settings.L), lat, lon, grid=True)
        f = f / _tapered_peak(self.locdiff.settings.L)
        w = torch.softmax((f / 0.1).flatten(), 0).reshape(f.shape)           # temperature as shdd.density
        area = np.radians(resolution_deg) ** 2 * np.cos(np.radians(lat))[:, None]
        return lat, lon, (w.numpy() / area)

    def localizability(self, image, radius_km: float = 750.0, **kwargs) -> float:
        """Share (0..1) of the predicted density within ``radius_km`` of its highest mode: near 1 for
        an image the model can place, near the area share of that disc ((1 - cos(r/R))/2, 0.35% for 750 km) for an
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


def _is_pretrained_folder(path: Path) -> bool:
    """Whether ``path`` holds a pretrained folder's config.json (of any format version)."""
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and "format_version" in cfg and "locdiff" in cfg


def _tapered_peak(L: int) -> float:
    """Height of one point's field after the decoder's taper: Σ_l w_l (2l+1) / (4π)."""
    return float(shdd.taper_weights(L).sum() / (4 * np.pi))


def shipped_weights() -> Path:
    """The folder of the weights that ship inside the package (``make weights`` writes them)."""
    return Path(__file__).resolve().parent / "weights" / "locdiff-cpu"


__all__ = ["LocDiffPipeline", "PretrainedError", "load_images", "shipped_weights", "FORMAT_VERSION"]
