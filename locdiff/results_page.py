"""The results page, ``docs/results.md``: every result table of a profile, generated from its CSVs.

Nothing on the page is typed: ``build(tag)`` reads ``data/results/<tag>/`` (written by notebooks
02-06 under ``make figures``) and formats it; ``python -m locdiff.results_page --profile cpu``
rewrites the page, ``--check`` fails when the committed page differs from its CSVs (a test runs it).
Accuracies are in %, distances in km, brackets are 95% bootstrap intervals over test images, and
"mean ± sd" are over training seeds (``locdiff.seeds``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import report, seeds
from .evaluate import results_dir
from .io import atomic_write

__all__ = ["build", "headline", "page_path", "main", "write_page"]

SPLITS = ("test_iid", "test_uniform", "test_unseen")
SEED_METRICS = ("acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km", "geoscore")
ABLATION_METRICS = ("acc@25km", "acc@200km", "acc@750km", "acc@2500km", "median_km")
SPLIT_TEXT = {"test_iid": "tiles drawn like the training tiles",
              "test_uniform": "tiles uniform over land",
              "test_unseen": "places inside held-out 1000-km cells with no training image"}


def page_path() -> Path:
    """``<repo>/docs/results.md``."""
    from .plots import repo_root

    return repo_root() / "docs" / "results.md"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{_num(v)} [{_num(lo)}, {_num(hi)}]"


def _ci_cells(rows: pd.DataFrame, metrics) -> list[str]:
    """One "value [low, high]" cell per metric from result rows of one method or variant ("" when absent)."""
    out = []
    for metric in metrics:
        r = rows[rows.metric == metric]
        out.append(_ci(*r[["value", "ci_low", "ci_high"]].iloc[0]) if len(r) else "")
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _header(title: str, tag: str, csv: str, text: str) -> list[str]:
    """A section's title and the sentence that names its CSV: "From `data/results/<tag>/<csv>`<text>"."""
    return [f"## {title}", "", f"From `data/results/{tag}/{csv}`{text}", ""]


def _splits(df: pd.DataFrame) -> list[str]:
    """The test splits present in a results table, in ``SPLITS`` order."""
    return [s for s in SPLITS if s in set(df.split)]


def _methods(tag: str, df: pd.DataFrame) -> list[str]:
    out = _header("Every method on every test split", tag, "methods.csv",
                  " (the main run, train seed 0): every method on the same frozen embeddings, its settings chosen "
                  "on `val` (`tuning.csv`). The second table of each split gives the 95% intervals.")
    for split in _splits(df):
        out += [f"**{split}** ({SPLIT_TEXT.get(split, split)}):", "", report.markdown_table(df, split), "",
                report.markdown_table(df, split, metrics=["acc@25km", "acc@200km", "acc@750km", "acc@2500km",
                                                          "median_km"], intervals=True), ""]
    return out


def _seeds(tag: str, rep: pd.DataFrame, df: pd.DataFrame | None) -> list[str]:
    seeds_used = ", ".join(str(int(s)) for s in sorted(rep.train_seed.unique()))
    out = _header("Across training seeds", tag, "replicates.csv",
                  f": {', '.join(sorted(rep.method.unique()))} trained with seeds {seeds_used} on the same data and "
                  "encoder. A verdict (best against runner-up) is stated only where it holds in every seed.")
    for split in _splits(rep):
        s = seeds.summary(rep, split, metrics=list(SEED_METRICS))
        methods = list(dict.fromkeys(s.index.get_level_values(0)))
        rows = [[m] + [f"{_num(s.loc[(m, k), 'mean'])} ± {_num(s.loc[(m, k), 'sd'])}" for k in SEED_METRICS]
                for m in methods]
        out += [f"**{split}**, mean ± sd over seeds:", "", _table(["method"] + list(SEED_METRICS), rows), ""]
        v = seeds.verdicts(rep, split, metrics=list(SEED_METRICS))
        rows = [[r.metric, r.best, _num(r["best mean"]), r["runner-up"], _num(r["runner-up mean"]),
                 "yes" if r["holds in every seed"] else "no"] for _, r in v.iterrows()]
        out += [_table(["metric", "best", "mean", "runner-up", "mean", "holds in every seed"], rows), ""]
        if {"LocDiff", "Retrieval", "LocDiff-H"} <= set(rep.method):
            h = seeds.hybrid_check(rep, split, metrics=list(SEED_METRICS))
            rows = [[r.metric, _num(r["LocDiff-H"]), _num(r.Retrieval), _num(r.LocDiff),
                     "yes" if r[">= Retrieval in every seed"] else "no", "yes" if r[">= LocDiff in every seed"] else "no"]
                    for _, r in h.iterrows()]
            out += ["LocDiff-H against its two parts (the paper: at or above both):", "",
                    _table(["metric", "LocDiff-H", "Retrieval", "LocDiff", "≥ Retrieval in every seed",
                            "≥ LocDiff in every seed"], rows), ""]
    if df is not None and {"test_uniform", "test_unseen"} <= set(df.split):
        for metric in ("acc@750km", "acc@2500km"):
            out += [report.generalization_summary(df, metric, replicates=rep), ""]
    return out


def _distributions(tag: str, dist: pd.DataFrame) -> list[str]:
    out = _header("Predicted distributions", tag, "distributions.csv",
                  ": negative log-likelihood of the true location under each method's density (nats, lower is "
                  "better) and the share of images whose truth lies in the 50% / 90% highest-density region (a "
                  "calibrated method: 50 / 90).")
    for split in _splits(dist):
        d = dist[dist.split == split]
        rows = []
        for m in dict.fromkeys(d.method):
            w = d[d.method == m].width_km.dropna()
            rows.append([m] + _ci_cells(d[d.method == m], ("nll", "coverage@50", "coverage@90"))
                        + [_num(w.iloc[0]) if len(w) else "cells"])
        out += [f"**{split}**:", "", _table(["method", "NLL (nats)", "coverage@50 (%)", "coverage@90 (%)",
                                              "kernel width (km)"], rows), ""]
    return out


def _ablations(tag: str, ab: pd.DataFrame) -> list[str]:
    out = _header("Ablations", tag, "ablations.csv",
                  f": LocDiff variants on {int(ab.n_images.max())} `test_iid` tiles; the base variant is marked *.")
    for group in dict.fromkeys(ab.group):
        g = ab[ab.group == group]
        rows = []
        for variant in dict.fromkeys(g.variant):
            v = g[g.variant == variant]
            cells = _ci_cells(v, ABLATION_METRICS)
            secs = v.train_seconds.dropna()
            rows.append([variant + (" *" if bool(v.base.iloc[0]) else "")] + cells
                        + [f"{secs.iloc[0]:.0f}" if len(secs) else ""])
        out += [f"**{group}**:", "", _table(["variant"] + list(ABLATION_METRICS) + ["training (s)"], rows), ""]
    return out


HEADLINE = (("test_iid", "acc@25km"), ("test_iid", "acc@200km"), ("test_iid", "acc@750km"),
            ("test_unseen", "acc@750km"), ("test_unseen", "acc@2500km"))


def headline(tag: str = "cpu", folder=None) -> str:
    """The README's one table: mean ± sd over the training seeds (``replicates.csv``) of the
    replicated methods at ``HEADLINE``'s split and metric pairs (accuracies in %)."""
    d = Path(folder) if folder is not None else results_dir(tag)
    rep = pd.read_csv(d / "replicates.csv")
    stats = {split: seeds.summary(rep, split, metrics=[m for s_, m in HEADLINE if s_ == split])
             for split in dict.fromkeys(s_ for s_, _ in HEADLINE)}
    methods = list(dict.fromkeys(rep.method))
    rows = [[m] + [f"{stats[s_].loc[(m, k), 'mean']:.1f} ± {stats[s_].loc[(m, k), 'sd']:.1f}" for s_, k in HEADLINE]
            for m in methods]
    return _table(["method"] + [f"{s_} {k[4:-2]} km" for s_, k in HEADLINE], rows)


def build(tag: str = "cpu", folder=None) -> str:
    """The page (Markdown) for the results of profile tag ``tag`` (read from ``folder``, default
    ``data/results/<tag>/``); sections whose CSV is missing are left out."""
    d = Path(folder) if folder is not None else results_dir(tag)
    read = (lambda name: pd.read_csv(d / name) if (d / name).exists() else None)
    df, rep, dist, ab = read("methods.csv"), read("replicates.csv"), read("distributions.csv"), read("ablations.csv")
    if df is None:
        raise FileNotFoundError(f"{d / 'methods.csv'} does not exist: run make figures PROFILE={tag} first")
    out = [f"# Results: profile `{tag}`", "",
           f"Generated by `locdiff report --profile {tag}` from `data/results/{tag}/*.csv`, "
           "which `make figures` writes; do not edit by hand. Accuracies in %, distances in km, brackets are "
           "95% bootstrap intervals over test images.", ""]
    out += _methods(tag, df)
    if rep is not None:
        out += _seeds(tag, rep, df)
    if dist is not None:
        out += _distributions(tag, dist)
    if ab is not None:
        out += _ablations(tag, ab)
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m locdiff.results_page", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="profile tag whose data/results/<tag>/ CSVs to read (default cpu)")
    ap.add_argument("--out", default=None, help="page to write (default docs/results.md)")
    ap.add_argument("--check", action="store_true", help="fail (exit 1) when the page differs from its CSVs")
    a = ap.parse_args(argv)
    return write_page(a.profile, a.out, a.check)


def write_page(tag: str = "cpu", out=None, check: bool = False) -> int:
    """Write the page of ``tag`` to ``out`` (default ``docs/results.md``), or with ``check`` only
    compare them; returns the exit status (1: the page differs from its CSVs)."""
    path = Path(out) if out else page_path()
    text = build(tag)
    if check:
        same = path.exists() and path.read_text() == text
        print(f"{path}: {'up to date' if same else 'differs from the CSVs; run locdiff report'}")
        return 0 if same else 1
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
