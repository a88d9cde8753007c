"""The input audit: every public function and CLI subcommand, what it accepts, and the error it gives
otherwise, kept in ONE list (``AUDIT``) that is both tested and rendered into docs/INPUT_CHECKS.md.

Each row names an API, one argument, what the argument accepts, and a call with a bad value. The
parametrized test runs the call and checks the exception type, that the message names the argument
(as a whole word) and, where there is an allowed range or set, that the message states it. CLI rows
run ``locdiff.cli.main`` in the test's process (the console script itself is exercised by
tests/test_pipeline.py) and expect exit code 2 with ``locdiff <cmd>: error: ...`` (or argparse's
``error:``) on stderr, and no traceback.

Regenerate the documentation table after editing ``AUDIT``:

    .venv/bin/python tests/test_input_audit.py --write      # or: ... > docs/INPUT_CHECKS.md
"""
from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Union

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))          # for `python tests/test_input_audit.py`
from conftest import make_tiles as _tiles  # noqa: E402

from locdiff import (compare, datasets, diffusion, divergence, evaluate, experiment, geo, latent, model,  # noqa: E402
                     parallel, pipeline, profiles, samplers, shdd)
from locdiff.train import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "INPUT_CHECKS.md"
NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Row:
    """One audited argument: ``bad`` is a zero-argument call (Python API) or the command-line
    arguments after ``locdiff`` (CLI, with ``{tmp}`` and ``{weights}`` filled in by the test)."""

    api: str                                   # "geo.distance_km", "pipeline.LocDiffPipeline.predict", "locdiff tile"
    argument: str                              # the argument, as the documentation names it
    accepts: str                               # what it accepts (Markdown)
    bad: Union[Callable[[], object], tuple]    # a call that must fail, or CLI arguments
    error: type = ValueError                   # the exception (CLI rows: ignored, exit code 2)
    allowed: str = ""                          # text of the allowed range / set the message must contain
    named: str = ""                            # what the message calls the argument, when not ``argument``
    xfail: str = ""                            # a known gap owned elsewhere (the test is a strict xfail)

    @property
    def is_cli(self) -> bool:
        return isinstance(self.bad, tuple)

    @property
    def name_in_message(self) -> str:
        return self.named or self.argument


# ----------------------------------------------------------------------------- helpers for the rows
_SHARED: dict = {}


def pipe() -> pipeline.LocDiffPipeline:
    """The small untrained pipeline of tests/test_pipeline.py (set by the module fixture below)."""
    return _SHARED["pipe"]


def tile() -> np.ndarray:
    return _tiles(1)[0]


def enc(L: int = 4) -> torch.Tensor:
    """One SHDD vector of degree L (a valid input to mutate)."""
    return shdd.encode(10.0, 20.0, L)


def user_folder() -> Path:
    """A folder of the user's (one file in it), in the test's working folder."""
    folder = Path.cwd() / "mydocs"
    folder.mkdir(exist_ok=True)
    (folder / "thesis.txt").write_text("years of work")
    return folder


def with_nan(a: torch.Tensor) -> torch.Tensor:
    a = a.clone()
    a[..., 1] = NAN
    return a


def with_env(var: str, value: str, call: Callable[[], object]) -> Callable[[], object]:
    """``call`` run with the environment variable set (restored afterwards)."""
    def run():
        old = os.environ.get(var)
        os.environ[var] = value
        try:
            return call()
        finally:
            if old is None:
                del os.environ[var]
            else:
                os.environ[var] = old
    return run


def net(**kw) -> model.CSUNet:
    return model.CSUNet(model.CSUNetConfig(**{**dict(L=2, embed_dim=8, widths=(16, 8), cond_dim=8, time_dim=8), **kw}))


def diff(T: int = 10, L: int = 2) -> diffusion.Diffusion:
    return diffusion.Diffusion(diffusion.DiffusionConfig(T=T), L)


def results() -> pd.DataFrame:
    rows = evaluate.result_rows("smoke", "m", "test_iid", np.zeros(20), np.zeros(20), np.ones(20), np.ones(20), n_boot=10)
    return pd.DataFrame(rows, columns=list(evaluate.RESULT_COLUMNS))


def t0(B: int = 1) -> torch.Tensor:
    return torch.zeros(B, dtype=torch.long)


LAT = "degrees in [-90, 90], finite"
LON = "degrees, any finite value (wrapped into [-180, 180))"
KM_D = "1-D, non-empty, finite distances >= 0 (km)"
COEFFS = "[D] or [N, D] real numbers, D = (L+1)² (a perfect square), finite"

# ----------------------------------------------------------------------------- the audit
AUDIT: list[Row] = [
    # ---- geo
    Row("geo.distance_km", "lat1", LAT, lambda: geo.distance_km(95, 0, 0, 0), allowed="[-90, 90]"),
    Row("geo.distance_km", "lat2", LAT, lambda: geo.distance_km(0, 0, NAN, 0), allowed="[-90, 90]"),
    Row("geo.distance_km", "lon1", LON, lambda: geo.distance_km(0, INF, 0, 0), allowed="finite"),
    Row("geo.distance_km", "lon2", LON, lambda: geo.distance_km(0, 0, 0, torch.tensor([0.0, NAN])), allowed="finite"),
    Row("geo.distance_km", "lat1", "numbers (not strings)", lambda: geo.distance_km("north", 0, 0, 0),
        allowed="numeric"),
    Row("geo.distance_km", "lat1", "shapes that broadcast with lon1, lat2, lon2",
        lambda: geo.distance_km([0, 1], [0, 1, 2], 0, 0), allowed="broadcast"),
    Row("geo.distance_km", "radius_km", "a positive finite number (km)",
        lambda: geo.distance_km(0, 0, 1, 1, radius_km=-1), allowed="positive finite"),
    Row("geo.central_angle", "lat2", LAT, lambda: geo.central_angle(0, 0, -90.5, 0), allowed="[-90, 90]"),
    Row("geo.validate_lat", "lat", LAT, lambda: geo.validate_lat(np.array([0.0, -91.0])), allowed="[-90, 90]"),
    Row("geo.wrap_lon", "lon", LON, lambda: geo.wrap_lon([NAN]), allowed="finite"),
    Row("geo.validate_latlon", "lat", "shapes that broadcast with lon",
        lambda: geo.validate_latlon(np.zeros(2), np.zeros(3)), allowed="broadcast"),
    Row("geo.latlon_to_xyz", "lat", LAT, lambda: geo.latlon_to_xyz(torch.tensor([91.0]), 0.0), allowed="[-90, 90]"),
    Row("geo.latlon_to_xyz", "lon", LON, lambda: geo.latlon_to_xyz(0.0, -INF), allowed="finite"),
    Row("geo.xyz_to_latlon", "xyz", "[..., 3], finite, no zero vectors (normalized first)",
        lambda: geo.xyz_to_latlon([0.0, 0.0, 0.0]), allowed="zero vectors"),
    Row("geo.xyz_to_latlon", "xyz", "[..., 3], finite, no zero vectors (normalized first)",
        lambda: geo.xyz_to_latlon([1.0, 0.0]), allowed="size 3"),
    Row("geo.xyz_to_latlon", "xyz", "[..., 3], finite, no zero vectors (normalized first)",
        lambda: geo.xyz_to_latlon([NAN, 0.0, 1.0]), allowed="finite"),
    Row("geo.grid_axes", "resolution_deg", "a number in (0, 90] (degrees)", lambda: geo.grid_axes(0.0),
        allowed="(0, 90]"),
    Row("geo.uniform_points", "n", "an integer >= 0", lambda: geo.uniform_points(2.5), allowed="non-negative integer"),
    Row("geo.uniform_points", "seed", "an integer >= 0", lambda: geo.uniform_points(3, seed="a"),
        allowed="non-negative integer"),
    Row("geo.destination", "lat", LAT, lambda: geo.destination(100, 0, 0, 10), allowed="[-90, 90]"),
    Row("geo.destination", "bearing_deg", "finite degrees (clockwise from north)",
        lambda: geo.destination(0, 0, NAN, 10), allowed="finite"),
    Row("geo.destination", "distance_km", "finite km (negative goes backwards)",
        lambda: geo.destination(0, 0, 0, INF), allowed="finite"),
    Row("geo.destination", "radius_km", "a positive finite number (km)",
        lambda: geo.destination(0, 0, 0, 10, radius_km=0), allowed="positive finite"),
    Row("geo.mean_location", "lat", "at least one point; unit vectors that do not cancel out",
        lambda: geo.mean_location([0.0, 0.0], [0.0, 180.0]), allowed="cancel out"),
    Row("geo.mean_location", "lat", "at least one point; unit vectors that do not cancel out",
        lambda: geo.mean_location([], []), allowed="at least one point"),
    Row("geo.accuracy", "d_km", KM_D, lambda: geo.accuracy([1.0, -2.0]), allowed="non-negative"),
    Row("geo.accuracy", "d_km", KM_D, lambda: geo.accuracy([]), allowed="non-empty"),
    Row("geo.accuracy", "thresholds", "non-empty, positive finite km",
        lambda: geo.accuracy([1.0], thresholds=[0.0]), allowed="positive finite"),
    Row("geo.median_error", "d_km", KM_D, lambda: geo.median_error([NAN]), allowed="finite"),
    Row("geo.mean_error", "d_km", KM_D, lambda: geo.mean_error(torch.tensor([-1.0])), allowed="non-negative"),
    Row("geo.geoscore", "d_km", KM_D, lambda: geo.geoscore(3.0), allowed="1-D"),
    Row("geo.summarize", "d_km", KM_D, lambda: geo.summarize([1.0, INF]), allowed="finite"),
    # ---- shdd
    Row("shdd.num_coeffs", "L", "an integer in [0, 10000]", lambda: shdd.num_coeffs(-1), allowed="non-negative integer"),
    Row("shdd.degree_of", "n_coeffs", "a perfect square >= 1 (an integer)", lambda: shdd.degree_of(5),
        allowed="(L+1)^2", named="coeffs"),
    Row("shdd.peak_value", "L", "an integer in [0, 10000]", lambda: shdd.peak_value(2.0), allowed="non-negative integer"),
    Row("shdd.peak_half_width", "L", "an integer in [0, 10000]", lambda: shdd.peak_half_width(True),
        allowed="non-negative integer"),
    Row("shdd.encode", "lat", LAT, lambda: shdd.encode(np.array([0.0, 90.5]), 0.0, 4), allowed="[-90, 90]"),
    Row("shdd.encode", "lat", LAT, lambda: shdd.encode(torch.tensor([NAN]), torch.tensor([0.0]), 4), allowed="finite"),
    Row("shdd.encode", "lon", LON, lambda: shdd.encode(0.0, np.array([INF]), 4), allowed="finite"),
    Row("shdd.encode", "lat", "shapes that broadcast with lon", lambda: shdd.encode([1.0, 2.0], [1.0, 2.0, 3.0], 4),
        allowed="broadcast"),
    Row("shdd.encode", "L", "an integer in [0, 10000]", lambda: shdd.encode(0.0, 0.0, 2.5), allowed="non-negative integer"),
    Row("shdd.encode", "dtype", "None or a floating torch dtype", lambda: shdd.encode(0.0, 0.0, 2, dtype=torch.int64),
        allowed="floating"),
    Row("shdd.decode", "coeffs", COEFFS, lambda: shdd.decode(torch.zeros(5)), allowed="(L+1)^2"),
    Row("shdd.decode", "coeffs", COEFFS, lambda: shdd.decode(torch.zeros(2, 2, 4)), allowed="[N, D]"),
    Row("shdd.decode", "coeffs", COEFFS, lambda: shdd.decode(with_nan(enc())), allowed="finite"),
    Row("shdd.decode", "coeffs", COEFFS + "; degree L >= 1", lambda: shdd.decode(torch.ones(1)), allowed="L >= 1"),
    Row("shdd.decode", "coeffs", COEFFS, lambda: shdd.decode(["a", "b", "c", "d"]), allowed="numeric"),
    Row("shdd.decode", "k", "an integer >= 1", lambda: shdd.decode(enc(), k=0), allowed=">= 1"),
    Row("shdd.decode", "taper", "'gauss', 'hann', 'none' or None", lambda: shdd.decode(enc(), taper="box"),
        allowed="'gauss', 'hann' or None"),
    Row("shdd.decode", "taper_width", "a number in [0.001, 1000]", lambda: shdd.decode(enc(), taper_width=0.0),
        allowed="positive finite"),
    Row("shdd.decode", "oversample", "an integer >= 1", lambda: shdd.decode(enc(), oversample=0), allowed=">= 1"),
    Row("shdd.decode", "refine_iters", "an integer >= 0", lambda: shdd.decode(enc(), refine_iters=-1), allowed=">= 0"),
    Row("shdd.decode", "min_separation_deg", "None or degrees in [0, 180]",
        lambda: shdd.decode(enc(), k=2, min_separation_deg=NAN), allowed="[0, 180]"),
    Row("shdd.decode", "chunk", "an integer >= 1", lambda: shdd.decode(enc(), chunk=0), allowed=">= 1"),
    Row("shdd.decode", "k", "an integer in [1, max_modes(L, oversample, min_separation_deg)]",
        lambda: shdd.decode(enc(16), k=100_000), allowed="<= 66"),
    Row("shdd.decode", "coeffs", COEFFS + "; not a constant field (some coefficient of degree >= 1 non-zero)",
        lambda: shdd.decode(torch.zeros(2, 25)), allowed="constant field"),
    Row("shdd.max_modes", "L", "an integer in [0, 10000]", lambda: shdd.max_modes(-1), allowed="non-negative integer"),
    Row("shdd.field", "coeffs", COEFFS, lambda: shdd.field(torch.zeros(3, 10), 0.0, 0.0), allowed="(L+1)^2"),
    Row("shdd.field", "lat", LAT, lambda: shdd.field(enc(), 95.0, 0.0), allowed="[-90, 90]"),
    Row("shdd.field", "lon", LON, lambda: shdd.field(enc(), [5.0], [NAN], grid=True), allowed="finite"),
    Row("shdd.field", "lat", "shapes that broadcast with lon (grid=False)",
        lambda: shdd.field(enc(), [1.0, 2.0], [1.0, 2.0, 3.0]), allowed="broadcast"),
    Row("shdd.field_pairs", "lat", "[N, k] degrees, N = rows of coeffs, in [-90, 90]",
        lambda: shdd.field_pairs(shdd.encode([0.0, 1.0], [0.0, 1.0], 4), [1.0, 2.0], [1.0, 2.0]), allowed="[N, k]"),
    Row("shdd.field_pairs", "taper_width", "a number in [0.001, 1000]",
        lambda: shdd.field_pairs(enc()[None], [[0.0]], [[0.0]], taper_width=-1.0), allowed="positive finite"),
    Row("shdd.density", "coeffs", COEFFS, lambda: shdd.density(with_nan(enc())), allowed="finite"),
    Row("shdd.density", "method", "'softmax' or 'clamp'", lambda: shdd.density(enc(), method="relu"),
        allowed="'softmax' or 'clamp'"),
    Row("shdd.density", "temperature", "a positive finite number", lambda: shdd.density(enc(), temperature=0.0),
        allowed="positive finite"),
    Row("shdd.density", "eps", "a positive finite number", lambda: shdd.density(enc(), method="clamp", eps=INF),
        allowed="positive finite"),
    Row("shdd.density", "oversample", "an integer >= 1", lambda: shdd.density(enc(), oversample=0), allowed=">= 1"),
    Row("shdd.taper_weights", "L", "an integer in [0, 10000]", lambda: shdd.taper_weights(-2), allowed="non-negative integer"),
    Row("shdd.taper_weights", "taper", "'gauss', 'hann', 'none' or None", lambda: shdd.taper_weights(4, "cosine"),
        allowed="'gauss', 'hann' or None"),
    Row("shdd.taper_weights", "width", "a number in [0.001, 1000]", lambda: shdd.taper_weights(4, width="wide"),
        allowed="positive finite"),
    Row("shdd.grid", "oversample", "an integer >= 1", lambda: shdd.grid(4, 1.5), allowed=">= 1"),
    Row("shdd.Grid", "nlat", "an integer >= 2", lambda: shdd.Grid(4, 1), allowed=">= 2"),
    Row("shdd.Grid", "nlat", "an integer >= 2", lambda: shdd.Grid(4, 10.5), allowed="integer"),
    Row("shdd.Grid", "nlon", "None (2·nlat) or an integer > 2L", lambda: shdd.Grid(4, 10, 8), allowed="> 2L"),
    Row("shdd.Grid.synthesize", "coeffs", "a tensor [N, (L+1)²] with the grid's L",
        lambda: shdd.Grid(4, 10).synthesize(torch.zeros(25)), allowed="[N, (L+1)^2]"),
    Row("shdd.Grid.synthesize", "coeffs", "a tensor [N, (L+1)²] with the grid's L",
        lambda: shdd.Grid(4, 10).synthesize(torch.zeros(1, 16)), allowed="L = 4"),
    # ---- diffusion
    Row("diffusion.DiffusionConfig", "T", "an integer >= 2", lambda: diffusion.DiffusionConfig(T=10.5), allowed=">= 2"),
    Row("diffusion.DiffusionConfig", "schedule", "'cosine' or 'linear'",
        lambda: diffusion.DiffusionConfig(schedule="sigmoid"), allowed="'cosine' or 'linear'"),
    Row("diffusion.DiffusionConfig", "prediction", "'x0', 'eps' or 'v'",
        lambda: diffusion.DiffusionConfig(prediction="score"), allowed="'x0', 'eps', 'v'"),
    Row("diffusion.DiffusionConfig", "loss", "'mse', 'shdd_kl' or 'mse+kl'", lambda: diffusion.DiffusionConfig(loss="l1"),
        allowed="'mse', 'shdd_kl', 'mse+kl'"),
    Row("diffusion.DiffusionConfig", "kl_weight", "a finite number >= 0",
        lambda: diffusion.DiffusionConfig(kl_weight=-1.0), allowed=">= 0"),
    Row("diffusion.DiffusionConfig", "kl_width", "a number in [0.001, 1000]",
        lambda: diffusion.DiffusionConfig(kl_width=0.0), allowed="[0.001, 1000]"),
    Row("diffusion.DiffusionConfig", "schedule_shift", "a number in [0.001, 1000]",
        lambda: diffusion.DiffusionConfig(schedule_shift=NAN), allowed="[0.001, 1000]"),
    Row("diffusion.DiffusionConfig", "spectrum", "'flat', 'heat' or 'band'",
        lambda: diffusion.DiffusionConfig(spectrum="pink"), allowed="'flat', 'heat', 'band'"),
    Row("diffusion.DiffusionConfig", "spectrum_width", "a number in [0.001, 1000]",
        lambda: diffusion.DiffusionConfig(spectrum_width=-1.0), allowed="[0.001, 1000]"),
    Row("diffusion.DiffusionConfig", "band_weight", "'flat' or 'band'",
        lambda: diffusion.DiffusionConfig(band_weight="l2"), allowed="'flat', 'band'"),
    Row("divergence.shdd_kl", "floor", "a number in (0, 1)",
        lambda: divergence.shdd_kl(torch.zeros(1, 4), torch.zeros(1, 4), floor=2.0), allowed="(0, 1)"),
    Row("diffusion.DiffusionConfig", "p_uncond", "a number in [0, 1)", lambda: diffusion.DiffusionConfig(p_uncond=NAN),
        allowed="[0, 1)"),
    Row("diffusion.alpha_bar", "T", "an integer >= 1", lambda: diffusion.alpha_bar(0), allowed=">= 1"),
    Row("latent.degrees", "L", "an integer in [0, 10000]", lambda: latent.degrees(-1), allowed="non-negative integer"),
    Row("latent.spectral_weights", "spectrum", "'flat', 'heat' or 'band'",
        lambda: latent.spectral_weights(4, "pink"), allowed="'flat', 'heat', 'band'"),
    Row("latent.spectral_weights", "width", "a number in [0.001, 1000]",
        lambda: latent.spectral_weights(4, "heat", 0.0), allowed="[0.001, 1000]"),
    Row("diffusion.band_loss_weights", "band_weight", "'flat', 'band' or 'decay'",
        lambda: diffusion.band_loss_weights(4, "l2"), allowed="'flat', 'band', 'decay'"),
    Row("diffusion.shift_for_degree", "L", "an integer in [0, 10000]", lambda: diffusion.shift_for_degree(1.5),
        allowed="non-negative integer"),
    Row("diffusion.location_snr", "abar", "values in [0, 1]", lambda: diffusion.location_snr(1.5, 16),
        allowed="[0, 1]"),
    Row("diffusion.alpha_bar", "schedule", "'cosine' or 'linear'", lambda: diffusion.alpha_bar(10, "quadratic"),
        allowed="'cosine' or 'linear'"),
    Row("diffusion.Diffusion", "L", "an integer >= 0", lambda: diffusion.Diffusion(diffusion.DiffusionConfig(), -1),
        allowed="non-negative integer"),
    Row("diffusion.Diffusion", "data_dim", "an integer >= 0 (0: SHDD latents)",
        lambda: diffusion.Diffusion(diffusion.DiffusionConfig(), 2, data_dim=-3), allowed=">= 0"),
    Row("diffusion.Diffusion", "loss", "'mse' when data_dim > 0",
        lambda: diffusion.Diffusion(diffusion.DiffusionConfig(loss="shdd_kl"), 0, data_dim=3), allowed="loss='mse'"),
    Row("samplers.DDIMSampler", "steps", "an integer >= 1", lambda: samplers.DDIMSampler(diff(), steps=0),
        allowed=">= 1"),
    Row("samplers.DDIMSampler", "eta", "a number in [0, 1]", lambda: samplers.DDIMSampler(diff(), eta=2.0),
        allowed="[0, 1]"),
    Row("samplers.DDIMSampler", "guidance", "a finite number >= 0", lambda: samplers.DDIMSampler(diff(), guidance=None),
        allowed=">= 0"),
    Row("samplers.DDPMSampler", "guidance", "a finite number >= 0", lambda: samplers.DDPMSampler(diff(), guidance=NAN),
        allowed=">= 0"),
    Row("samplers.DDIMSampler.sample", "n", "an integer >= 1",
        lambda: samplers.DDIMSampler(diff(), steps=2).sample(net(), torch.zeros(1, 8), n=0), allowed=">= 1"),
    Row("samplers.DDIMSampler.sample", "emb", "a tensor [B, E], E = the model's embed_dim",
        lambda: samplers.DDIMSampler(diff(), steps=2).sample(net(), torch.zeros(1, 5), n=2), allowed="[B, 8]"),
    Row("samplers.DDPMSampler.sample", "emb", "a tensor [B, E], E = the model's embed_dim",
        lambda: samplers.DDPMSampler(diff(T=2)).sample(net(), torch.zeros(8), n=2), allowed="[B, E]"),
    Row("latent.decode_samples", "samples", "a tensor [B, n, (L+1)²]", lambda: latent.decode_samples(torch.zeros(2, 9)),
        allowed="[B, n, D]"),
    Row("latent.decode_samples", "k", "an integer >= 1", lambda: latent.decode_samples(torch.randn(1, 2, 9), k=0),
        allowed=">= 1"),
    Row("latent.Latent", "L", "an integer in [0, 10000]", lambda: latent.Latent(-1), allowed="non-negative integer"),
    Row("latent.Latent", "spectrum", "'flat', 'heat' or 'band'", lambda: latent.Latent(4, "pink"),
        allowed="'flat', 'heat', 'band'"),
    Row("samplers.check_sampling", "n", "an integer >= 1", lambda: samplers.check_sampling(0, 5, 1.0), allowed=">= 1"),
    Row("samplers.sample_loop", "emb", "a tensor [B, E], E = the model's embed_dim",
        lambda: samplers.sample_loop(samplers.DDIMSampler(diff(), steps=2), net(), torch.zeros(1, 5), 2),
        allowed="[B, 8]"),
    # ---- model
    Row("model.Dropout", "p", "a number in [0, 1) (the dropout rate)", lambda: model.Dropout(1.0), allowed="[0, 1)"),
    Row("model.CSUNetConfig", "L", "an integer >= 0", lambda: model.CSUNetConfig(L=-1), allowed="non-negative integer"),
    Row("model.CSUNetConfig", "embed_dim", "an integer >= 1", lambda: model.CSUNetConfig(embed_dim=0), allowed=">= 1"),
    Row("model.CSUNetConfig", "cond_dim", "an integer >= 1", lambda: model.CSUNetConfig(cond_dim=2.5), allowed=">= 1"),
    Row("model.CSUNetConfig", "time_dim", "an even integer >= 2", lambda: model.CSUNetConfig(time_dim=7),
        allowed="even integer >= 2"),
    Row("model.CSUNetConfig", "widths", "a non-empty tuple of integers >= 1", lambda: model.CSUNetConfig(widths=(8, 0)),
        allowed="integers >= 1"),
    Row("model.CSUNetConfig", "w0", "a positive finite number", lambda: model.CSUNetConfig(w0=0.0),
        allowed="positive finite"),
    Row("model.CSUNetConfig", "dropout", "a number in [0, 1)", lambda: model.CSUNetConfig(dropout=1.5), allowed="[0, 1)"),
    Row("model.CSUNetConfig", "data_dim", "an integer >= 0 (0: SHDD vectors)", lambda: model.CSUNetConfig(data_dim=-1),
        allowed=">= 0"),
    Row("model.CSUNet", "widths", "at least two entries (input width, bottleneck)",
        lambda: model.CSUNet(model.CSUNetConfig(L=2, widths=(8,))), allowed="at least two"),
    Row("model.CSUNet.forward", "x", "a tensor [B, (L+1)²] (or [B, data_dim])",
        lambda: net()(torch.zeros(1, 10), t0(), torch.zeros(1, 8)), allowed="[B, 9]"),
    Row("model.CSUNet.forward", "t", "a tensor [B] of timesteps",
        lambda: net()(torch.zeros(2, 9), t0(3), torch.zeros(2, 8)), allowed="[B]"),
    Row("model.CSUNet.forward", "emb", "None or a tensor [B, embed_dim]",
        lambda: net()(torch.zeros(1, 9), t0(), torch.zeros(1, 7)), allowed="[B, 8]"),
    Row("model.CSUNet.forward", "drop_cond", "None or a bool tensor [B]",
        lambda: net()(torch.zeros(2, 9), t0(2), torch.zeros(2, 8), drop_cond=torch.zeros(3, dtype=torch.bool)),
        allowed="[B]"),
    Row("model.PlainMLP.forward", "x", "a tensor [B, (L+1)²] (or [B, data_dim])",
        lambda: model.PlainMLP(model.CSUNetConfig(L=2, embed_dim=8, widths=(8, 4), cond_dim=8, time_dim=8))(
            torch.zeros(1, 4), t0(), torch.zeros(1, 8)), allowed="[B, 9]"),
    Row("model.timestep_embedding", "dim", "an even integer >= 2", lambda: model.timestep_embedding(t0(), 7),
        allowed="even integer >= 2"),
    Row("model.timestep_embedding", "t", "a 1-D tensor [B] of timesteps",
        lambda: model.timestep_embedding(torch.zeros(2, 3), 8), allowed="[B]"),
    # ---- train
    Row("train.TrainConfig", "steps", "an integer >= 1", lambda: TrainConfig(steps=0), allowed=">= 1"),
    Row("train.TrainConfig", "batch_size", "an integer >= 1", lambda: TrainConfig(batch_size=0), allowed=">= 1"),
    Row("train.TrainConfig", "log_every", "an integer >= 1", lambda: TrainConfig(log_every=0), allowed=">= 1"),
    Row("train.TrainConfig", "eval_every", "an integer >= 1", lambda: TrainConfig(eval_every=-5), allowed=">= 1"),
    Row("train.TrainConfig", "checkpoint_every", "an integer >= 1", lambda: TrainConfig(checkpoint_every=0),
        allowed=">= 1"),
    Row("train.TrainConfig", "ema_decay", "a number in [0, 1)", lambda: TrainConfig(ema_decay=1.0), allowed="[0, 1)"),
    Row("train.TrainConfig", "lr", "a positive finite number", lambda: TrainConfig(lr=-1e-3), allowed="positive"),
    Row("train.TrainConfig", "batch_size", "an integer >= 1", lambda: TrainConfig(batch_size=2.5), allowed="integer"),
    Row("train.TrainConfig", "warmup", "an integer >= 0", lambda: TrainConfig(warmup=-1), allowed=">= 0"),
    Row("train.TrainConfig", "seed", "an integer >= 0", lambda: TrainConfig(seed=1.5), allowed="integer >= 0"),
    Row("train.TrainConfig", "grad_clip", "a positive finite number", lambda: TrainConfig(grad_clip=0.0),
        allowed="positive"),
    Row("train.TrainConfig", "weight_decay", "a non-negative finite number", lambda: TrainConfig(weight_decay=-1e-4),
        allowed="non-negative"),
    # ---- profiles
    Row("profiles.get", "dataset", "None, 'bluemarble' or the path of an existing real data set spec (.json)",
        lambda: profiles.get("smoke", dataset="/no/such/spec.json"), allowed="'bluemarble' or the path"),
    Row("datasets.load", "splits", "names among the profile's splits (train, val and its test splits)",
        lambda: datasets.load(profiles.get("smoke"), ["im2gps3k"]), allowed="train, val, test_iid"),
    Row("profiles.get", "name", "None, '' or one of smoke, cpu, gpu", lambda: profiles.get("laptop"),
        allowed="smoke, cpu, gpu", named="profile"),
    Row("profiles.get", "$LOCDIFF_PROFILE", "unset, empty or one of smoke, cpu, gpu (used when name is None)",
        with_env("LOCDIFF_PROFILE", "laptop", lambda: profiles.get()), allowed="smoke, cpu, gpu"),
    Row("profiles.get", "overrides", "fields of Profile (data=, encoder=, locdiff=, ...)",
        lambda: profiles.get("smoke", colour="blue"), error=TypeError, named="colour"),
    Row("parallel.workers_for", "$LOCDIFF_WORKERS", "unset, empty or an integer >= 1 (processes for independent runs)",
        with_env("LOCDIFF_WORKERS", "0", lambda: parallel.workers_for(profiles.get("smoke"), 2)), allowed=">= 1"),
    Row("parallel.workers_for", "workers", "Profile.workers: an integer >= 0 (0: one process per CPU core)",
        with_env("LOCDIFF_WORKERS", "", lambda: parallel.workers_for(replace(profiles.get("smoke"), workers=-1), 2)),
        allowed=">= 0"),
    Row("parallel.map_runs", "workers", "an integer >= 1", lambda: parallel.map_runs(abs, [1], workers=0),
        allowed=">= 1"),
    # ---- evaluate
    Row("evaluate.bootstrap_intervals", "d_km", KM_D, lambda: evaluate.bootstrap_intervals(np.zeros((2, 2))),
        allowed="non-empty 1-D"),
    Row("evaluate.bootstrap_intervals", "d_km", KM_D, lambda: evaluate.bootstrap_intervals([1.0, -2.0]),
        allowed=">= 0"),
    Row("evaluate.bootstrap_intervals", "level", "a number in (0, 1)",
        lambda: evaluate.bootstrap_intervals([1.0, 2.0], level=1.0), allowed="(0, 1)"),
    Row("evaluate.bootstrap_intervals", "n_boot", "an integer >= 10",
        lambda: evaluate.bootstrap_intervals([1.0, 2.0], n_boot=10.5), allowed=">= 10"),
    Row("evaluate.precision_recall", "k", "an integer >= 1, fewer than the points of each set",
        lambda: evaluate.precision_recall([0, 1, 2, 3], [0] * 4, [0, 1, 2, 3], [0] * 4, k=0), allowed=">= 1"),
    Row("evaluate.precision_recall", "k", "an integer >= 1, fewer than the points of each set",
        lambda: evaluate.precision_recall([0, 1], [0, 0], [0, 1], [0, 0], k=3), allowed="more than 3"),
    Row("evaluate.precision_recall", "real_lat", LAT,
        lambda: evaluate.precision_recall([95, 1, 2, 3, 4], [0] * 5, [0, 1, 2, 3, 4], [0] * 5), allowed="[-90, 90]"),
    Row("evaluate.generative_metrics", "sample_lat", "[B, n] degrees, B = len(lat), same shape as sample_lon",
        lambda: evaluate.generative_metrics(np.zeros((2, 3)), np.zeros((2, 3)), [0.0], [0.0]), allowed="[B, n]"),
    Row("evaluate.generative_metrics", "sample_lon", LON,
        lambda: evaluate.generative_metrics(np.zeros((5, 3)), np.full((5, 3), NAN), np.arange(5.0), np.zeros(5)),
        allowed="finite"),
    Row("evaluate.generative_metrics", "radius_km", "a positive finite number (km)",
        lambda: evaluate.generative_metrics(np.zeros((5, 3)), np.zeros((5, 3)), np.arange(5.0), np.zeros(5),
                                            radius_km=-1), allowed="positive finite"),
    Row("evaluate.result_rows", "lat", LAT, lambda: evaluate.result_rows("p", "m", "s", [95.0], [0.0], [0.0], [0.0]),
        allowed="[-90, 90]"),
    Row("evaluate.result_rows", "pred_lon", LON,
        lambda: evaluate.result_rows("p", "m", "s", [0.0], [0.0], [0.0], [NAN]), allowed="finite"),
    Row("evaluate.check_results", "df", "exactly the columns RESULT_COLUMNS, known metrics, finite values, no duplicates",
        lambda: evaluate.check_results(pd.DataFrame({"a": [1]})), allowed="columns", named="results"),
    Row("evaluate.check_results", "df", "exactly the columns RESULT_COLUMNS, known metrics, finite values, no duplicates",
        lambda: evaluate.check_results(results().assign(value=NAN)), allowed="non-finite", named="results"),
    Row("evaluate.write_results", "rows", "rows that pass check_results",
        lambda: evaluate.write_results(results().assign(metric="acc@3km"), "never-written.csv"),
        allowed="unknown metrics", named="results"),
    Row("evaluate.read_results", "path", "an existing results CSV that passes check_results",
        lambda: evaluate.read_results("no/such/results.csv"), error=FileNotFoundError, named="no/such/results.csv"),
    Row("evaluate.table", "split", "a split present in the results", lambda: evaluate.table(results(), "test_mars"),
        allowed="one of"),
    Row("evaluate.best_vs_runner_up", "split", "a split present in the results",
        lambda: evaluate.best_vs_runner_up(results(), "test_mars"), allowed="one of"),
    # ---- pipeline
    Row("pipeline.LocDiffPipeline.from_pretrained", "path", "None (the shipped weights) or a folder of save_pretrained",
        lambda: pipeline.LocDiffPipeline.from_pretrained("no/such/folder"), error=pipeline.PretrainedError,
        allowed="not a folder", named="no/such/folder"),
    Row("pipeline.LocDiffPipeline.from_pretrained", "path", "None (the shipped weights) or a folder of save_pretrained",
        lambda: pipeline.LocDiffPipeline.from_pretrained(42), error=pipeline.PretrainedError, allowed="folder path"),
    Row("pipeline.LocDiffPipeline.predict", "images", "one or more images: paths, PIL, numpy or tensors",
        lambda: pipe().predict([], progress=False), allowed="at least one image"),
    Row("pipeline.LocDiffPipeline.predict", "images", "RGB [H, W, 3] or [3, H, W]",
        lambda: pipe().predict(np.zeros((32, 32), np.uint8), progress=False), allowed="RGB", named="image 0"),
    Row("pipeline.LocDiffPipeline.predict", "images", "float images in [0, 1], integer images in [0, 255]",
        lambda: pipe().predict(np.full((32, 32, 3), 2.0, np.float32), progress=False), allowed="[0, 1]",
        named="image 0"),
    Row("pipeline.LocDiffPipeline.predict", "images", "paths of existing image files",
        lambda: pipe().predict("no/such/tile.png", progress=False), error=FileNotFoundError, allowed="no such file",
        named="image 0"),
    Row("pipeline.LocDiffPipeline.predict", "top_k", "an integer in [1, shdd.max_modes(L)] (18 at L = 8, 66 at L = 16, 953 at L = 64)",
        lambda: pipe().predict(tile(), top_k=0), allowed="[1, 18]"),
    Row("pipeline.LocDiffPipeline.predict", "top_k", "an integer in [1, shdd.max_modes(L)] (18 at L = 8, 66 at L = 16, 953 at L = 64)",
        lambda: pipe().predict(tile(), top_k=60), allowed="at most 18 distinct modes"),
    Row("pipeline.LocDiffPipeline.save_pretrained", "path", "a new folder, an empty one, or a pretrained folder",
        lambda: pipe().save_pretrained(user_folder()), error=pipeline.PretrainedError,
        allowed="not a pretrained LocDiff folder"),
    Row("pipeline.LocDiffPipeline.save_pretrained", "path", "a folder path (not a file, not empty)",
        lambda: pipe().save_pretrained(""), error=pipeline.PretrainedError, allowed="folder path"),
    Row("pipeline.LocDiffPipeline.predict", "n", "None (the model's default) or an integer >= 1",
        lambda: pipe().predict(tile(), n=0), allowed=">= 1"),
    Row("pipeline.LocDiffPipeline.predict", "steps", "None or an integer >= 1", lambda: pipe().predict(tile(), steps=0),
        allowed=">= 1"),
    Row("pipeline.LocDiffPipeline.predict", "guidance", "None or a finite number >= 0",
        lambda: pipe().predict(tile(), guidance=-1.0), allowed=">= 0"),
    Row("pipeline.LocDiffPipeline.predict", "seed", "an integer in [0, 2^63 - 1 - 10^9]", lambda: pipe().predict(tile(), seed=1.5),
        allowed="in [0, "),
    Row("pipeline.LocDiffPipeline.predict", "batch", "an integer >= 1", lambda: pipe().predict(tile(), batch=0),
        allowed=">= 1"),
    Row("pipeline.LocDiffPipeline.sample", "n", "an integer >= 1", lambda: pipe().sample(tile(), n=0), allowed=">= 1"),
    Row("pipeline.LocDiffPipeline.embed", "batch", "an integer >= 1", lambda: pipe().embed(tile(), batch=-1),
        allowed=">= 1"),
    Row("pipeline.LocDiffPipeline.density", "resolution_deg", "a number in [0.1, 30]",
        lambda: pipe().density(tile(), resolution_deg=0.0), allowed="[0.1, 30]"),
    Row("pipeline.LocDiffPipeline.density", "n", "None or an integer >= 1", lambda: pipe().density(tile(), n=0),
        allowed=">= 1"),
    Row("pipeline.LocDiffPipeline.localizability", "radius_km", "a positive finite number (km)",
        lambda: pipe().localizability(tile(), radius_km=-750.0), allowed="positive finite"),
    Row("pipeline.load_images", "images", "one or more images: paths, PIL, numpy or tensors",
        lambda: pipeline.load_images(np.zeros((32, 32, 4), np.uint8), 32), allowed="RGB", named="image 0"),
    Row("compare.lr_search", "candidates", "two or more learning rates in (0, 1)",
        lambda: compare.lr_search(profiles.get("smoke"), candidates=(1e-3,)), allowed="two or more"),
    Row("compare.lr_search", "candidates", "two or more learning rates in (0, 1)",
        lambda: compare.lr_search(profiles.get("smoke"), candidates=(1e-3, 1.5)), allowed="(0, 1)"),
    Row("experiment.denoising_errors", "timesteps", "integers in [0, T - 1]",
        lambda: experiment.denoising_errors(pipe().locdiff, np.zeros((1, 256), np.float32), [0.0], [0.0],
                                            timesteps=(0, 1000)), allowed="[0, 999]"),
    Row("experiment.denoising_errors", "lat", LAT,
        lambda: experiment.denoising_errors(pipe().locdiff, np.zeros((1, 256), np.float32), [91.0], [0.0]),
        allowed="[-90, 90]"),
    # ---- images, real data and caches (robustness audit)
    Row("pipeline.load_images", "images", "image files PIL can decode completely",
        lambda: (importlib.import_module("PIL.Image").fromarray(tile()).save("t.jpg"),
                 Path("half.jpg").write_bytes((b := Path("t.jpg").read_bytes())[: len(b) // 2]),
                 pipeline.load_images(["half.jpg"], 32)), allowed="truncated", named="image 0"),
    Row("pipeline.load_images", "images", "images of at most PIL.Image.MAX_IMAGE_PIXELS pixels (decompression bombs refused)",
        lambda: (importlib.import_module("PIL.Image").new("RGB", (4, 4)).save("b.bmp"),
                 Path("bomb.bmp").write_bytes((b := Path("b.bmp").read_bytes())[:18] + (20000).to_bytes(4, "little") * 2
                                              + b[26:]),
                 pipeline.load_images([tile(), "bomb.bmp"], 32)), allowed="MAX_IMAGE_PIXELS", named="image 1"),
    Row("pipeline.load_images", "images", "image files (not text or other files)",
        lambda: (Path("notes.png").write_text("P6\nhello"), pipeline.load_images(["notes.png"], 32)),
        allowed="not an image file", named="image 0"),
    Row("pipeline.load_images", "images", "image files, not folders",
        lambda: pipeline.load_images([tile(), "."], 32), allowed="is a folder", named="image 1"),
    Row("pipeline.load_images", "images", "non-empty path strings", lambda: pipeline.load_images(["  "], 32),
        allowed="empty string", named="image 0"),
    Row("pipeline.load_images", "images", "paths the file system accepts (a name too long is no such file)",
        lambda: pipeline.load_images(["x" * 5000], 32), error=FileNotFoundError, allowed="no such file",
        named="image 0"),
    Row("pipeline.load_images", "images", "numpy arrays, torch tensors, PIL images or file paths (not dicts, None, numbers)",
        lambda: pipeline.load_images([tile(), {"image": tile()}], 32), allowed="PIL image", named="image 1"),
    Row("pipeline.load_images", "images", "numpy arrays, torch tensors, PIL images or file paths (not dicts, None, numbers)",
        lambda: pipeline.load_images(None, 32), allowed="None is not an image", named="image 0"),
    Row("pipeline.load_images", "images", "real numbers: uint8, other integers in [0, 255], floats in [0, 1] (any width)",
        lambda: pipeline.load_images(np.zeros((32, 32, 3), bool), 32), allowed="boolean", named="image 0"),
    Row("pipeline.load_images", "images", "real numbers: uint8, other integers in [0, 255], floats in [0, 1] (any width)",
        lambda: pipeline.load_images(torch.zeros(32, 32, 3, dtype=torch.complex64), 32), allowed="complex",
        named="image 0"),
    Row("pipeline.load_images", "images", "real numbers: uint8, other integers in [0, 255], floats in [0, 1] (any width)",
        lambda: pipeline.load_images(tile().astype(object), 32), allowed="object", named="image 0"),
    Row("pipeline.load_images", "images", "real numbers: uint8, other integers in [0, 255], floats in [0, 1] (any width)",
        lambda: pipeline.load_images(np.full((32, 32, 3), 300, np.uint16), 32), allowed="[0, 255]", named="image 0"),
    Row("pipeline.load_images", "images", "[H, W, 3] or [3, H, W] with H, W >= 1",
        lambda: pipeline.load_images(np.zeros((0, 32, 3), np.uint8), 32), allowed="empty image", named="image 0"),
    Row("pipeline.load_images", "images", "one image of rank 3 per list element (a batch: the 4-D array itself)",
        lambda: pipeline.load_images([tile(), np.zeros((1, 32, 32, 3), np.uint8)], 32), allowed="a batch of images",
        named="image 1"),
    Row("pipeline.load_images", "images", "one image of rank 3 per list element (a batch: the 4-D array itself)",
        lambda: pipeline.load_images([np.zeros(3, np.uint8)], 32), allowed="[H, W, 3] or [3, H, W]", named="image 0"),
    Row("pipeline.load_images", "images", "RGB [H, W, 3] or [3, H, W]",
        lambda: pipeline.load_images(np.zeros((32, 32, 1), np.uint8), 32), allowed="grayscale image with 1 channel",
        named="image 0"),
    Row("pipeline.load_images", "images", "PIL images of mode RGB, RGBX, P, CMYK, YCbCr or HSV (converted to RGB)",
        lambda: pipeline.load_images(importlib.import_module("PIL.Image").new("RGBA", (32, 32)), 32),
        allowed="alpha channel", named="image 0"),
    Row("pipeline.load_images", "images", "PIL images of mode RGB, RGBX, P, CMYK, YCbCr or HSV (converted to RGB)",
        lambda: pipeline.load_images(importlib.import_module("PIL.Image").new("I;16", (32, 32)), 32),
        allowed="grayscale PIL image", named="image 0"),
    Row("pipeline.load_images", "images", "PIL images of mode RGB, RGBX, P, CMYK, YCbCr or HSV (converted to RGB)",
        lambda: pipeline.load_images(importlib.import_module("PIL.Image").new("LAB", (32, 32)), 32),
        allowed="'LAB' is not supported", named="image 0"),
    Row("data.real.read_metadata", "IMG_ID", "image paths relative to the image folder (no absolute path, no '..' out of it)",
        lambda: importlib.import_module("locdiff.data.real").read_metadata(
            (Path("m.csv").write_text("IMG_ID,LAT,LON\na.jpg,1,2\n../x.jpg,1,2\n"), "m.csv")[1]),
        allowed="outside the image folder"),
    Row("data.real.read_metadata", "IMG_ID", "image paths relative to the image folder (no absolute path, no '..' out of it)",
        lambda: importlib.import_module("locdiff.data.real").read_metadata(
            (Path("m.csv").write_text("img_id,lat,lon\n/etc/passwd,1,2\n"), "m.csv")[1]),
        allowed="line 2: img_id='/etc/passwd'", named="img_id"),
    Row("data.real.RealDataset.from_json", "path", "a JSON file holding one object of the documented fields",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json(
            (Path("spec.json").write_text("[1, 2]"), "spec.json")[1]), allowed="JSON object", named="spec.json"),
    Row("data.real.RealDataset.from_json", "path", "a JSON file holding one object of the documented fields",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json("nowhere.json"),
        error=FileNotFoundError, allowed="not found", named="nowhere.json"),
    Row("data.real.RealDataset.from_json", "backbone", "required: a non-empty string (folder or Hugging Face id)",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json(
            (Path("spec.json").write_text('{"name": "t", "train_csv": "a.csv", "train_images": "a", "eval_csvs": {}, '
                                          '"eval_images": {}}'), "spec.json")[1]), allowed="missing field"),
    Row("data.real.RealDataset.from_json", "train_csv", "a non-empty string (a path)",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json(
            (Path("spec.json").write_text('{"name": "t", "train_csv": 5, "train_images": "a", "eval_csvs": {}, '
                                          '"eval_images": {}, "backbone": "./clip"}'), "spec.json")[1]),
        allowed="non-empty string"),
    Row("data.real.RealDataset.from_json", "eval_csvs", "a JSON object mapping each test split to a path",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json(
            (Path("spec.json").write_text('{"name": "t", "train_csv": "a.csv", "train_images": "a", "eval_csvs": '
                                          '"t.csv", "eval_images": {}, "backbone": "./clip"}'), "spec.json")[1]),
        allowed="JSON object mapping"),
    Row("data.real.RealDataset.from_json", "val_images", "an integer >= 0 (not a string, bool or fraction)",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json(
            (Path("spec.json").write_text('{"name": "t", "train_csv": "a.csv", "train_images": "a", "eval_csvs": {}, '
                                          '"eval_images": {}, "backbone": "./clip", "val_images": "abc"}'),
             "spec.json")[1]), allowed=">= 0"),
    Row("data.real.RealDataset.from_json", "seed", "an integer >= 0",
        lambda: importlib.import_module("locdiff.data.real").RealDataset.from_json(
            (Path("spec.json").write_text('{"name": "t", "train_csv": "a.csv", "train_images": "a", "eval_csvs": {}, '
                                          '"eval_images": {}, "backbone": "./clip", "seed": -1}'), "spec.json")[1]),
        allowed=">= 0"),
    Row("data.bluemarble.cache_dir", "LOCDIFF_CACHE", "unset (<repo>/data/cache) or a writable folder (created)",
        with_env("LOCDIFF_CACHE", "", lambda: importlib.import_module("locdiff.data.bluemarble").cache_dir()),
        allowed="set but empty"),
    Row("data.bluemarble.cache_dir", "LOCDIFF_CACHE", "unset (<repo>/data/cache) or a writable folder (created)",
        with_env("LOCDIFF_CACHE", "f.txt", lambda: (Path("f.txt").write_text("x"),
                                                    importlib.import_module("locdiff.data.bluemarble").cache_dir())),
        allowed="is a file"),
    Row("data.bluemarble.cache_dir", "LOCDIFF_CACHE", "unset (<repo>/data/cache) or a writable folder (created)",
        with_env("LOCDIFF_CACHE", "f.txt/cache", lambda: (Path("f.txt").write_text("x"),
                                                          importlib.import_module("locdiff.data.bluemarble").cache_dir())),
        allowed="lies under the file"),
    # ---- command line (exit code 2, "locdiff <cmd>: error: ..." on stderr)
    Row("locdiff tile", "LAT", LAT, ("tile", "95", "0", "--out", "{tmp}/t.png"), allowed="[-90, 90]", named="lat"),
    Row("locdiff tile", "LON", LON, ("tile", "0", "nan", "--out", "{tmp}/t.png"), allowed="finite", named="lon"),
    Row("locdiff tile", "LAT", "a number", ("tile", "north", "0"), allowed="a number"),
    Row("locdiff tile", "--size", "an integer >= 1", ("tile", "0", "0", "--size", "0"), allowed=">= 1"),
    Row("locdiff tile", "--footprint-km", "a positive number of km", ("tile", "0", "0", "--footprint-km", "-5",
                                                                          "--out", "{tmp}/t.png"),
        allowed="positive", named="--footprint-km"),
    Row("locdiff predict", "IMAGE", "paths of existing image files", ("predict", "{tmp}/missing.png", "--weights",
                                                                      "{weights}"), allowed="no such file",
        named="image 0"),
    Row("locdiff predict", "--top-k", "an integer >= 1", ("predict", "a.png", "--top-k", "0"), allowed=">= 1"),
    Row("locdiff predict", "--samples", "an integer >= 1", ("predict", "a.png", "--samples", "-3"), allowed=">= 1"),
    Row("locdiff predict", "--weights", "a folder of save_pretrained", ("predict", "a.png", "--weights", "{tmp}/nowhere"),
        allowed="not a folder of pretrained", named="nowhere"),
    Row("locdiff train", "--dataset", "the path of an existing real data set spec (.json)",
        ("train", "--profile", "smoke", "--dataset", "{tmp}/missing.json"), allowed="'bluemarble' or the path",
        named="dataset"),
    Row("locdiff train", "--profile", "smoke, cpu or gpu", ("train", "--profile", "laptop"), allowed="smoke, cpu, gpu",
        named="profile"),
    Row("locdiff train", "--out", "a folder path (default: the profile's run folder)",
        ("train", "--profile", "smoke", "--out", ""), allowed="must be a folder path"),
    Row("locdiff train", "--out", "a folder path (default: the profile's run folder)",
        ("train", "--profile", "smoke", "--out", "{weights}/config.json"), allowed="must be a folder"),
    Row("locdiff train", "--overwrite", "not together with --resume",
        ("train", "--profile", "smoke", "--resume", "--overwrite"), allowed="not allowed with"),
    Row("locdiff predict", "--map", "a file path (PNG, PDF or SVG by its suffix)",
        ("predict", "a.png", "--map", "{tmp}"), allowed="is a folder"),
    Row("locdiff predict", "--map", "a file path (PNG, PDF or SVG by its suffix)",
        ("predict", "a.png", "--map", ""), allowed="must be a file path"),
    Row("locdiff tile", "--out", "a file path", ("tile", "0", "0", "--out", "{tmp}"), allowed="is a folder"),
    Row("locdiff train", "--resume", "only with a checkpoint in the run folder",
        ("train", "--profile", "smoke", "--out", "{tmp}/run", "--resume"), allowed="no checkpoint"),
    Row("locdiff evaluate", "--split", "train, val, test_iid, test_uniform or test_unseen",
        ("evaluate", "--checkpoint", "{tmp}", "--split", "test_mars"), allowed="test_unseen"),
    Row("locdiff evaluate", "--checkpoint", "a run or checkpoint folder",
        ("evaluate", "--checkpoint", "{tmp}/nowhere", "--split", "val"), allowed="not a checkpoint folder",
        named="nowhere"),
    Row("locdiff evaluate", "--profile", "smoke, cpu or gpu (default $LOCDIFF_PROFILE, else cpu)",
        ("evaluate", "--checkpoint", "{tmp}", "--split", "val", "--profile", "laptop"), allowed="smoke, cpu, gpu",
        named="profile"),
    Row("locdiff report", "--profile", "a profile tag with results under data/results/ (default cpu)",
        ("report", "--profile", "laptop"), allowed="has no results"),
]

#: Public names of the audited modules that take no user input worth a row, and why.
NOT_AUDITED: dict[str, str] = {
    "geo.check_finite": "the validator the other rows use",
    "model.FiLMSiren": "a layer inside CSUNet (sizes come from CSUNetConfig)",
    "model.SirenBlock": "a block inside CSUNet (sizes come from CSUNetConfig)",
    "model.Denoiser": "the base class of CSUNet and PlainMLP (its check_inputs is what their rows test)",
    "evaluate.results_dir": "a folder under data/results for a profile name (any string)",
    "pipeline.PretrainedError": "the exception class of from_pretrained",
    "pipeline.shipped_weights": "no arguments",
    "shdd.MemoryWarning": "the warning class of the memory estimates",
    "samplers.Scheduler": "the base class of the samplers (their rows test the constructors and sample)",
    "samplers.guided_output": "called by sample_loop with the sampler's checked guidance (the guidance rows)",
}
AUDITED_MODULES = ("geo", "shdd", "latent", "diffusion", "samplers", "model", "evaluate", "pipeline", "parallel")
CLI_COMMANDS = ("predict", "tile", "train", "evaluate", "report")


# ----------------------------------------------------------------------------- the documentation
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _error_text(row: Row) -> str:
    said = [f"`{row.name_in_message}`"] + ([f"`{row.allowed}`"] if row.allowed else [])
    kind = "exit 2, `locdiff " + row.bad[0] + ": error: …`" if row.is_cli else f"`{row.error.__name__}`"
    text = f"{kind} naming {' and '.join(said)}"
    return text + (f" (**not yet**: {row.xfail})" if row.xfail else "")


def render_table() -> str:
    """docs/INPUT_CHECKS.md, from ``AUDIT`` (one table row per audit row)."""
    head = """# Input checks

Every public function of `locdiff.geo`, `locdiff.shdd`, `locdiff.diffusion`, `locdiff.model`,
`locdiff.evaluate` and `locdiff.pipeline`, the configs `train.TrainConfig` and `profiles.get`, and
the `locdiff` subcommands, with the inputs each accepts and the error it gives otherwise. A bad
input gives a clear error that names the argument and, where there is one, the allowed range; never
a silent NaN or a crash deep inside torch. The command line answers bad input with exit code 2 and
`locdiff <command>: error: ...` on stderr. Angles are degrees at every API: latitudes outside
[-90, 90], NaN and inf are errors; finite longitudes of any size are wrapped into [-180, 180)
(180 and 540 -> -180, -1e6 -> 80).

Each row below is a test (`tests/test_input_audit.py`, list `AUDIT`) that calls the API with a
bad value and checks the exception and its message. This page is generated from that list:
after editing it, run `.venv/bin/python tests/test_input_audit.py --write`. Rows marked
**not yet** are known gaps, tested as strict expected failures.

Beyond these hand-picked rows, `tests/test_fuzz.py` draws about 2,900 inputs with hypothesis
(paths, images of every dtype and shape, numbers of every kind including numpy scalars, NaN, inf
and integers beyond int64, arbitrary JSON where a spec or config is read) for every subcommand
and public function above, and accepts exactly two outcomes: a result of the documented type and
shape, or a documented error (`ValueError` / `FileNotFoundError`, exit 2 on the command line)
with a message and no traceback. It runs in `make test` in about a minute.

| API | argument | accepts | error on anything else |
|---|---|---|---|
"""
    lines = [f"| `{r.api}` | `{_cell(r.argument)}` | {_cell(r.accepts)} | {_cell(_error_text(r))} |" for r in AUDIT]
    return head + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the tests
def _names_argument(message: str, name: str) -> bool:
    """``name`` occurs in ``message`` as a whole word (``lat`` does not count inside ``lat1``)."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w])", message) is not None


def _check_message(row: Row, message: str) -> None:
    assert _names_argument(message, row.name_in_message), \
        f"{row.api}: the message does not name {row.name_in_message!r}: {message!r}"
    assert row.allowed in message, f"{row.api}: the message does not state {row.allowed!r}: {message!r}"
    assert "Traceback" not in message


def _row_id(row: Row) -> str:
    return f"{row.api}:{row.argument}:{row.allowed or row.error.__name__}"


def _marks(row: Row) -> list:
    return [pytest.mark.xfail(reason=row.xfail, strict=True)] if row.xfail else []


PY_ROWS = [pytest.param(r, id=_row_id(r), marks=_marks(r)) for r in AUDIT if not r.is_cli]
CLI_ROWS = [pytest.param(r, id=_row_id(r), marks=_marks(r)) for r in AUDIT if r.is_cli]


@pytest.fixture(scope="module", autouse=True)
def _share_pipeline(tiny):
    """Hand the small pipeline of test_pipeline.py to the rows (they are plain zero-argument calls)."""
    _SHARED["pipe"] = tiny
    yield
    _SHARED.clear()


@pytest.fixture(scope="module")
def weights_dir(tiny, tmp_path_factory) -> Path:
    return tiny.save_pretrained(tmp_path_factory.mktemp("weights") / "w")


@pytest.mark.parametrize("row", PY_ROWS)
def test_python_api_rejects_bad_input(row: Row, tmp_path, monkeypatch):
    """The call raises the row's exception, whose message names the argument and the allowed range."""
    monkeypatch.chdir(tmp_path)                                   # nothing a row might write lands in the repo
    with pytest.raises(row.error) as err:
        with np.errstate(all="raise"):                            # a NaN made on the way is a failure too
            row.bad()
    _check_message(row, str(err.value))


@pytest.mark.parametrize("row", CLI_ROWS)
def test_cli_rejects_bad_input(row: Row, tmp_path, weights_dir, capsys, monkeypatch):
    """The subcommand exits with code 2 and ``locdiff <cmd>: error: ...`` naming the argument."""
    from locdiff import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))        # nothing is built in the repository
    args = [a.format(tmp=tmp_path, weights=weights_dir) for a in row.bad]
    try:
        code = cli.main(args)
    except SystemExit as e:                                            # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}; stderr: {err[-1500:]}"
    assert f"locdiff {row.bad[0]}: error: " in err, err[-1500:]
    _check_message(row, err)


def test_every_public_function_has_a_row():
    """Each public function / class of the audited modules has a row (or a stated reason not to)."""
    apis = {r.api for r in AUDIT}
    missing = []
    for mod_name in AUDITED_MODULES:
        mod = importlib.import_module(f"locdiff.{mod_name}")
        for name, obj in vars(mod).items():
            home = getattr(obj, "__module__", None) or ""
            own = home == mod.__name__ or (name in getattr(mod, "__all__", ()) and home.startswith(mod.__name__ + "."))
            if name.startswith("_") or not own:          # a package (shdd) counts what its __all__ exports
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            full = f"{mod_name}.{name}"
            if full not in NOT_AUDITED and not any(a == full or a.startswith(full + ".") for a in apis):
                missing.append(full)
    assert not missing, f"add rows to AUDIT (or a reason to NOT_AUDITED) for {missing}"
    assert {r.bad[0] for r in AUDIT if r.is_cli} == set(CLI_COMMANDS)


def test_rows_are_distinct_and_well_formed():
    """No duplicated rows; every row states what it accepts; CLI rows use a known subcommand."""
    keys = [(r.api, r.argument, r.allowed, r.named) for r in AUDIT]
    assert len(keys) == len(set(keys))
    assert all(r.accepts and r.argument for r in AUDIT)
    assert all(r.bad[0] in CLI_COMMANDS for r in AUDIT if r.is_cli)


def test_doc_table_is_current():
    """docs/INPUT_CHECKS.md is exactly what ``render_table()`` makes from ``AUDIT``."""
    fix = "regenerate it: .venv/bin/python tests/test_input_audit.py --write"
    assert DOC.exists(), f"{DOC} is missing; {fix}"
    assert DOC.read_text(encoding="utf-8") == render_table(), f"{DOC} is out of date with AUDIT; {fix}"


def test_names_argument_is_a_whole_word_match():
    """The matcher behind every row: a name inside a longer word does not count."""
    assert _names_argument("lat1 must lie in [-90, 90]", "lat1")
    assert not _names_argument("lat1 must lie in [-90, 90]", "lat")
    assert _names_argument("argument --top-k: --top-k must be", "--top-k")
    assert not _names_argument("n_boot must be", "n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        from locdiff.io import atomic_write

        DOC.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(DOC, lambda tmp: Path(tmp).write_text(render_table(), encoding="utf-8"))
        print(f"wrote {DOC} ({len(AUDIT)} rows)", file=sys.stderr)
    else:
        sys.stdout.write(render_table())
