"""Figures of notebook 02: how LocDiff trains, and the diagnoses of degree and loss (location SNR,
error per degree band, MSE against SHDD-KL)."""
from __future__ import annotations

from itertools import cycle

import matplotlib.pyplot as plt

from .. import plots

__all__ = ["loss_curves", "location_snr", "band_errors", "loss_comparison", "loss_band_errors", "val_accuracy"]

LOCDIFF = plots.METHOD_COLORS["LocDiff"]


def loss_curves(log, den, n_val: int):
    """Left: the batch-mean MSE per training step (``log``: step, mse). Right: the error of x̂0 on
    val against the timestep t, as MSE and SHDD-KL (``den``: t, mse, shdd_kl; ``experiment.denoising_errors``)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(log.step, log["mse"], color=LOCDIFF)
    a1.set_yscale("log")
    a1.set_xlabel("training step")
    a1.set_ylabel("MSE on x0 (scaled latent)")
    a1.set_title("Training loss (batch mean, MSE)")
    a2.plot(den.t, den.mse, "o-", color=LOCDIFF, label="MSE (scaled latent)")
    a2.plot(den.t, den.shdd_kl, "s--", color=plots.METHOD_COLORS["LocDiff-H"], label="SHDD-KL (nats)")
    a2.set_yscale("log")
    a2.set_xlabel("diffusion timestep t (0: clean, 999: pure noise)")
    a2.set_ylabel("error of x̂0 on val")
    a2.legend(fontsize=8)
    a2.set_title(f"Denoising error by noise level ({n_val} val tiles)")
    return fig


def location_snr(noisy, snr_line: float = 5.0):
    """Per case (``noisy``: case, t, location_snr, acc@750km as a fraction; ``spectrum.noisy_latent_cases``):
    the closed-form location SNR (log) and the share of noisy latents x_t whose mode lies within 750 km."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for (name, grp), style in zip(noisy.groupby("case", sort=False), cycle(["o-", "s-", "^-", "v--", "D-", "x-"])):
        a1.plot(grp.t, grp.location_snr, style, ms=4, label=name)
        a2.plot(grp.t, 100 * grp["acc@750km"], style, ms=4, label=name)
    a1.set_yscale("log")
    a1.axhline(snr_line, color="0.5", lw=0.8, ls=":")
    a1.set_xlabel("diffusion timestep t")
    a1.set_ylabel("location SNR  √(ᾱ/(1-ᾱ))·(L+1)")
    a1.set_title("How much of the location x_t holds (closed form)")
    a2.set_xlabel("diffusion timestep t")
    a2.set_ylabel("mode of x_t within 750 km (%)")
    a2.set_title(f"Decoding x_t itself, no network ({noisy.n_points.iloc[0]} val points)")
    a2.legend(fontsize=8)
    return fig


def band_errors(bands, n_tiles: int, by: str = "run"):
    """One panel per ``by`` value: the relative error of each degree band l of x̂0, one curve per t.
    ``bands``: ``spectrum.band_error_table`` output (l, t, abar, relative, and the column ``by``)."""
    groups = list(bands.groupby(by, sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.25 * len(groups), 3.6), sharey=True, squeeze=False)
    for ax, (name, grp) in zip(axes[0], groups):
        for t, g in grp.groupby("t"):
            ax.plot(g.l, g.relative, label=f"t = {t}  (ᾱ = {g.abar.iloc[0]:.3f})")
        ax.set_xlabel("degree l")
        ax.set_title(name, fontsize=10)
    axes[0, 0].set_ylabel("relative error of band l in x̂0")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"Denoiser error per degree band ({n_tiles} val tiles)", fontsize=11)
    return fig


def loss_comparison(logs: dict, L: int):
    """Val acc@750km of runs trained with different losses (``logs``: {name: training log with step,
    time_s, val_acc@750km}) against training steps (left) and wall time in minutes (right)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.6), sharey=True)
    colors = cycle([plots.METHOD_COLORS[k] for k in ("LocDiff", "LocDiff-H", "Retrieval", "Classification")])
    for (name, lg), color in zip(logs.items(), colors):
        v = lg.dropna(subset=["val_acc@750km"])
        a1.plot(v.step, v["val_acc@750km"], "o-", color=color, label=name)
        a2.plot(v.time_s / 60, v["val_acc@750km"], "o-", color=color, label=name)
    a1.set_xlabel("training step")
    a1.set_ylabel("val accuracy within 750 km (%)")
    a1.legend(fontsize=8)
    a2.set_xlabel("training time (min, this machine)")
    fig.suptitle(f"Losses at L = {L}: equal steps (left), equal wall time (right)", fontsize=11)
    return fig


def loss_band_errors(bands, L: int, t: int):
    """Relative error of each degree band of x̂0 at timestep ``t``, one curve per training loss
    (``bands``: ``spectrum.band_error_table(..., by="loss")`` output)."""
    if t not in set(bands.t):
        raise ValueError(f"t must be a timestep of the table ({sorted(set(bands.t))}); got {t!r}")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, g in bands[bands.t == t].groupby("loss", sort=False):
        ax.plot(g.l, g.relative, "o-", ms=3, label=name)
    ax.set_xlabel("degree l")
    ax.set_ylabel(f"relative error of band l in x̂0 (t = {t})")
    ax.legend(fontsize=8)
    ax.set_title(f"Error per degree band by training loss (L = {L})", fontsize=10)
    return fig


def val_accuracy(log):
    """Val accuracy (%) within 2500 and 750 km against the training step (``log``: the training log)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    v = log.dropna(subset=["val_acc@2500km"])
    ax.plot(v.step, v["val_acc@2500km"], "o-", color=LOCDIFF, label="within 2500 km")
    ax.plot(v.step, v["val_acc@750km"], "s--", color=LOCDIFF, label="within 750 km")
    ax.set_xlabel("training step")
    ax.set_ylabel("val accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("LocDiff (MSE loss): validation accuracy during training")
    return fig
