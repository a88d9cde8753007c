"""Speed of LocDiff training and sampling at the cpu profile's settings, with same-run references.

Run:  .venv/bin/python benchmarks/bench_locdiff.py      (part of `make bench`)

1. Training steps per second (batch and model of the `cpu` profile, MSE loss), against the same
   loop step for a plain ReLU MLP with the same number of parameters (the cost of an equally big
   network without FiLM/SIREN/UNet structure).
2. Sampling images per second with 16 samples and 50 DDIM steps each, decoding included, against
   the reference of 16 x 50 forward passes of that plain MLP (no decoding).
Random weights and embeddings suffice for speed. Writes ``data/results/bench_locdiff.csv``.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from locdiff.io import atomic_write
from locdiff import experiment, geo, profiles
from locdiff.latent import Latent
from locdiff.train import EMA, TrainConfig, make_optimizer, train_step

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "results" / "bench_locdiff.csv"


def plain_mlp(n_params: int, d_in: int, d_out: int) -> torch.nn.Module:
    """A 3-hidden-layer ReLU MLP whose width is chosen to match n_params."""
    w = 16
    while (d_in * w + 2 * w * w + w * d_out) < n_params:
        w += 16
    return torch.nn.Sequential(torch.nn.Linear(d_in, w), torch.nn.ReLU(), torch.nn.Linear(w, w), torch.nn.ReLU(),
                               torch.nn.Linear(w, w), torch.nn.ReLU(), torch.nn.Linear(w, d_out))


def best(fn, repeats=3):
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def main():
    P = profiles.get("cpu")
    s = P.locdiff
    E = P.encoder.embed_dim
    ld = experiment.build(s, E)
    D = (s.L + 1) ** 2
    mlp = plain_mlp(ld.model.num_parameters(), D + E + 1, D)
    lat, lon = geo.uniform_points(s.batch_size, seed=0)
    x0 = Latent(s.L).encode(lat, lon)
    emb = torch.nn.functional.normalize(torch.randn(s.batch_size, E), dim=-1)
    tc = TrainConfig(lr=1e-4, mixed_precision=s.precision)
    gen = torch.Generator().manual_seed(0)
    idx = torch.arange(s.batch_size)
    inp = torch.randn(s.batch_size, D + E + 1)
    ld.model.train()

    def stepper(model, loss_fn):
        """k steps of the training loop's own step (fused AdamW, clipping, EMA) on one batch."""
        opt = make_optimizer(model, tc)
        sched, ema = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), EMA(model, 0.999)
        return lambda k=10: [train_step(model, loss_fn, idx, gen, opt, sched, ema, i, tc) for i in range(k)]

    step_locdiff = stepper(ld.model, lambda m, i, g: ld.diffusion.loss(m, x0[i], emb[i], g))
    step_mlp = stepper(mlp, lambda m, i, g: {"loss": ((m(inp[i]) - x0[i]) ** 2).mean()})

    step_locdiff(2), step_mlp(2)
    t_ld, t_mlp = best(step_locdiff) / 10, best(step_mlp) / 10
    print(f"training (batch {s.batch_size}, {ld.model.num_parameters():,} parameters): LocDiff {1 / t_ld:.1f} steps/s, "
          f"plain MLP of equal size {1 / t_mlp:.1f} steps/s, ratio {t_mlp / t_ld:.2f}")
    n_img, n, steps = 32, 16, 50
    e = emb[:n_img].numpy()
    ld.model.eval()
    ld.predict(e[:2], n=n, steps=steps)
    t_s = best(lambda: ld.predict(e, n=n, steps=steps), 2)
    big = torch.randn(n_img * n, D + E + 1)
    with torch.no_grad():
        t_ref = best(lambda: [mlp(big) for _ in range(steps)], 2)
    print(f"sampling ({n} samples x {steps} DDIM steps, decoding included): LocDiff {n_img / t_s:.1f} images/s, "
          f"plain-MLP forward passes {n_img / t_ref:.1f} images/s, ratio {t_ref / t_s:.2f}")
    df = pd.DataFrame([
        {"benchmark": "train_step", "method": "LocDiff", "throughput": 1 / t_ld, "unit": "steps/s", "ratio_vs_reference": t_mlp / t_ld},
        {"benchmark": "train_step", "method": "plain MLP", "throughput": 1 / t_mlp, "unit": "steps/s", "ratio_vs_reference": 1.0},
        {"benchmark": "sampling_16x50", "method": "LocDiff", "throughput": n_img / t_s, "unit": "images/s", "ratio_vs_reference": t_ref / t_s},
        {"benchmark": "sampling_16x50", "method": "plain MLP forwards", "throughput": n_img / t_ref, "unit": "images/s", "ratio_vs_reference": 1.0},
    ])
    df["batch_size"], df["L"], df["threads"] = s.batch_size, s.L, torch.get_num_threads()
    df["torch_version"], df["date"] = torch.__version__, datetime.now(timezone.utc).isoformat(timespec="seconds")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, lambda tmp: df.to_csv(tmp, index=False))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
