"""Argument checks shared by the package: what counts as an integer or a real number, and the
range checks whose ValueError names the argument and its allowed range.

Booleans are not numbers here (``True`` is not a degree), numpy scalars are, and a Python int too
large for a float is not a finite real.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["is_int", "is_real", "is_finite_real", "is_positive_finite", "check_int", "check_seed", "check_radius_km",
           "check_distances_km"]


def is_int(x) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_real(x) -> bool:
    """A real number (Python or numpy scalar), not a bool."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def is_finite_real(x) -> bool:
    """A real number (not a bool) that is finite as a float (an int beyond the float range is not)."""
    try:
        return is_real(x) and math.isfinite(x)
    except OverflowError:
        return False


def is_positive_finite(x) -> bool:
    """A finite real number > 0."""
    return is_finite_real(x) and float(x) > 0


def check_int(value, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is an integer in [low, high]."""
    if not is_int(value) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}; got {value!r}")
    return int(value)


def check_seed(seed) -> int:
    """A random seed: an integer >= 0."""
    return check_int(seed, "seed", 0)


def check_radius_km(value, name: str = "radius_km") -> float:
    """``value`` as a float; ValueError naming ``name`` unless it is a finite distance > 0 km."""
    if not is_positive_finite(value):
        raise ValueError(f"{name} must be a finite distance > 0 km; got {value!r}")
    return float(value)


def check_distances_km(values, name: str) -> np.ndarray:
    """``values`` as a float64 array; ValueError naming ``name`` unless every entry is a finite
    distance >= 0 km."""
    d = np.asarray(values, np.float64)
    if not bool(np.all(np.isfinite(d) & (d >= 0))):
        raise ValueError(f"{name} must hold finite distances >= 0 km; got NaN, inf or negative values")
    return d
