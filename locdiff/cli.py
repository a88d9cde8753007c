"""The ``locdiff`` command line.

    locdiff predict IMAGE... [--top-k K] [--samples N] [--weights DIR] [--map out.png] [--json]
    locdiff tile LAT LON [--out tile.png] [--size S] [--footprint-km KM]
    locdiff train --profile P [--dataset SPEC.json] [--out DIR] [--resume | --overwrite]
    locdiff evaluate --checkpoint DIR --split S [--profile P] [--dataset SPEC.json]

Errors go to stderr with exit code 2 (bad input, or a state the user can fix: a run folder that
already holds a run or is in use by another process, a full disk) or 1 (anything else
unexpected); an interrupted ``train`` (SIGINT/SIGTERM) writes a checkpoint and exits with 128 + the
signal number. ``train`` never replaces an existing run unless told to (``--resume`` continues it,
``--overwrite`` replaces it). Also runs as
``python -m locdiff`` and, data parallel, ``accelerate launch --multi_gpu --num_processes N -m locdiff train``.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _positive_int(name):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 1; got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= 1; got {v}")
        return v
    return parse


def _float(name):
    def parse(text):
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number; got {text!r}") from None
    return parse


def _out_file(text: str, flag: str) -> Path:
    """An output file argument: a non-empty path that is not a folder and whose parent is not a file."""
    if text.strip() == "":
        raise UserError(f"{flag} must be a file path; got {text!r}")
    path = Path(text)
    try:
        if path.is_dir() or text.endswith(("/", "\\")):
            raise UserError(f"{flag} {text} is a folder; {flag} must be a file path")
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise UserError(f"{flag} {text}: {parent} is a file, not a folder")
    except OSError as e:                      # a name too long for the file system, a permission denied
        raise UserError(f"{flag} {text!r} cannot be used as a file: {e.strerror or e}") from None
    return path


def _flags(message: str, names: dict) -> str:
    """A Python-API message with its argument names replaced by the command line's flags."""
    import re

    for name, flag in names.items():
        message = re.sub(rf"(?<![\w-]){re.escape(name)} must", f"{flag} must", message)
    return message


def cmd_predict(args) -> int:
    from .pipeline import LocDiffPipeline, PretrainedError

    if args.map is not None:
        args.map = _out_file(args.map, "--map")
    if args.weights is not None and args.weights.strip() == "":
        raise UserError(f"--weights must be a folder of pretrained weights; got {args.weights!r}")
    try:
        pipe = LocDiffPipeline.from_pretrained(args.weights)
    except PretrainedError as e:
        raise UserError(str(e)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = pipe.predict(args.images, top_k=args.top_k, n=args.samples, seed=args.seed, progress=False)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(_flags(str(e), {"top_k": "--top-k", "seed": "--seed", "n": "--samples"})) from None
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    table.insert(1, "file", [str(args.images[i]) for i in table["image"]])
    if args.map:
        _write_map(pipe, args, table)
    if args.json:
        out = [{"file": str(f), "predictions": [{"rank": int(r.rank), "lat": round(r.lat, 5), "lon": round(r.lon, 5),
                                                 "score": round(float(r.score), 5)}
                                                for r in table[table.image == i].itertuples()]}
               for i, f in enumerate(args.images)]
        print(json.dumps(out, indent=1))
    else:
        print(table.drop(columns="image").to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _write_map(pipe, args, table) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from . import plots

    plots.use_style()
    image = args.images[0]
    lat, lon, dens = pipe.density(image, resolution_deg=1.0, n=args.samples, seed=args.seed)
    slat, slon = pipe.sample([image], n=args.samples, seed=args.seed, progress=False)
    fig, ax = plots.world_map(figsize=(8, 4.3))
    rel = dens / dens.max()
    plots.plot_field(ax, lat, lon, np.where(rel < 0.01, np.nan, rel), cmap="magma_r", vmin=0, vmax=1,
                     colorbar="density (relative to its maximum)")
    plots.plot_points(ax, slat[0], slon[0], color=plots.COLORS["sample"], size=8, alpha=0.7, label="samples")
    top = table[table.image == 0]
    plots.plot_points(ax, top.lat, top.lon, color="#56B4E9", marker="X", size=60, edgecolors="k", linewidths=0.5,
                      label=f"top-{len(top)} modes")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"LocDiff: {Path(str(image)).name}")
    _save(args.map, lambda tmp: fig.savefig(tmp, format=_image_format(args.map)))
    print(f"wrote {args.map}", file=sys.stderr)


def _image_format(path: Path) -> str:
    """The file format of an output image, from its suffix (PNG when it has none or an unknown one)."""
    fmt = path.suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt) if fmt in ("png", "pdf", "svg", "jpg", "jpeg", "tif",
                                                                      "tiff", "eps", "webp") else "png"


def _save(path: Path, write) -> None:
    """Write an output file atomically (``io.atomic_write``); a failure is a UserError naming it."""
    from .io import DiskFullError, atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except DiskFullError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def cmd_tile(args) -> int:
    import numpy as np
    from PIL import Image

    from . import geo
    from .data.tiles import TileRenderer

    try:
        lat, lon = geo.validate_latlon(np.array([args.lat]), np.array([args.lon]))
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        renderer = TileRenderer(args.size, args.footprint_km)
    except ValueError as e:
        raise UserError(str(e).replace("footprint_km", "--footprint-km").replace("size must", "--size must")) from None
    out = _out_file(args.out, "--out")
    tile = renderer.render(lat, lon)[0]
    _save(out, lambda tmp: Image.fromarray(tile.permute(1, 2, 0).numpy()).save(tmp, format="PNG"))
    print(f"wrote {out} ({args.size}x{args.size} px, {args.footprint_km:g} km across, centred on "
          f"{float(lat[0]):.4f}, {float(lon[0]):.4f})", file=sys.stderr)
    return 0


def _out_folder(text: str | None, flag: str = "--out") -> Path | None:
    """A folder argument: None when not given; an empty or blank path, or an existing file, is refused."""
    if text is None:
        return None
    if text.strip() == "":
        raise UserError(f"{flag} must be a folder path; got {text!r} (leave {flag} out for the default folder)")
    path = Path(text)
    try:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    except OSError as e:                      # a name too long for the file system, a permission denied
        raise UserError(f"{flag} {text!r} cannot be used as a folder: {e.strerror or e}") from None
    if blocker == path:
        raise UserError(f"{flag} {text} is a file; {flag} must be a folder")
    if blocker is not None:
        raise UserError(f"{flag} {text} lies under the file {blocker}; {flag} must be a folder")
    return path


def _profile(args):
    """The profile of ``--profile`` / ``--dataset``, the data set spec read and checked now (before
    any data is built); empty values are refused rather than taken for the defaults."""
    from . import datasets, profiles

    for flag, value in (("--profile", args.profile), ("--dataset", args.dataset)):
        if value is not None and value.strip() == "":
            raise UserError(f"{flag} must not be empty; got {value!r} (leave {flag} out for the default)")
    try:
        P = profiles.get(args.profile, dataset=args.dataset)
        datasets.real_spec(P)                 # a real data set's spec: parsed and validated here
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    return P


def cmd_train(args) -> int:
    from . import experiment, profiles
    from .io import DiskFullError, FolderBusyError
    from .train import (CheckpointError, RunExistsError, TrainingInterrupted, process_state, read_checkpoint_config,
                        recover_checkpoint)

    P = _profile(args)
    out = _out_folder(args.out)
    folder = out or experiment.checkpoint_dir(P)
    if args.resume:
        recover_checkpoint(folder / "checkpoint")
        if not (folder / "checkpoint").exists():
            raise UserError(f"--resume: no checkpoint in {folder}")
        try:                                  # before building any data: the checkpoint must be usable
            read_checkpoint_config(folder / "checkpoint")
        except CheckpointError as e:
            raise UserError(f"--resume: {e}") from None
    try:
        ld, log = experiment.fit(P, out_dir=folder, resume=args.resume, overwrite=args.overwrite)
    except RunExistsError as e:
        raise UserError(str(e).replace("resume=True (--resume)", "--resume")
                        .replace("overwrite=True (--overwrite)", "--overwrite")) from None
    except (CheckpointError, FolderBusyError, DiskFullError) as e:
        raise UserError(str(e)) from None
    except TrainingInterrupted as e:
        if process_state().is_main_process:
            print(f"locdiff train: interrupted by {e}", file=sys.stderr)
        return 128 + e.signum
    if process_state().is_main_process:
        print(f"trained LocDiff ({P.name}): {len(log)} log rows, checkpoint in {folder}")
    return 0


def cmd_report(args) -> int:
    from . import results_page
    from .evaluate import results_dir

    if not (results_dir(args.profile) / "methods.csv").is_file():
        raise UserError(f"--profile {args.profile!r} has no results (no data/results/{args.profile}/methods.csv): "
                        f"run make figures PROFILE={args.profile} first")
    return results_page.write_page(args.profile, args.out, args.check)


def cmd_evaluate(args) -> int:
    from . import datasets, experiment, profiles
    from .train import read_checkpoint_config

    P = _profile(args)
    try:
        if args.split not in datasets.split_names(P):
            raise ValueError(f"--split must be one of {', '.join(datasets.split_names(P))}; got {args.split!r}")
        path = Path(args.checkpoint)
        if args.checkpoint.strip() == "":
            raise ValueError(f"--checkpoint must be a run or checkpoint folder; got {args.checkpoint!r}")
        saved = read_checkpoint_config(experiment.checkpoint_folder(path))
        # before building any data: a checkpoint of another profile would give numbers of a mismatched model
        experiment.check_profile(saved["model"], P, what=f"--checkpoint {path}")
        ld = experiment.load(path)            # the weights load now, not after the embeddings are built
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    except OSError as e:                      # a name too long for the file system, a permission denied
        raise UserError(f"--checkpoint {args.checkpoint!r} cannot be read: {e.strerror or e}") from None
    emb = datasets.embeddings(P)["embeddings"]
    if emb[args.split].shape[1] != ld.model.config.embed_dim:
        raise UserError(f"--checkpoint {path} expects embeddings of size {ld.model.config.embed_dim}; the profile's "
                        f"are {emb[args.split].shape[1]}")
    split = datasets.load(P, [args.split])[args.split]
    row = experiment.score(ld, emb[args.split], split.lat, split.lon)
    print(json.dumps({"split": args.split, "images": len(split), **{k: round(v, 3) for k, v in row.items()}}, indent=1))
    return 0


def parser() -> argparse.ArgumentParser:
    from .data import SPLITS

    p = argparse.ArgumentParser(prog="locdiff", description="LocDiff: image geolocalization by diffusion in the "
                                "space of spherical-harmonic coefficients.")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="top-k locations of images", description="Top-k locations of each image, "
                        "from the shipped weights (or --weights DIR).")
    pr.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    pr.add_argument("--top-k", type=_positive_int("--top-k"), default=5, help="modes per image (default 5)")
    pr.add_argument("--samples", type=_positive_int("--samples"), default=None,
                    help="samples per image (default: the model's setting, 8 for the shipped weights)")
    pr.add_argument("--weights", default=None, help="pretrained folder (default: the weights shipped with locdiff)")
    pr.add_argument("--map", default=None, help="write a map of the first image's density, samples and modes (PNG)")
    pr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pr.set_defaults(func=cmd_predict)
    ti = sub.add_parser("tile", help="render the benchmark's tile for a place", description="Render the embedded "
                        "benchmark's Blue Marble tile centred on LAT LON (degrees).")
    ti.add_argument("lat", type=_float("LAT"), help="latitude in degrees, [-90, 90]")
    ti.add_argument("lon", type=_float("LON"), help="longitude in degrees (wrapped into [-180, 180))")
    ti.add_argument("--out", default="tile.png", help="output PNG (default tile.png)")
    ti.add_argument("--size", type=_positive_int("--size"), default=32, help="pixels per side (default 32)")
    ti.add_argument("--footprint-km", type=_float("--footprint-km"), default=300.0,
                    help="ground width in km (default 300)")
    ti.set_defaults(func=cmd_tile)
    tr = sub.add_parser("train", help="train LocDiff for a profile", description="Train LocDiff on the embedded "
                        "benchmark for a profile (smoke, cpu, gpu). Data parallel on several processes or GPUs: "
                        "accelerate launch --multi_gpu --num_processes N -m locdiff train ...")
    tr.add_argument("--profile", required=True, help="smoke, cpu or gpu")
    tr.add_argument("--out", default=None, help="run folder (default checkpoints/<profile>[-<dataset>]/locdiff)")
    tr.add_argument("--dataset", default=None, help="a real data set's JSON spec (default: the embedded benchmark)")
    how = tr.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint (after an "
                     "interrupt: SIGINT/SIGTERM write a checkpoint and exit with status 128 + the signal number)")
    how.add_argument("--overwrite", action="store_true", help="replace the run already in the run folder (its "
                     "checkpoint and log; other files there are kept). Without it, an existing run is refused")
    tr.set_defaults(func=cmd_train)
    ev = sub.add_parser("evaluate", help="evaluate a checkpoint on a split", description="Accuracy of a trained "
                        "LocDiff checkpoint on one split of the embedded benchmark.")
    ev.add_argument("--checkpoint", required=True, help="run or checkpoint folder")
    ev.add_argument("--split", required=True, help=f"split to evaluate ({', '.join(SPLITS)} on the benchmark; "
                    "train, val or an evaluation CSV's name on a real data set)")
    ev.add_argument("--dataset", default=None, help="a real data set's JSON spec (default: the embedded benchmark)")
    ev.add_argument("--profile", default=None, help="profile of the data (default $LOCDIFF_PROFILE, else cpu)")
    ev.set_defaults(func=cmd_evaluate)
    rp = sub.add_parser("report", help="write the results page from the results CSVs", description="Write "
                        "docs/results.md (every result table of a profile, with intervals and seeds) from "
                        "data/results/<profile>/*.csv, which make figures writes; nothing on it is typed.")
    rp.add_argument("--profile", default="cpu", help="profile tag whose results to read (default cpu)")
    rp.add_argument("--out", default=None, help="page to write (default docs/results.md)")
    rp.add_argument("--check", action="store_true", help="only check the page: exit 1 when it differs from the CSVs")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"locdiff {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
