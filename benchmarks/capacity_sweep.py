"""Capacity sweep: LocDiff variants at L = 16, 32, 64 on the cpu profile's frozen embeddings.

What it measured (``data/results/capacity_sweep.csv``, cited in ``locdiff/profiles.py`` and
notebook 06): why a degree-64 latent scored below L = 32 within 200 km at the cpu profile's
network size, and which settings change that. Every variant trains 4000 steps of batch 256
(unless its ``steps`` says otherwise) through the shared training loop, then predicts all 2000
``test_iid`` and ``test_unseen`` tiles with 8 samples and 10 DDIM steps (the profile's rule).

Run on one GPU (the runs are independent; ``--workers`` processes share the device):

    python3 benchmarks/capacity_sweep.py --prepare            # here: embeddings + truths -> build/capacity/data.npz
    python3 benchmarks/capacity_sweep.py --set 1 --out DIR     # there: first variant set (sampling variants too)
    python3 benchmarks/capacity_sweep.py --set 2 --out DIR     # second set, all at dropout 0.1

The committed CSV joins the two sets as measured on one H200 (2026-12-04, bf16 products): set 1's
``L16`` run was stopped by the device's time limit and is missing. Embeddings are carried in
float16. Single training seed per variant unless the row's ``seed`` differs (1000: a second seed).
On 2 CPU cores each L = 64 variant takes about 6 minutes (``--workers 1``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "build" / "capacity" / "data.npz"
SPLITS = ("train", "val", "test_iid", "test_unseen")
WIDE = (1024, 512, 256)
SETS = {
    1: [("L32", {"L": 32}, 0), ("L64", {"L": 64}, 0),
        ("L64-drop0.1", {"L": 64, "dropout": 0.1}, 0), ("L64-drop0", {"L": 64, "dropout": 0.0}, 0),
        ("L64-12k", {"L": 64, "steps": 12000}, 0), ("L64-wide", {"L": 64, "widths": WIDE}, 0),
        ("L64-lr2e-3", {"L": 64, "lr": 2e-3}, 0), ("L64-cond512", {"L": 64, "cond_dim": 512}, 0),
        ("L32-drop0.1", {"L": 32, "dropout": 0.1}, 0), ("L64-drop0.1-12k", {"L": 64, "dropout": 0.1, "steps": 12000}, 0),
        ("L64-s1", {"L": 64}, 1000), ("L32-s1", {"L": 32}, 1000), ("L64-decay", {"L": 64, "band_weight": "decay"}, 0),
        ("L32-12k", {"L": 32, "steps": 12000}, 0), ("L16", {"L": 16}, 0)],
    2: [("L64-d1-decay", {"L": 64, "dropout": 0.1, "band_weight": "decay"}, 0),
        ("L64-d1-lr2", {"L": 64, "dropout": 0.1, "lr": 2e-3}, 0),
        ("L64-d1-decay-lr2", {"L": 64, "dropout": 0.1, "band_weight": "decay", "lr": 2e-3}, 0),
        ("L64-d1-wide", {"L": 64, "dropout": 0.1, "widths": WIDE}, 0),
        ("L32-d1-decay", {"L": 32, "dropout": 0.1, "band_weight": "decay"}, 0), ("L64-d1-s1", {"L": 64, "dropout": 0.1}, 1000),
        ("L16-d1", {"L": 16, "dropout": 0.1}, 0), ("L32-d1-lr2", {"L": 32, "dropout": 0.1, "lr": 2e-3}, 0)],
}
# the base of every variant: the settings the sweep started from (the cpu profile before it)
BASE = {"dropout": 0.3, "lr": 1e-3, "widths": (512, 256, 128), "cond_dim": 256, "band_weight": "band", "steps": 4000}
SAMPLING = {"L64": [("g2", {"guidance": 2.0}), ("ddim50", {"steps": 50}), ("n32", {"n": 32})]}


def prepare() -> None:
    """Embeddings (float16) and truths of the cpu profile's splits, for a machine without the caches."""
    from locdiff import datasets, profiles

    P = profiles.get("cpu")
    enc = datasets.embeddings(P)["embeddings"]
    data = datasets.load(P, list(SPLITS))
    out = {}
    for s in SPLITS:
        out[f"{s}_emb"] = enc[s].astype(np.float16)
        out[f"{s}_lat"], out[f"{s}_lon"] = (np.asarray(getattr(data[s], k), np.float32) for k in ("lat", "lon"))
    DATA.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA, **out)
    print(f"wrote {DATA} ({DATA.stat().st_size / 2 ** 20:.1f} MiB)")


def run(job) -> list[dict]:
    """Train one variant and score it: one row per (split, sampling variant)."""
    name, changes, seed, out = job
    import torch

    torch.set_num_threads(2)
    from locdiff import experiment, geo, profiles, train

    d = np.load(DATA)
    s = replace(profiles.get("cpu").locdiff, **{**BASE, **changes})
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    emb = torch.from_numpy(d["train_emb"].astype(np.float32)).to(dev)
    ld = experiment.build(s, emb.shape[1], seed)
    x0 = ld.diffusion.encode(d["train_lat"].astype(np.float64), d["train_lon"].astype(np.float64)).to(dev)
    cfg = train.TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, warmup=s.warmup, ema_decay=s.ema_decay,
                            eval_every=10 ** 9, checkpoint_every=10 ** 9, seed=seed, mixed_precision=s.precision)
    t0 = time.time()
    log = train.fit_or_load(ld.model, lambda m, idx, g: ld.diffusion.loss(m, x0[idx], emb[idx], g), len(x0), cfg,
                            Path("/tmp/capacity-runs") / name, {"name": name}, progress=False, overwrite=True, reuse=False)
    t_train = time.time() - t0
    ld = experiment.LocDiff(ld.model, ld.diffusion, s)
    rows = []
    for split in ("test_iid", "test_unseen"):
        e = d[f"{split}_emb"].astype(np.float32)
        la, lo = d[f"{split}_lat"].astype(np.float64), d[f"{split}_lon"].astype(np.float64)
        for sname, kw in [("default", {})] + (SAMPLING.get(name, []) if split == "test_iid" else []):
            t1 = time.time()
            pred = ld.predict(e, **kw)
            dist = geo.distance_km(la, lo, pred["lat"], pred["lon"])
            n = pred["sample_lat"].shape[1]
            to_truth = geo.distance_km(np.repeat(la[:, None], n, 1), np.repeat(lo[:, None], n, 1),
                                       pred["sample_lat"], pred["sample_lon"])
            to_point = geo.distance_km(np.repeat(pred["lat"][:, None], n, 1), np.repeat(pred["lon"][:, None], n, 1),
                                       pred["sample_lat"], pred["sample_lon"])
            miss = dist > 200
            row = {"variant": name, "seed": seed, "split": split, "sampling": sname, "train_s": round(t_train, 1),
                   "pred_s": round(time.time() - t1, 1),
                   **{k: round(float(v), 2) for k, v in geo.summarize(dist).items()},
                   "final_loss": float(log["loss"].dropna().iloc[-10:].mean()),
                   "any_sample_200": round(100 * float((to_truth < 200).any(1).mean()), 2),
                   "spread_miss_km": round(float(np.median(np.median(to_point, 1)[miss])), 1) if miss.any() else -1}
            rows.append(row)
            with open(Path(out) / "rows.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepare", action="store_true", help="write build/capacity/data.npz from the cpu caches")
    ap.add_argument("--set", type=int, choices=sorted(SETS), default=1)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--out", default=os.environ.get("OUT", "build/capacity"))
    args = ap.parse_args()
    if args.prepare:
        return prepare()
    import multiprocessing as mp

    import pandas as pd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = sorted(SETS[args.set], key=lambda v: -v[1].get("steps", 4000) * (2 if "widths" in v[1] else 1))
    rows = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for res in pool.imap_unordered(run, [(n, c, s, str(out)) for n, c, s in jobs]):
            rows += res
            pd.DataFrame(rows).to_csv(out / f"capacity_sweep_set{args.set}.csv", index=False)


if __name__ == "__main__":
    main()
