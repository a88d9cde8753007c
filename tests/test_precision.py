"""locdiff.precision: the choice of bf16 autocast, and what runs in which dtype under it."""
import pytest
import torch

from locdiff import precision
from locdiff.train import TrainConfig


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return {w for line in f if line.startswith("flags") for w in line.split(":", 1)[1].split()}
    except OSError:
        return set()


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", None, 16, True])
def test_unknown_mode_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, no"):
        precision.resolve(bad)
    with pytest.raises(ValueError, match="mixed_precision must be one of auto, bf16, no"):
        TrainConfig(mixed_precision=bad)


def test_forced_modes_do_not_depend_on_the_hardware():
    assert precision.resolve("bf16", "cpu") == "bf16"
    assert precision.resolve("no", "cpu") == "no"


@pytest.mark.skipif(not _cpu_flags(), reason="/proc/cpuinfo not readable (not Linux)")
def test_auto_follows_the_cpu_flags():
    """The oracle: the kernel's list of CPU features (avx512_bf16 or amx_bf16 mean native bf16)."""
    native = bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert precision.native_bf16("cpu") == native
    assert precision.resolve("auto", "cpu") == ("bf16" if native else "no")


def test_autocast_runs_products_in_bf16_and_leaves_elementwise_float32():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with precision.autocast("bf16", "cpu"):
        y = lin(x)
        z = x * 2.0 + 1.0
    assert y.dtype == torch.bfloat16 and z.dtype == torch.float32
    # within bf16's rounding of the float32 product (8-bit mantissa: relative error <= 2^-8 per rounding)
    ref = lin(x)
    assert torch.allclose(y.float(), ref, rtol=2e-2, atol=2e-2)
    with precision.autocast("no", "cpu"):
        assert lin(x).dtype == torch.float32


@pytest.mark.parametrize("mode, expected", [("bf16", torch.bfloat16), ("no", torch.float32), ("bf16", torch.bfloat16)])
def test_training_loop_computes_the_forward_at_the_configured_precision(tmp_path, mode, expected):
    from locdiff.train import train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    seen = []
    model[0].register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    x, y = torch.randn(64, 4), torch.randn(64, 1)

    def loss_fn(m, idx, gen):
        out = m(x[idx]).float()
        return {"loss": ((out - y[idx]) ** 2).mean()}

    cfg = TrainConfig(steps=3, batch_size=16, log_every=1, eval_every=10, checkpoint_every=10, warmup=0,
                      mixed_precision=mode)
    log = train(model, loss_fn, 64, cfg, tmp_path / "run", model_config={"k": 1}, progress=False)
    assert seen and set(seen) == {expected}
    assert log["loss"].notna().all()
    assert all(p.dtype == torch.float32 for p in model.parameters())   # the weights stay float32


def test_shdd_kl_keeps_float32_products_under_autocast():
    """The divergence's logarithms need float32: under bf16 autocast it equals its float32 value."""
    from locdiff.diffusion import Diffusion, DiffusionConfig

    d = Diffusion(DiffusionConfig(), L=8)
    x0 = d.encode([10.0, -40.0], [20.0, 100.0])
    x0_hat = x0 + 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    ref = d.shdd_kl(x0, x0_hat)
    with precision.autocast("bf16", "cpu"):
        got = d.shdd_kl(x0, x0_hat)
    assert got.dtype == torch.float32 and torch.equal(got, ref)


def test_classification_targets_keep_float32_distances_under_autocast():
    """bf16 cosines would blur the haversine label smoothing by hundreds of km: the targets must
    equal their float32 values under autocast."""
    from locdiff.baselines.classification import smoothed_targets

    g = torch.Generator().manual_seed(0)
    y = torch.nn.functional.normalize(torch.randn(16, 3, generator=g), dim=1)
    cells = torch.nn.functional.normalize(torch.randn(300, 3, generator=g), dim=1)
    ref = smoothed_targets(y, cells, 75.0)
    with precision.autocast("bf16", "cpu"):
        got = smoothed_targets(y, cells, 75.0)
    assert got.dtype == torch.float32 and torch.equal(got, ref)
