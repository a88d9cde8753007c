"""Numeric precision of the networks' matrix products: bfloat16 autocast where the hardware has it.

``"auto"`` computes the networks' linear layers in bfloat16 (8-bit mantissa, float32's range) on
devices with native bfloat16 arithmetic: CUDA GPUs that support it, and CPUs with AVX512-BF16 or
AMX tiles, where oneDNN runs them about twice as fast as float32 (measured on 2 cores of an
AVX512-BF16 EPYC: a 256 x 4225 x 512 product 6.3 ms in float32, 3.1 ms under autocast). Elsewhere
bfloat16 would be emulated, slower than float32, so ``"auto"`` keeps float32 there. ``"bf16"``
forces autocast, ``"no"`` forces float32.

Under autocast only the products run in bfloat16: weights, optimizer states, the EMA, the loss and
the samplers' updates stay float32 (torch's autocast op lists), so a model trained either way loads
and samples either way. The two do not give bit-identical numbers: a run is reproducible on the
same kind of machine, not across machines of different precision.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["MODES", "check", "native_bf16", "resolve", "autocast"]

MODES = ("auto", "bf16", "no")


def check(mode, name: str = "precision") -> str:
    """``mode`` itself when it is one of ``MODES``, else ValueError naming ``name``."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{name} must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 products natively (not emulated)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(p()) for p in probes if callable(p))
    return False


def resolve(mode: str, device: str | torch.device = "cpu") -> str:
    """``"bf16"`` or ``"no"``: ``mode`` with ``"auto"`` decided by ``native_bf16(device)``."""
    check(mode)
    if mode == "auto":
        return "bf16" if native_bf16(device) else "no"
    return mode


def autocast(mode: str, device: str | torch.device = "cpu"):
    """A context in which the networks' products run at the precision ``resolve(mode, device)``."""
    kind = torch.device(device).type
    if resolve(mode, device) == "bf16" and kind in ("cpu", "cuda"):
        return torch.autocast(kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()
