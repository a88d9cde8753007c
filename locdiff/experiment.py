"""LocDiff on the embedded benchmark: build, train, load and predict, for a profile.

The notebooks call these few functions; the pieces live in ``model`` (CS-UNet), ``diffusion``
(forward process, losses, samplers) and ``train`` (the shared loop).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import datasets, geo, precision
from .diffusion import Diffusion, DiffusionConfig, shift_for_degree
from .latent import decode_samples
from .samplers import DDIMSampler, DDPMSampler
from .model import CSUNet, CSUNetConfig, PlainMLP
from .profiles import LocDiffSettings, Profile
from .io import FolderLock
from .train import (TrainConfig, is_main_rank, check_run_folder, fit_or_load, json_safe,  # noqa: F401 (json_safe re-exported)
                    load_weights, process_state, read_checkpoint_config)


def _as_tensor(emb) -> torch.Tensor:
    """Embeddings as a float32 tensor: numpy / lists converted, tensors kept on their device."""
    return (emb if torch.is_tensor(emb) else torch.as_tensor(np.asarray(emb, dtype=np.float32))).float()


@dataclass
class LocDiff:
    """A trained (or freshly built) LocDiff: the CS-UNet, its diffusion and its settings."""

    model: torch.nn.Module          # CSUNet, or PlainMLP for the ablation
    diffusion: Diffusion
    settings: LocDiffSettings

    def sample(self, emb, n: int | None = None, steps: int | None = None, guidance: float | None = None,
               eta: float = 0.0, sampler: str = "ddim", seed: int = 0, batch: int = 256,
               return_trajectory: bool = False):
        """Latent samples [B, n, D] for embeddings [B, E] (numpy or torch)."""
        s = self.settings
        n = s.samples if n is None else n
        emb = _as_tensor(emb)
        if emb.ndim != 2 or emb.shape[1] != self.model.config.embed_dim:
            raise ValueError(f"emb must have shape [B, {self.model.config.embed_dim}] (the model's embedding size); "
                             f"got {tuple(emb.shape)}")
        g = guidance if guidance is not None else s.guidance
        if sampler == "ddim":
            smp = DDIMSampler(self.diffusion, steps if steps is not None else s.ddim_steps, eta, g)
        elif sampler == "ddpm":
            smp = DDPMSampler(self.diffusion, g)
        else:
            raise ValueError(f"sampler must be 'ddim' or 'ddpm'; got {sampler!r}")
        self.model.eval()
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
            raise ValueError(f"seed must be an integer in [0, 2^63); got {seed!r}")
        gen = torch.Generator().manual_seed(int(seed))
        dev = next(self.model.parameters()).device          # the model's device; results come back to the CPU
        with precision.autocast(s.precision, dev):
            outs = [smp.sample(self.model, emb[i:i + batch].to(dev), n, gen, return_trajectory)
                    for i in range(0, len(emb), batch)]
        if return_trajectory:
            return torch.cat([o[0].cpu() for o in outs]), torch.cat([o[1].cpu() for o in outs], 1)
        return torch.cat([o.cpu() for o in outs])

    def predict(self, emb, decode_each: bool = True, **kwargs) -> dict:
        """Point predictions and decoded samples: dict of numpy arrays lat, lon [B], sample_lat/lon
        [B, n] (left out with ``decode_each=False``: the point predictions alone, several times faster)."""
        samples = self.sample(emb, **kwargs)
        plat, plon, slat, slon = decode_samples(samples, latent=self.diffusion.latent, each=decode_each)
        out = {"lat": plat[:, 0].numpy(), "lon": plon[:, 0].numpy()}
        if decode_each:
            out.update(sample_lat=slat.numpy(), sample_lon=slon.numpy())
        return out


def _configs(settings: LocDiffSettings, embed_dim: int) -> tuple[CSUNetConfig, DiffusionConfig]:
    """The network's and the diffusion's configs for these settings (each validates its fields)."""
    cfg = CSUNetConfig(L=settings.L, embed_dim=embed_dim, widths=tuple(settings.widths), cond_dim=settings.cond_dim,
                       w0=settings.w0, dropout=settings.dropout)
    dcfg = DiffusionConfig(T=settings.T, schedule=settings.schedule, prediction=settings.prediction,
                           loss=settings.loss, kl_weight=settings.kl_weight, kl_width=settings.kl_width,
                           p_uncond=settings.p_uncond, schedule_shift=resolved_shift(settings),
                           spectrum=settings.spectrum, spectrum_width=settings.spectrum_width,
                           band_weight=settings.band_weight)
    return cfg, dcfg


def resolved_shift(settings: LocDiffSettings) -> float:
    """The schedule shift k of these settings: ``schedule_shift``, or for "auto" (L+1)/17."""
    if settings.schedule_shift == "auto":
        return shift_for_degree(settings.L)
    if isinstance(settings.schedule_shift, str):
        raise ValueError(f"schedule_shift must be a number in [0.001, 1000] or 'auto'; got {settings.schedule_shift!r}")
    return settings.schedule_shift


def run_config(profile: Profile, settings: LocDiffSettings, embed_dim: int) -> dict:
    """What a LocDiff checkpoint records as its model config: network, diffusion, the training
    settings, the data and the encoder; a run is reused or resumed only when this matches."""
    cfg, dcfg = _configs(settings, embed_dim)
    return json_safe({"csunet": asdict(cfg), "diffusion": asdict(dcfg), "settings": training_settings(settings),
                      **datasets.describe(profile), "encoder": asdict(profile.encoder)})


def build(settings: LocDiffSettings, embed_dim: int, seed: int = 0) -> LocDiff:
    """A freshly initialized LocDiff (seeded)."""
    torch.manual_seed(seed)
    cfg, dcfg = _configs(settings, embed_dim)
    if settings.arch not in ("csunet", "mlp"):
        raise ValueError(f"arch must be 'csunet' or 'mlp'; got {settings.arch!r}")
    net = CSUNet(cfg) if settings.arch == "csunet" else PlainMLP(cfg)
    return LocDiff(net, Diffusion(dcfg, settings.L), settings)


def checkpoint_dir(profile: Profile, name: str = "locdiff") -> Path:
    """``<repo>/checkpoints/<profile tag>/<name>`` (git-ignored)."""
    from .plots import repo_root

    return repo_root() / "checkpoints" / profile.tag / name


def score(ld: LocDiff, emb: np.ndarray, lat: np.ndarray, lon: np.ndarray, **kwargs) -> dict:
    """Accuracy table row (``geo.summarize``) of LocDiff's point predictions (the samples themselves
    are not decoded)."""
    pred = ld.predict(emb, decode_each=False, **kwargs)
    return geo.summarize(geo.distance_km(lat, lon, pred["lat"], pred["lon"]))


#: The columns of a notebook's accuracy table.
SCORE_COLUMNS = ["acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km"]


def score_table(models: dict, emb, lat, lon, samplers: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """``score`` of each model {name: LocDiff} on the same tiles (emb [N, E], lat / lon [N] in
    degrees): ``SCORE_COLUMNS`` only, accuracies in %, the median error in km.

    ``samplers``: {label: DDIM steps, None for the model's own chain}; when given, one row per
    (model, label) under a two-level index, else one row per model."""
    if not models:
        raise ValueError("models must hold at least one trained LocDiff")
    if samplers is not None and not samplers:
        raise ValueError("samplers must hold at least one {label: DDIM steps or None}, or be None")
    rows = {(name, label): score(m, emb, lat, lon, steps=steps, seed=seed)
            for name, m in models.items() for label, steps in (samplers or {None: None}).items()}
    table = pd.DataFrame(rows).T[SCORE_COLUMNS]
    return table if samplers is not None else table.droplevel(1)


DENOISING_TIMESTEPS = (0, 100, 250, 500, 750, 900, 999)


def denoised(ld: LocDiff, emb, lat, lon, timesteps=DENOISING_TIMESTEPS, seed: int = 0, batch: int = 1024):
    """Yield (t, x0, x̂0) per timestep and batch: x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε with ε ~ N(0, I)
    (seeded), x̂0 from the conditional network output (no guidance); latents [b, D] on the model's device.
    emb [B, E], lat / lon [B] in degrees, timesteps integers in [0, T-1]."""
    T = ld.diffusion.config.T
    given = list(np.atleast_1d(np.asarray(timesteps, dtype=object)))
    if not given or not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 0 <= t < T
                            for t in given):
        raise ValueError(f"timesteps must be integers in [0, {T - 1}] (T = {T}); got {given}")
    lat, lon = geo.validate_latlon(lat, lon)
    lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
    if lat.ndim != 1 or lat.shape != lon.shape:
        raise ValueError(f"lat and lon must be 1-D arrays of the same length; got shapes {lat.shape}, {lon.shape}")
    emb = _as_tensor(emb).detach()
    if emb.ndim != 2 or len(emb) != len(lat):
        raise ValueError(f"emb must be [B, E] with B = len(lat) = {len(lat)}; got {tuple(emb.shape)}")
    dev = next(ld.model.parameters()).device
    x0_all, emb = ld.diffusion.encode(lat, lon).to(dev), emb.to(dev)   # moved once, reused per t
    gen = torch.Generator().manual_seed(seed)
    ld.model.eval()
    with torch.no_grad():
        for t in (int(t) for t in given):
            for i in range(0, len(emb), batch):
                x0 = x0_all[i:i + batch]
                tt = torch.full((len(x0),), t, dtype=torch.long, device=dev)
                x_t = ld.diffusion.q_sample(x0, tt, torch.randn(x0.shape, generator=gen).to(dev))
                yield t, x0, ld.diffusion.split(ld.model(x_t, tt, emb[i:i + batch]).float(), x_t, tt)[0]


def denoising_errors(ld: LocDiff, emb, lat, lon, timesteps=DENOISING_TIMESTEPS, seed: int = 0,
                     batch: int = 1024) -> pd.DataFrame:
    """How well the trained denoiser recovers a location's latent from one noisy copy, per timestep.

    For each t (``denoised``): ``mse`` = mean over images and coefficients of (x̂0 - x0)² in the
    scaled latent, and ``shdd_kl`` = mean over images of the SHDD-KL divergence in nats between the
    densities of the two SHDD vectors (``Diffusion.shdd_kl``, the paper's latent KL loss).
    emb [B, E], lat / lon [B] in degrees; returns one row per t (columns t, abar, mse, shdd_kl).
    """
    sums: dict[int, list[float]] = {}
    for t, x0, x0_hat in denoised(ld, emb, lat, lon, timesteps, seed, batch):
        s = sums.setdefault(t, [0.0, 0.0, 0])
        s[0] += float(((x0_hat - x0) ** 2).mean(1).sum())
        s[1] += float(ld.diffusion.shdd_kl(x0, x0_hat)) * len(x0)
        s[2] += len(x0)
    return pd.DataFrame([{"t": t, "abar": float(ld.diffusion.abar[t]), "mse": se / n, "shdd_kl": kl / n}
                         for t, (se, kl, n) in sums.items()])


def fit(profile: Profile, settings: LocDiffSettings | None = None, out_dir=None, resume: bool = False,
        reuse: bool = True, overwrite: bool | None = None, progress: bool = True) -> tuple[LocDiff, pd.DataFrame]:
    """Train LocDiff on the profile's frozen embeddings; returns the EMA model and the training log.

    With ``reuse`` (default), a finished checkpoint of exactly these settings in ``out_dir`` is
    loaded instead of training again; ``resume`` continues an interrupted run from its checkpoint.
    Any other run in ``out_dir`` is refused (``train.RunExistsError``) unless ``overwrite``; its
    default (None) overwrites only the profile's own run folder under ``checkpoints/`` (a cache the
    notebooks retrain when settings change), never a folder the caller named.

    Validation every ``eval_every`` steps: point predictions for ``val_images`` val tiles
    (``samples`` samples, ``ddim_steps`` DDIM steps, as at prediction time), accuracy at 750 and
    2500 km and median error.
    """
    s = settings or profile.locdiff
    if overwrite is None:
        overwrite = out_dir is None
    if out_dir is not None and (not isinstance(out_dir, (str, PathLike)) or str(out_dir).strip() == ""):
        raise ValueError(f"out_dir must be a folder path or None (the profile's run folder); got {out_dir!r}")
    out = Path(out_dir) if out_dir is not None else checkpoint_dir(profile)
    cfg = TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, warmup=s.warmup, ema_decay=s.ema_decay,
                      eval_every=s.eval_every, checkpoint_every=max(s.eval_every, s.steps // 4), seed=profile.train_seed,
                      mixed_precision=s.precision)
    lock = FolderLock(out) if is_main_rank() else None     # a second process training into out stops here
    if lock is not None:
        lock.acquire()
    try:
        return _fit(profile, s, out, cfg, resume, reuse, overwrite, progress)
    finally:
        if lock is not None:
            lock.release()


def _fit(profile: Profile, s: LocDiffSettings, out: Path, cfg: TrainConfig, resume: bool, reuse: bool,
         overwrite: bool, progress: bool) -> tuple[LocDiff, pd.DataFrame]:
    """The body of ``fit``, with the run folder locked."""
    if not resume and not overwrite and datasets.real_spec(profile) is None:
        # refuse an occupied run folder before building the benchmark and training the encoder
        expected = run_config(profile, s, profile.encoder.embed_dim)
        if not _finished_run(out, expected, cfg):
            check_run_folder(out, expected, cfg)
    with process_state().main_process_first():     # under accelerate launch, one process builds the caches
        enc = datasets.embeddings(profile, progress=progress)
        data = datasets.load(profile, ["train", "val"], progress=progress)
    device = process_state().device                    # where the training loop puts the model
    emb = torch.from_numpy(enc["embeddings"]["train"]).to(device)
    ld = build(s, emb.shape[1], profile.train_seed)
    x0 = ld.diffusion.encode(data["train"].lat, data["train"].lon).to(device)
    val_n = min(s.val_images, len(data["val"]))
    val_emb = enc["embeddings"]["val"][:val_n]
    val_lat, val_lon = data["val"].lat[:val_n], data["val"].lon[:val_n]

    def loss_fn(model, idx, gen):
        return ld.diffusion.loss(model, x0[idx], emb[idx], gen)

    def validate(model) -> dict:
        row = score(LocDiff(model, ld.diffusion, s), val_emb, val_lat, val_lon, n=s.samples, steps=s.ddim_steps)
        return {"acc@750km": row["acc@750km"], "acc@2500km": row["acc@2500km"], "median_km": row["median_km"]}

    model_config = run_config(profile, s, emb.shape[1])
    log = fit_or_load(ld.model, loss_fn, len(x0), cfg, out, model_config, validate=validate, resume=resume,
                      reuse=reuse, overwrite=overwrite, progress=progress, desc="training LocDiff", name="LocDiff")
    return ld, log


def _differences(a, b, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two JSON-like dicts differ, with both values."""
    out = []
    for k in sorted(set(a) | set(b)) if isinstance(a, dict) and isinstance(b, dict) else []:
        name = f"{prefix}{k}"
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _differences(a[k], b[k], name + ".")
        elif a.get(k) != b.get(k):
            out.append(f"{name} {a.get(k)!r} (checkpoint) vs {b.get(k)!r}")
    return out


def check_profile(model_config: dict, profile: Profile, what: str = "the checkpoint") -> None:
    """Refuse (ValueError) a checkpoint whose recorded data or encoder settings are not the
    profile's: its numbers under this profile would be those of a mismatched model. The message
    names the differing fields and the profile(s) that do match."""
    from . import profiles

    def identity(p: Profile) -> dict:
        return json_safe({**datasets.describe(p), "encoder": asdict(p.encoder)})

    recorded = {k: model_config.get(k) for k in ("data", "dataset", "encoder") if k in model_config}
    expected = identity(profile)
    if recorded == expected:
        return
    diff = _differences(recorded, expected)
    matching = [n for n in profiles.names() if identity(profiles.get(n, dataset=None if profile.dataset ==
                                                                       profiles.BLUEMARBLE else profile.dataset))
                == recorded]
    hint = (f"; it matches --profile {' or '.join(matching)}" if matching else
            "; no built-in profile matches it")
    shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
    raise ValueError(f"{what} was trained on other data or another encoder than profile {profile.name!r} "
                     f"({shown}){hint}")


def _finished_run(out: Path, model_config: dict, config: TrainConfig) -> bool:
    """Whether ``out`` holds a finished run of exactly this model config and number of steps."""
    try:
        saved = read_checkpoint_config(out / "checkpoint", verify=False)
    except ValueError:
        return False
    return (out / "log.csv").exists() and saved["model"] == model_config and saved["step"] == config.steps


SAMPLING_FIELDS = ("samples", "ddim_steps", "guidance")


def training_settings(s: LocDiffSettings) -> dict:
    """The settings that determine the trained weights (sampling-time knobs left out)."""
    return {k: v for k, v in asdict(s).items() if k not in SAMPLING_FIELDS}


def checkpoint_folder(path) -> Path:
    """The checkpoint folder of ``path``: ``path`` itself when it holds a checkpoint's config.json,
    else its run folder's ``checkpoint`` (which ``read_checkpoint_config`` recovers if a save was
    interrupted)."""
    path = Path(path)
    return path if (path / "config.json").exists() and not (path / "checkpoint").exists() else path / "checkpoint"


def load(path, embed_dim: int | None = None, L: int | None = None) -> LocDiff:
    """A trained LocDiff from a checkpoint folder (EMA weights). ``embed_dim`` / ``L``, when given,
    must match the checkpoint's."""
    from .train import CheckpointError

    ckpt = checkpoint_folder(path)
    m = read_checkpoint_config(ckpt)["model"]
    if not (isinstance(m.get("csunet"), dict) and isinstance(m.get("settings"), dict)
            and isinstance(m["csunet"].get("embed_dim"), int) and isinstance(m["csunet"].get("L"), int)):
        raise CheckpointError(f"checkpoint {ckpt} is not a LocDiff checkpoint (its config has no csunet and settings)")
    if embed_dim is not None and embed_dim != m["csunet"]["embed_dim"]:
        raise ValueError(f"embed_dim {embed_dim} differs from the checkpoint's {m['csunet']['embed_dim']}")
    if L is not None and L != m["csunet"]["L"]:
        raise ValueError(f"L = {L} differs from the checkpoint's L = {m['csunet']['L']}")
    try:
        settings = LocDiffSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in m["settings"].items()})
        ld = build(settings, m["csunet"]["embed_dim"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {ckpt}: its LocDiff settings cannot be used ({e})") from None
    load_weights(ld.model, ckpt, ema=True)                 # CheckpointError when the weights do not fit
    ld.model.eval()
    return ld


def sampling_speed(ld: LocDiff, emb: np.ndarray, n: int = 16, steps: int = 50, repeats: int = 1) -> float:
    """Images per second for ``n`` samples and ``steps`` DDIM steps each, decoding included."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ld.predict(emb, n=n, steps=steps)
        best = min(best, time.perf_counter() - t)
    return len(emb) / best


def sampling_sweep(ld: LocDiff, emb, lat, lon, samples=(1, 4, 16), steps=(5, 10, 25, 50),
                   guidance=(0.0, 1.0, 2.0, 4.0), seed: int = 0) -> pd.DataFrame:
    """Notebook 03's knobs, one at a time (the others at the settings' values): a ``score`` row per
    number of samples, DDIM steps and guidance scale, with columns knob and value."""
    knobs = (("samples", "n", samples), ("DDIM steps", "steps", steps), ("guidance", "guidance", guidance))
    return pd.DataFrame([{"knob": knob, "value": v, **score(ld, emb, lat, lon, seed=seed, **{arg: v})}
                         for knob, arg, values in knobs for v in values])
