"""A guard for refactoring: seeded smoke-sized training and sampling give the numbers recorded
before the code was reorganized (``tests/data/refactor_guard.npz``).

Every other test checks the package against an independent oracle; this one checks that moving
code around (samplers as scheduler classes, the latent module, the ``shdd`` package, the shared
training step) changed no number: the losses of a short seeded training run through the real loop,
DDIM (deterministic and stochastic, with and without guidance) and DDPM samples, the decoded point
predictions, the raw-diffusion and flow-matching samplers and the codec. Everything runs in float32
(``precision="no"``) on one torch thread, so the sums are taken in one order.

Regenerate the record only for a change meant to alter these numbers, and say so in the commit:
``python tests/test_refactor_guard.py --write``.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

RECORD = Path(__file__).resolve().parent / "data" / "refactor_guard.npz"
RTOL, ATOL = 1e-5, 1e-5


def compute(tmp: Path) -> dict[str, np.ndarray]:
    """Every guarded number, from seeded inputs (no data set, no cache)."""
    from locdiff import experiment, profiles, shdd, train
    from locdiff.baselines import generative
    from locdiff.latent import decode_samples as predict

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        P = profiles.get("smoke")
        s = replace(P.locdiff, precision="no", dropout=0.3, lr=1e-3, L=8, widths=(64, 32), cond_dim=32, batch_size=32, steps=6,
                    warmup=2, eval_every=3, ema_decay=0.9)
        rng = np.random.default_rng(0)
        n, E = 96, 16
        emb = torch.from_numpy(rng.standard_normal((n, E)).astype(np.float32))
        lat, lon = rng.uniform(-80, 80, n), rng.uniform(-180, 180, n)
        out: dict[str, np.ndarray] = {"codec": shdd.encode(lat[:8], lon[:8], 12).numpy()}
        dlat, dlon, _ = shdd.decode(shdd.encode(lat[:4], lon[:4], 12), k=1)
        out["codec_decoded"] = np.stack([dlat[:, 0].numpy(), dlon[:, 0].numpy()])

        ld = experiment.build(s, E, seed=0)
        x0 = ld.diffusion.encode(lat, lon)
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            out["loss_terms"] = np.array([float(ld.diffusion.loss(ld.model, x0[:32], emb[:32], gen)["loss"])
                                          for _ in range(3)])
        cfg = train.TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, warmup=s.warmup, ema_decay=s.ema_decay,
                                eval_every=s.eval_every, log_every=1, checkpoint_every=s.steps, seed=0,
                                mixed_precision="no")
        log = train.train(ld.model, lambda m, idx, g: ld.diffusion.loss(m, x0[idx], emb[idx], g), n, cfg,
                          tmp / "run", {"guard": 1}, progress=False)
        out["train_losses"] = log["loss"].to_numpy(np.float64)
        train.load_weights(ld.model, tmp / "run" / "checkpoint", ema=True)
        e = emb[:3]
        out["ddim"] = ld.sample(e, n=4, steps=5, seed=1).numpy()
        out["ddim_guided"] = ld.sample(e, n=4, steps=5, guidance=2.0, seed=1).numpy()
        out["ddim_eta1"] = ld.sample(e, n=4, steps=5, eta=1.0, seed=1).numpy()
        small = replace(ld, diffusion=experiment.build(replace(s, T=50), E).diffusion)
        out["ddpm"] = small.sample(e, n=2, sampler="ddpm", seed=1).numpy()
        plat, plon, slat, slon = predict(torch.from_numpy(out["ddim"]), latent=ld.diffusion.latent)
        out["predict"] = np.stack([plat[:, 0].numpy(), plon[:, 0].numpy()])

        net = generative.network(replace(P, locdiff=replace(P.locdiff, precision="no")), E)
        net.eval()
        g = torch.Generator().manual_seed(5)
        out["flow_matching"] = generative.sample_flow_matching(net, e, 3, 4, 1.5, g).numpy()
        out["raw_diffusion"] = generative.sample_raw_diffusion(net, generative.raw_diffusion(P.locdiff), e, 3, 4,
                                                               1.0, g).numpy()
        return out
    finally:
        torch.set_num_threads(threads)


def test_numbers_are_those_recorded_before_the_refactoring(tmp_path):
    assert RECORD.exists(), f"{RECORD} is missing: it is committed with the code it guards"
    with np.load(RECORD) as z:
        recorded = {k: z[k] for k in z.files}
    now = compute(tmp_path)
    assert sorted(now) == sorted(recorded)
    for name, value in now.items():
        np.testing.assert_allclose(value, recorded[name], rtol=RTOL, atol=ATOL, err_msg=name)


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        numbers = compute(Path(d))
    RECORD.parent.mkdir(exist_ok=True)
    np.savez(RECORD, **numbers)
    print(f"wrote {RECORD}: {', '.join(f'{k} {v.shape}' for k, v in numbers.items())}")
