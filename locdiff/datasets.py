"""Where a profile's images come from: the embedded benchmark or a real data set.

``profile.dataset`` is ``"bluemarble"`` (default: BlueMarble-Geo, ``locdiff.data``, splits train,
val, test_iid, test_uniform, test_unseen, embeddings from the profile's tile encoder) or the path
of a ``RealDataset`` JSON spec (``locdiff.data.real``: train and val from the MP16-style CSV, one
test split per evaluation CSV, frozen CLIP embeddings). Training, evaluation and the notebooks
read data only through these functions, so they run unchanged on either:

    load(profile, splits)  -> {split: object with lat, lon [N] degrees (and tiles, place_name, ...)}
    embeddings(profile)    -> {"embeddings": {split: float32 [N, d]}, "history", "encoder"}
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .profiles import BLUEMARBLE, Profile

__all__ = ["real_spec", "split_names", "test_splits", "load", "embeddings", "describe"]


@lru_cache(maxsize=8)
def _spec(path: str, mtime_ns: int):
    from .data.real import RealDataset

    return RealDataset.from_json(path)


def real_spec(profile: Profile):
    """The ``RealDataset`` of the profile, or None for the embedded benchmark."""
    if profile.dataset == BLUEMARBLE:
        return None
    p = Path(profile.dataset)
    return _spec(str(p.resolve()), p.stat().st_mtime_ns)


def split_names(profile: Profile) -> tuple[str, ...]:
    from .data import SPLITS

    spec = real_spec(profile)
    return tuple(SPLITS) if spec is None else spec.splits


def test_splits(profile: Profile) -> tuple[str, ...]:
    """The splits methods are scored on: the benchmark's three, or the real data set's evaluation CSVs."""
    spec = real_spec(profile)
    return ("test_iid", "test_uniform", "test_unseen") if spec is None else spec.test_splits


def load(profile: Profile, splits=None, progress: bool = True) -> dict:
    """The requested splits (default: all) of the profile's data set."""
    spec = real_spec(profile)
    splits = list(split_names(profile) if splits is None else splits)
    unknown = [s for s in splits if s not in split_names(profile)]
    if unknown:
        raise ValueError(f"splits must be among {', '.join(split_names(profile))}; got {', '.join(map(repr, unknown))}")
    if spec is None:
        from .data import load as load_benchmark

        return load_benchmark(profile.data, profile.seed, splits, progress=progress)
    from .data import real

    return real.load(spec, splits, progress=progress)


def embeddings(profile: Profile, progress: bool = True) -> dict:
    """Frozen embeddings of every split: the profile's tile encoder (trained and cached once) on the
    benchmark, the CLIP backbone on a real data set (cached, resumable)."""
    spec = real_spec(profile)
    if spec is None:
        from .encoders import load_embeddings

        return load_embeddings(profile.data, profile.encoder, profile.seed, progress=progress)
    from .data import real

    return real.load_embeddings(spec, progress=progress)


def build_caches(profile: Profile, splits, progress: bool = True) -> None:
    """Build (or check) the cached splits and embeddings once, before worker processes read them."""
    embeddings(profile, progress=progress)
    load(profile, list(splits), progress=progress)


def settings_key(profile: Profile, **extra) -> str:
    """JSON of everything that determines a profile's results (all its settings except the name
    and description, the data set's identity, and ``extra``): a stored result is reused only
    when this matches, so changing a setting recomputes instead of showing stale numbers."""
    import json
    from dataclasses import asdict

    settings = {k: v for k, v in asdict(profile).items() if k not in ("name", "description", "dataset", "codec",
                                                                        "replicates", "workers", "sweep_images")}
    return json.dumps({**settings, **describe(profile), **extra}, sort_keys=True, default=str)


def describe(profile: Profile) -> dict:
    """What identifies the data in a run's config: the benchmark settings or the real spec."""
    from dataclasses import asdict

    spec = real_spec(profile)
    return {"data": asdict(profile.data)} if spec is None else {"dataset": asdict(spec)}
