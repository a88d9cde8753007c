"""Training-seed replicates of the main comparison: verdicts that survive a rerun.

A bootstrap interval over test images measures how the score would move with other test images,
not with another training run; retraining with another seed moves it more. ``run(profile)``
trains the profile's ``replicates.methods`` ``replicates.count`` times on the same data and
frozen encoder (replicate 0 is the main run of ``compare.run``; replicate r > 0 uses
``Profile.train_seed`` = seed + 1000 r and the hyperparameters the main run chose on val,
``with_chosen``) and stacks their results in
``data/results/<profile>/replicates.csv``. ``summary`` gives mean, standard deviation, minimum
and maximum over the replicates beside replicate 0's 95% bootstrap interval; ``verdicts`` names
the best method at each metric and says whether it beats the runner-up in *every* replicate (the
only verdicts the notebooks and the README state); ``hybrid_check`` asks the same of LocDiff-H
against its two parts.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import compare, datasets, evaluate, experiment, parallel
from .io import atomic_write
from .profiles import Profile

LOWER_IS_BETTER = evaluate.LOWER_IS_BETTER


def _sign(metric: str) -> float:
    """+1 where higher is better, -1 for errors: sign x (a - b) > 0 means a is better."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


def replicate_profiles(profile: Profile) -> list[Profile]:
    """The profile of every replicate, replicate 0 (the main run) first."""
    count, methods = profile.replicates.count, profile.replicates.methods
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
        raise ValueError(f"replicates.count must be an integer >= 1; got {count!r}")
    unknown = sorted(set(methods) - set(compare.METHODS))
    if unknown or not methods:
        raise ValueError(f"replicates.methods must be a non-empty subset of {compare.METHODS}; got {tuple(methods)}")
    if profile.replicate != 0:
        raise ValueError(f"replicate must be 0 (the main run) to run its replicates; got {profile.replicate}")
    return [replace(profile, replicate=r) for r in range(int(count))]


TUNED_FIELDS = {"Classification": ("cell_max_count", "label_tau_km"), "LocDiff-H": ("hybrid_k",)}


def with_chosen(profile: Profile, tuning: pd.DataFrame) -> Profile:
    """The profile with the tuned candidates of the main run's choice fixed (``TUNED_FIELDS``:
    classification's cells and label smoothing, LocDiff-H's K), so that a replicate measures the
    seed spread of the chosen configuration and skips the tuning runs. Guidance and the learning
    rates stay as they are (a shared candidate list, chosen per method at sampling time)."""
    changes = {}
    if not {"method", "chosen"} <= set(tuning.columns):
        return profile
    for method, names in TUNED_FIELDS.items():
        chosen = tuning[(tuning.method == method) & tuning.chosen.astype(bool)]
        if len(chosen) == 1:
            for name in names:
                kind = type(getattr(profile.baselines, name)[0])
                changes[name] = (kind(chosen[name].iloc[0]),)
    return replace(profile, baselines=replace(profile.baselines, **changes)) if changes else profile


def _train_untuned(profile: Profile) -> None:
    """Worker task: train the methods of a replicate whose training does not depend on the main
    run's choices (all but ``TUNED_FIELDS``' methods), so that they need not wait for it."""
    free = [m for m in profile.replicates.methods if m not in TUNED_FIELDS]
    if "LocDiff" in free:
        experiment.fit(profile, progress=False)
    others = [m for m in free if m != "LocDiff"]
    if others:
        compare.fit_all(profile, others, progress=False)


def _first_phase(job) -> None:
    """Worker task: replicate 0 (``methods``: every method of the main run), or for a replicate r > 0
    (``methods`` None) the training that does not wait for the main run's choices."""
    profile, methods, n_boot = job
    if methods is None:
        _train_untuned(profile)
    else:
        compare.run(profile, methods=methods, n_boot=n_boot, progress=False)


def _replicate_run(job) -> None:
    profile, n_boot = job
    compare.run(profile, methods=profile.replicates.methods, n_boot=n_boot, progress=False)


def run(profile: Profile, n_boot: int = 1000, progress: bool = True, main_methods=compare.METHODS) -> pd.DataFrame:
    """Results (``evaluate.RESULT_COLUMNS`` plus ``replicate`` and ``train_seed``) of every
    replicate for the profile's ``replicates.methods``; finished runs and cached predictions are
    reused. Replicate 0 is ``compare.run(profile, main_methods)``, by default every method as
    notebook 04 runs it (so its cached predictions are reused).

    With several workers (``parallel.workers_for``), replicate 0 and the untuned training of the
    others run side by side, then the others' tuned methods and predictions; the results are then
    read back from their caches here."""
    reps = replicate_profiles(profile)
    workers = parallel.workers_for(profile, len(reps))
    if workers > 1:
        datasets.build_caches(profile, ["train", "val", *datasets.test_splits(profile)], progress)
        parallel.map_runs(_first_phase, [(reps[0], main_methods, n_boot)] + [(p, None, n_boot) for p in reps[1:]],
                          workers, desc="main run and replicates' training", progress=progress)
    frames = [_replicate_frame(reps[0], compare.run(reps[0], methods=main_methods, n_boot=n_boot,
                                                        progress=progress)[0])]
    if len(reps) > 1:
        tuning = pd.read_csv(evaluate.results_dir(profile.tag) / "tuning.csv")    # the main run's choices
        others = [with_chosen(p, tuning) for p in reps[1:]]
        if workers > 1:
            parallel.map_runs(_replicate_run, [(p, n_boot) for p in others], workers,
                              desc="replicates' tuned methods and predictions", progress=progress)
        for p in others:
            if progress and workers == 1:
                print(f"replicate {p.replicate} (train seed {p.train_seed}): {', '.join(p.replicates.methods)}")
            df, _ = compare.run(p, methods=p.replicates.methods, n_boot=n_boot, progress=progress)
            frames.append(_replicate_frame(p, df))
    out = pd.concat(frames, ignore_index=True)
    path = evaluate.results_dir(profile.tag) / "replicates.csv"
    atomic_write(path, lambda tmp: out.to_csv(tmp, index=False))
    return out


def _replicate_frame(p: Profile, df: pd.DataFrame) -> pd.DataFrame:
    """A replicate's rows of its replicated methods, tagged with the replicate and its train seed."""
    return df[df.method.isin(p.replicates.methods)].assign(replicate=p.replicate, train_seed=p.train_seed)


def summary(df: pd.DataFrame, split: str, metrics=evaluate.POINT_METRICS) -> pd.DataFrame:
    """Per method and metric on ``split``: mean, sample standard deviation (ddof 1), min and max
    over the replicates, their count, and replicate 0's value with its 95% bootstrap interval."""
    sub = df[(df.split == split) & df.metric.isin(metrics)]
    if sub.empty:
        raise ValueError(f"split must be one of {sorted(df.split.unique())} with metrics {tuple(metrics)}; got {split!r}")
    g = sub.groupby(["method", "metric"], sort=False).value
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "min": g.min(), "max": g.max(), "seeds": g.size()})
    main = sub[sub.replicate == 0].set_index(["method", "metric"])[["value", "ci_low", "ci_high"]]
    return out.join(main.rename(columns={"value": "seed 0", "ci_low": "seed 0 ci_low", "ci_high": "seed 0 ci_high"}))


def _by_replicate(df: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    """[replicate x method] values of one metric, only methods present in every replicate."""
    wide = df[(df.split == split) & (df.metric == metric)].pivot_table(
        index="replicate", columns="method", values="value", aggfunc="first")
    return wide.dropna(axis=1)


def verdicts(df: pd.DataFrame, split: str, metrics=evaluate.POINT_METRICS) -> pd.DataFrame:
    """Per metric: the best method by its mean over replicates, the runner-up, both means, the
    smallest margin over the replicates (positive: the best won in that replicate), and
    ``holds in every seed`` (the best beats the runner-up in each replicate, strictly)."""
    rows = []
    for metric in metrics:
        wide = _by_replicate(df, split, metric)
        if wide.shape[1] < 2:
            continue
        sign = _sign(metric)
        order = (sign * wide.mean()).sort_values(ascending=False).index
        best, second = order[0], order[1]
        margin = sign * (wide[best] - wide[second])
        rows.append({"metric": metric, "best": best, "best mean": wide[best].mean(), "runner-up": second,
                     "runner-up mean": wide[second].mean(), "smallest margin": float(margin.min()),
                     "seeds": len(wide), "holds in every seed": bool((margin > 0).all())})
    return pd.DataFrame(rows)


def pairwise(df: pd.DataFrame, split: str, metric: str, a: str, b: str) -> dict:
    """``a`` against ``b`` over the replicates: their means, the train seeds, and the verdict
    "better in every seed", "worse in every seed" or "order changes between seeds" (ties count
    as a change)."""
    wide = _by_replicate(df, split, metric)
    if not {a, b} <= set(wide.columns):
        raise ValueError(f"pairwise needs {a} and {b} in every replicate of {split}; got {sorted(wide.columns)}")
    sign = _sign(metric)
    margin = sign * (wide[a] - wide[b])
    verdict = ("better in every seed" if (margin > 0).all() else
               "worse in every seed" if (margin < 0).all() else "order changes between seeds")
    train_seeds = sorted(df[df.replicate.isin(wide.index)].train_seed.unique()) if "train_seed" in df else list(wide.index)
    return {"mean_a": float(wide[a].mean()), "mean_b": float(wide[b].mean()), "seeds": [int(s) for s in train_seeds],
            "verdict": verdict}


def hybrid_check(df: pd.DataFrame, split: str, metrics=evaluate.POINT_METRICS,
                 hybrid: str = "LocDiff-H", parts=("Retrieval", "LocDiff")) -> pd.DataFrame:
    """The paper's claim for its hybrid: at or above both of its parts at every threshold. Per
    metric: the three means over replicates and whether the hybrid is at or above each part in
    every replicate (``>=``; ``<=`` for errors)."""
    rows = []
    for metric in metrics:
        wide = _by_replicate(df, split, metric)
        if not {hybrid, *parts} <= set(wide.columns):
            raise ValueError(f"hybrid_check needs {hybrid} and {', '.join(parts)} in every replicate of {split}; "
                             f"got {sorted(wide.columns)}")
        sign = _sign(metric)
        row = {"metric": metric, **{m: wide[m].mean() for m in (hybrid, *parts)}}
        for part in parts:
            row[f">= {part} in every seed"] = bool((sign * (wide[hybrid] - wide[part]) >= 0).all())
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["LOWER_IS_BETTER", "TUNED_FIELDS", "hybrid_check", "pairwise", "with_chosen", "replicate_profiles", "run", "summary", "verdicts"]
