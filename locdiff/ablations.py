"""LocDiff ablations (notebook 06): one setting changed at a time, everything else as the base.

The base is the profile's LocDiff trained for ``ablations.steps`` steps; when that is the main
run's length (the cpu and gpu profiles) the base is notebook 02's model itself, so that the default
variant scores what the main model scores. Each trained variant changes one setting of
``LocDiffSettings``, for the groups in ``ablations.groups`` (the cpu hour holds the degree sweep;
the gpu profile trains all); the sampling variants reuse the base model. Every variant is scored on the
first ``ablations.images`` images of the first test split (test_iid on the benchmark) with bootstrap
intervals (``evaluate.result_rows``).

Groups: degree L; loss (MSE, SHDD-KL, both); prediction target (x0, ε); network (CS-UNet, plain
MLP); dropout; number of samples; decoder (grid argmax only, or refined); sampling (the full DDIM
chain, or a single denoising step from pure noise, i.e. SHDD regression).
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import datasets, evaluate, experiment, shdd
from .io import atomic_write, sha256
from .profiles import Profile

ABLATION_COLUMNS = ("group", "variant", "base") + evaluate.RESULT_COLUMNS


def trained_variants(profile: Profile) -> list[tuple[str, str, dict]]:
    """(group, variant label, settings changes) of every variant that needs its own training, for the
    groups the profile trains (``ablations.groups``)."""
    base = profile.locdiff
    out = [("degree L", f"L = {L}", {"L": L}) for L in profile.ablations.degrees]
    out += [("loss", {"mse": "MSE", "shdd_kl": "SHDD-KL", "mse+kl": "MSE + SHDD-KL"}[k], {"loss": k})
            for k in ("mse", "shdd_kl", "mse+kl")]
    out += [("prediction target", {"x0": "x0", "eps": "epsilon"}[k], {"prediction": k}) for k in ("x0", "eps")]
    out += [("network", {"csunet": "CS-UNet", "mlp": "plain MLP"}[k], {"arch": k}) for k in ("csunet", "mlp")]
    out += [("dropout", f"dropout {p:g}", {"dropout": p}) for p in sorted({0.0, base.dropout, 0.6})]
    return [v for v in out if v[0] in profile.ablations.groups]


def _settings(profile: Profile, changes: dict, steps: int | None = None):
    a, s = profile.ablations, profile.locdiff
    steps = a.steps if steps is None else steps
    # validated as often as the main run at its length, four times in a shorter one (learning curves)
    return replace(s, steps=steps, eval_every=s.eval_every if steps == s.steps else max(1, steps // 4),
                   warmup=min(s.warmup, steps // 4), **changes)


def fit_variant(profile: Profile, changes: dict, steps: int | None = None, progress: bool = True):
    """The profile's LocDiff with ``changes`` trained for ``steps`` steps (default ``ablations.steps``),
    or reused from its cache folder ``checkpoints/<tag>/ablations/<slug>``: (LocDiff, training log).
    Notebook 02's diagnosis and notebook 06 share these runs. The base variant at the main model's
    length is the main model itself (``experiment.fit(profile)``, notebook 02's run)."""
    steps = profile.ablations.steps if steps is None else steps
    is_base = _is_base(profile, changes)
    if is_base and steps == profile.locdiff.steps:
        return experiment.fit(profile, progress=progress)
    slug = "-".join(f"{k}{v}" for k, v in sorted(changes.items())) if not is_base else "base"
    if steps != profile.ablations.steps:
        slug += f"-steps{steps}"
    return experiment.fit(profile, _settings(profile, {} if is_base else changes, steps),
                          out_dir=experiment.checkpoint_dir(profile, f"ablations/{slug}"), overwrite=True,
                          progress=progress)       # a cache of the notebooks'


def _train_variant(job) -> None:
    profile, changes, steps = job
    fit_variant(profile, changes, steps, progress=False)


def train_variants(profile: Profile, variants: list[dict], steps: int | None = None, progress: bool = True) -> None:
    """Train the variants not yet finished side by side in worker processes (``parallel``), so that
    ``fit_variant`` then loads them; nothing to do here with one worker (``fit_variant`` trains)."""
    from . import parallel

    distinct = list({json.dumps(v, sort_keys=True): dict(v) for v in variants}.values())    # one run per folder
    workers = parallel.workers_for(profile, len(distinct))
    if workers > 1:
        datasets.build_caches(profile, ["train", "val"], progress)      # what every worker reads
        parallel.map_runs(_train_variant, [(profile, v, steps) for v in distinct], workers,
                          desc="training LocDiff variants", progress=progress)


def fit_variants(profile: Profile, variants: list[dict], steps: int | None = None, progress: bool = True) -> list:
    """``[fit_variant(profile, changes, steps) for changes in variants]``, the runs not yet finished
    trained side by side first (``train_variants``)."""
    train_variants(profile, variants, steps, progress)
    return [fit_variant(profile, v, steps, progress=progress) for v in variants]


def train_seconds(log: pd.DataFrame) -> float:
    """The training time of a run from its log (NaN when the log does not record it)."""
    return float(log["time_s"].iloc[-1]) if "time_s" in log else float("nan")


def _is_base(profile: Profile, changes: dict) -> bool:
    return all(getattr(profile.locdiff, k) == v for k, v in changes.items())


def _stored_key(key_path, csv) -> str | None:
    """The settings key stored for a results CSV; None (recompute) when the key file is missing or
    unreadable, or when its checksum is not the CSV's (another run's CSV, a checkout of another commit)."""
    try:
        meta = json.loads(key_path.read_text())
        if not isinstance(meta, dict) or meta.get("sha256") != sha256(csv):
            return None
    except (OSError, ValueError):
        return None
    return meta.get("key")


REDRAW_VAR = "LOCDIFF_REDRAW"


def run(profile: Profile, reuse: bool = True, progress: bool = True, n_boot: int = 1000) -> pd.DataFrame:
    """Train (or reuse) every variant, score it, write ``data/results/<profile>/ablations.csv``.

    The CSV is reused only when this machine computed it with the same settings: the settings key
    and the CSV's SHA-256 lie in the (git-ignored) cache folder, ``ablations-<profile>.json``, so
    a fresh clone, or a CSV replaced since (another commit's), recomputes every number. Redrawing
    from the committed CSV without training is an explicit choice: ``LOCDIFF_REDRAW=1``
    (``make figures REDRAW=1``)."""
    from .data.bluemarble import cache_dir

    path = evaluate.results_dir(profile.tag) / "ablations.csv"
    key_path = cache_dir() / f"ablations-{profile.tag}.json"      # the settings the CSV was computed with here
    key = datasets.settings_key(profile, n_boot=n_boot)
    redraw = os.environ.get(REDRAW_VAR) == "1"
    if redraw and not path.exists():
        raise FileNotFoundError(f"{REDRAW_VAR}=1 redraws from the committed {path}, which does not exist; unset it "
                                f"to compute the ablations")
    if reuse and path.exists() and (redraw or _stored_key(key_path, path) == key):
        try:
            df = pd.read_csv(path)
        except (ValueError, OSError, UnicodeDecodeError):              # damaged: recompute
            df = pd.DataFrame()
        if tuple(df.columns) == ABLATION_COLUMNS and set(df.group) >= {g for g, _, _ in trained_variants(profile)}:
            return df
    a = profile.ablations
    split = datasets.test_splits(profile)[0]          # test_iid on the benchmark
    emb = datasets.embeddings(profile, progress=progress)["embeddings"][split]
    test = datasets.load(profile, [split], progress=progress)[split]
    n = min(a.images, len(test))
    E, lat, lon = emb[:n], test.lat[:n], test.lon[:n]
    rows, models = [], {}
    train_variants(profile, [c for _, _, c in trained_variants(profile) if not _is_base(profile, c)], progress=progress)

    def score(group, variant, is_base, pred, seconds, sample=True):
        for r in evaluate.result_rows(profile.tag, "LocDiff", split, lat, lon, pred["lat"], pred["lon"],
                                      train_seconds=seconds, sample_lat=pred["sample_lat"] if sample else None,
                                      sample_lon=pred["sample_lon"] if sample else None, n_boot=n_boot,
                                      seed=profile.seed):
            rows.append({"group": group, "variant": variant, "base": is_base, **r})

    for group, variant, changes in tqdm(trained_variants(profile), desc="ablation variants", disable=not progress):
        is_base = _is_base(profile, changes)
        if is_base and "base" in models:
            ld, seconds = models["base"]
        else:
            ld, log = fit_variant(profile, changes, progress=progress)
            seconds = train_seconds(log)
            if is_base:
                models["base"] = (ld, seconds)
        score(group, variant, is_base, ld.predict(E, n=a.samples, seed=profile.seed), seconds)

    _score_base(profile, *models["base"], E, score)
    df = pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))
    evaluate.check_results(df[list(evaluate.RESULT_COLUMNS)].assign(method=df.group + ": " + df.variant))
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    atomic_write(key_path, lambda tmp: Path(tmp).write_text(json.dumps({"key": key, "sha256": sha256(path)}, indent=1)))
    return df


def _score_base(profile: Profile, ld, seconds: float, E, score) -> None:
    """The groups that vary sampling and decoding of the main model, not its training: samples per
    image, the decoder's Newton refinement, the DDIM chain against one step from pure noise."""
    a = profile.ablations
    for k in a.sample_counts:
        score("samples", f"{k} samples", k == a.samples, ld.predict(E, n=k, seed=profile.seed), seconds)
    mean = ld.diffusion.latent.mean_coeffs(ld.sample(E, n=a.samples, seed=profile.seed))
    for variant, iters in (("grid argmax only", 0), ("grid + Newton refinement", 8)):
        la, lo, _ = shdd.decode(mean, refine_iters=iters)
        score("decoder", variant, iters > 0, {"lat": la[:, 0].numpy(), "lon": lo[:, 0].numpy()}, seconds, sample=False)
    score("sampling", f"full DDIM chain ({profile.locdiff.ddim_steps} steps)", True,
          ld.predict(E, n=a.samples, seed=profile.seed), seconds)
    score("sampling", "one step from pure noise (SHDD regression)", False,
          ld.predict(E, n=a.samples, steps=1, seed=profile.seed), seconds)


def table(df: pd.DataFrame, metrics=("acc@200km", "acc@750km", "acc@2500km", "median_km", "geoscore")) -> pd.DataFrame:
    """Group x variant rows, 'value [low, high]' cells."""
    sub = df[df.metric.isin(metrics)].copy()
    sub["cell"] = [f"{v:.1f} [{lo:.1f}, {hi:.1f}]" for v, lo, hi in zip(sub.value, sub.ci_low, sub.ci_high)]
    out = sub.pivot_table(index=["group", "variant"], columns="metric", values="cell", aggfunc="first", sort=False)
    return out[[m for m in metrics if m in out.columns]]


def plot(df: pd.DataFrame, metric: str = "acc@750km", title: str | None = None):
    """One panel per group: ``metric`` per variant with its 95% interval; the base in a darker colour;
    ``title`` above the panels."""
    import matplotlib.pyplot as plt

    from .plots import METHOD_COLORS

    groups = list(dict.fromkeys(df.group))
    ncols = 4
    fig, axes = plt.subplots((len(groups) + ncols - 1) // ncols, ncols, figsize=(14, 3.2 * ((len(groups) + 3) // 4)),
                             squeeze=False)
    for ax, g in zip(axes.ravel(), groups):
        sub = df[(df.group == g) & (df.metric == metric)].drop_duplicates("variant")
        x = np.arange(len(sub))
        colors = [METHOD_COLORS["LocDiff"] if b else "0.6" for b in sub.base]
        ax.bar(x, sub.value, color=colors, yerr=[sub.value - sub.ci_low, sub.ci_high - sub.value], capsize=3)
        ax.set_xticks(x)
        ax.set_xticklabels([v.replace(" (SHDD regression)", "\n(SHDD regression)") for v in sub.variant],
                           rotation=20, ha="right", fontsize=8)
        ax.set_title(g)
        ax.set_ylabel(f"{metric} (%)" if metric.startswith("acc") else metric)
    for ax in axes.ravel()[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    if title:
        fig.suptitle(title, y=1.02)
    return fig


def coarse_band_errors(profile: Profile, l_max: int = 8, timesteps=(100, 500, 900), images: int = 300,
                       progress: bool = False) -> pd.DataFrame:
    """Why the degree sweep's coarse accuracy can stop rising: how well each trained degree variant
    reproduces the coarse bands l ≤ ``l_max`` (the continent and the region, shared by every L).

    For each L of ``ablations.degrees`` (the sweep's cached runs) and each t: ``relative`` =
    Σ_{l≤l_max} Σ_m (x̂0 - x0)²_lm / Σ_{l≤l_max} Σ_m x0²_lm of the denoiser on the first ``images``
    val tiles (``spectrum.band_errors``; 0 exact, 1 as far off as predicting zero), and
    ``loss_share`` = those bands' share of the training loss under the profile's band weight,
    Σ_{l≤l_max} (2l+1) λ_l / Σ_l (2l+1) λ_l (``diffusion.band_loss_weights``). Columns: L, t,
    abar, relative, loss_share."""
    from .diffusion import band_loss_weights
    from .latent import degrees
    from .spectrum import band_errors

    if isinstance(l_max, bool) or not isinstance(l_max, (int, np.integer)) or not 0 <= l_max < min(profile.ablations.degrees):
        raise ValueError(f"l_max must be an integer in [0, {min(profile.ablations.degrees) - 1}] (below every "
                         f"degree of the sweep); got {l_max!r}")
    enc = datasets.embeddings(profile, progress=progress)["embeddings"]["val"]
    val = datasets.load(profile, ["val"], progress=progress)["val"]
    n = min(int(images), len(val.lat))
    rows = []
    for L in profile.ablations.degrees:
        ld, _ = fit_variant(profile, {"L": L}, progress=progress)
        coarse = degrees(L) <= l_max
        lam = band_loss_weights(L, ld.diffusion.config.band_weight)
        share = float(lam[coarse].sum() / lam.sum())
        # Σ_{l≤l_max} Σ_m x0²_lm = Σ_{l≤l_max} (2l+1) w_l² for every point (addition theorem)
        signal = float((ld.diffusion.weights.double()[coarse] ** 2).sum())
        b = band_errors(ld, enc[:n], val.lat[:n], val.lon[:n], list(timesteps), seed=profile.seed)
        for t, g in b[b.l <= l_max].groupby("t"):
            rows.append({"L": L, "t": int(t), "abar": float(g.abar.iloc[0]),
                         "relative": float(g.mse.sum()) / signal, "loss_share": share})
    return pd.DataFrame(rows, columns=["L", "t", "abar", "relative", "loss_share"])


def best_vs_base(df: pd.DataFrame, metric: str = "acc@750km") -> pd.DataFrame:
    """Per group: the variant with the highest ``metric``, the base variant, both values, and whether
    the best's 95% interval lies wholly above the base's (``separated``)."""
    rows = []
    for group, sub in df[df.metric == metric].drop_duplicates(["group", "variant"]).groupby("group", sort=False):
        best = sub.loc[sub.value.idxmax()]
        base = sub[sub.base.astype(bool)]
        if base.empty:
            continue
        base = base.iloc[0]
        rows.append({"group": group, "best variant": best.variant, "best": best.value, "base variant": base.variant,
                     "base": base.value, "separated": bool(best.ci_low > base.ci_high)})
    return pd.DataFrame(rows)


def degree_verdict(coarse: pd.DataFrame, metrics: pd.DataFrame, degrees) -> str:
    """One sentence on the two largest degrees of the sweep: acc@200km and coverage@200km from the
    lower to the top degree (``metrics``: index "L = <L>", those columns), and whether the coarse-band
    error (``coarse_band_errors``) is higher at the top degree at every t, with the range of the ratio."""
    distinct = sorted(set(degrees))
    if len(distinct) < 2:
        raise ValueError(f"degrees must hold at least two distinct degrees; got {list(degrees)}")
    top, below = distinct[-1], distinct[-2]
    r = coarse.pivot_table(index="t", columns="L", values="relative")
    for L in (below, top):
        if L not in r.columns or f"L = {L}" not in metrics.index:
            raise ValueError(f"degrees must be degrees of both tables; L = {L} is missing from "
                             f"{'coarse' if L not in r.columns else 'metrics'}")
    c = metrics
    ratio = r[top] / r[below]
    return (f"L = {below} -> {top}: acc@200km {c.loc[f'L = {below}', 'acc@200km']:.1f} -> "
            f"{c.loc[f'L = {top}', 'acc@200km']:.1f}%, coverage@200km {c.loc[f'L = {below}', 'coverage@200km']:.1f}"
            f" -> {c.loc[f'L = {top}', 'coverage@200km']:.1f}%; coarse-band error "
            f"{'higher' if (ratio > 1).all() else 'not higher'} at L = {top} at every t "
            f"(ratio {ratio.min():.1f}-{ratio.max():.1f}x)")
