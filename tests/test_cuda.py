"""The gpu path on a device: codec parity with the CPU, one training step of every method, sampling.

The device is CUDA when present; ``LOCDIFF_TEST_DEVICE=cpu`` runs the same tests on the CPU (the
dry run of ``benchmarks/gpu_check.py``, so that they cannot rot on machines without a GPU);
otherwise they are skipped. The oracle of the codec tests is the CPU path (the compiled kernel),
whose own correctness ``test_shdd`` checks against scipy and pyshtools.
"""
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from locdiff import experiment, geo, profiles, shdd
from locdiff.baselines import classification, common, generative, regression, retrieval

pytestmark = pytest.mark.gpu

_CHOICE = os.environ.get("LOCDIFF_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "")
DEVICE = torch.device(_CHOICE) if _CHOICE else None
on_device = pytest.mark.skipif(DEVICE is None, reason="needs a CUDA device (or LOCDIFF_TEST_DEVICE=cpu)")


@on_device
@pytest.mark.parametrize("L", [16, 64, 128])
def test_encode_decode_on_device_match_cpu(L, haversine):
    lat, lon = geo.uniform_points(300, seed=L)
    lat_t, lon_t = torch.tensor(lat, device=DEVICE), torch.tensor(lon, device=DEVICE)
    y_dev = shdd.encode(lat_t, lon_t, L)
    assert y_dev.device.type == DEVICE.type and y_dev.dtype == torch.float64
    y_cpu = shdd.encode(lat, lon, L, dtype=torch.float64)
    assert torch.allclose(y_dev.cpu(), y_cpu, atol=1e-10, rtol=0)
    la, lo, val = shdd.decode(y_dev.float())
    assert la.device.type == DEVICE.type and torch.isfinite(val).all()
    d = haversine(lat, lon, la[:, 0].cpu().numpy(), lo[:, 0].cpu().numpy())
    assert np.median(d) < 0.05 and d.max() < 1.0, f"L = {L}: decode error median {np.median(d):.3f}, max {d.max():.3f} km"
    la_c, lo_c, _ = shdd.decode(y_cpu.float())
    assert haversine(la_c[:, 0].numpy(), lo_c[:, 0].numpy(), la[:, 0].cpu().numpy(), lo[:, 0].cpu().numpy()).max() < 1.0


@on_device
def test_geo_on_device():
    a = torch.tensor([0.0, 48.8566], device=DEVICE)
    b = torch.tensor([0.0, 2.3522], device=DEVICE)
    d = geo.distance_km(a, b, torch.zeros(2, device=DEVICE), torch.zeros(2, device=DEVICE))
    assert d.device.type == DEVICE.type
    assert abs(float(d[0])) < 1e-6
    assert abs(float(d[1]) - 5437.0) < 15.0        # Paris to (0, 0): about 5,440 km (haversine by hand)


@pytest.fixture(scope="module")
def device_context(tmp_path_factory):
    """A tiny Context whose training tensors live on the device; run folders in a temporary folder."""
    rng = np.random.default_rng(0)
    n = 256
    lat, lon = geo.uniform_points(n, seed=5)
    emb = rng.standard_normal((n, 16)).astype(np.float32)
    base = profiles.get("smoke")
    prof = replace(base, name="device", locdiff=replace(base.locdiff, L=16, cond_dim=32, widths=(32, 16), samples=4,
                                                        ddim_steps=3),
                   baselines=replace(base.baselines, hidden=(32,), steps=1, tune_steps=1, batch_size=64, warmup=0,
                                     val_images=32, cell_max_count=(64,), label_tau_km=(75.0,), queue_negatives=16,
                                     gen_widths=(32, 16), gen_steps=1, guidance=(1.0,)))
    ctx = common.Context(prof, torch.from_numpy(emb).to(DEVICE), lat, lon, emb[:32], lat[:32], lon[:32], DEVICE)
    root = tmp_path_factory.mktemp("device-runs")
    mp = pytest.MonkeyPatch()
    mp.setattr(common, "run_dir", lambda profile, name: root / name)
    yield ctx
    mp.undo()


def _check_prediction(out: dict, n: int) -> None:
    assert out["lat"].shape == (n,) and np.isfinite(out["lat"]).all() and np.isfinite(out["lon"]).all()
    assert np.all(np.abs(out["lat"]) <= 90) and np.all((out["lon"] >= -180) & (out["lon"] < 180))


@on_device
@pytest.mark.parametrize("method", ["Classification", "Retrieval", "Regression", "Raw diffusion", "Flow matching"])
def test_one_training_step_of_each_baseline_on_device(device_context, method):
    fit = {"Classification": classification.fit, "Retrieval": retrieval.fit, "Regression": regression.fit,
           "Raw diffusion": generative.fit_raw_diffusion, "Flow matching": generative.fit_flow_matching}[method]
    fitted = fit(device_context, progress=False)
    assert fitted.train_seconds > 0
    _check_prediction(fitted.predict(device_context.val_emb[:8]), 8)


@on_device
def test_locdiff_training_step_and_sampling_on_device(device_context):
    s = device_context.profile.locdiff
    ld = experiment.build(s, 16, seed=0)
    ld.model.to(DEVICE).train()
    x0 = ld.diffusion.encode(device_context.lat[:64], device_context.lon[:64]).to(DEVICE)
    opt = torch.optim.AdamW(ld.model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    before = {k: v.detach().clone() for k, v in ld.model.state_dict().items()}
    terms = ld.diffusion.loss(ld.model, x0, device_context.emb[:64], gen)
    assert terms["loss"].device.type == DEVICE.type and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    grads = [p.grad for p in ld.model.parameters() if p.requires_grad]
    assert all(g is not None and g.device.type == DEVICE.type and torch.isfinite(g).all() for g in grads)
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in ld.model.state_dict().items())
    out = ld.predict(device_context.val_emb[:8], n=4, steps=3)
    _check_prediction(out, 8)
    assert out["sample_lat"].shape == (8, 4)
    samples = ld.sample(device_context.val_emb[:2], n=3, steps=3)
    assert samples.shape == (2, 3, (s.L + 1) ** 2) and torch.isfinite(samples).all()
