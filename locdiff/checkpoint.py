"""Folders that are complete or absent, with a SHA-256 manifest: training checkpoints and the
sums that pretrained folders carry too.

``file_sums(folder, names)`` is the manifest {name: SHA-256}; ``check_sums`` says what is wrong with a
folder against it (a missing file, a file that does not match: truncated or altered), or None.

A training checkpoint is a folder: ``model.safetensors`` and ``ema.safetensors`` (weights),
``state.pt`` (optimizer, scheduler, every process's RNG states, step; read back with
``torch.load(weights_only=True)``) and ``config.json`` (format version, the caller's model config,
the training config, the manifest of the three other files). ``save`` writes it under a unique
hidden name that then replaces the old checkpoint (``io.write_folder``), so a checkpoint is complete
or absent, files a user put in the folder are kept, and a full disk keeps the previous checkpoint
(``io.DiskFullError``); a checkpoint left aside by a kill mid-replace is put back on the next read
(``recover``). ``read_config`` checks the sums and refuses a truncated or altered checkpoint
(``CheckpointError``); ``load_weights`` loads its (EMA) weights from safetensors only.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from .io import recover_folder, sha256, write_folder

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_FILES", "CheckpointError", "check_sums", "file_sums", "load_weights",
           "read_checkpoint_config", "recover_checkpoint", "save"]


def file_sums(folder: Path, names) -> dict[str, str]:
    """{name: SHA-256 hex digest} of the named files of ``folder``."""
    return {name: sha256(Path(folder) / name) for name in names}


def check_sums(folder: Path, names, sums: dict) -> str | None:
    """What is wrong with the named files of ``folder`` against the manifest ``sums``, or None."""
    for name in names:
        if not (Path(folder) / name).exists():
            return f"{name} is missing"
        if sha256(Path(folder) / name) != sums.get(name):
            return f"{name} does not match its SHA-256 in config.json (truncated or altered)"
    return None


CHECKPOINT_FORMAT = 2
CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors", "state.pt")
OWN_FILES = CHECKPOINT_FILES + ("config.json",)     # what a checkpoint folder holds that train wrote



class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used: missing files, another format, a checksum mismatch."""



def save(path: Path, model, ema, opt, sched, step: int, rng: dict, model_config: dict, config) -> None:
    """Write the checkpoint folder atomically (``io.write_folder``); main process only."""
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        save_file({k: v.contiguous().cpu() for k, v in ema.shadow.items()}, str(tmp / "ema.safetensors"))
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step, **rng},
                   tmp / "state.pt")
        (tmp / "config.json").write_text(json.dumps({"format_version": CHECKPOINT_FORMAT, "step": step,
                                                     "model": model_config, "train": asdict(config),
                                                     "sha256": file_sums(tmp, CHECKPOINT_FILES)}, indent=1))

    write_folder(path, write, OWN_FILES, what=f"checkpoint (step {step})")


def _is_complete(path: Path) -> bool:
    try:
        read_checkpoint_config(path, recover=False)
        return True
    except CheckpointError:
        return False


def recover_checkpoint(path) -> bool:
    """Put back a checkpoint that a kill between the two renames of a save left aside (as
    ``.checkpoint.old-*`` or ``checkpoint.old``) when ``path`` itself is missing; True if it did."""
    return recover_folder(path, _is_complete)


def remove_stale_temporaries(ckpt: Path) -> None:
    """Temporary checkpoint folders left by a killed save (``.checkpoint.tmp-*``, the legacy
    ``checkpoint.tmp``) that hold only checkpoint files; called under the run folder's lock."""
    for tmp in [*ckpt.parent.glob(f".{ckpt.name}.tmp-*"), ckpt.with_name(ckpt.name + ".tmp")]:
        if tmp.is_dir() and not tmp.is_symlink() and {p.name for p in tmp.iterdir()} <= set(OWN_FILES):
            shutil.rmtree(tmp, ignore_errors=True)


def read_checkpoint_config(path, verify: bool = True, recover: bool = True) -> dict:
    """config.json of a checkpoint folder, with its format version and (``verify``) the SHA-256 of
    its weight and state files checked; raises ``CheckpointError`` saying what is wrong. With
    ``recover``, a checkpoint left aside by an interrupted save is first put back."""
    path = Path(path)
    if recover and not path.exists():
        recover_checkpoint(path)
    f = path / "config.json"
    if not f.exists():
        raise CheckpointError(f"{path} is not a checkpoint folder (no config.json)")
    try:
        cfg = json.loads(f.read_text())
    except (ValueError, OSError) as e:
        raise CheckpointError(f"checkpoint {path}: config.json is not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("sha256"), dict) or \
            isinstance(cfg.get("step"), bool) or not isinstance(cfg.get("step"), int) or \
            not isinstance(cfg.get("model"), dict):
        raise CheckpointError(f"checkpoint {path}: config.json is not a locdiff checkpoint config (expected an "
                              f"object with format_version, step, model, train and sha256)")
    if cfg.get("format_version") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format version {cfg.get('format_version')!r}; this locdiff "
                              f"reads format {CHECKPOINT_FORMAT} only: delete the folder to retrain, or use the locdiff that wrote it")
    if verify:
        problem = check_sums(path, CHECKPOINT_FILES, cfg.get("sha256", {}))
        if problem:
            raise CheckpointError(f"checkpoint {path}: {problem}; refusing to load it. Delete the folder to retrain.")
    return cfg


def load_weights(model: torch.nn.Module, path, ema: bool = True) -> torch.nn.Module:
    """Load a checkpoint's (EMA) weights into ``model`` (safetensors only, checksums verified)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_checkpoint_config(path)
    name = "ema.safetensors" if ema else "model.safetensors"
    try:
        model.load_state_dict(load_file(str(Path(path) / name)))
    except (SafetensorError, RuntimeError, OSError) as e:       # weights of another network, or not safetensors
        raise CheckpointError(f"checkpoint {path}: {name} does not fit this model ({str(e).splitlines()[0]})") from None
    return model
