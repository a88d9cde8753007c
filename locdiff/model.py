"""CS-UNet: the conditional SIREN UNet that denoises SHDD vectors (LocDiff's backward process).

The paper describes CS-UNet as a conditional SirenNet arranged as a UNet, conditioned on the image
embedding and the diffusion timestep, with a very high dropout rate. The details below are ours:

    c      = MLP([image embedding, sinusoidal embedding of t])                      (condition)
    h_0    = Linear(x_t)                                                            (input projection)
    d_i    = SirenBlock(d_{i-1}, c), narrowing width_0 > width_1 > ...             (kept as skips)
    m      = SirenBlock(d_last, c)                                                  (bottleneck)
    u_i    = SirenBlock([u_{i+1}, d_i], c), widening back to width_0                (skip concatenated)
    out    = Linear(up_last) -> (L+1)²

A SirenBlock is two FiLM-modulated SIREN layers, y = sin(w0 · ((1 + γ(c)) ⊙ (W x + b) + β(c))),
with SIREN initialization (Sitzmann et al. 2020: W ~ U(±√(6/n)/w0), the block's first layer
U(±1/n) when it takes raw inputs), dropout after each layer, and a residual connection (a linear
map when widths differ). γ, β start at zero, so the modulation starts as the identity.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn

from .checks import is_finite_real


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


@dataclass(frozen=True)
class CSUNetConfig:
    """Sizes of CS-UNet. ``widths`` narrow from the input projection to the bottleneck."""

    L: int = 16
    embed_dim: int = 256          # image embedding size
    widths: tuple[int, ...] = (512, 256, 128)
    cond_dim: int = 256
    time_dim: int = 128
    w0: float = 1.0               # SIREN frequency (first-layer scale of the sine)
    dropout: float = 0.3
    data_dim: int = 0             # size of x when it is not an SHDD vector (e.g. 3 for raw unit vectors)

    def __post_init__(self):
        def is_int(v):
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        if not is_int(self.L) or self.L < 0:
            raise ValueError(f"L must be a non-negative integer (the SHDD degree); got {self.L!r}")
        for name in ("embed_dim", "cond_dim"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {getattr(self, name)!r}")
        if not is_int(self.time_dim) or self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"time_dim must be an even integer >= 2 (cosine and sine halves); got {self.time_dim!r}")
        if (not isinstance(self.widths, (tuple, list)) or len(self.widths) == 0
                or not all(is_int(w) and w >= 1 for w in self.widths)):
            raise ValueError(f"widths must be a non-empty tuple of integers >= 1; got {self.widths!r}")
        if not (is_finite_real(self.w0) and 0 < self.w0 <= _FLOAT32_MAX):
            raise ValueError(f"w0 must be a positive finite number (SIREN frequency) <= {_FLOAT32_MAX:.4g} (float32); "
                             f"got {self.w0!r}")
        if not (isinstance(self.dropout, numbers.Real) and not isinstance(self.dropout, bool)
                and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must lie in [0, 1); got {self.dropout!r}")
        if not is_int(self.data_dim) or self.data_dim < 0:
            raise ValueError(f"data_dim must be an integer >= 0 (0 = SHDD vectors of size (L+1)^2); got {self.data_dim!r}")

    @property
    def dim(self) -> int:
        return self.data_dim or (self.L + 1) ** 2


def _shape(v) -> object:
    """A value's shape for an error message (its type name when it has none)."""
    return tuple(v.shape) if hasattr(v, "shape") else type(v).__name__


def _check_timesteps(t: torch.Tensor) -> None:
    """t (a tensor) must hold real timesteps, finite in float32 (the embedding's precision)."""
    if t.is_complex() or (t.is_floating_point() and not bool(torch.isfinite(t.float()).all())):
        raise ValueError(f"t must hold finite real timesteps; got {'complex' if t.is_complex() else 'NaN or inf'} "
                         f"values ({t.dtype})")


def _check_values(**tensors: torch.Tensor | None) -> None:
    """The tensors (as the model computes with them) must hold real, finite numbers; one device sync for all."""
    given = {k: v for k, v in tensors.items() if v is not None}
    for name, v in given.items():
        if v.is_complex():
            raise ValueError(f"{name} must hold real numbers; got a complex tensor ({v.dtype})")
    floating = {k: v for k, v in given.items() if v.is_floating_point()}
    dev = next(iter(floating.values())).device if floating else None
    if floating and not bool(torch.stack([torch.isfinite(v).all().to(dev) for v in floating.values()]).all()):
        name = next(k for k, v in floating.items() if not bool(torch.isfinite(v).all()))
        raise ValueError(f"{name} must be finite in the model's {floating[name].dtype}; got NaN, inf or values "
                         f"beyond its range")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t [B] -> [B, dim] (Vaswani et al. 2017)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even integer >= 2 (cosine and sine halves); got {dim!r}")
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor [B] of timesteps; got {_shape(t)}")
    _check_timesteps(t)
    if not (is_finite_real(max_period) and max_period > 0):
        raise ValueError(f"max_period must be a positive finite number; got {max_period!r}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class FiLMSiren(nn.Module):
    """y = sin(w0 · ((1 + γ(c)) ⊙ (W x + b) + β(c))), SIREN-initialized."""

    def __init__(self, d_in: int, d_out: int, cond_dim: int, w0: float, first: bool = False):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(d_in, d_out)
        bound = 1.0 / d_in if first else math.sqrt(6.0 / d_in) / w0
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -bound, bound)
        self.film = nn.Linear(cond_dim, 2 * d_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(c).chunk(2, -1)
        return torch.sin(self.w0 * ((1 + gamma) * self.linear(x) + beta))


class Dropout(nn.Module):
    """Inverted dropout: in training, y = x ⊙ m / (1 - p) with m_i ~ Bernoulli(1 - p) i.i.d., so that
    E[y] = x; in eval mode y = x. The same rule as ``nn.Dropout``, with the mask drawn as
    U(0, 1) >= p in float32 (under bf16 autocast too): on CPU, torch's ``bernoulli_`` kernel takes
    about twice as long as ``rand`` and a comparison, a tenth of a LocDiff training step at L = 16."""

    def __init__(self, p: float):
        super().__init__()
        if not (isinstance(p, numbers.Real) and not isinstance(p, bool) and 0 <= p < 1):
            raise ValueError(f"p must lie in [0, 1) (the dropout rate); got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SirenBlock(nn.Module):
    """Two FiLM-SIREN layers with dropout and a residual connection."""

    def __init__(self, d_in: int, d_out: int, cond_dim: int, w0: float, dropout: float):
        super().__init__()
        self.l1 = FiLMSiren(d_in, d_out, cond_dim, w0)
        self.l2 = FiLMSiren(d_out, d_out, cond_dim, w0)
        self.drop = Dropout(dropout)
        self.skip = nn.Identity() if d_in == d_out else nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.l1(x, c))
        h = self.drop(self.l2(h, c))
        return self.skip(x) + h


class Denoiser(nn.Module):
    """What every denoiser shares: the condition c = MLP([embedding, timestep embedding]) and the
    learned null embedding that stands for "no image" (classifier-free guidance)."""

    def __init__(self, config: CSUNetConfig):
        super().__init__()
        self.config = cfg = config
        self.cond = nn.Sequential(nn.Linear(cfg.embed_dim + cfg.time_dim, cfg.cond_dim), nn.SiLU(),
                                  nn.Linear(cfg.cond_dim, cfg.cond_dim), nn.SiLU())
        self.null_embedding = nn.Parameter(torch.zeros(cfg.embed_dim))   # the "no image" condition

    def check_inputs(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor | None,
                     drop_cond: torch.Tensor | None):
        """ValueError naming the argument when x, t, emb or drop_cond do not fit the model's sizes, hold
        NaN, inf or complex values, or drop_cond is not bool. Returns (x, emb) in the model's dtype."""
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != cfg.dim:
            raise ValueError(f"x must be a tensor of shape [B, {cfg.dim}]; got {_shape(x)}")
        B = x.shape[0]
        if not isinstance(t, torch.Tensor) or t.shape != (B,):
            raise ValueError(f"t must be a tensor of shape [B] = [{B}] (one timestep per row of x); got {_shape(t)}")
        if emb is not None and (not isinstance(emb, torch.Tensor) or emb.shape != (B, cfg.embed_dim)):
            raise ValueError(f"emb must be None or a tensor of shape [B, {cfg.embed_dim}] = [{B}, {cfg.embed_dim}]; "
                             f"got {_shape(emb)}")
        if drop_cond is not None and (not isinstance(drop_cond, torch.Tensor) or drop_cond.shape != (B,)):
            raise ValueError(f"drop_cond must be None or a bool tensor of shape [B] = [{B}]; got {_shape(drop_cond)}")
        if drop_cond is not None and drop_cond.dtype != torch.bool:
            raise ValueError(f"drop_cond must be None or a bool tensor of shape [B] = [{B}]; got dtype "
                             f"{drop_cond.dtype}")
        for name, v in (("x", x), ("t", t), ("emb", emb)):
            if v is not None and v.is_complex():
                raise ValueError(f"{name} must hold real numbers; got a complex tensor ({v.dtype})")
        dtype = self.null_embedding.dtype
        x, emb = x.to(dtype), (emb.to(dtype) if emb is not None else None)
        _check_values(x=x, t=t.float() if t.is_floating_point() else t, emb=emb)   # as timestep_embedding sees t
        return x, emb

    def condition(self, t: torch.Tensor, emb: torch.Tensor | None, drop_cond: torch.Tensor | None,
                  batch: int) -> torch.Tensor:
        """c [B, cond_dim]; emb None means unconditional; drop_cond [B] bool replaces the marked
        rows' embeddings by the null embedding."""
        null = self.null_embedding.expand(batch, -1)
        if emb is None:
            emb = null
        elif drop_cond is not None:
            emb = torch.where(drop_cond[:, None], null, emb)
        return self.cond(torch.cat([emb, timestep_embedding(t, self.config.time_dim)], -1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CSUNet(Denoiser):
    """Predicts x0, ε or v (see ``diffusion``) from x_t [B, D], t [B] and embeddings [B, E]."""

    def __init__(self, config: CSUNetConfig):
        if len(config.widths) < 2:
            raise ValueError(f"widths must have at least two entries (input width, bottleneck); got {config.widths}")
        super().__init__(config)
        cfg = config
        self.inp = FiLMSiren(cfg.dim, cfg.widths[0], cfg.cond_dim, cfg.w0, first=True)
        w = cfg.widths
        self.down = nn.ModuleList(SirenBlock(w[i], w[i + 1], cfg.cond_dim, cfg.w0, cfg.dropout)
                                  for i in range(len(w) - 1))
        self.mid = SirenBlock(w[-1], w[-1], cfg.cond_dim, cfg.w0, cfg.dropout)
        self.up = nn.ModuleList(SirenBlock(2 * w[i + 1], w[i], cfg.cond_dim, cfg.w0, cfg.dropout)
                                for i in reversed(range(len(w) - 1)))
        self.out = nn.Linear(w[0], cfg.dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor | None,
                drop_cond: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, D], t [B] int, emb [B, E] or None (unconditional); drop_cond [B] bool replaces
        the embedding of the marked rows by the learned null embedding (classifier-free guidance)."""
        x, emb = self.check_inputs(x, t, emb, drop_cond)
        c = self.condition(t, emb, drop_cond, x.shape[0])
        h = self.inp(x, c)
        skips = []
        for block in self.down:
            h = block(h, c)
            skips.append(h)                      # widths w1, ..., w_last
        h = self.mid(h, c)
        for block in self.up:                    # deepest first: concatenate the matching skip
            h = block(torch.cat([h, skips.pop()], -1), c)
        return self.out(h)


class PlainMLP(Denoiser):
    """The ablation's baseline denoiser: an MLP with ReLU, no sine activations and no skip
    connections; the condition (embedding + timestep, same ``cond`` network as CS-UNet) is
    concatenated to the input. Same interface and widths as ``CSUNet``."""

    def __init__(self, config: CSUNetConfig):
        super().__init__(config)
        cfg = config
        w = (cfg.dim + cfg.cond_dim,) + tuple(cfg.widths) + tuple(reversed(cfg.widths[:-1]))
        layers = []
        for a, b in zip(w[:-1], w[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(), Dropout(cfg.dropout)]
        self.body = nn.Sequential(*layers, nn.Linear(w[-1], cfg.dim))

    def forward(self, x, t, emb, drop_cond=None):
        x, emb = self.check_inputs(x, t, emb, drop_cond)
        return self.body(torch.cat([x, self.condition(t, emb, drop_cond, x.shape[0])], -1))
