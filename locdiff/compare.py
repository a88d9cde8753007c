"""Every method on the same embeddings, evaluated the same way: the tables of notebooks 04 and 05.

``run(profile)`` fits each method (reusing finished checkpoints), predicts every test split, and
writes ``data/results/<profile>/methods.csv`` (``evaluate.RESULT_COLUMNS``) and ``tuning.csv``
(every candidate tried on val). Predictions are cached in ``data/cache/predictions-<profile>.npz``
so that the notebooks can draw maps without predicting again.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import datasets, evaluate, experiment
from .baselines import classification, generative, hybrid, regression, retrieval
from .baselines.common import Context, Fitted, choose, load_context, val_score
from .latent import decode_samples
from .io import atomic_write, cache_problem, savez, sha256
from .profiles import Profile

METHODS = ("Classification", "Retrieval", "Regression", "Raw diffusion", "Flow matching", "LocDiff", "LocDiff-H")
GENERATIVE = ("Raw diffusion", "Flow matching", "LocDiff")


def fit_locdiff(ctx: Context, progress: bool = True) -> Fitted:
    """LocDiff (``experiment.fit``) as a method; its guidance scale is chosen on val like the
    generative baselines'. ``predict`` also returns ``field_coeffs``, the mean of its samples."""
    ld, log = experiment.fit(ctx.profile, progress=progress)
    on_val: dict = {}            # the val predictions of each (guidance, seed): LocDiff-H's tuning reuses them

    def predict_with(emb, guidance: float, seed: int = 0) -> dict:
        if emb is ctx.val_emb and (guidance, seed) in on_val:
            return on_val[guidance, seed]
        samples = ld.sample(emb, guidance=guidance, seed=seed)
        plat, plon, slat, slon = decode_samples(samples, latent=ld.diffusion.latent)
        out = {"lat": plat[:, 0].numpy().astype(np.float64), "lon": plon[:, 0].numpy().astype(np.float64),
                "sample_lat": slat.numpy(), "sample_lon": slon.numpy(), "field_coeffs": ld.diffusion.latent.mean_coeffs(samples)}
        if emb is ctx.val_emb:
            on_val[guidance, seed] = out
        return out

    rows = [{"guidance": g, **val_score(ctx, lambda e: predict_with(e, g, seed=1))} for g in ctx.settings.guidance]
    g_best, table = choose(rows, "guidance")
    g_best = float(g_best)
    seconds = float(log["time_s"].iloc[-1]) if "time_s" in log else float("nan")
    return Fitted("LocDiff", lambda emb, seed=0: predict_with(emb, g_best, seed), seconds, table, ld.model)


def fit_all(profile: Profile, methods=METHODS, progress: bool = True) -> dict[str, Fitted]:
    """Fit the named methods (LocDiff-H brings in Retrieval and LocDiff)."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"methods must be among {METHODS}; got unknown {sorted(unknown)}")
    ctx = load_context(profile, progress)
    fitters = {"Classification": classification.fit, "Retrieval": retrieval.fit, "Regression": regression.fit,
               "Raw diffusion": generative.fit_raw_diffusion, "Flow matching": generative.fit_flow_matching,
               "LocDiff": fit_locdiff}
    need = set(methods) | ({"Retrieval", "LocDiff"} if "LocDiff-H" in methods else set())
    fitted = {name: fitters[name](ctx, progress) for name in METHODS if name in need and name != "LocDiff-H"}
    if "LocDiff-H" in methods:
        fitted["LocDiff-H"] = hybrid.fit(ctx, fitted["Retrieval"], fitted["LocDiff"])
    return {name: fitted[name] for name in METHODS if name in methods}


def _cache_path(profile: Profile):
    from .data.bluemarble import cache_dir

    return cache_dir() / f"predictions-{profile.tag}.npz"


def run(profile: Profile, methods=METHODS, splits=None, n_boot: int = 1000, reuse: bool = True,
        progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Results table and predictions {(method, split): dict of arrays} for every method and split.

    With ``reuse`` and an existing results CSV plus prediction cache of the same methods, splits
    and profile settings (``datasets.settings_key``), nothing is recomputed."""
    splits = tuple(datasets.test_splits(profile) if splits is None else splits)
    out_dir = evaluate.results_dir(profile.tag)
    csv, tuning_csv, cache = out_dir / "methods.csv", out_dir / "tuning.csv", _cache_path(profile)
    manifest = cache.with_suffix(".json")
    key = datasets.settings_key(profile, methods=list(methods), splits=list(splits), n_boot=n_boot)
    if reuse and csv.exists():
        cached = _read_cache(csv, cache, manifest, key, progress)
        if cached is not None:
            return cached
    fitted = fit_all(profile, methods, progress)
    data = datasets.load(profile, list(splits), progress=progress)
    emb = datasets.embeddings(profile, progress=progress)["embeddings"]
    rows, preds = [], {}
    bar = tqdm(total=len(splits) * len(fitted), desc="predicting test splits", disable=not progress)
    for split in splits:
        truth = data[split]
        locdiff_out = None
        for name, f in fitted.items():
            bar.set_postfix_str(f"{name} on {split}")
            t0 = time.perf_counter()
            if name == "LocDiff-H":
                p = f.predict(emb[split], locdiff_output=locdiff_out)
            else:
                p = f.predict(emb[split])
            seconds = time.perf_counter() - t0
            if name == "LocDiff":
                locdiff_out = p
            preds[(name, split)] = {k: np.asarray(v) for k, v in p.items()
                                    if k in ("lat", "lon", "sample_lat", "sample_lon", "cell_prob")}
            if f.cells is not None:
                preds[(name, split)]["cell_keys"] = f.cells.keys
            rows += evaluate.result_rows(profile.tag, name, split, truth.lat, truth.lon, p["lat"], p["lon"],
                                         train_seconds=f.train_seconds, predict_seconds=seconds,
                                         sample_lat=p.get("sample_lat"), sample_lon=p.get("sample_lon"),
                                         n_boot=n_boot, seed=profile.seed)
            bar.update()
    bar.close()
    val = datasets.load(profile, ["val"], progress=False)["val"]
    n_val = min(profile.baselines.val_images, len(val))
    for name in GENERATIVE:                   # val samples: each kernel density's width is chosen on them
        if name in fitted:
            p = fitted[name].predict(emb["val"][:n_val])
            preds[(name, "val")] = {k: np.asarray(p[k]) for k in ("sample_lat", "sample_lon")}
    df = evaluate.write_results(rows, csv)
    tuned = [f.tuning.assign(method=name) for name, f in fitted.items() if len(f.tuning)]
    tuning = pd.concat(tuned, ignore_index=True) if tuned else pd.DataFrame(columns=["method"])
    atomic_write(tuning_csv, lambda tmp: tuning.to_csv(tmp, index=False))
    _write_cache(preds, cache, manifest, key, csv)
    return df, preds


def _read_cache(csv: Path, cache: Path, manifest: Path, key: str, progress: bool):
    """(results, predictions) from a results CSV and a prediction cache of the same settings ``key``
    whose checksums hold; None (recompute) otherwise. The manifest holds the CSV's checksum too, so a
    results CSV written by another run (other settings, another checkout) is never paired with
    these predictions."""
    problem, meta = cache_problem(manifest, {cache.name: cache, _csv_entry(csv): csv}, "no cached predictions")
    if problem is None and meta.get("key") == key:
        with np.load(cache, allow_pickle=False) as z:
            preds = {}
            for name in z.files:
                m, s, field = name.split("|")
                preds.setdefault((m, s), {})[field] = z[name]
        return evaluate.read_results(csv), preds
    if progress and problem is not None and problem != "no cached predictions":
        print(f"predictions cache: {problem}; recomputing")
    return None


def _csv_entry(csv: Path) -> str:
    return f"results/{csv.parent.name}/{csv.name}"


def _write_cache(preds: dict, cache: Path, manifest: Path, key: str, csv: Path) -> None:
    """The predictions as one .npz (keys "method|split|field") and its manifest: the settings key and
    the SHA-256 of the predictions and of the results CSV written from them."""
    arrays = {"|".join((m, s, k)): v for (m, s), p in preds.items() for k, v in p.items()}
    atomic_write(cache, lambda tmp: savez(tmp, compressed=False, **arrays))
    sums = {cache.name: sha256(cache), _csv_entry(csv): sha256(csv)}
    atomic_write(manifest, lambda tmp: Path(tmp).write_text(json.dumps({"key": key, "sha256": sums})))


def lr_search(profile: Profile, candidates=(1e-3, 3e-4), progress: bool = True) -> pd.DataFrame:
    """The generative baselines' learning-rate search on val: raw diffusion and flow matching each
    trained at every rate in ``candidates`` for the profile's full ``gen_steps`` (finished runs are
    reused) and scored at guidance 1. Writes ``data/results/<profile>/gen_lr_search.csv`` (method,
    lr, steps, val_geoscore, val_median_km, chosen); a profile that fixes one rate per method
    (``raw_diffusion_lr`` / ``flow_matching_lr``) should name this file's winners."""
    from dataclasses import replace

    rates = tuple(float(c) for c in candidates)
    if len(rates) < 2 or any(not (0 < r < 1) for r in rates):
        raise ValueError(f"candidates must be two or more learning rates in (0, 1); got {tuple(candidates)}")
    searched = replace(profile, baselines=replace(profile.baselines, raw_diffusion_lr=rates, flow_matching_lr=rates))
    fitted = fit_all(searched, methods=("Raw diffusion", "Flow matching"), progress=progress)
    rows = pd.concat([f.tuning.assign(method=name) for name, f in fitted.items()], ignore_index=True)
    out = rows[rows["guidance"].isna()][["method", "lr", "steps", "val_geoscore", "val_median_km", "chosen"]]
    out = out.astype({"steps": int}).reset_index(drop=True)
    path = evaluate.results_dir(profile.tag) / "gen_lr_search.csv"
    atomic_write(path, lambda tmp: out.to_csv(tmp, index=False))
    return out


def truths(profile: Profile, splits=None) -> dict:
    """{split: (lat, lon)} of the test splits (default: all of the profile's data set)."""
    splits = tuple(datasets.test_splits(profile) if splits is None else splits)
    data = datasets.load(profile, list(splits), progress=False)
    return {s: (data[s].lat, data[s].lon) for s in splits}


DENSITY_METHODS = ("Classification", "Raw diffusion", "Flow matching", "LocDiff")


def distribution_scores(profile: Profile, preds: dict, splits=None, n_boot: int = 1000,
                        draws: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each method's predicted distribution scored as a distribution (``locdiff.calibration``).

    Classification: its softmax over cells; the generative methods: a vMF kernel density of their
    samples, the width chosen per method on val (``calibration.choose_width``). Returns
    (table: method, split, width_km, and value / ci_low / ci_high of nll, coverage@50, coverage@90;
    reliability: method, split, alpha, coverage), written to ``distributions.csv`` and
    ``reliability.csv`` in the profile's results folder.
    """
    from . import calibration
    from .baselines.classification import Cells

    splits = tuple(datasets.test_splits(profile) if splits is None else splits)
    truth = truths(profile, splits + ("val",))
    n_val = len(preds[next(m for m in GENERATIVE if (m, "val") in preds), "val"]["sample_lat"]) if any(
        (m, "val") in preds for m in GENERATIVE) else 0
    rows, rel = [], []
    for method in DENSITY_METHODS:
        width = float("nan")
        if method != "Classification" and (method, "val") in preds:
            v = preds[(method, "val")]
            width = calibration.choose_width(v["sample_lat"], v["sample_lon"], *(a[:n_val] for a in truth["val"]))
        for split in splits:
            p = preds.get((method, split))
            if p is None:
                continue
            lat, lon = truth[split]
            if method == "Classification":
                if "cell_prob" not in p:
                    continue
                cells = Cells(p["cell_keys"])
                nll, level = calibration.cell_scores(p["cell_prob"], cells.area, cells.locate(lat, lon))
            else:
                if width != width:
                    continue
                nll, level = calibration.kde_scores(p["sample_lat"], p["sample_lon"], lat, lon, width, draws,
                                                    seed=profile.seed)
            for metric, (val_, lo, hi) in calibration.summary(nll, level, n_boot, profile.seed).items():
                rows.append({"method": method, "split": split, "width_km": width, "metric": metric,
                             "value": val_, "ci_low": lo, "ci_high": hi, "n_images": len(lat)})
            rel += [{"method": method, "split": split, "alpha": a, "coverage": c}
                    for a, c in zip(calibration.LEVELS, calibration.coverage(level))]
    table = pd.DataFrame(rows, columns=["method", "split", "width_km", "metric", "value", "ci_low", "ci_high",
                                        "n_images"])
    reliability = pd.DataFrame(rel, columns=["method", "split", "alpha", "coverage"])
    out_dir = evaluate.results_dir(profile.tag)
    atomic_write(out_dir / "distributions.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(out_dir / "reliability.csv", lambda tmp: reliability.to_csv(tmp, index=False))
    return table, reliability


__all__ = ["METHODS", "GENERATIVE", "DENSITY_METHODS", "distribution_scores", "fit_all", "fit_locdiff", "lr_search",
           "run", "truths"]

