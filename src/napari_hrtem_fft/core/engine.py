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

The amplitude is ``|Z(c)|²`` over the local background power, the mean ``|Z|²`` at four
frequencies 3 and 5 bins (``1/N``) beside ``f0``, offset along the axis on which ``g``
has its smaller component (roughly tangential, so at about the same ``|g|``; the Hann
window is zero at integer bins ≥ 2 from a peak, so a peak leaks little there).  The
standard deviations follow from the linearised variance of the phase difference for
white noise at that background level.

Everything after the removal of each frame's offset runs in single precision
(complex64 FFTs and folds, float32 maps): its round-off moves ``d`` by up to ~1e-6
relative on noise-free lattices, 40 times below the accuracy target, at half the memory
traffic of double precision.  numpy input is cut into the same blocks as dask input and
computed in a thread pool; a block carries ``window/2`` pixels of context only where
the image has them, so that the two give identical maps for the same block layout.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ._windows import hann_dtft, kernel_spectra, lag_one_correlation
from .maps import LatticeMaps
from .reciprocal import as_reflections

__all__ = ["DEFAULT_MIN_AMPLITUDE", "analyze"]

logger = logging.getLogger(__name__)

#: Default threshold on the amplitude (peak power over local background power).  For
#: white noise without lattice the ratio follows an F(2, 8) law and exceeds 10 in 0.7 %
#: of the windows, which are further rejected unless their estimate falls in the search
#: region.
DEFAULT_MIN_AMPLITUDE = 10.0

# Background frequencies, in bins of 1/N beside the demodulation frequency.  Integer
# offsets of 3 or more lie outside the Hann main lobe (±2 bins) and on the zeros of the
# window spectrum of an on-grid peak; 3 and 5 bins apart are nearly uncorrelated (1/6).
_BACKGROUND_BINS = (-5.0, -3.0, 3.0, 5.0)

# A reflection is demodulated at its refined frequency only if that moved by more than
# this many bins (1/N): at an offset β (bins) the phase-difference variance grows by
# about (1 + 3β²)/|Ŵ(β)/Ŵ(0)|², i.e. < 5 % below it, and the estimate stays unbiased.
_REFINE_TOLERANCE_BINS = 0.1

# Leakage coefficients below this (relative to the main lobe) are not corrected: they
# move d by about 1e-6 at most (measured on noise-free lattices), 50 times below the
# accuracy target, and skipping them saves a pass over the maps each.
_LEAKAGE_NEGLIGIBLE = 1e-6

# Auto chunking: spatial chunk side between these bounds, 8 windows where possible, so
# that the overlap (window/2 each side) costs little and a task stays near 100 MB.
_CHUNK_MIN, _CHUNK_MAX = 1024, 2048

_FIELDS = ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma")


# --------------------------------------------------------------------------- checks


def _check_image(image):
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or dtype is None:
        try:
            image = np.asarray(image)
        except (TypeError, ValueError) as err:
            kind = type(image).__name__
            raise TypeError(f"image must be an array (..., y, x), got {kind}") from err
        shape, dtype = image.shape, image.dtype
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"image must be real-valued, got complex dtype {dtype}")
    if dtype.kind not in "iuf":
        raise TypeError(f"image must hold real numbers, got dtype {dtype}")
    if len(shape) < 2:
        raise ValueError(f"image must have at least 2 dimensions (..., y, x), got shape {shape}")
    return image, tuple(int(s) for s in shape), dtype


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_chunks(chunks, step: int, depth: int):
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        return None
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        chunks = (chunks, chunks)
    if not (isinstance(chunks, tuple | list) and len(chunks) == 2):
        raise ValueError(f"chunks must be None, 'auto', an int or (cy, cx), got {chunks!r}")
    out = []
    for c in chunks:
        c = _check_int(c, "chunks", 1)
        # Multiples of the step keep every block's first window on the global grid;
        # at least the overlap depth, as dask's overlap requires.
        out.append(max(-(-c // step) * step, -(-depth // step) * step))
    return tuple(out)


# ----------------------------------------------------------------- block computation


# Elements of the spectrum per chunk of a fold: every kernel is applied to one chunk
# while it sits in the CPU cache (2 MB in complex64), which makes the folds about 1.5x
# faster than whole-array passes.
_FOLD_CHUNK = 2**18


def _fold(spec, kernels, step: int, axis: int, out, work):
    """Fold ``spec × kernel`` along ``axis`` (0 or 1) into ``L/step`` bins, per kernel.

    ``spec`` is ``(Ly, Lx)``; ``kernels`` is ``(k, L)``, already holding the position
    ramp and the 1/step factor; ``out[j]`` receives ``(Ly/step, Lx)`` (axis 0) or
    ``(Ly, Lx/step)`` (axis 1) for kernel ``j``.  Summing the ``step`` aliases of every
    bin before the inverse FFT gives exactly the inverse transform sampled at every
    ``step``.  ``work`` is a flat scratch buffer of at least ``_FOLD_CHUNK`` elements and
    ``step·max(Ly, Lx)``.
    """
    ly, lx = spec.shape
    if axis == 0:
        m = ly // step
        aliases = spec.reshape(step, m, lx)
        ker = kernels.reshape(-1, step, m, 1)
        rows = max(1, _FOLD_CHUNK // (step * lx))
    else:
        m = lx // step
        aliases = spec.reshape(ly, step, m)
        ker = kernels.reshape(-1, step, m)
        rows = max(1, _FOLD_CHUNK // lx)
    for r0 in range(0, m if axis == 0 else ly, rows):
        part = aliases[:, r0 : r0 + rows] if axis == 0 else aliases[r0 : r0 + rows]
        product = work[: part.size].reshape(part.shape)
        for j in range(ker.shape[0]):
            # A multiply into the scratch buffer and a sum over the alias axis: faster
            # than einsum's generic complex loop.
            np.multiply(part, ker[j, :, r0 : r0 + rows] if axis == 0 else ker[j], out=product)
            np.sum(product, axis=0 if axis == 0 else 1, out=out[j][r0 : r0 + rows])
    return out


def _window_centres(shape, window: int, step: int, start, count):
    """Local window centres ``(ys, xs)`` and whether each footprint lies inside ``shape``."""
    half = window // 2
    centres = [s + step * np.arange(c) for s, c in zip(start, count, strict=True)]
    inside = [(c >= half) & (c + half <= n) for c, n in zip(centres, shape, strict=True)]
    return centres, inside[0][:, None] & inside[1][None, :]


def _clean_windows(finite, window: int, step: int, start, count):
    """True where the window footprint ``c - N/2 … c + N/2 - 1`` lies inside the frame and
    holds only finite pixels."""
    (ys, xs), inside = _window_centres(finite.shape, window, step, start, count)
    half = window // 2
    bad_rows = ~finite.any(axis=1)
    bad_cols = ~finite.any(axis=0)
    n_rows, n_cols = int(bad_rows.sum()), int(bad_cols.sum())
    n_bad = finite.size - np.count_nonzero(finite)
    if n_bad == n_rows * finite.shape[1] + n_cols * finite.shape[0] - n_rows * n_cols:
        # Only whole rows and columns are missing (the NaN context beyond the image):
        # the footprint test separates into one per axis.
        def clean_1d(bad, centres):
            cum = np.concatenate([[0], np.cumsum(bad)])
            lo, hi = np.clip(centres - half, 0, bad.size), np.clip(centres + half, 0, bad.size)
            return cum[hi] == cum[lo]

        return inside & clean_1d(bad_rows, ys)[:, None] & clean_1d(bad_cols, xs)[None, :]
    # A minimum filter of even size N covers exactly i - N/2 … i + N/2 - 1.
    rows = ndimage.minimum_filter1d(finite.view(np.uint8), window, axis=1)[:, xs]
    return inside & ndimage.minimum_filter1d(rows, window, axis=0)[ys].astype(bool)


def _prepare(frame, window: int, step: int, start, count):
    """Offset-free float32 frame (NaN → 0) and the mask of clean windows.

    Windows are centred on ``start + (i, j)·step``, ``(i, j) < count``; a clean window
    lies inside the frame and holds no NaN/inf pixel.

    Removing an offset near the frame mean (in the frame's precision) first keeps the
    FFT's round-off relative to the fringes.  The frame is then scaled by a power of two
    (exact) to an RMS near 1, so that ``|Z|²`` stays far from the float32 range limits
    for any intensity unit; every output is scale-free.  Single precision from here:
    its round-off moves ``d`` by up to ~1e-6 relative on noise-free lattices (measured,
    ``docs/method.md``), 40 times below the accuracy target.
    """
    finite = np.isfinite(frame)
    n_finite = np.count_nonzero(finite)
    if n_finite == 0:
        return None, np.zeros(count, dtype=bool)
    # Any offset near the mean serves (each window's own mean is removed exactly
    # later): that of every 4th pixel, or of all finite pixels if that has none.
    sample = frame[::4, ::4]
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        sample = frame[finite]
    offset = sample.mean(dtype=np.float64)
    rms = float(np.sqrt(np.mean(np.square(sample - offset, dtype=np.float64))))
    scale = 2.0 ** -round(math.log2(rms)) if 0 < rms < math.inf else 1.0
    # The subtraction in the frame's own precision, then single precision.
    data = np.subtract(frame, frame.dtype.type(offset)).astype(np.float32, copy=False)
    data *= np.float32(scale)
    if n_finite == finite.size:
        return data, _window_centres(frame.shape, window, step, start, count)[1]
    np.copyto(data, 0.0, where=~finite)
    return data, _clean_windows(finite, window, step, start, count)


def _coefficients(data, demod, *, window, step, start, count, background, bg_bins, workers):
    """Windowed Fourier coefficients at c, c - e_y and c - e_x, and the background power.

    ``data`` is a mean-removed float32 2D frame; windows are centred on local pixels
    ``start + (i, j)·step`` for ``(i, j) < count``; ``demod`` is ``(k, 2)`` in
    cycles/pixel.  Returns ``coef (3, k, my, mx)`` (complex64, phase referred to each
    window's centre) and the mean ``|Z|²`` at the background frequencies ``(k, my, mx)``
    (``None`` without them).
    """
    n_win, s = window, step
    (py, px), (my, mx) = start, count
    k = demod.shape[0]
    h, w = data.shape
    # One 2D spectrum serves every kernel: fold along one axis with the first-axis
    # kernels, then along the other with the second-axis ones; one small batched
    # inverse 2D FFT then gives every coefficient map on the step grid.
    ly, lx = (s * sfft.next_fast_len(-(-n // s)) for n in (h, w))
    spectrum = sfft.fft2(data, s=(ly, lx), workers=workers)
    ctype = spectrum.dtype
    length, first_pos = (ly, lx), (py, px)
    bg = np.asarray(bg_bins, dtype=np.float64) / n_win
    nb = bg.size

    def kernels(axis, freqs, shifts):
        return (kernel_spectra(n_win, length[axis], freqs, shifts) / s).astype(ctype)

    # Each reflection is folded first along the axis of its larger component, so that
    # the background frequencies, offset along the other axis, lie roughly on the
    # circle |g| (tangential).  First folds, one sweep over the spectrum per axis:
    # per reflection the windows at c and c - e1; along x also the Hann-weighted window
    # means at c and c - e_x.  The f = 0 kernels are Hermitian (real results), so these
    # two travel together as the real and imaginary parts of one kernel.
    y_first = np.abs(demod[:, 0]) > np.abs(demod[:, 1])
    first_kernels = {0: [], 1: []}
    if background:
        kx = kernels(1, [0.0, 0.0], [px, px - 1])
        first_kernels[1].append(kx[0] + 1j * kx[1])
    slot = {}  # reflection → (axis, index of its c kernel) in the first folds
    for r in range(k):
        ax1 = 0 if y_first[r] else 1
        slot[r] = (ax1, len(first_kernels[ax1]))
        pos = first_pos[ax1]
        first_kernels[ax1].extend(kernels(ax1, [demod[r, ax1]] * 2, [pos, pos - 1]))
    work = np.empty(max(_FOLD_CHUNK, s * max(ly, lx)), dtype=ctype)
    first = {}
    for axis, kers in first_kernels.items():
        if kers:
            shape = (len(kers), ly // s, lx) if axis == 0 else (len(kers), ly, lx // s)
            first[axis] = _fold(spectrum, np.stack(kers), s, axis, np.empty(shape, ctype), work)
    del spectrum

    # Second folds into the planes of the small inverse FFT: the window means at c,
    # c - e_x (one plane) and c - e_y; then per reflection the windows at c, c - e_y,
    # c - e_x and the background frequencies.
    per = 3 + nb
    n_mean = 2 if background else 0
    folded = np.empty((n_mean + per * k, ly // s, lx // s), dtype=ctype)
    if background:
        _fold(first[1][0], kernels(0, [0.0, 0.0], [py, py - 1]), s, 0, folded[:2], work)
    for r in range(k):
        ax1, i = slot[r]
        ax2 = 1 - ax1
        f2, p2 = demod[r, ax2], first_pos[ax2]
        # On the c windows: c, c - e2 and the background frequencies; on the c - e1
        # windows: c only.
        ka = kernels(ax2, np.concatenate([[f2, f2], f2 + bg]), [p2, p2 - 1] + [p2] * nb)
        planes = folded[n_mean + per * r : n_mean + per * (r + 1)]
        e1, e2 = (1, 2) if ax1 == 0 else (2, 1)
        _fold(first[ax1][i], ka, s, ax2, [planes[0], planes[e2], *planes[3:]], work)
        _fold(first[ax1][i + 1], ka[:1], s, ax2, [planes[e1]], work)
    del first
    # The inverse along y, then along x for the map rows only.
    grid = sfft.ifft(folded, axis=-2, overwrite_x=True, workers=workers)[:, :my]
    grid = sfft.ifft(grid, axis=-1, workers=workers)[..., :mx]

    z = grid[n_mean:].reshape(k, per, my, mx)
    coef = z[:, :3].transpose(1, 0, 2, 3)
    z_bg = z[:, 3:]
    if background:
        norm = np.float32(1.0 / hann_dtft(n_win, 0.0) ** 2)
        m_c, m_ex, m_ey = grid[0].real * norm, grid[0].imag * norm, grid[1].real * norm
        w_y, w_x = hann_dtft(n_win, demod[:, 0]), hann_dtft(n_win, demod[:, 1])
        s_main = (w_y * w_x).astype(np.float32)
        for r in range(k):
            coef[0, r] -= m_c * s_main[r]
            coef[1, r] -= m_ey * s_main[r]
            coef[2, r] -= m_ex * s_main[r]
        if nb:
            w1 = np.where(y_first, w_y, w_x)
            f2 = np.where(y_first, demod[:, 1], demod[:, 0])
            s_bg = (w1[:, None] * hann_dtft(n_win, f2[:, None] + bg)).astype(np.float32)
            for r, b in np.ndindex(k, nb):
                z_bg[r, b] -= m_c * s_bg[r, b]
    noise = None
    if nb:
        # Mean |Z|² over the background frequencies, accumulated in place.
        noise = np.square(z_bg[:, 0].real)
        for b in range(nb):
            if b:
                noise += np.square(z_bg[:, b].real)
            noise += np.square(z_bg[:, b].imag)
        noise *= np.float32(1.0 / nb)
    return coef, noise


def _frame_maps(
    frame,
    demod,
    given,
    out,
    *,
    start,
    window: int,
    step: int,
    pixel_size: float,
    min_amplitude: float,
    search: float,
    background: bool,
    workers: int,
):
    """The five maps of one 2D frame for ``k`` reflections, into ``out (5, k, my, mx)``.

    Map pixel ``(i, j)`` is the window centred on local pixel ``start + (i, j)·step``;
    windows reaching beyond the frame are NaN.  ``demod`` and ``given`` are ``(k, 2)``
    frequencies in cycles/pixel.
    """
    count = out.shape[-2:]
    data, clean = _prepare(frame, window, step, start, count)
    if not clean.any():
        out[...] = np.nan
        return out
    coef, noise = _coefficients(
        data,
        demod,
        window=window,
        step=step,
        start=start,
        count=count,
        background=background,
        bg_bins=_BACKGROUND_BINS,
        workers=workers,
    )
    coef = _remove_leakage(coef, demod, window, background)
    fy, fx = _phase_frequencies(coef)
    power = coef[0].real ** 2 + coef[0].imag ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = np.where(power > 0, power / noise, np.float32(0.0))
    # Linearised variance of the phase difference for white noise: the two windows
    # share their noise except for the 1-pixel shift and the signal's rotation.
    # 1 - ρ cos x written as (1 - ρ) + 2ρ sin²(x/2): ρ is within 1e-3 of 1, and the
    # direct form would lose 4 of float32's 7 digits to the cancellation.
    rho = lag_one_correlation(window)
    a_eff = np.float32(4 * np.pi**2) * np.maximum(amp - np.float32(1.0), np.float32(1e-12))
    d32 = demod.astype(np.float32)[:, :, None, None]
    one_minus, two_rho, pi = np.float32(1.0 - rho), np.float32(2 * rho), np.float32(np.pi)
    vy = (one_minus + two_rho * np.sin(pi * (fy - d32[:, 0])) ** 2) / a_eff
    vx = (one_minus + two_rho * np.sin(pi * (fx - d32[:, 1])) ** 2) / a_eff
    return _finish(out, fy, fx, vy, vx, amp, given, clean, pixel_size, min_amplitude, search)


def _phase_frequencies(coef):
    """Local ``(fy, fx)`` in cycles/pixel from the phase differences ``(3, k, my, mx)``."""
    inv = np.float32(0.5 / np.pi)
    fy = np.angle(coef[0] * np.conj(coef[1])) * inv
    fx = np.angle(coef[0] * np.conj(coef[2])) * inv
    return fy, fx


def _hann2(window: int, f) -> np.ndarray:
    """2D window DTFT ``Ŵ(fy)·Ŵ(fx)`` at frequencies ``f (..., 2)``."""
    f = np.asarray(f, dtype=np.float64)
    return hann_dtft(window, f[..., 0]) * hann_dtft(window, f[..., 1])


def _remove_leakage(coef, demod, window: int, background: bool):
    """Subtract from each coefficient (in place) the leakage of the other picked components.

    Each real fringe ``j`` is a pair of components ``a_j exp(2πi f_j·r)`` and its
    conjugate at ``-f_j``; through the window's side lobes both add
    ``a_j C(f0_k - f_j)`` and ``conj(a_j) C(f0_k + f_j)`` to the coefficient of
    reflection ``k`` (``C`` the window DTFT, minus the part removed with the window
    mean).  With ``a_j`` from the measured coefficient ``Z_j / C(f0_j - f_j)`` and
    the ratios expanded to first order in the local offset ``f_j - f0_j``, one
    correction leaves a residual of second order in the leakage (about 1e-8 instead
    of 1e-4 for reflections 10 bins apart in a 64-pixel window).
    """
    k = demod.shape[0]
    w0 = _hann2(window, np.zeros(2))
    h = 1e-3 / window
    probes = np.array([[0.0, 0.0], [h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
    terms = []  # (target k, source j, conjugate?, c0, gradient)
    for j in range(k):
        f = demod[j] + probes  # (5, 2) candidate true frequencies of component j
        mean_part = _hann2(window, f) / w0 if background else np.zeros(len(f))
        own = _hann2(window, demod[j] - f) - mean_part * _hann2(window, demod[j])
        for kk in range(k):
            for sign in (-1.0, 1.0):
                if sign < 0 and kk == j:
                    continue
                cross = _hann2(window, demod[kk] + sign * f)
                ratio = (cross - mean_part * _hann2(window, demod[kk])) / own
                grad = np.array([ratio[1] - ratio[2], ratio[3] - ratio[4]]) / (2 * h)
                if abs(ratio[0]) + np.abs(grad).sum() * 0.5 / window >= _LEAKAGE_NEGLIGIBLE:
                    terms.append((kk, j, sign > 0, ratio[0], grad))
    if not terms:
        return coef
    # Uncorrected copies of the sources and their first-order local frequency offsets
    # (single precision, as the coefficients: the correction itself is below 1e-3).
    d32 = demod.astype(np.float32)
    source, offset = {}, {}
    for j in sorted({term[1] for term in terms}):
        source[j] = coef[:, j].copy()
        fy, fx = _phase_frequencies(source[j])
        offset[j] = (fy - d32[j, 0], fx - d32[j, 1])
    product = np.empty_like(source[j])
    for kk, j, conjugate, c0, grad in terms:
        factor = np.float32(grad[0]) * offset[j][0]
        factor += np.float32(grad[1]) * offset[j][1]
        factor += np.float32(c0)
        # The factor is real: conj(Z)·factor = conj(Z·factor).
        np.multiply(source[j], factor, out=product)
        if conjugate:
            np.conjugate(product, out=product)
        coef[:, kk] -= product
    return coef


def _finish(out, fy, fx, vy, vx, amp, given, clean, pixel_size, min_amplitude, search):
    """Spacing, angle, amplitude and sigmas into ``out (5, r, my, mx)``, NaN rules applied.

    float32 throughout: the outputs are float32 and its 6e-8 resolution is far below the
    estimates' accuracy.
    """
    fy2, fx2 = np.square(fy), np.square(fx)
    f2 = fy2 + fx2
    fmag = np.sqrt(f2)
    ok = _in_search(fy, fx, fmag, given, search)
    ok &= amp >= min_amplitude
    ok &= np.isfinite(amp)
    ok &= clean
    bad = ~ok
    nan = np.float32(np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(np.float32(pixel_size), fmag, out=out[0])
        # 0 - fy turns -0.0 into +0.0, so that atan2 gives +π, never -π: (-180°, 180°].
        np.degrees(np.arctan2(np.float32(0.0) - fy, fx), out=out[1])
        np.copyto(out[2], amp)
        np.divide(np.sqrt(fy2 * vy + fx2 * vx), f2, out=out[3])
        out[3] *= out[0]
        np.degrees(np.sqrt(fx2 * vy + fy2 * vx) / f2, out=out[4])
    for i in (0, 1, 3, 4):
        np.copyto(out[i], nan, where=bad)
    np.copyto(out[2], nan, where=~clean)
    return out


def _in_search(fy, fx, fmag, given, search: float):
    """Whether ``f`` lies in the search region of ``given`` (``(k, 2)``, maps ``(k, ...)``).

    ``|f|`` within ±search·``|g|`` of ``|g|``, and the angle between ``f`` and ``g``
    within ±search radians (< π/2), i.e. ``f·g > 0`` and ``|f × g| <= tan(search)·f·g``.
    """
    g = given.astype(np.float32)
    gy, gx = g[:, 0, None, None], g[:, 1, None, None]
    gmag = np.hypot(gy, gx)
    ok = np.abs(fmag - gmag) <= np.float32(search) * gmag
    ok &= np.abs(fy * gx - fx * gy) <= np.float32(math.tan(search)) * (fy * gy + fx * gx)
    return ok


def _block_maps(
    block, start_y, start_x, demod=None, *, given, window, step, depth, shape, **options
):
    """One dask block ``(*lead, h, w)`` → ``(5, n, *lead, my, mx)`` float32.

    The block carries ``depth`` pixels of context on each side (NaN beyond the image
    of 2D shape ``shape``) around its core, which starts on image pixel
    ``(start_y[0], start_x[0])``.  ``demod`` is ``None`` (demodulate at ``given``) or
    the refined frequencies ``(n, 2, *lead)``; a reflection whose refined frequency
    moved by less than the tolerance, or that has none, is demodulated at ``given``.
    """
    lead = block.shape[:-2]
    n = given.shape[0]
    core = (block.shape[-2] - 2 * depth, block.shape[-1] - 2 * depth)
    cut, context = _within_image((int(start_y[0]), int(start_x[0])), core, depth, shape)
    out = np.empty((5, n, *lead, -(-core[0] // step), -(-core[1] // step)), dtype=np.float32)
    for idx in np.ndindex(*lead):
        freqs = (
            given
            if demod is None
            else _refined(demod[(slice(None), slice(None), *idx)], given, window)
        )
        _frame_maps(
            block[idx][cut],
            freqs,
            given,
            out[(slice(None), slice(None), *idx)],
            start=context,
            window=window,
            step=step,
            **options,
        )
    return out


def _within_image(origin, core, depth: int, shape):
    """The part of a block with ``depth`` context pixels that lies inside the image.

    A block's core of ``core`` pixels starts on image pixel ``origin``; returns the
    slices of the block inside an image of 2D ``shape`` and the context then left
    before the core.  The context beyond the image edges is not transformed at all:
    windows reaching there are NaN anyway, and numpy and dask input cut the same
    frames this way, so that their results agree exactly.
    """
    (y0, x0), (hc, wc), (h, w) = origin, core, shape
    top, left = min(depth, y0), min(depth, x0)
    bottom, right = min(depth, h - y0 - hc), min(depth, w - x0 - wc)
    cut = (slice(depth - top, depth + hc + bottom), slice(depth - left, depth + wc + right))
    return cut, (top, left)


def _refined(demod, given, window: int):
    """The refined frequencies where they moved by more than the tolerance, else ``given``."""
    moved = np.max(np.abs(demod - given), axis=1) * window
    use = np.isfinite(moved) & (moved > _REFINE_TOLERANCE_BINS)
    return np.where(use[:, None], demod, given)


def _survey_block(
    block, start_y, start_x, *, given, window, step, depth, shape, binning, search, workers
):
    """First, light pass for the refinement: ``(3, n, *lead, cy, cx)`` of fy, fx, weight.

    Windows are centred on the image pixels that are multiples of ``2·step`` (a global
    grid, so the result does not depend on the blocks) and the frame may be binned
    ``binning × binning`` (window and frequencies scaled accordingly): this pass only
    has to locate the bulk of each reflection to a fraction of a bin.  No window-mean
    removal, background frequencies or leakage correction.  ``weight`` is ``|Z|²`` of
    windows free of NaN whose estimate lies in the search region, else 0.
    """
    lead = block.shape[:-2]
    core = (block.shape[-2] - 2 * depth, block.shape[-1] - 2 * depth)
    origin = (int(start_y[0]), int(start_x[0]))
    cut, context = _within_image(origin, core, depth, shape)
    options = dict(given=given, window=window, step=step, binning=binning, search=search)
    parts = [
        _survey_frame(block[idx][cut], origin, context, core, workers=workers, **options)
        for idx in np.ndindex(*lead)
    ]
    n, count = given.shape[0], parts[0].shape[-2:]
    return np.stack(parts, axis=2).reshape(3, n, *lead, *count)


def _survey_frame(frame, origin, context, core, *, given, window, step, binning, search, workers):
    """The survey ``(3, n, cy, cx)`` of one 2D frame (see :func:`_survey_block`).

    The frame's core (``core`` pixels from ``context`` on, image pixel ``origin``) holds
    the window centres; the frame starts on an even image pixel (planning ensures it).
    """
    b = binning
    coarse = 2 * step
    n = given.shape[0]
    first = [-(-o // coarse) * coarse for o in origin]
    count = tuple(
        max(0, -(-(o + c - f) // coarse)) for o, c, f in zip(origin, core, first, strict=True)
    )
    out = np.zeros((3, n, *count), dtype=np.float32)
    out[:2] = np.nan
    if not all(count):
        return out
    local = tuple((f - o + p) // b for f, o, p in zip(first, origin, context, strict=True))
    win, st = window // b, coarse // b
    data, clean = _prepare(_binned(frame, b), win, st, local, count)
    if not clean.any():
        return out
    coef, _ = _coefficients(
        data,
        given * b,
        window=win,
        step=st,
        start=local,
        count=count,
        background=False,
        bg_bins=(),
        workers=workers,
    )
    fy, fx = _phase_frequencies(coef)
    fy, fx = fy / np.float32(b), fx / np.float32(b)
    ok = _in_search(fy, fx, np.hypot(fy, fx), given, search)
    ok &= clean
    out[0] = np.where(ok, fy, np.nan)
    out[1] = np.where(ok, fx, np.nan)
    out[2] = np.where(ok, coef[0].real ** 2 + coef[0].imag ** 2, 0.0)
    return out


def _binned(frame, b: int):
    """Sum of ``b × b`` pixel blocks (NaN propagates); the frame itself for ``b = 1``."""
    if b == 1:
        return frame
    hb, wb = frame.shape[0] // b, frame.shape[1] // b
    frame = frame[: hb * b, : wb * b]
    rows = sum(frame[i::b] for i in range(1, b)) + frame[0::b]
    return sum(rows[:, j::b] for j in range(1, b)) + rows[:, 0::b]


def _weighted_medians(survey):
    """Per reflection and frame, the power-weighted median ``(fy, fx)`` of the survey.

    ``survey`` is ``(3, n, *lead, cy, cx)``; returns ``(n, 2, *lead)`` in cycles/pixel,
    NaN where a frame has no valid window.  Weighting by the peak power makes windows
    without lattice (weak) count little, with no threshold to choose.
    """
    n = survey.shape[1]
    lead = survey.shape[2:-2]
    out = np.empty((n, 2, *lead))
    for r in range(n):
        for idx in np.ndindex(*lead):
            out[(r, slice(None), *idx)] = _survey_median(survey[(slice(None), r, *idx)])
    return out


def _survey_median(survey):
    """The power-weighted median ``(fy, fx)`` of one reflection's survey ``(3, cy, cx)``."""
    weight = survey[2].ravel()
    use = weight > 0
    if not use.any():
        return np.full(2, np.nan)
    return np.array([_weighted_median(survey[c].ravel()[use], weight[use]) for c in range(2)])


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


def _survey_binning(given, window: int, step: int, search: float) -> int:
    """2 when a 2×2-binned frame still holds the reflections well below Nyquist."""
    fits = 2 * (1 + search) * np.max(np.abs(given)) <= 0.4
    return 2 if (step % 2 == 0 and window % 4 == 0 and window >= 64 and fits) else 1


# ------------------------------------------------------------------------- planning


def _split(size: int, chunk: int, depth: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` along an axis; a last remainder smaller than ``depth`` merges."""
    sizes = [chunk] * (size // chunk)
    rest = size - chunk * len(sizes)
    if rest:
        if sizes and rest < depth:
            sizes[-1] += rest
        else:
            sizes.append(rest)
    return tuple(sizes)


def _auto_chunk(window: int, step: int) -> int:
    side = min(max(8 * window, _CHUNK_MIN), _CHUNK_MAX)
    return -(-side // step) * step


def _numpy_chunks(shape, window: int, step: int, depth: int) -> tuple[int, int]:
    """Blocks for in-memory images: full-width strips (less overlap), at least one per CPU.

    Each strip holds at most about ``_CHUNK_MAX²`` pixels, which bounds the memory of a
    task (≈ 50 bytes per pixel).
    """
    h, w = shape[-2:]
    cx = w if w <= 2 * _CHUNK_MAX else _auto_chunk(window, step)
    strips = -(-h * cx // _CHUNK_MAX**2)
    if h * w >= 2**20:
        strips = max(strips, os.cpu_count() or 1)
    cy = max(-(-h // strips), depth, window)
    return -(-cy // step) * step, cx


def _compatible(chunks: tuple[int, ...], step: int, depth: int, window: int) -> bool:
    """Whether an input's chunks along an axis can be used as they are.

    Multiples of the step (but the last) and at least the overlap depth, as the block
    layout requires; between 4 windows (or the whole axis) and ``2·_CHUNK_MAX`` so that
    the overlap stays cheap and a task's memory bounded.
    """
    whole = len(chunks) == 1
    return (
        all(c % step == 0 for c in chunks[:-1])
        and min(chunks) >= depth
        and (whole or max(chunks[:-1]) >= 4 * window)
        and max(chunks) <= 2 * _CHUNK_MAX
    )


def _map_chunks(chunks: tuple[int, ...], step: int) -> tuple[int, ...]:
    return tuple(-(-c // step) for c in chunks)


def _numpy_maps(arr, spatial, work, options, survey_options):
    """``(5, n, *lead, my, mx)`` maps of an in-memory image and the demodulation used.

    The blocks of the dask path, cut straight from the array (views where the dtype
    allows) and computed in a thread pool: numpy releases the GIL in every heavy step,
    and a graph would only add overhead here.  A block carries ``depth`` pixels of
    context where the image has them and none beyond its edges: windows reaching
    beyond the image are NaN anyway, so that padding would only cost FFT and fold work.
    Returns the maps and the refined demodulation ``(n, 2, *lead)`` in cycles/pixel
    (``None`` without refinement).
    """
    window, step, depth = options["window"], options["step"], options["depth"]
    given = options["given"]
    frame_options = {k: v for k, v in options.items() if k not in ("depth", "given", "shape")}
    survey_frame_options = {
        k: v for k, v in (survey_options or {}).items() if k not in ("depth", "shape")
    }
    n = given.shape[0]
    lead = arr.shape[:-2]
    h, w = arr.shape[-2:]
    rows = _bounds(h, spatial[0], depth)
    cols = _bounds(w, spatial[1], depth)
    jobs = [(f, r, c) for f in np.ndindex(*lead) for r in rows for c in cols]

    def block(job):
        """The frame with its context inside the image, and the context before the core."""
        f, (y0, y1), (x0, x1) = job
        (rows, cols), context = _within_image((y0, x0), (y1 - y0, x1 - x0), depth, (h, w))
        rows = slice(rows.start + y0 - depth, rows.stop + y0 - depth)
        cols = slice(cols.start + x0 - depth, cols.stop + x0 - depth)
        return arr[(*f, rows, cols)].astype(work, copy=False), context

    def survey(job):
        frame, context = block(job)
        _, (y0, y1), (x0, x1) = job
        core = (y1 - y0, x1 - x0)
        return _survey_frame(frame, (y0, x0), context, core, **survey_frame_options)

    out = np.empty((5, n, *lead, -(-h // step), -(-w // step)), dtype=np.float32)
    demod = None
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        if survey_options is not None:
            demod = np.empty((n, 2, *lead))
            pieces = iter(pool.map(survey, jobs))
            for f in np.ndindex(*lead):
                # The frame's survey assembled as the dask path does, so that both
                # take the medians over the same ordered values.
                grid = [np.concatenate([next(pieces) for _ in cols], axis=-1) for _ in rows]
                frame_survey = np.concatenate(grid, axis=-2)
                medians = np.stack(list(pool.map(_survey_median, frame_survey.swapaxes(0, 1))))
                demod[(slice(None), slice(None), *f)] = _refined(medians, given, window)
            logger.debug("demodulation after the survey (cycles/pixel): %s", demod.tolist())

        def maps(job):
            f, (y0, y1), (x0, x1) = job
            frame, context = block(job)
            freqs = given if demod is None else demod[(slice(None), slice(None), *f)]
            rows = slice(y0 // step, -(-y1 // step))
            cols = slice(x0 // step, -(-x1 // step))
            _frame_maps(
                frame,
                freqs,
                given,
                out[(slice(None), slice(None), *f, rows, cols)],
                start=context,
                **frame_options,
            )

        for _ in pool.map(maps, jobs):
            pass
    return out, demod


def _bounds(size: int, chunk: int, depth: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the blocks of :func:`_split` along an axis."""
    sizes = _split(size, chunk, depth)
    starts = np.cumsum((0, *sizes[:-1]))
    return [(int(a), int(a) + b) for a, b in zip(starts, sizes, strict=True)]


def _dask_maps(x, spatial, work, options, survey_options, user_chunks):
    """Lazy ``(5, n, *lead, my, mx)`` maps of a dask image, block by block.

    ``survey_options`` is ``None`` without refinement; the survey and its medians are
    then graph nodes of their own.
    """
    import dask
    import dask.array as da

    if survey_options is not None and x.ndim > 2 and x.numblocks[0] > 1:
        # Each block of frames is refined from its own survey: one graph over the
        # whole stack would make every frame's second pass wait for the medians of all
        # frames, holding each frame's first-pass intermediates (~20 MB per 2048²
        # frame) until the last survey is done.
        pieces = [
            _dask_maps(x.blocks[i], spatial, work, options, survey_options, user_chunks)
            for i in range(x.numblocks[0])
        ]
        return da.concatenate(pieces, axis=2)

    window, step, depth = options["window"], options["step"], options["depth"]
    given = options["given"]
    n = given.shape[0]
    ndim = x.ndim
    shape = x.shape
    keep = user_chunks is None and all(
        _compatible(x.chunks[a], step, depth, window) for a in (ndim - 2, ndim - 1)
    )
    if not keep:
        x = x.rechunk(
            {
                ndim - 2: _split(shape[-2], spatial[0], depth),
                ndim - 1: _split(shape[-1], spatial[1], depth),
            }
        )
    if x.dtype != work:
        x = x.astype(work)
    map_chunks = (_map_chunks(x.chunks[-2], step), _map_chunks(x.chunks[-1], step))
    overlapped = da.overlap.overlap(
        x,
        depth={ndim - 2: depth, ndim - 1: depth},
        boundary={ndim - 2: np.nan, ndim - 1: np.nan},
        allow_rechunk=False,
    )
    lead_ind = tuple(f"l{i}" for i in range(ndim - 2))
    img_ind = (*lead_ind, "y", "x")
    out_ind = ("F", "R", *lead_ind, "y", "x")
    meta = np.empty((0,) * (ndim + 2), dtype=np.float32)

    starts = [np.cumsum((0, *c[:-1])) for c in x.chunks[-2:]]
    origins = (
        da.from_array(starts[0], chunks=1),
        ("y",),
        da.from_array(starts[1], chunks=1),
        ("x",),
    )

    def full_pass(source, demod=None):
        args = (source, img_ind, *origins)
        if demod is not None:
            args += (demod, ("R", "C", *lead_ind))
        return da.blockwise(
            partial(_block_maps, **options),
            out_ind,
            *args,
            new_axes={"F": 5} if demod is not None else {"F": 5, "R": n},
            adjust_chunks={"y": map_chunks[0], "x": map_chunks[1]},
            align_arrays=False,
            concatenate=True,
            dtype=np.float32,
            meta=meta,
            name="lattice-maps-" + dask.base.tokenize(source, demod, options),
        )

    def medians():
        # The light survey pass on a global grid of every second map pixel, then the
        # power-weighted median per reflection and frame.
        coarse = [
            tuple(
                len(range(-(-o // (2 * step)) * 2 * step, o + c, 2 * step))
                for o, c in zip(st, ch, strict=True)
            )
            for st, ch in zip(starts, x.chunks[-2:], strict=True)
        ]
        survey = da.blockwise(
            partial(_survey_block, **survey_options),
            out_ind,
            overlapped,
            img_ind,
            *origins,
            new_axes={"F": 3, "R": n},
            adjust_chunks={"y": coarse[0], "x": coarse[1]},
            align_arrays=False,
            dtype=np.float32,
            meta=np.empty((0,) * (ndim + 2), dtype=np.float32),
            name="lattice-survey-" + dask.base.tokenize(overlapped, survey_options),
        )
        return da.blockwise(
            _weighted_medians,
            ("R", "C", *lead_ind),
            survey,
            out_ind,
            new_axes={"C": 2},
            concatenate=True,
            dtype=np.float64,
            meta=np.empty((0,) * ndim),
        )

    if survey_options is None:
        return full_pass(overlapped)
    from dask.graph_manipulation import bind

    demod = medians()
    # A fresh copy of the input graph that starts only once the medians are known,
    # so that no image block is held in memory between the two passes.
    source = bind(overlapped, demod, seed=dask.base.tokenize(overlapped, "pass2"))
    return full_pass(source, demod)


# ------------------------------------------------------------------------------ API


def analyze(
    image,
    reflections,
    *,
    pixel_size: float,
    window: int = 128,
    step: int = 8,
    search: float = 0.1,
    refine: bool = True,
    min_amplitude: float = DEFAULT_MIN_AMPLITUDE,
    compute_strain: bool = True,
    chunks=None,
    background: bool = True,
) -> LatticeMaps:
    """Map local lattice spacing and angle of each reflection with a rolling window.

    Map pixel ``(i, j)`` is the window centred on image pixel ``(i·step, j·step)``; the
    window (even size ``N``) covers pixels ``c - N/2 … c + N/2 - 1`` along each axis
    with a periodic Hann weight that peaks on ``c``.  Windows extending beyond the image
    or touching NaN/inf pixels give NaN in every map.

    Parameters
    ----------
    image : array_like or dask.array.Array
        Image ``(y, x)`` or stack ``(..., y, x)`` of real numbers (intensity, any unit).
        NaN/inf pixels are missing data.  numpy in gives numpy maps; dask in gives
        lazy dask maps (nothing is computed until asked).
    reflections : array_like
        ``(n, 2)`` reciprocal vectors ``(gy, gx)`` in nm⁻¹ (``n >= 1``), e.g. from
        :func:`napari_hrtem_fft.find_reflections`.
    pixel_size : float
        Image pixel size in nm.
    window : int
        Window size ``N`` in pixels, even, >= 16 and <= the image size.
    step : int
        Distance between window centres in pixels (>= 1).
    search : float
        Half-width of the search region around each reflection, as a fraction of
        ``|g|`` radially and in radians tangentially (0.1: ±10 % in ``|g|``, ±5.7°).
        Estimates outside it are NaN.  Must lie in (0, 0.5].
    refine : bool
        Demodulate at the power-weighted median ``g`` of a quick survey of each 2D
        frame instead of at ``reflections`` (when it moved by more than 0.1 bin), so
        that uniform lattice changes and rotations stay in the window's main lobe.
        The maps' search region stays centred on ``reflections``.
    min_amplitude : float
        Smallest amplitude (peak power over local background power) accepted; weaker
        windows give NaN spacing and angle.
    compute_strain : bool
        Compute strain maps (:func:`napari_hrtem_fft.strain`) when at least two
        non-collinear reflections are given.
    chunks : int, (int, int), "auto" or None
        Spatial block size in pixels (before the window/2 overlap) for the block-wise
        computation; rounded up to a multiple of ``step``.  Default: about 8 windows,
        between 1024 and 2048 pixels (numpy input: full-width strips, one per CPU or
        more).  For dask input ``None`` keeps the input's chunks when they suit
        (multiples of ``step``, 4 windows to 4096 pixels), else rechunks.
    background : bool
        Subtract each window's Hann-weighted mean before the transform (recommended:
        otherwise the mean intensity leaks into the coefficient and biases ``d``).

    Returns
    -------
    LatticeMaps
        ``d_spacing`` (nm), ``angle`` (degrees, ``atan2(-gy, gx)`` in (-180, 180]),
        ``amplitude`` (dimensionless power ratio; NaN only for windows touching missing
        data or the image edge), ``d_sigma`` (nm) and ``angle_sigma`` (degrees), each
        ``(n, ..., ceil(H/step), ceil(W/step))`` float32; ``strain`` when computed;
        ``parameters`` with every option.

    Raises
    ------
    TypeError
        If ``image`` is not real numeric data or an option has the wrong type.
    ValueError
        If the image is smaller than the window, a reflection lies beyond Nyquist or
        inside the central two bins, ``reflections`` is not ``(n, 2)``, or an option is
        out of range.

    Notes
    -----
    ``d_sigma`` and ``angle_sigma`` assume white noise at the measured background level
    (see ``docs/method.md``).  Computation is block-wise (dask); numpy input is
    computed in-process with threads.
    """
    image, shape, dtype = _check_image(image)
    pixel_size = _check_real(pixel_size, "pixel_size")
    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be > 0 (nm), got {pixel_size}")
    window = _check_int(window, "window", 16)
    if window % 2:
        raise ValueError(f"window must be even, got {window}")
    step = _check_int(step, "step", 1)
    search = _check_real(search, "search")
    if not 0 < search <= 0.5:
        raise ValueError(f"search must be in (0, 0.5], got {search}")
    min_amplitude = _check_real(min_amplitude, "min_amplitude")
    if min_amplitude < 0:
        raise ValueError(f"min_amplitude must be >= 0, got {min_amplitude}")
    for name, flag in (("refine", refine), ("compute_strain", compute_strain)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if not isinstance(background, bool | np.bool_):
        raise TypeError(f"background must be True or False, got {background!r}")
    if shape[-2] < window or shape[-1] < window:
        raise ValueError(
            f"image (y, x) size {shape[-2:]} is smaller than the window ({window} pixels)"
        )
    refl = as_reflections(reflections)
    nyquist = 0.5 / pixel_size
    beyond = np.any(np.abs(refl) >= nyquist, axis=1)
    if beyond.any():
        raise ValueError(
            f"reflections {refl[beyond].tolist()} lie at or beyond Nyquist "
            f"(|gy| or |gx| >= {nyquist:.4g} 1/nm for pixel_size {pixel_size} nm)"
        )
    bins = np.hypot(refl[:, 0], refl[:, 1]) * window * pixel_size
    central = bins < 2
    if central.any():
        raise ValueError(
            f"reflections {refl[central].tolist()} lie inside the central 2 bins of a "
            f"{window}-pixel window (|g|·window·pixel_size < 2): use a larger window"
        )
    depth = -(-(window // 2) // step) * step
    user_chunks = _check_chunks(chunks, step, depth)

    import dask.array as da

    lazy = isinstance(image, da.Array)
    # Blocks travel in the input's float precision (float32 for integers, so that NaN
    # can mark the border); each frame's mean is removed in that precision and the rest
    # is computed in single precision.
    work = np.float64 if dtype == np.float64 else np.float32
    if user_chunks:
        spatial = user_chunks
    elif lazy:
        spatial = (_auto_chunk(window, step),) * 2
    else:
        spatial = _numpy_chunks(shape, window, step, depth)

    given = refl * pixel_size
    options = dict(
        given=given,
        window=window,
        step=step,
        depth=depth,
        shape=shape[-2:],
        pixel_size=pixel_size,
        min_amplitude=min_amplitude,
        search=search,
        background=bool(background),
        workers=1,
    )
    survey_options = dict(
        given=given,
        window=window,
        step=step,
        depth=depth,
        shape=shape[-2:],
        binning=_survey_binning(given, window, step, search),
        search=search,
        workers=1,
    )
    demod_nm = None
    if not lazy:
        packed, demod = _numpy_maps(
            np.asarray(image), spatial, work, options, survey_options if refine else None
        )
        if demod is not None:
            demod_nm = demod / pixel_size
    else:
        packed = _dask_maps(
            image, spatial, work, options, survey_options if refine else None, user_chunks
        )
    fields = {name: packed[i] for i, name in enumerate(_FIELDS)}
    parameters = {
        "pixel_size": pixel_size,
        "window": window,
        "step": step,
        "search": search,
        "refine": bool(refine),
        "min_amplitude": min_amplitude,
        "compute_strain": bool(compute_strain),
        "chunks": tuple(int(c) for c in spatial) if (user_chunks or not lazy) else "input",
        "background": bool(background),
        "reflections": refl.tolist(),
        "window_pixels": "c - N/2 … c + N/2 - 1 (periodic Hann, peak on c)",
        "overlap_depth": depth,
        "precision": "float32 (complex64 FFTs)",
        "background_bins": list(_BACKGROUND_BINS),
        "method": "closed-form phase difference of Hann-windowed Fourier coefficients",
    }
    if demod_nm is not None:
        parameters["demodulation"] = demod_nm.tolist()
    maps = LatticeMaps(
        **fields,
        reflections=refl,
        window=window,
        step=step,
        pixel_size=pixel_size,
        parameters=parameters,
    )
    if compute_strain:
        from .strain import has_two_directions
        from .strain import strain as _strain

        if has_two_directions(refl):
            maps.strain = _strain(maps)
    return maps
