"""CS-UNet (locdiff.model): shapes, the FiLM-SIREN layer against its formula, conditioning that
changes the output, the learned null embedding, and gradients that reach every layer."""
from __future__ import annotations

import math

import pytest
import torch

from locdiff.model import CSUNet, CSUNetConfig, FiLMSiren, PlainMLP, timestep_embedding


def _net(arch=CSUNet, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = CSUNetConfig(**{"L": 4, "embed_dim": 6, "widths": (32, 16, 8), "cond_dim": 12, "time_dim": 8,
                          "dropout": 0.0, **kw})
    return arch(cfg).eval()


def _wake_film(net: torch.nn.Module, seed: int = 1) -> None:
    """FiLM starts at zero (γ = β = 0, the identity); give it random weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, FiLMSiren):
            m.film.weight.data = 0.3 * torch.randn(m.film.weight.shape, generator=g)
            m.film.bias.data = 0.3 * torch.randn(m.film.bias.shape, generator=g)
    net.null_embedding.data = torch.randn(net.null_embedding.shape, generator=g)


def _inputs(B=5, D=25, E=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g), torch.randint(0, 1000, (B,), generator=g), torch.randn(B, E, generator=g)


@pytest.mark.parametrize("arch", [CSUNet, PlainMLP])
@pytest.mark.parametrize("L,data_dim,D", [(4, 0, 25), (0, 3, 3), (7, 0, 64)])
def test_output_has_the_input_shape(arch, L, data_dim, D):
    net = _net(arch, L=L, data_dim=data_dim)
    x, t, e = _inputs(D=D)
    assert net(x, t, e).shape == (5, D) and net(x, t, None).shape == (5, D)


def test_film_siren_layer_is_its_formula():
    """y = sin(w0 ((1 + γ(c)) ⊙ (W x + b) + β(c))), [γ, β] = film(c), computed by hand."""
    torch.manual_seed(0)
    layer = FiLMSiren(7, 5, 3, w0=2.5)
    torch.nn.init.normal_(layer.film.weight)
    x, c = torch.randn(4, 7), torch.randn(4, 3)
    W, b = layer.linear.weight, layer.linear.bias
    F = c @ layer.film.weight.T + layer.film.bias
    gamma, beta = F[:, :5], F[:, 5:]
    expected = torch.sin(2.5 * ((1 + gamma) * (x @ W.T + b) + beta))
    torch.testing.assert_close(layer(x, c), expected)


def test_siren_initialisation_bounds():
    """SIREN init (Sitzmann et al. 2020): |W| ≤ √(6/n)/w0 inside, ≤ 1/n for the first layer on raw inputs."""
    net = _net(w0=3.0)
    n_in = net.inp.linear.in_features
    assert net.inp.linear.weight.abs().max() <= 1.0 / n_in
    for block in net.down:
        n = block.l1.linear.in_features
        assert block.l1.linear.weight.abs().max() <= math.sqrt(6.0 / n) / 3.0


def test_timestep_embedding_closed_form():
    t = torch.tensor([0, 1, 17, 999])
    dim, half = 8, 4
    freqs = torch.tensor([10_000.0 ** (-i / half) for i in range(half)])
    expected = torch.cat([torch.cos(t[:, None].float() * freqs), torch.sin(t[:, None].float() * freqs)], -1)
    torch.testing.assert_close(timestep_embedding(t, dim), expected)


def test_film_starts_as_the_identity_then_conditioning_changes_the_output():
    net = _net()
    x, t, e = _inputs()
    assert torch.equal(net(x, t, e), net(x, t, torch.randn_like(e)))     # γ = β = 0 at initialization
    _wake_film(net)
    assert not torch.allclose(net(x, t, e), net(x, t, torch.randn_like(e)))
    assert not torch.allclose(net(x, t, e), net(x, t + 100, e))           # the timestep conditions too


def test_the_null_embedding_stands_for_no_image():
    net = _net()
    _wake_film(net)
    x, t, e = _inputs()
    uncond = net(x, t, None)
    every = torch.ones(5, dtype=torch.bool)
    torch.testing.assert_close(net(x, t, e, drop_cond=every), uncond)
    torch.testing.assert_close(net(x, t, torch.randn_like(e), drop_cond=every), uncond)
    some = torch.tensor([True, False, True, False, False])
    mixed, cond = net(x, t, e, drop_cond=some), net(x, t, e)
    torch.testing.assert_close(mixed[some], uncond[some])
    torch.testing.assert_close(mixed[~some], cond[~some])


def test_gradients_reach_every_layer():
    """After the FiLM layers leave zero (as after a first step), one loss sends a non-zero gradient
    to every parameter, the null embedding included (some rows dropped)."""
    net = _net(dropout=0.3).train()
    _wake_film(net)
    x, t, e = _inputs(B=16)
    drop = torch.arange(16) % 3 == 0
    (net(x, t, e, drop_cond=drop) ** 2).mean().backward()
    dead = [name for name, p in net.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, f"no gradient reaches {dead}"


def test_dropout_acts_in_training_only():
    net = _net(dropout=0.5)
    _wake_film(net)
    x, t, e = _inputs()
    assert torch.equal(net(x, t, e), net(x, t, e))
    net.train()
    torch.manual_seed(1)
    a = net(x, t, e)
    torch.manual_seed(2)
    assert not torch.allclose(a, net(x, t, e))


def test_skip_connections_carry_the_downward_path():
    """Each up block takes [its input, the matching down block's output]: twice the narrower width."""
    net = _net(widths=(32, 16, 8))
    assert [b.l1.linear.in_features for b in net.up] == [16, 32]
    assert [b.l2.linear.out_features for b in net.up] == [16, 32]
    assert net.out.in_features == 32 and net.out.out_features == 25
