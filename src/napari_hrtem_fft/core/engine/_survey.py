"""The survey for the refinement: where each reflection sits in each frame.

A light first pass (from the frame's spectrum that the maps use too, on a grid of about
``window/8`` pixels, no background or leakage terms) gives the power-weighted median
frequency of each reflection and frame; the maps are then demodulated there, which keeps
uniform lattice changes and rotations in the centre of the window's main lobe.

A frame may hold two lattices of one reflection (a core and a shell, two phases): when
windows of at least ``_MODE_SHARE`` of the survey's power lie more than
``_MODE_SEPARATION`` bins from that median, the survey gives two modes, each the
power-weighted median of the windows nearer to it than to the other, and every window is
demodulated at the mode nearer to its own estimate (``docs/method.md``).
"""

from __future__ import annotations

import numpy as np

from ._frame import (
    FrameSpectrum,
    _coefficients,
    _in_search,
    _phase_frequencies,
    survey_step,
)

# A reflection is demodulated at its refined frequency only if that moved by more than
# this many bins (1/N): at an offset β (bins) the phase-difference variance grows by
# about (1 + 3β²)/|Ŵ(β)/Ŵ(0)|², i.e. < 5 % below it, and the estimate stays unbiased.
_REFINE_TOLERANCE_BINS = 0.1

# A second demodulation frequency (mode) is used when windows holding at least this share
# of a reflection's survey power lie more than _MODE_SEPARATION bins (1/N) from the first
# mode, and the two modes end up at least that far apart.  0.25 bin costs the estimate
# (1 + 3β²)/|Ŵ(β)/Ŵ(0)|² = 1.26× in variance; the survey's own scatter at fringe SNR 1
# and window 64 is ~0.04 bin, so that noise alone never reaches it.
_MODE_SEPARATION = 0.25
_MODE_SHARE = 0.05
# ... and only when the modes lie this many times further apart than the windows' typical
# (power-weighted median) distance to their own mode: two phases give 15-28 (core-shell
# lattices at fringe SNR 1-2), a weak reflection's noise alone about 2 (PZO.dm3's 0.426 nm
# reflection at window 64), where choosing per window between two demodulations would
# only sort the noise into two clusters.
_MODE_CONTRAST = 5.0

# The survey's kernels keep ±8 window bins of the spectrum (the maps' ±16): a quarter
# of the work, and its window differs from the Hann window by ~10⁻³ of its peak, which
# changes nothing in its medians (the phase difference is exact for any window).
_SURVEY_BAND_CUT = 8.0


def _refined(demod, given, window: int):
    """The demodulation ``(n, 4)`` of each reflection from the survey's modes ``(n, 4)``.

    Columns 0-1: the first mode where it moved by more than the tolerance from
    ``given``, else ``given``; columns 2-3: the second mode, NaN where there is none.
    """
    first, second = demod[:, :2], demod[:, 2:]
    moved = np.max(np.abs(first - given), axis=1) * window
    use = np.isfinite(moved) & (moved > _REFINE_TOLERANCE_BINS)
    return np.concatenate([np.where(use[:, None], first, given), second], axis=1)


def _survey_frame(
    spec: FrameSpectrum, origin, context, core, *, given, window, step, search, workers
):
    """The survey ``(3, n, cy, cx)`` of one 2D frame from its spectrum.

    The frame's core (``core`` pixels from ``context`` on, image pixel ``origin``) holds
    the window centres, every :func:`survey_step` pixels of the image's grid.  Fields: the local
    ``fy``, ``fx`` (NaN outside the search region or where the window is not clean)
    and the peak power (0 there).
    """
    coarse = survey_step(window, step)
    n = given.shape[0]
    first = [-(-o // coarse) * coarse for o in origin]
    count = tuple(
        max(0, -(-(o + c - f) // coarse)) for o, c, f in zip(origin, core, first, strict=True)
    )
    out = np.zeros((3, n, *count), dtype=np.float32)
    out[:2] = np.nan
    if not all(count):
        return out
    local = tuple(f - o + p for f, o, p in zip(first, origin, context, strict=True))
    clean = spec.clean(window, coarse, local, count)
    if not clean.any():
        return out
    coef, _ = _coefficients(
        spec,
        given,
        window=window,
        step=coarse,
        start=local,
        count=count,
        background=False,
        noise=False,
        workers=workers,
        cut=_SURVEY_BAND_CUT,
    )
    fy, fx = _phase_frequencies(coef)
    ok = _in_search(fy, fx, np.hypot(fy, fx), given, search)
    ok &= clean
    out[0] = np.where(ok, fy, np.nan)
    out[1] = np.where(ok, fx, np.nan)
    out[2] = np.where(ok, coef[0].real ** 2 + coef[0].imag ** 2, 0.0)
    return out


def _weighted_modes(survey, window: int):
    """Per reflection and frame, the survey's modes ``(fy1, fx1, fy2, fx2)``.

    ``survey`` is ``(3, n, *lead, cy, cx)``; returns ``(n, 4, *lead)`` in cycles/pixel
    (see :func:`_survey_modes`).  Weighting by the peak power makes windows without
    lattice (weak) count little, with no threshold to choose.
    """
    n = survey.shape[1]
    lead = survey.shape[2:-2]
    out = np.empty((n, 4, *lead))
    for r in range(n):
        for idx in np.ndindex(*lead):
            out[(r, slice(None), *idx)] = _survey_modes(survey[(slice(None), r, *idx)], window)
    return out


def _survey_modes(survey, window: int):
    """The modes ``(fy1, fx1, fy2, fx2)`` of one reflection's survey ``(3, cy, cx)``.

    The first is the power-weighted median of every window (NaN if none is valid).  If
    windows holding ``_MODE_SHARE`` of the power lie more than ``_MODE_SEPARATION`` bins
    from it, their weighted median seeds a second mode; each window then goes to the
    nearer seed and each mode is the weighted median of its windows.  The mode with more
    power comes first; the second is NaN unless the two end ``_MODE_SEPARATION`` apart,
    and ``_MODE_CONTRAST`` times the windows' weighted median distance to their mode.
    """
    out = np.full(4, np.nan)
    weight = survey[2].ravel()
    use = weight > 0
    if not use.any():
        return out
    f = np.stack([survey[0].ravel()[use], survey[1].ravel()[use]], axis=1)
    fy, fx = f[:, 0].astype(np.float64), f[:, 1].astype(np.float64)
    weight = weight[use].astype(np.float64)

    def distance2(at):
        """Squared distance (cycles/pixel) of every window's estimate to ``at``."""
        dy, dx = fy - at[0], fx - at[1]
        dy *= dy
        dx *= dx
        dy += dx
        return dy

    median2 = _Medians(f, weight)
    out[:2] = median2()
    far = distance2(out[:2]) > (_MODE_SEPARATION / window) ** 2
    if weight[far].sum() < _MODE_SHARE * weight.sum():
        return out
    seeds = np.stack([out[:2], median2(far)])
    to_first = distance2(seeds[0])
    second = distance2(seeds[1]) < to_first
    groups = [~second, second]
    if any(weight[g].sum() < _MODE_SHARE * weight.sum() for g in groups):
        return out
    modes = np.stack([median2(g) for g in groups])
    separation = np.hypot(*(modes[0] - modes[1])) * window
    own = np.sqrt(np.minimum(distance2(modes[0]), distance2(modes[1]))) * window
    if separation < max(_MODE_SEPARATION, _MODE_CONTRAST * _weighted_median(own, weight)):
        return out
    order = np.argsort([-weight[g].sum() for g in groups], kind="stable")
    return modes[order].ravel()


class _Medians:
    """Component-wise weighted medians of ``f (m, 2)`` and of subsets of it.

    Each component is sorted once; the median of a subset (a mask with some weight) is
    then one cumulative sum over the sorted order, as :func:`_weighted_median` defines
    it.
    """

    def __init__(self, f, weight):
        # Ties hold one value, so that their order does not matter.
        self.orders = [np.argsort(f[:, c]) for c in range(2)]
        self.values = [f[order, c] for c, order in enumerate(self.orders)]
        self.weights = [weight[order] for order in self.orders]

    def __call__(self, mask=None):
        out = np.empty(2)
        for c, (order, values, weights) in enumerate(
            zip(self.orders, self.values, self.weights, strict=True)
        ):
            cum = np.cumsum(weights if mask is None else np.where(mask[order], weights, 0.0))
            out[c] = values[min(np.searchsorted(cum, 0.5 * cum[-1]), values.size - 1)]
        return out


def _weighted_median(values, weights):
    """The smallest value whose cumulative weight (values sorted) reaches half the total.

    The result of sorting, by selection: each round splits the candidates at their
    median (``np.partition``, linear time) and keeps the side that holds the crossing.
    """
    weights = weights.astype(np.float64)
    half = 0.5 * weights.sum()
    below = 0.0  # weight of the values already known to lie below the candidates
    while values.size > 64:
        pivot = np.partition(values, values.size // 2)[values.size // 2]
        lower = values < pivot
        w_lower = below + weights[lower].sum()
        if w_lower >= half:
            values, weights = values[lower], weights[lower]
            continue
        equal = values == pivot
        w_equal = w_lower + weights[equal].sum()
        if w_equal >= half:
            return pivot
        upper = ~(lower | equal)
        values, weights, below = values[upper], weights[upper], w_equal
    order = np.argsort(values)
    cum = below + np.cumsum(weights[order])
    return values[order][min(np.searchsorted(cum, half), values.size - 1)]
