"""The shared training loop: exact resumption, checkpoint format, bad inputs."""
import json

import pytest
import torch

from locdiff import experiment, profiles
from locdiff.checkpoint import CHECKPOINT_FORMAT, read_checkpoint_config
from locdiff.train import TrainConfig, batch_indices, lr_factor, train


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Dropout(0.3), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    g = torch.Generator().manual_seed(123)
    x, y = torch.randn(200, 6, generator=g), torch.randn(200, 3, generator=g)

    def loss_fn(m, idx, gen):
        noise = 0.01 * torch.randn(len(idx), 3, generator=gen)   # uses the loop's generator
        return {"loss": ((m(x[idx]) - y[idx] - noise) ** 2).mean()}
    return model, loss_fn


def test_resume_equals_uninterrupted(tmp_path):
    n = 30
    cfg = TrainConfig(steps=2 * n, batch_size=32, lr=3e-3, warmup=5, ema_decay=0.9, log_every=5, eval_every=10,
                      checkpoint_every=n)
    a, loss_a = _problem()
    train(a, loss_a, 200, cfg, tmp_path / "a", model_config={"k": 1}, progress=False)

    b, loss_b = _problem()
    with pytest.raises(KeyboardInterrupt):
        def stop_at_n(m, idx, gen, _count=[0]):
            _count[0] += 1
            if _count[0] > n:
                raise KeyboardInterrupt          # interrupted after the checkpoint at step n
            return loss_b(m, idx, gen)
        train(b, stop_at_n, 200, cfg, tmp_path / "b", model_config={"k": 1}, progress=False)
    assert read_checkpoint_config(tmp_path / "b" / "checkpoint")["step"] == n
    c, loss_c = _problem(seed=99)               # different init: everything must come from the checkpoint
    log = train(c, loss_c, 200, cfg, tmp_path / "b", model_config={"k": 1}, resume=True, progress=False)
    for pa, pc in zip(a.parameters(), c.parameters()):
        torch.testing.assert_close(pa, pc, atol=1e-6, rtol=0)
    assert list(log.step) == list(range(5, 2 * n + 1, 5))


def test_checkpoint_format_and_refusals(tmp_path):
    model, loss_fn = _problem()
    cfg = TrainConfig(steps=4, batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
    train(model, loss_fn, 200, cfg, tmp_path, model_config={"k": 1}, progress=False)
    ck = tmp_path / "checkpoint"
    assert sorted(p.name for p in ck.iterdir()) == ["config.json", "ema.safetensors", "model.safetensors", "state.pt"]
    meta = json.loads((ck / "config.json").read_text())
    assert meta["format_version"] == CHECKPOINT_FORMAT and meta["step"] == 4
    with pytest.raises(ValueError, match="model config"):
        train(model, loss_fn, 200, cfg, tmp_path, model_config={"k": 2}, resume=True, progress=False)
    meta["format_version"] = 999
    (ck / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version 999"):
        read_checkpoint_config(ck)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, loss_fn, 8, cfg, tmp_path / "x", model_config={}, progress=False)


def test_schedule_and_batches():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0, abs=1e-12)
    epoch0 = torch.cat([batch_indices(s, 100, 10, 0) for s in range(10)])
    assert sorted(epoch0.tolist()) == list(range(100))            # one epoch visits every item once
    assert not torch.equal(batch_indices(0, 100, 10, 0), batch_indices(10, 100, 10, 0))


def test_locdiff_load_refuses_mismatches(tmp_path):
    P = profiles.get("smoke")
    s = P.locdiff
    ld = experiment.build(s, embed_dim=16)
    from locdiff.latent import Latent
    x0 = Latent(s.L).encode([0.0] * 64, [0.0] * 64)
    emb = torch.zeros(64, 16)
    cfg = TrainConfig(steps=2, batch_size=32, log_every=1, eval_every=1, checkpoint_every=1)
    from dataclasses import asdict
    train(ld.model, lambda m, idx, g: ld.diffusion.loss(m, x0[idx], emb[idx], g), 64, cfg, tmp_path,
          model_config=experiment.json_safe({"csunet": asdict(ld.model.config), "diffusion": asdict(ld.diffusion.config),
                                             "settings": asdict(s)}), progress=False)
    back = experiment.load(tmp_path)
    assert back.model.config.L == s.L
    with pytest.raises(ValueError, match="embed_dim 32 differs"):
        experiment.load(tmp_path, embed_dim=32)
    with pytest.raises(ValueError, match="L = 5 differs"):
        experiment.load(tmp_path, L=5)
    with pytest.raises(ValueError, match="emb must have shape"):
        back.predict(torch.zeros(2, 8).numpy())
    with pytest.raises(ValueError, match="guidance"):
        back.predict(torch.zeros(2, 16).numpy(), guidance=-0.5)
    with pytest.raises(ValueError, match="n \\(samples per image\\)"):
        back.predict(torch.zeros(2, 16).numpy(), n=0)


def test_fused_optimizer_takes_the_per_tensor_adamw_steps():
    """make_optimizer picks torch's fused AdamW on CPU (torch >= 2.4); its updates equal those of
    the per-tensor loop (the reference implementation) over several steps."""
    from locdiff import train as train_mod

    cfg = TrainConfig(steps=10, batch_size=8, lr=3e-3, weight_decay=0.05)
    a, _ = _problem()
    b, _ = _problem()
    fast = train_mod.make_optimizer(a, cfg)
    ref = torch.optim.AdamW(b.parameters(), lr=3e-3, weight_decay=0.05, foreach=False)
    assert fast.defaults["fused"] is True
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        grads = [torch.randn(p.shape, generator=g) for p in a.parameters()]
        for m, opt in ((a, fast), (b, ref)):
            for p, gr in zip(m.parameters(), grads):
                p.grad = gr.clone()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)


def test_resume_of_a_per_tensor_checkpoint_continues_fused(tmp_path, monkeypatch):
    """A checkpoint written with the per-tensor AdamW (locdiff before the fused kernel) resumes with
    the fused one: load_state_dict would otherwise copy the writer's fused=None into the groups."""
    from locdiff import train as train_mod

    n = 10
    cfg = TrainConfig(steps=2 * n, batch_size=32, lr=3e-3, warmup=2, ema_decay=0.9, log_every=5, eval_every=10,
                      checkpoint_every=n)
    made = []
    real = train_mod.make_optimizer
    monkeypatch.setattr(train_mod, "make_optimizer",
                        lambda m, c: made.append(torch.optim.AdamW(m.parameters(), lr=c.lr, weight_decay=c.weight_decay))
                        or made[-1])
    a, loss_a = _problem()
    train(a, loss_a, 200, TrainConfig(**{**cfg.__dict__, "steps": n}), tmp_path / "run", model_config={"k": 1},
          progress=False)
    assert made[-1].defaults["fused"] is None
    monkeypatch.setattr(train_mod, "make_optimizer", lambda m, c: made.append(real(m, c)) or made[-1])
    train(a, loss_a, 200, cfg, tmp_path / "run", model_config={"k": 1}, resume=True, progress=False)
    assert all(group["fused"] is True for group in made[-1].param_groups)
