"""The pretrained folder's ``config.json``: its fields, their checks, and its own checksum.

    config.json  {"format_version": 3, "tile_size", "embed_dim", "encoder": {"widths", "embed_dim"},
                  "locdiff": LocDiffSettings, "sha256": {"encoder.safetensors", "model.safetensors"},
                  "config_sha256", and the provenance "profile", "data": DataSettings, "seed"
                  (optional: a pipeline assembled by hand has none)}

``config_sha256`` is the SHA-256 of the config without that field, serialized canonically
(``json.dumps(..., sort_keys=True, separators=(",", ":"))``), so an edited config is refused like
an edited weight file. Every field is checked with a message that names it: a config that loads
is one this locdiff can run as it was trained (``"tile_size": 1`` would otherwise shrink every
image to one pixel and still predict).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import fields

from .profiles import DataSettings, LocDiffSettings

FORMAT_VERSION = 3          # 3: config.json carries its own SHA-256 too; 2: the weight files' only
FILES = ("config.json", "encoder.safetensors", "model.safetensors")
TILE_SIZES = (8, 1024)      # pixels per side a pretrained tile encoder may declare


class PretrainedError(ValueError):
    """A pretrained folder that cannot be used (missing, corrupt, or of another format)."""


def config_sha256(cfg: dict) -> str:
    """SHA-256 of the canonical JSON of ``cfg`` without its ``config_sha256`` field."""
    body = {k: v for k, v in cfg.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _int(v, name: str, low: int, high: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
        allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise PretrainedError(f"config.json: {name} must be {allowed}; got {v!r}")
    return v


def _real(v, name: str, low: float | None = None, high: float | None = None, positive: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    ok = ok and (low is None or v >= low) and (high is None or v <= high) and (not positive or v > 0)
    if not ok:
        rng = "a positive finite number" if positive else f"a finite number in [{low}, {high}]"
        raise PretrainedError(f"config.json: {name} must be {rng}; got {v!r}")
    return float(v)


def _section(cfg: dict, name: str, known: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """cfg[name] as a dict holding exactly the ``known`` keys (those in ``optional`` may be missing)."""
    sec = cfg.get(name)
    if not isinstance(sec, dict):
        raise PretrainedError(f"config.json: {name} must be an object with {', '.join(known)}; got {sec!r}")
    missing = [k for k in known if k not in sec and k not in optional]
    unknown = sorted(set(sec) - set(known))
    if missing or unknown:
        raise PretrainedError(f"config.json: {name} must hold exactly {', '.join(known)}"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    return sec


_LOCDIFF_INTS = {"L": (1, 256), "cond_dim": (1, None), "T": (2, None), "steps": (1, None), "batch_size": (1, None),
                 "warmup": (0, None), "eval_every": (1, None), "val_images": (1, None), "samples": (1, None),
                 "ddim_steps": (1, None)}
#: LocDiff settings added after format 3 was written; a config without them was trained with these values
LATER_DEFAULTS = {"kl_width": 0.27, "schedule_shift": 1.0, "spectrum": "flat", "spectrum_width": 0.5,
                  "band_weight": "flat", "precision": "no"}
_LOCDIFF_REALS = {"w0": dict(positive=True), "dropout": dict(low=0.0, high=0.999999),
                  "kl_weight": dict(low=0.0, high=1e6), "p_uncond": dict(low=0.0, high=0.999999),
                  "lr": dict(positive=True), "ema_decay": dict(low=0.0, high=0.999999),
                  "guidance": dict(low=0.0, high=1e6), "kl_width": dict(low=1e-3, high=1e3),
                  "spectrum_width": dict(low=1e-3, high=1e3)}
_LOCDIFF_CHOICES = {"arch": ("csunet", "mlp"), "schedule": ("cosine", "linear"), "prediction": ("x0", "eps", "v"),
                    "loss": ("mse", "shdd_kl", "mse+kl"), "spectrum": ("flat", "heat", "band"),
                    "band_weight": ("flat", "band", "decay"), "precision": ("auto", "bf16", "no")}


def validate_locdiff(sec: dict) -> LocDiffSettings:
    """The ``locdiff`` section as ``LocDiffSettings``, every field checked (``LATER_DEFAULTS`` fill the
    fields an older config lacks)."""
    sec = {**LATER_DEFAULTS, **sec}
    for name, (low, high) in _LOCDIFF_INTS.items():
        _int(sec[name], f"locdiff.{name}", low, high)
    for name, kw in _LOCDIFF_REALS.items():
        _real(sec[name], f"locdiff.{name}", **kw)
    if sec["schedule_shift"] != "auto":
        _real(sec["schedule_shift"], "locdiff.schedule_shift", low=1e-3, high=1e3)
    for name, choices in _LOCDIFF_CHOICES.items():
        if sec[name] not in choices:
            raise PretrainedError(f"config.json: locdiff.{name} must be one of {', '.join(choices)}; got {sec[name]!r}")
    widths = sec["widths"]
    if not isinstance(widths, list) or not widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise PretrainedError(f"config.json: locdiff.widths must be a non-empty list of integers >= 1; got {widths!r}")
    if sec["ddim_steps"] > sec["T"]:
        raise PretrainedError(f"config.json: locdiff.ddim_steps must be at most locdiff.T = {sec['T']}; "
                              f"got {sec['ddim_steps']}")
    return LocDiffSettings(**{**sec, "widths": tuple(widths)})


def validate(cfg) -> dict:
    """Check a parsed config.json (format, checksum, every field); returns it, or raises
    ``PretrainedError`` naming the first field that is wrong."""
    if not isinstance(cfg, dict):
        raise PretrainedError(f"config.json must hold a JSON object; got a {type(cfg).__name__}")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise PretrainedError(f"config.json has format version {cfg.get('format_version')!r}; this locdiff reads "
                              f"version {FORMAT_VERSION} (upgrade locdiff, or re-export the weights with "
                              f"LocDiffPipeline.save_pretrained)")
    if cfg.get("config_sha256") != config_sha256(cfg):
        raise PretrainedError("config.json does not match its config_sha256 (edited or damaged); refusing it. "
                              "Re-export the weights with LocDiffPipeline.save_pretrained")
    known = ("format_version", "tile_size", "embed_dim", "encoder", "locdiff", "profile", "data", "seed", "sha256",
             "config_sha256")
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise PretrainedError(f"config.json: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(known)}")
    tile = _int(cfg.get("tile_size"), "tile_size", *TILE_SIZES)
    enc = _section(cfg, "encoder", ("widths", "embed_dim"))
    if not isinstance(enc["widths"], list) or not enc["widths"] or not all(
            isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 4096 for w in enc["widths"]):
        raise PretrainedError(f"config.json: encoder.widths must be a non-empty list of integers in [1, 4096]; "
                              f"got {enc['widths']!r}")
    _int(enc["embed_dim"], "encoder.embed_dim", 1, 65536)
    if cfg.get("embed_dim") != enc["embed_dim"]:
        raise PretrainedError(f"config.json: embed_dim must equal encoder.embed_dim = {enc['embed_dim']}; "
                              f"got {cfg.get('embed_dim')!r}")
    validate_locdiff(_section(cfg, "locdiff", tuple(f.name for f in fields(LocDiffSettings)), tuple(LATER_DEFAULTS)))
    # provenance (optional: a pipeline assembled by hand has none), checked when present
    if "data" in cfg:
        data = _section(cfg, "data", tuple(f.name for f in fields(DataSettings)))
        for f in fields(DataSettings):
            if isinstance(f.default, int):
                _int(data[f.name], f"data.{f.name}", 0)
            else:
                _real(data[f.name], f"data.{f.name}", low=0.0, high=1e9)
        if data["tile_size"] != tile:
            raise PretrainedError(f"config.json: tile_size ({tile}) must equal data.tile_size "
                                  f"({data['tile_size']}), the size the encoder was trained on")
    if "profile" in cfg and not isinstance(cfg["profile"], str):
        raise PretrainedError(f"config.json: profile must be a string (the profile it was trained under); "
                              f"got {cfg['profile']!r}")
    if "seed" in cfg:
        _int(cfg["seed"], "seed", 0)
    sums = cfg.get("sha256")
    if not isinstance(sums, dict) or not all(isinstance(sums.get(f), str) for f in FILES[1:]):
        raise PretrainedError(f"config.json: sha256 must map {', '.join(FILES[1:])} to their SHA-256; got {sums!r}")
    return cfg
