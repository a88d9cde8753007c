"""The SHDD codec: spherical-harmonic Dirac-delta encoding of locations and its mode-seeking decoder.

A location x on the unit sphere is the Dirac delta δ_x; its real spherical-harmonic coefficients up
to degree L are a_i = ∫ δ_x Y_i dΩ = Y_i(x), a vector of D = (L+1)² numbers (the SHDD vector).
Any vector a represents the band-limited field

    f(y) = Σ_i a_i Y_i(y),      for one point: f(y) = Σ_l (2l+1)/(4π) P_l(x·y),

which peaks at x with height (L+1)²/(4π) and has a main lobe of angular radius ≈ 3.83/(L+1) rad.
Decoding reads f as a density and returns its highest modes (LocDiff's learning-free decoder).

Conventions (the package's, shared by every module): real orthonormal harmonics (∫ Y² dΩ = 1), θ = colatitude, φ = longitude,
no Condon–Shortley phase, flat index i = l² + l + m:
    Y_l0 = N_l0 P_l(cos θ);  m > 0: √2 N_lm P_l^m(cos θ) cos(mφ);  m < 0: √2 N_l|m| P_l^|m|(cos θ) sin(|m|φ)
with N_lm = sqrt((2l+1)/(4π) (l-m)!/(l+m)!). This equals pyshtools' 'ortho' real harmonics with
csphase=1.

Numerics: the normalized associated Legendre functions P̄_lm = N_lm P_l^m are built by the stable
three-term recurrence in l (Holmes & Featherstone 2002, eq. 11-12) in float64,
    P̄_mm     = sqrt((2m+1)/(2m)) sin θ P̄_{m-1,m-1},   P̄_00 = 1/sqrt(4π)
    P̄_lm     = a_lm (cos θ P̄_{l-1,m} - b_lm P̄_{l-2,m}),
    a_lm     = sqrt((4l²-1)/(l²-m²)),   b_lm = sqrt(((l-1)²-m²)/(4(l-1)²-1)),
looping over l only (every m at once), which stays accurate to well beyond L = 256.
"""
from __future__ import annotations

from .. import sh_cpu  # noqa: F401  (the compiled kernel, as shdd.sh_cpu)
from ._sizes import (MAX_DEGREE, TAPER_WIDTHS, MemoryWarning, _as_coeffs, _check_degree,  # noqa: F401
                     _check_taper_width, _device_float64, _warn_memory, degree_of, num_coeffs, peak_value)
from .density import HALF_WIDTH_X, MAX_DENSITY_COEFF, density, peak_half_width  # noqa: F401
from .encode import encode
from .legendre import _basis, _legendre, _tables, _trig  # noqa: F401  (the reference recurrence, for tests)
from .modes import decode, max_modes
from .transform import taper_weights
from .transform import Grid, field, field_pairs, grid

__all__ = [
    "num_coeffs", "degree_of", "encode", "decode", "taper_weights", "field", "density", "Grid", "grid",
    "peak_value", "peak_half_width", "field_pairs", "max_modes", "MemoryWarning",
]
