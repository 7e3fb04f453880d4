"""Maps of local lattice spacing and angle by rolling-window Fourier analysis.

Method (derivation, conventions and measured accuracy in ``docs/method.md``)
---------------------------------------------------------------------------
For a reflection demodulated at frequency ``f0`` (cycles/pixel, ``g·pixel_size``), the
periodic-Hann-windowed Fourier coefficient of the window centred on pixel ``c``,

    Z(c) = Σ_u w(u) exp(-2πi f0·u) (I(c + u) - m(c)),

with ``m(c)`` the window's Hann-weighted mean, is computed for every window position
at once: one 2D FFT of the frame serves all reflections; per reflection the spectrum
is multiplied by the analytic kernel spectrum of one axis and folded (its ``step``
aliases summed), then the same along the other axis, so that a small inverse 2D FFT
yields exactly the coefficients on the step grid.  For one complex exponential
``A exp(2πi f·r)`` the coefficient of the window moved by one pixel along an axis is
``Z(c - e) = Z(c) exp(-2πi f·e)`` exactly, so

    f_y = arg(Z(c) · conj Z(c - e_y)) / 2π,   f_x = arg(Z(c) · conj Z(c - e_x)) / 2π

gives the local frequency in closed form, without interpolation bias, for any offset
from ``f0`` inside the window's main lobe.  The two windows at ``c`` and ``c - e``
together cover exactly pixels ``c - N/2 … c + N/2 - 1`` (``w(-N/2) = 0``).  The
side-lobe leakage of the other picked reflections and of every reflection's conjugate
is subtracted to first order.  With ``refine=True`` a light survey pass (2×2-binned
frame where possible, every second map pixel) gives the power-weighted median
frequency of each reflection and frame, and the maps are computed demodulated there,
which keeps uniform lattice changes and rotations in the centre of the main lobe.

The amplitude is ``|Z(c)|²`` over the noise power expected at ``g``, measured where the
lattice has no reflection: the lower quartile of the block's Hann-apodised spectrum on an
arc of the circle ``|g|`` beside ``g``, away from the main lobes of every picked reflection
and its Friedel mate.  The standard deviations follow from the linearised variance of the
phase difference for white noise at that level.

Everything after the removal of each frame's offset runs in single precision
(complex64 FFTs and folds, float32 maps): its round-off moves ``d`` by up to ~1e-6
relative on noise-free lattices, 40 times below the accuracy target, at half the memory
traffic of double precision.  numpy input is cut into the same blocks as dask input and
computed in a thread pool; a block carries ``window/2`` pixels of context only where
the image has them, so that the two give identical maps for the same block layout.

Modules: ``_frame`` (per-frame numerics), ``_survey`` (the refinement's first pass),
``_plan`` (the block plan and the work on one block, shared by both drivers),
``_drivers`` (numpy in a thread pool, dask as a graph), ``_analyze`` (the public entry
points and their checks in ``_checks``).
"""

from __future__ import annotations

from ..reciprocal import as_reflections
from ._analyze import _FIELDS, analyze, iter_analyze, run_to_end
from ._checks import check_flag, check_image, check_int, check_real, check_reflections
from ._diagnose import Diagnosis, diagnose
from ._drivers import Progress
from ._frame import DEFAULT_MIN_AMPLITUDE

__all__ = [
    "DEFAULT_MIN_AMPLITUDE",
    "Diagnosis",
    "Progress",
    "analyze",
    "check_flag",
    "check_image",
    "check_int",
    "check_real",
    "check_reflections",
    "diagnose",
    "iter_analyze",
    "run_to_end",
]

# Kept importable from here for the modules that used the former single-file engine.
_REEXPORTED = (as_reflections, _FIELDS)
