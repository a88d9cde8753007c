"""Real geolocation data sets at paper scale: MP16 for training, Im2GPS3k / YFCC4k / YFCC26k for tests.

The files are the field's usual ones, which the user has already downloaded (nothing is fetched):

- **metadata CSVs**, one row per image, with an image-id column (``IMG_ID``, ``img_id``,
  ``image_id`` or ``id``: the image file's path relative to the image folder, e.g. MP16's
  ``9f/b4/6251223498.jpg``) and the photo's position in degrees (``LAT``/``lat``/``latitude``,
  ``LON``/``lon``/``longitude``); other columns (``AUTHOR``, the Places365 labels, ...) are ignored.
  An id must stay inside the image folder: absolute paths and ids that climb out of it with ``..``
  are refused (ValueError naming the column and the CSV lines); symbolic links are followed as is.
  ``mp16_places365.csv`` gives the training images, ``im2gps3k_places365.csv``,
  ``yfcc4k_places365.csv`` and ``yfcc25600_places365.csv`` the test images;
- **image folders** holding those files (JPEG, PNG or anything else Pillow reads);
- a **CLIP-family backbone** saved locally by Hugging Face ``transformers`` (a folder with
  ``config.json``, the weights and optionally ``preprocessor_config.json``), or a model id already
  present in the local Hugging Face cache. Both a full ``CLIPModel`` and a
  ``CLIPVisionModelWithProjection`` checkpoint are accepted; only the vision tower and the visual
  projection are used.

A ``RealDataset`` (a small JSON spec) names these files. Its splits are ``train`` and ``val``
(``val_images`` rows held out of the training CSV by a seeded permutation; ``max_train``
optionally subsamples the rest) and one split per evaluation CSV. The result has the interface of
the embedded benchmark (``locdiff.data.bluemarble.load`` and ``locdiff.encoders.load_embeddings``):

- ``load(ds)`` -> ``{split: RealSplit}``, with ``lat``, ``lon`` (float64 degrees, latitude in
  [-90, 90], longitude wrapped into [-180, 180)), ``ids``, ``paths`` (numpy arrays of length N),
  and, computed on first use, ``tiles`` (a lazy uint8 [N, 3, S, S] view of the images) and the
  nearest GeoNames place of each photo (``place_name``, ``country``, ``continent``, ...);
- ``load_embeddings(ds)`` -> ``{"embeddings": {split: float32 [N, d]}, "history": empty DataFrame,
  "encoder": ClipBackbone}``, the frozen image embeddings, L2-normalized (‖e‖ = 1), row i of split
  s belonging to the image ``load(ds)[s].ids[i]``.

**Images that cannot be used** (file missing, or Pillow cannot decode it) are excluded from their
split, row by row, with one warning per split giving their number and first ids; ``load`` and
``load_embeddings`` apply the same exclusion (read from the cache), so positions and embeddings
stay aligned. No zero or placeholder embedding is ever kept.

**Embedding** (``ClipBackbone``): an RGB image (grayscale, palette, CMYK converted; transparency
composited onto white) is resized with bicubic interpolation so that its shorter side is S_r
pixels (the longer side ⌊S_r · long / short⌋), centre-cropped to S × S (S = the backbone's image
size, S_r = the preprocessor's ``shortest_edge``, else S), scaled to [0, 1] and standardized per
channel, x' = (x − mean_c) / std_c. The vision transformer's pooled output is projected by the
visual projection to d dimensions (d = ``projection_dim``, 768 for CLIP ViT-L/14) and divided by its
Euclidean norm. EXIF orientation is not applied, as in CLIP's own preprocessing.

**Cache.** ``cache_dir()/real/<name>-<backbone key>/`` (``$LOCDIFF_CACHE``, else data/cache), the
backbone key hashing the backbone's config and weight files (SHA-256), the image size and the
cache format. Per split, ``<split>-<key>.json`` (the split key hashing the metadata CSV's SHA-256
and, for train/val, the seed, ``val_images`` and ``max_train``) lists chunk files
``<split>-<key>-<c>.npz`` of ``CHUNK_ROWS`` consecutive rows each, holding ``status`` (int8 per
row: 0 used, ≥ 1 used with an added file suffix, −1 missing, −2 unreadable) and ``emb`` (float32
[rows used, d]). Each chunk is written atomically and its SHA-256 recorded in the manifest
right away, so an interrupted run (Ctrl-C, a crash) loses at most the chunk in progress and the
next call resumes; a chunk that is missing, truncated or altered is reported and recomputed.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import os
import re
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from .. import geo
from ..io import atomic_write, cache_problem

FORMAT_VERSION = 1
#: Rows per cache chunk: an interruption loses at most this many images' work.
CHUNK_ROWS = 4096
#: Per-channel mean and standard deviation of CLIP's training images (RGB, on the [0, 1] scale), as
#: published with OpenAI's CLIP (github.com/openai/CLIP, clip/clip.py, ``_transform``); used when the
#: backbone folder has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Column names accepted in metadata CSVs (compared case-insensitively), in order of preference.
ID_COLUMNS = ("img_id", "image_id", "id")
LAT_COLUMNS = ("lat", "latitude")
LON_COLUMNS = ("lon", "lng", "long", "longitude")
#: Suffixes tried, in order, when an id names no file as it is (ids written without extension).
SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
_MISSING, _UNREADABLE = -1, -2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class RealDataset:
    """Where a real data set lives and how it is split; saved as JSON (``to_json`` / ``from_json``).

    ``eval_csvs`` and ``eval_images`` map each test split's name to its metadata CSV and image
    folder (same keys). ``backbone`` is a local folder (write relative ones with a leading ``./``)
    or a model id already in the local Hugging Face cache.
    """

    name: str
    train_csv: str
    train_images: str
    eval_csvs: dict[str, str]
    eval_images: dict[str, str]
    backbone: str
    val_images: int = 5000
    max_train: int | None = None
    batch_size: int = 64
    image_size: int | None = None
    seed: int = 0

    def __post_init__(self):
        if not _NAME.match(str(self.name)):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-' (it names cache folders); got {self.name!r}")
        if set(self.eval_csvs) != set(self.eval_images):
            raise ValueError(f"eval_csvs and eval_images must name the same splits; got {sorted(self.eval_csvs)} "
                             f"and {sorted(self.eval_images)}")
        for s in self.eval_csvs:
            if s in ("train", "val") or not _NAME.match(str(s)):
                raise ValueError(f"test split name {s!r} must differ from 'train' and 'val' and be letters, "
                                 "digits, '.', '_' or '-'")
        if int(self.val_images) < 0:
            raise ValueError(f"val_images must be >= 0; got {self.val_images}")
        if self.max_train is not None and int(self.max_train) < 1:
            raise ValueError(f"max_train must be None or >= 1; got {self.max_train}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if self.image_size is not None and int(self.image_size) < 1:
            raise ValueError(f"image_size must be None or >= 1; got {self.image_size}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be an integer >= 0; got {self.seed}")

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split: ``("train", "val", *eval_csvs)``."""
        return ("train", "val", *self.eval_csvs)

    @property
    def test_splits(self) -> tuple[str, ...]:
        """The evaluation splits, in the order of ``eval_csvs``."""
        return tuple(self.eval_csvs)

    @classmethod
    def from_json(cls, path) -> RealDataset:
        """Read a spec; relative paths are resolved against the JSON file's folder.

        The file must hold one JSON object with the fields of ``RealDataset`` (name, train_csv,
        train_images, eval_csvs, eval_images and backbone required); each is type-checked (strings,
        an object of split -> path, integers >= their minimum, null where allowed; an integral number
        such as 1e3 is read as an integer). ValueError naming the file and the field otherwise;
        FileNotFoundError when there is no such file.

        ``backbone`` is resolved too when it starts with ``./``, ``../``, ``~`` or ``/`` or names an
        existing folder there; otherwise it is kept as a Hugging Face model id.
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a folder; the data set spec is a JSON file (see examples/real_dataset.json)")
        if not path.is_file():
            raise FileNotFoundError(f"data set spec not found: {path}")
        try:
            raw = json.loads(path.read_text())
        except OSError as err:
            raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); the spec takes no comments") from err
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a JSON object with the fields {[f.name for f in fields(cls)]}; "
                             f"got a JSON {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {unknown}; the fields are {sorted(known)}")
        raw = _check_spec_fields(raw, path)
        base = path.resolve().parent
        res = lambda p: str((base / Path(p).expanduser()).resolve())
        for k in ("train_csv", "train_images"):
            if k in raw:
                raw[k] = res(raw[k])
        for k in ("eval_csvs", "eval_images"):
            if k in raw:
                raw[k] = {s: res(p) for s, p in dict(raw[k]).items()}
        if "backbone" in raw and _looks_like_path(raw["backbone"], base):
            raw["backbone"] = res(raw["backbone"])
        try:
            return cls(**raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None

    def to_json(self, path) -> None:
        """Write the spec (atomically), paths relative to the JSON file's folder where possible."""
        path = Path(path)
        base = path.resolve().parent
        rel = lambda p: _relative(p, base)
        d = asdict(self)
        d["train_csv"], d["train_images"] = rel(self.train_csv), rel(self.train_images)
        d["eval_csvs"] = {s: rel(p) for s, p in self.eval_csvs.items()}
        d["eval_images"] = {s: rel(p) for s, p in self.eval_images.items()}
        if _looks_like_path(self.backbone, Path.cwd()):
            b = rel(self.backbone)
            d["backbone"] = b if os.path.isabs(b) or b.startswith(".") else "./" + b
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(d, indent=2) + "\n"))


#: The integer fields of a spec: (smallest value, whether null is allowed).
_SPEC_INTS = {"val_images": (0, False), "max_train": (1, True), "batch_size": (1, False), "image_size": (1, True),
              "seed": (0, False)}


def _check_spec_fields(raw: dict, path: Path) -> dict:
    """The fields of a spec read from JSON, type-checked (a copy; integral floats such as 1e3 become
    ints). ValueError naming the file and the field for a missing field or a value of the wrong type."""
    required = [f.name for f in fields(RealDataset) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        optional = [f.name for f in fields(RealDataset) if f.name not in required]
        raise ValueError(f"{path}: missing field(s) {missing}; required: {required}, optional: {optional}")
    raw = dict(raw)

    def bad(key: str, what: str):
        shown = repr(raw[key])
        raise ValueError(f"{path}: field {key} must be {what}; got {shown if len(shown) <= 80 else shown[:77] + '...'}")

    for key in ("name", "train_csv", "train_images", "backbone"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            bad(key, "a non-empty string")
    for key in ("eval_csvs", "eval_images"):
        value = raw[key]
        if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
            bad(key, 'a JSON object mapping each test split to a path, e.g. {"im2gps3k": "im2gps3k/images"}')
    for key, (low, nullable) in _SPEC_INTS.items():
        if key not in raw or (raw[key] is None and nullable):
            continue
        value = raw[key]
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = raw[key] = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            bad(key, f"an integer >= {low}" + (" or null" if nullable else ""))
    return raw


def _looks_like_path(s: str, base: Path) -> bool:
    s = str(s)
    return (s.startswith(("./", "../", "~", "/", ".\\", "..\\")) or os.path.isabs(s)
            or (base / s).exists() or not _HF_ID.match(s))


def _relative(p: str, base: Path) -> str:
    p = Path(p).expanduser().resolve()
    try:
        return os.path.relpath(p, base)
    except ValueError:                          # another drive (Windows)
        return str(p)


# ----------------------------------------------------------------------------- metadata
def _pick(columns: Sequence[str], wanted: Sequence[str]) -> str | None:
    lower = {str(c).strip().lower(): c for c in columns}
    for w in wanted:
        if w in lower:
            return lower[w]
    return None


def read_metadata(path) -> pd.DataFrame:
    """One metadata CSV as a DataFrame with columns id (str), lat, lon (float64 degrees).

    Header names are matched case-insensitively (``IMG_ID``/``image_id``/``id``,
    ``LAT``/``latitude``, ``LON``/``lng``/``longitude``). Longitudes are wrapped into [-180, 180).
    ValueError, naming the file, for a missing column, an empty id, an id outside the image folder
    (absolute, or climbing out with ``..``), or coordinates that are not finite numbers or a latitude
    outside [-90, 90] (listing the first bad rows by CSV line); no row is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata CSV not found: {path}")
    header = pd.read_csv(path, nrows=0).columns
    cols = {}
    for role, wanted in (("id", ID_COLUMNS), ("lat", LAT_COLUMNS), ("lon", LON_COLUMNS)):
        c = _pick(header, wanted)
        if c is None:
            raise ValueError(f"{path}: no {role} column (expected one of {', '.join(w.upper() for w in wanted)}, "
                             f"any case); its columns are {list(header)}")
        cols[role] = c
    raw = pd.read_csv(path, usecols=list(cols.values()), dtype=str, keep_default_na=False)
    ids = raw[cols["id"]].str.strip()
    lat = pd.to_numeric(raw[cols["lat"]].str.strip(), errors="coerce").to_numpy(np.float64)
    lon = pd.to_numeric(raw[cols["lon"]].str.strip(), errors="coerce").to_numpy(np.float64)
    if len(raw) == 0:
        raise ValueError(f"{path}: no rows")
    problems = []
    bad_id = (ids == "").to_numpy()
    if bad_id.any():
        problems.append(("an empty image id", np.flatnonzero(bad_id)))
    outside = _outside_folder(ids)
    if outside.any():
        problems.append((f"an image id ({cols['id']}) outside the image folder: an absolute path or one that climbs "
                         "out with '..' (ids are paths relative to the image folder)", np.flatnonzero(outside)))
    with np.errstate(invalid="ignore"):
        bad_xy = ~np.isfinite(lat) | ~np.isfinite(lon) | (lat < -90) | (lat > 90)
    if bad_xy.any():
        problems.append(("lat outside [-90, 90] or a lat/lon that is missing or not a finite number",
                         np.flatnonzero(bad_xy)))
    if problems:
        lines = []
        for what, rows in problems:
            show = "; ".join(f"line {i + 2}: {cols['id']}={raw[cols['id']].iloc[i]!r}, "
                             f"{cols['lat']}={raw[cols['lat']].iloc[i]!r}, {cols['lon']}={raw[cols['lon']].iloc[i]!r}"
                             for i in rows[:5])
            lines.append(f"{len(rows)} row(s) with {what} ({show}{'; ...' if len(rows) > 5 else ''})")
        raise ValueError(f"{path}: " + "; ".join(lines) + ". Fix or remove these rows; nothing is dropped silently.")
    return pd.DataFrame({"id": ids.to_numpy(dtype=object), "lat": lat, "lon": np.asarray(geo.wrap_lon(lon))})


_ABSOLUTE = re.compile(r"^([/\\]|[A-Za-z]:)")          # /x, \\x, C:x, C:/x (a Windows drive)


def _is_outside(ident: str) -> bool:
    """Whether the image id leads outside the image folder once joined to it: an absolute path (POSIX
    or Windows) or one whose '..' climb above the folder ('a/../b.jpg' stays inside). Both '/' and '\\'
    count as separators, so a spec means the same on every system. Symbolic links are not followed."""
    s = str(ident)
    if _ABSOLUTE.match(s) or os.path.isabs(s):
        return True
    depth = 0
    for part in re.split(r"[/\\]", s):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _outside_folder(ids: pd.Series) -> np.ndarray:
    """Boolean mask of the ids that ``_is_outside`` refuses (only ids with '..' or a leading '/', '\\'
    or drive letter are looked at one by one, so millions of plain ids cost one vectorized pass)."""
    ids = ids.astype(str)
    maybe = (ids.str.contains("..", regex=False) | ids.str[:1].isin(("/", "\\")) | (ids.str[1:2] == ":")
             ).to_numpy(dtype=bool)
    out = np.zeros(len(ids), bool)
    for i in np.flatnonzero(maybe):
        out[i] = _is_outside(ids.iloc[i])
    return out


def _image_path(folder, ident: str) -> Path:
    """The file of image id ``ident`` in ``folder``; ValueError for an id that leads outside the folder
    (``read_metadata`` refuses those already: this guards every place an id becomes a path)."""
    if _is_outside(ident):
        raise ValueError(f"image id {ident!r} points outside the image folder {folder}; ids are paths relative "
                         "to the image folder")
    return Path(folder) / ident


# ----------------------------------------------------------------------------- images
def to_rgb(image: Image.Image) -> Image.Image:
    """The image in mode RGB: transparency composited onto white, other modes converted by Pillow."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def resize_crop(image: Image.Image, size: int, crop: int | None = None) -> Image.Image:
    """Resize (bicubic) so the shorter side is ``size`` pixels, then centre-crop ``crop`` x ``crop``.

    The longer side becomes ⌊size · long / short⌋; the crop's offset is round((side − crop) / 2),
    as in CLIP's torchvision pipeline. Returns an RGB image.
    """
    crop = size if crop is None else crop
    if crop > size:
        raise ValueError(f"crop ({crop}) must not exceed the resized shorter side ({size})")
    image = to_rgb(image)
    w, h = image.size
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    if new != (w, h):
        image = image.resize(new, Image.BICUBIC)
    left, top = round((new[0] - crop) / 2.0), round((new[1] - crop) / 2.0)
    return image.crop((left, top, left + crop, top + crop))


def preprocess(image: Image.Image, size: int, crop: int | None = None,
               mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> np.ndarray:
    """CLIP input of one image: float32 [3, crop, crop], ((pixel / 255) − mean_c) / std_c.

    ``resize_crop`` first (shorter side ``size``, centre crop ``crop``, default ``size``).
    """
    x = np.asarray(resize_crop(image, size, crop), dtype=np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _open(path: Path) -> tuple[Image.Image | None, int]:
    """(decoded RGB image, status): status 0 as named, k >= 1 with SUFFIXES[k-1] added, or an error."""
    candidates = [path] + ([] if path.suffix else [path.with_name(path.name + s) for s in SUFFIXES])
    for k, p in enumerate(candidates):
        if not p.is_file():
            continue
        try:
            with Image.open(p) as im:
                im.load()
                rgb = to_rgb(im)
                return (rgb.copy() if rgb is im else rgb), k
        except Exception:  # noqa: BLE001 - any decoding failure makes the file unusable, never a crash
            return None, _UNREADABLE
    return None, _MISSING


class Thumbnails:
    """A split's images as a lazy uint8 array [N, 3, S, S] (``resize_crop`` to S, read on access).

    Indexing with an int gives [3, S, S]; with a slice, list or array, [k, 3, S, S]. Stands in for
    the embedded benchmark's ``tiles`` in figures; nothing is read until an image is asked for.
    """

    def __init__(self, paths: np.ndarray, size: int = 64):
        self.paths, self.size = paths, int(size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.size, self.size)

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        return len(self.paths)

    def _one(self, i) -> np.ndarray:
        with Image.open(self.paths[i]) as im:
            return np.asarray(resize_crop(im, self.size), dtype=np.uint8).transpose(2, 0, 1).copy()

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self._one(int(idx))
        rows = np.arange(len(self))[idx]
        out = np.zeros((len(rows), 3, self.size, self.size), np.uint8)
        for j, i in enumerate(rows):
            out[j] = self._one(int(i))
        return out

    def __repr__(self) -> str:
        return f"Thumbnails({len(self)} images, {self.size}x{self.size})"


# ----------------------------------------------------------------------------- the backbone
def _resolve_backbone(name_or_path) -> Path:
    """The local folder of a backbone; FileNotFoundError (naming the path) when there is none."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.exists():
        raise FileNotFoundError(f"backbone must be a folder saved by transformers' save_pretrained; {p.resolve()} is a file")
    if _HF_ID.match(s) and not s.startswith((".", "~", "/")):
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(s, local_files_only=True))
        except Exception as err:  # not cached, or not a valid id: explained below
            raise FileNotFoundError(
                f"backbone {s!r}: no such folder ({p.resolve()}) and no copy in the local Hugging Face cache "
                f"({type(err).__name__}). Nothing is downloaded at run time: save the model to a folder first "
                "(see examples/README.md) and give that folder's path.") from err
        return folder
    raise FileNotFoundError(f"backbone folder not found: {p.resolve()} (nothing is downloaded; see examples/README.md)")


@cache
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _file_sha256(path) -> str:
    """SHA-256 of a file, remembered per (path, size, modification time) within the process."""
    st = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _size_of(value, key: str) -> int | None:
    if isinstance(value, dict):
        return value.get(key) or value.get("height")
    return value if isinstance(value, int) else None


class ClipBackbone:
    """A frozen CLIP-family image encoder loaded from a local folder: images -> float32 [B, d].

    ``from_pretrained`` reads only the configuration; the weights are loaded on first use (so a
    fully cached data set never loads them). ``dim`` = d (the projection dimension),
    ``image_size`` = S (the square input), ``resize`` = the shorter side before the crop.
    """

    def __init__(self, folder: Path, config, image_size: int | None = None, device: str | None = None):
        self.folder = Path(folder)
        self.config = config
        vision = config.vision_config if config.model_type == "clip" else config
        self.native_size = int(vision.image_size)
        self.dim = int(config.projection_dim)
        pre = {}
        pre_path = self.folder / "preprocessor_config.json"
        if pre_path.is_file():
            pre = json.loads(pre_path.read_text())
        self.mean = tuple(float(v) for v in pre.get("image_mean", CLIP_MEAN))
        self.std = tuple(float(v) for v in pre.get("image_std", CLIP_STD))
        if image_size is not None:
            self.image_size = self.resize = int(image_size)
        else:
            self.image_size = int(_size_of(pre.get("crop_size"), "height") or self.native_size)
            self.resize = int(_size_of(pre.get("size"), "shortest_edge") or self.image_size)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self._vision = self._projection = None

    @classmethod
    def from_pretrained(cls, name_or_path, image_size: int | None = None, device: str | None = None) -> ClipBackbone:
        """A backbone from a folder saved with ``save_pretrained`` (or an id in the local HF cache).

        FileNotFoundError naming the path when there is no such folder or it holds no model; nothing
        is downloaded (``local_files_only``). ``image_size`` overrides the input size (position
        embeddings are then interpolated).
        """
        folder = _resolve_backbone(name_or_path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} has no config.json: not a model saved by transformers' save_pretrained")
        if not _weight_files(folder):
            raise FileNotFoundError(f"{folder} has no weights (model.safetensors or pytorch_model.bin)")
        try:
            from transformers import AutoConfig
        except ImportError as err:
            raise ImportError("real data sets need the optional dependency 'transformers': "
                              "pip install 'locdiff[clip]'") from err
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        if config.model_type not in ("clip", "clip_vision_model"):
            raise ValueError(f"{folder}: model type {config.model_type!r} is not supported; "
                             "expected a CLIPModel or CLIPVisionModelWithProjection checkpoint")
        arch = list(getattr(config, "architectures", None) or [])
        if config.model_type == "clip_vision_model" and arch and "CLIPVisionModelWithProjection" not in arch:
            raise ValueError(f"{folder}: a {arch[0]} checkpoint has no visual projection; save a "
                             "CLIPVisionModelWithProjection or a full CLIPModel")
        return cls(folder, config, image_size, device)

    def _load(self) -> None:
        from transformers import CLIPModel, CLIPVisionModelWithProjection

        cls = CLIPModel if self.config.model_type == "clip" else CLIPVisionModelWithProjection
        model, info = cls.from_pretrained(str(self.folder), local_files_only=True, output_loading_info=True)
        missing = [k for k in info.get("missing_keys", []) if k.startswith(("vision_model", "visual_projection"))]
        if missing:
            raise ValueError(f"{self.folder}: the checkpoint lacks weights of the vision tower {missing[:5]}; "
                             "refusing to embed with randomly initialized layers")
        self._vision = model.vision_model.float().to(self.device).eval()
        self._projection = model.visual_projection.float().to(self.device).eval()
        for p in list(self._vision.parameters()) + list(self._projection.parameters()):
            p.requires_grad_(False)
        del model

    @property
    def modules(self):
        """(vision transformer, visual projection), loading the weights on first access."""
        if self._vision is None:
            self._load()
        return self._vision, self._projection

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over the config, the preprocessor config and every weight file's SHA-256."""
        h = hashlib.sha256()
        for name in ("config.json", "preprocessor_config.json"):
            p = self.folder / name
            h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"") + b"\0")
        for p in _weight_files(self.folder):
            h.update(p.name.encode() + b"\0" + _file_sha256(p).encode() + b"\0")
        return h.hexdigest()

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """float32 [3, S, S]: the standardized, resized and cropped image (see ``preprocess``)."""
        return preprocess(image, self.resize, self.image_size, self.mean, self.std)

    def embed(self, images, normalize: bool = True) -> np.ndarray:
        """Embeddings float32 [B, d] of PIL images, or of float32 pixels [B, 3, S, S] already
        preprocessed; divided by their Euclidean norm when ``normalize``.
        """
        import torch

        if isinstance(images, np.ndarray):
            pixels = images
        else:
            pixels = np.stack([self.preprocess(im) for im in images]) if len(images) else np.zeros((0, 3, self.image_size, self.image_size), np.float32)
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        vision, projection = self.modules
        kwargs = {"interpolate_pos_encoding": True} if self.image_size != self.native_size else {}
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(self.device)
            e = projection(vision(pixel_values=x, **kwargs).pooler_output).float()
            if normalize:
                e = torch.nn.functional.normalize(e, dim=-1)
        return e.cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (f"ClipBackbone({self.folder}, {self.config.model_type}, d={self.dim}, "
                f"image_size={self.image_size}, device={self.device})")


def _weight_files(folder: Path) -> list[Path]:
    pats = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")
    return sorted({p for pat in pats for p in folder.glob(pat)}, key=lambda p: p.name)


# ----------------------------------------------------------------------------- splits
def _place_column(column: str, doc: str, text: bool = False) -> property:
    """A read-only property: the ``column`` of the nearest places (``_places``) as a numpy array."""
    def get(self) -> np.ndarray:
        values = self._places[column]
        return values.to_numpy(object) if text else values.to_numpy()
    return property(get, doc=doc)


@dataclass(eq=False)
class RealSplit:
    """One split of a real data set: per-image numpy arrays of length N (rows with a usable image).

    ``excluded`` lists the ids left out (missing or unreadable image files). ``tiles`` and the
    nearest-place fields are computed on first access.
    """

    name: str
    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    paths: np.ndarray
    excluded: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.lat)

    @cached_property
    def tiles(self) -> Thumbnails:
        """The images as a lazy uint8 [N, 3, 64, 64] array (read from disk on indexing)."""
        return Thumbnails(self.paths)

    @cached_property
    def _places(self) -> pd.DataFrame:
        return nearest_places(self.lat, self.lon)

    place_name = _place_column("name", "Name of the nearest GeoNames place (>= 5000 inhabitants) to each photo.",
                               text=True)
    place_id = _place_column("place_id", "GeoNames id of the nearest place.")
    country = _place_column("country", "ISO code of the nearest place's country (near a border it can be the "
                                       "neighbour's).", text=True)
    continent = _place_column("continent", "Continent code of the nearest place.", text=True)
    population = _place_column("population", "Population of the nearest place.")

    def frame(self) -> pd.DataFrame:
        """id, path, lat, lon and the nearest place (name, id, country, continent, population)."""
        return pd.DataFrame({"id": self.ids, "path": self.paths, "lat": self.lat, "lon": self.lon,
                             "country": self.country, "continent": self.continent,
                             "population": self.population, "place_id": self.place_id,
                             "place_name": self.place_name})


def nearest_places(lat, lon, min_population: int = 5000) -> pd.DataFrame:
    """The nearest GeoNames place (great-circle) to each position: rows of ``load_places``."""
    from scipy.spatial import cKDTree

    from .places import load_places

    places = load_places(min_population)
    tree = cKDTree(geo.latlon_to_xyz(places.lat.to_numpy(), places.lon.to_numpy()))
    lat = np.asarray(lat, np.float64)
    if len(lat) == 0:
        return places.iloc[:0].reset_index(drop=True)
    _, idx = tree.query(geo.latlon_to_xyz(lat, np.asarray(lon, np.float64)))
    return places.iloc[idx].reset_index(drop=True)


@dataclass
class _Plan:
    """The rows of one split before exclusions, with the files and key of its cache."""

    name: str
    frame: pd.DataFrame          # id, lat, lon
    folder: Path
    key: str                     # hash of the CSV's contents (and the seeded draw): not of paths
    meta: dict


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _plans(ds: RealDataset, splits: Sequence[str]) -> dict[str, _Plan]:
    plans = {}
    if "train" in splits or "val" in splits:
        df = read_metadata(ds.train_csv)
        n, n_val = len(df), int(ds.val_images)
        if n_val >= n:
            raise ValueError(f"val_images ({n_val}) must be smaller than the {n} rows of {ds.train_csv}")
        perm = np.random.default_rng(ds.seed).permutation(n)
        val, rest = np.sort(perm[:n_val]), perm[n_val:]
        train = np.sort(rest if ds.max_train is None else rest[:int(ds.max_train)])
        common = {"csv_sha256": _file_sha256(ds.train_csv), "seed": int(ds.seed), "val_images": n_val}
        for s, rows, extra in (("train", train, {"max_train": ds.max_train}), ("val", val, {})):
            meta = {**common, **extra, "split": s}
            plans[s] = _Plan(s, df.iloc[rows].reset_index(drop=True), Path(ds.train_images), _key(meta),
                             {**meta, "csv": str(ds.train_csv)})
    for s in splits:
        if s in ("train", "val"):
            continue
        if s not in ds.eval_csvs:
            raise ValueError(f"unknown split {s!r}; the splits of {ds.name!r} are {ds.splits}")
        meta = {"csv_sha256": _file_sha256(ds.eval_csvs[s]), "split": s}
        plans[s] = _Plan(s, read_metadata(ds.eval_csvs[s]), Path(ds.eval_images[s]), _key(meta),
                         {**meta, "csv": str(ds.eval_csvs[s])})
    for p in plans.values():
        if not p.folder.is_dir():
            raise FileNotFoundError(f"image folder of split {p.name!r} not found: {p.folder}")
    return {s: plans[s] for s in splits}


def _check_splits(ds: RealDataset, splits) -> list[str]:
    splits = list(ds.splits if splits is None else [splits] if isinstance(splits, str) else splits)
    for s in splits:
        if s not in ds.splits:
            raise ValueError(f"unknown split {s!r}; the splits of {ds.name!r} are {ds.splits}")
    return splits


# ----------------------------------------------------------------------------- the cache
def _cache_folder(ds: RealDataset, backbone: ClipBackbone) -> Path:
    from .bluemarble import cache_dir

    key = _key({"format": FORMAT_VERSION, "backbone": backbone.fingerprint, "image_size": backbone.image_size,
                "resize": backbone.resize, "mean": backbone.mean, "std": backbone.std, "chunk_rows": CHUNK_ROWS})
    d = cache_dir() / "real" / f"{ds.name}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    return d


class _SplitCache:
    """The manifest and chunk files of one split; ``ensure`` computes what is missing."""

    def __init__(self, folder: Path, plan: _Plan, backbone: ClipBackbone, ds: RealDataset):
        self.folder, self.plan, self.backbone, self.ds = folder, plan, backbone, ds
        self.stem = f"{plan.name}-{plan.key}"
        self.manifest = folder / f"{self.stem}.json"
        self.rows = len(plan.frame)
        self.n_chunks = math.ceil(self.rows / CHUNK_ROWS)
        problem, meta = cache_problem(self.manifest, {}, "no embeddings yet")
        ok = problem is None and meta.get("format") == FORMAT_VERSION and meta.get("rows") == self.rows
        self.sums: dict[str, str] = dict(meta["sha256"]) if ok else {}
        if problem is None and not ok:
            print(f"{ds.name}/{plan.name}: cache manifest {self.manifest.name} does not fit; starting the split afresh")

    def chunk_path(self, c: int) -> Path:
        return self.folder / f"{self.stem}-{c:05d}.npz"

    def chunk_problem(self, c: int) -> str | None:
        """None if chunk c is recorded and intact, else why not ('absent' when never written)."""
        p = self.chunk_path(c)
        if p.name not in self.sums:
            return "absent"
        if not p.is_file():
            return f"{p.name} is missing"
        if _file_sha256(p) != self.sums[p.name]:
            return f"{p.name} does not match its checksum (truncated or altered)"
        return None

    def _write_manifest(self) -> None:
        meta = {"format": FORMAT_VERSION, "name": self.ds.name, **self.plan.meta, "rows": self.rows,
                "images": str(self.plan.folder), "chunk_rows": CHUNK_ROWS,
                "backbone": {"folder": str(self.backbone.folder), "fingerprint": self.backbone.fingerprint,
                             "dim": self.backbone.dim, "image_size": self.backbone.image_size},
                "sha256": self.sums}
        atomic_write(self.manifest, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))

    def ensure(self, progress: bool) -> None:
        """Compute every chunk that is absent, missing, truncated or altered (resuming a run)."""
        todo = []
        for c in range(self.n_chunks):
            why = self.chunk_problem(c)
            if why is None:
                continue
            if why != "absent":
                print(f"{self.ds.name}/{self.plan.name}: cached chunk {why}; recomputing it")
                del self.sums[self.chunk_path(c).name]
            todo.append(c)
        if not todo:
            return
        done = self.rows - sum(min(CHUNK_ROWS, self.rows - c * CHUNK_ROWS) for c in todo)
        bar = tqdm(total=self.rows, initial=done, unit="img", disable=not progress,
                   desc=f"{self.ds.name}/{self.plan.name}: embedding images")
        workers = max(1, min(8, os.cpu_count() or 1))
        try:
            with cf.ThreadPoolExecutor(workers) as pool:
                for c in todo:
                    status, emb = self._compute_chunk(c, pool, bar)
                    path = self.chunk_path(c)
                    atomic_write(path, lambda tmp, st=status, e=emb: _save_npz(tmp, status=st, emb=e))
                    self.sums[path.name] = _file_sha256(path)
                    self._write_manifest()
        finally:
            bar.close()

    def _compute_chunk(self, c: int, pool: cf.Executor, bar) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = c * CHUNK_ROWS, min((c + 1) * CHUNK_ROWS, self.rows)
        ids = self.plan.frame["id"].to_numpy()[lo:hi]
        bs = int(self.ds.batch_size)
        b = self.backbone
        status = np.zeros(hi - lo, np.int8)
        out = np.zeros((hi - lo, b.dim), np.float32)

        def read(i: int):
            im, st = _open(_image_path(self.plan.folder, ids[i]))
            return (b.preprocess(im) if im is not None else None), st

        starts = list(range(0, hi - lo, bs))
        pending: deque = deque()
        n_used = 0
        try:
            for j, start in enumerate(starts):
                while len(pending) < 2 and j + len(pending) < len(starts):   # read up to 2 batches ahead
                    s0 = starts[j + len(pending)]
                    pending.append([pool.submit(read, i) for i in range(s0, min(s0 + bs, hi - lo))])
                results = [f.result() for f in pending.popleft()]
                pixels = []
                for i, (x, st) in enumerate(results, start):
                    status[i] = st
                    if x is not None:
                        pixels.append(x)
                if pixels:
                    e = b.embed(np.stack(pixels))
                    out[n_used:n_used + len(e)] = e
                    n_used += len(e)
                bar.update(len(results))
        finally:
            for batch in pending:
                for f in batch:
                    f.cancel()
        return status, out[:n_used]

    def read(self, with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(status int8 [rows], embeddings float32 [rows used, d] or None) from the chunk files.

        The embeddings are copied chunk by chunk into one array (no second copy in memory).
        """
        status = np.zeros(self.rows, np.int8)
        for c in range(self.n_chunks):
            with np.load(self.chunk_path(c), allow_pickle=False) as z:
                status[c * CHUNK_ROWS:(c + 1) * CHUNK_ROWS] = z["status"]
        if not with_embeddings:
            return status, None
        emb = np.empty((int((status >= 0).sum()), self.backbone.dim), np.float32)
        i = 0
        for c in range(self.n_chunks):
            with np.load(self.chunk_path(c), allow_pickle=False) as z:
                e = z["emb"]
            if len(e) != int((status[c * CHUNK_ROWS:(c + 1) * CHUNK_ROWS] >= 0).sum()) or e.shape[1:] != emb.shape[1:]:
                raise ValueError(f"{self.chunk_path(c)}: {e.shape} embeddings do not fit its status rows; "
                                 f"delete {self.folder} to rebuild")
            emb[i:i + len(e)] = e
            i += len(e)
        return status, emb


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _assemble(ds: RealDataset, plan: _Plan, status: np.ndarray) -> RealSplit:
    keep = status >= 0
    ids = plan.frame["id"].to_numpy(object)
    missing, unreadable = ids[status == _MISSING], ids[status == _UNREADABLE]
    if not keep.any():
        raise ValueError(f"{ds.name}/{plan.name}: none of the {len(ids)} images could be used under {plan.folder} "
                         f"({len(missing)} missing, {len(unreadable)} unreadable; first ids {list(ids[:3])})")
    if len(missing) or len(unreadable):
        first = list(missing[:3]) + list(unreadable[:3])
        warnings.warn(f"{ds.name}/{plan.name}: {len(missing) + len(unreadable)} of {len(ids)} images left out "
                      f"({len(missing)} missing, {len(unreadable)} unreadable under {plan.folder}), e.g. {first}; "
                      "positions and embeddings exclude the same rows", RuntimeWarning, stacklevel=3)
    suffix = np.array(("",) + SUFFIXES, dtype=object)[status[keep]]
    folder = str(plan.folder)
    outside = _outside_folder(pd.Series(ids[keep], dtype=object))
    if outside.any():
        _image_path(folder, ids[keep][np.flatnonzero(outside)[0]])          # raises, naming the id
    paths = np.array([os.path.join(folder, i + s) for i, s in zip(ids[keep], suffix)], dtype=object)
    return RealSplit(plan.name, ids[keep], plan.frame["lat"].to_numpy()[keep], plan.frame["lon"].to_numpy()[keep],
                     paths, tuple(ids[~keep].tolist()))


def _prepare(ds: RealDataset, splits, progress: bool):
    splits = _check_splits(ds, splits)
    backbone = ClipBackbone.from_pretrained(ds.backbone, ds.image_size)
    plans = _plans(ds, splits)
    folder = _cache_folder(ds, backbone)
    caches = {s: _SplitCache(folder, plans[s], backbone, ds) for s in splits}
    for s in splits:
        caches[s].ensure(progress)
    return backbone, plans, caches


def load(ds: RealDataset, splits=None, progress: bool = True) -> dict[str, RealSplit]:
    """The requested splits (default: all), rows with a usable image only, in CSV order.

    The images are read once, by the embedding pass (which runs here if the cache lacks any
    chunk), so the rows returned are exactly those of ``load_embeddings``.
    """
    _, plans, caches = _prepare(ds, splits, progress)
    return {s: _assemble(ds, plans[s], caches[s].read(False)[0]) for s in caches}


def load_embeddings(ds: RealDataset, progress: bool = True, splits=None) -> dict:
    """Frozen CLIP embeddings of every split (or of ``splits``), computed and cached when needed.

    Returns {"embeddings": {split: float32 [N, d], unit norm, row-aligned with ``load``},
    "history": empty DataFrame (the backbone is not trained), "encoder": ClipBackbone}.
    """
    backbone, plans, caches = _prepare(ds, splits, progress)
    emb = {}
    for s, split_cache in caches.items():
        status, e = split_cache.read(True)
        _assemble(ds, plans[s], status)            # the same exclusion (and warning) as load
        emb[s] = e
    history = pd.DataFrame(columns=["epoch", "train_loss", "val_loss", "val_recall_at_1"])
    return {"embeddings": emb, "history": history, "encoder": backbone}
