"""Per-frame numerics: windowed Fourier coefficients of every window of a 2D frame at once.

One real 2D FFT of the frame serves all reflections; per reflection the box of the
spectrum where its band-limited kernel is non-zero is multiplied by the kernel and
folded onto the map grid (its ``step`` aliases summed), so that a small inverse 2D FFT
yields exactly the coefficients on the step grid.  The local frequency follows in closed
form from the phase difference of the windows at ``c`` and ``c - e``; see
``docs/method.md``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from .._windows import (
    BAND_CUT,
    band_bins,
    band_limited,
    band_response,
    hann_taps,
    kernel_band,
    lag_one_correlation,
)

#: Default threshold on the amplitude (peak power over the background power expected
#: at ``g``).  For noise without lattice the ratio follows an exponential law of mean 1
#: and exceeds 10 in 0.005 % of the windows.
DEFAULT_MIN_AMPLITUDE = 10.0

# The background near g is measured in the frame's own spectrum, at the frame's fine
# resolution, where a lattice's reflections are narrow peaks: the lower quartile of the
# power over an arc of the circle |g| (radially within ±_NOISE_WIDTH window bins, 1/N,
# so at the spatial frequency of g: an amorphous film's power falls with it, and is
# about constant along the arc), up to _NOISE_ARC bins beside g, away from the
# zero-frequency tail and from the main lobes (_NOISE_OWN_LOBE) of every picked
# reflection and its Friedel mate.  The quartile ignores the other reflections of even a
# dense lattice (those between the picked ones lie in the gaps of the arc), which
# window-sized bins beside g cannot (see docs/method.md).
_NOISE_WIDTH, _NOISE_OWN_LOBE, _NOISE_ARC, _NOISE_ZERO = 1.0, 2.0, 8.0, 2.5
_NOISE_QUANTILE = 0.25
# At most about this many spectrum bins per reflection enter the quartile (strided).
_NOISE_SAMPLES = 2**16

# Leakage coefficients below this (relative to the main lobe) are not corrected: they
# move d by about 1e-6 at most (measured on noise-free lattices), 50 times below the
# accuracy target, and skipping them saves a pass over the maps each.
_LEAKAGE_NEGLIGIBLE = 1e-6

# The maps are finished in bands of map rows holding about this many windows times
# demodulations (their coefficients, 3 complex64 each, 3 MB): arrays that stay in the
# cache.  Bands of 32-128 rows of 512 windows were equally fast, the whole frame 20 %
# slower (measured on the 2048² bench image).
_BAND_WINDOWS = 2**17

# The frame's real FFT along x runs over blocks of this many rows (2048 pixels wide:
# 0.5 MB in, 0.5 MB out, which stay in the cache).
_FFT_ROWS = 64


def _window_centres(shape, window: int, step: int, start, count):
    """Local window centres ``(ys, xs)`` and whether each footprint lies inside ``shape``."""
    half = window // 2
    centres = [s + step * np.arange(c) for s, c in zip(start, count, strict=True)]
    inside = [(c >= half) & (c + half <= n) for c, n in zip(centres, shape, strict=True)]
    return centres, inside[0][:, None] & inside[1][None, :]


def _clean_windows(finite, window: int, step: int, start, count):
    """True where the window footprint ``c - N/2 … c + N/2 - 1`` lies inside the frame and
    holds only finite pixels.
    """
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


@dataclass(frozen=True)
class FrameSpectrum:
    """The real 2D FFT of one prepared frame, shared by the survey and the maps.

    ``spectrum`` is the real FFT (complex64) of the offset-free frame zero-padded to
    ``lengths`` (multiples of the survey's spacing, so that both the survey's grid and
    the maps' fold exactly), or ``None`` if the frame has no finite pixel: its first
    ``spectrum.shape[1]`` columns only, those the kernels and the background can reach
    (:func:`spectrum_columns`); ``shape`` is the frame's; ``finite`` its mask of finite
    pixels, ``None`` when all are; ``power`` the mean ``|S|²`` of the full 2D DFT
    (Parseval, estimated from every 4th pixel of each axis).
    """

    spectrum: np.ndarray | None
    lengths: tuple[int, int]
    shape: tuple[int, int]
    finite: np.ndarray | None
    power: float = 0.0

    @property
    def nbytes(self) -> int:
        extra = 0 if self.finite is None else self.finite.nbytes
        return extra + (0 if self.spectrum is None else self.spectrum.nbytes)

    def clean(self, window: int, step: int, start, count):
        """Whether the window centred on ``start + (i, j)·step`` is clean, ``(i, j) < count``.

        Clean: inside the frame, holding no NaN/inf pixel.
        """
        if self.spectrum is None:
            return np.zeros(count, dtype=bool)
        if self.finite is None:
            return _window_centres(self.shape, window, step, start, count)[1]
        return _clean_windows(self.finite, window, step, start, count)


def survey_step(window: int, step: int) -> int:
    """The survey's grid spacing in pixels: a multiple of ``step``, at least ``2·step``,
    else about ``window/8`` (neighbouring survey windows share 7/8 of their width, so
    that a finer grid would add little to its medians).
    """
    return step * max(2, window // (8 * step))


def frame_spectrum(frame, window: int, step: int, workers: int, reach=None) -> FrameSpectrum:
    """The :class:`FrameSpectrum` of a 2D frame for the survey and maps on a grid of
    ``step`` pixels (lengths multiples of the survey's spacing, so that both fold exactly).

    ``reach``: a bound on ``|f_x|`` (cycles/pixel) of every frequency the survey and the
    maps will demodulate at (``None``: none), which bounds the spectrum's columns they
    read.
    """
    grid = survey_step(window, step)
    lengths = tuple(grid * sfft.next_fast_len(-(-n // grid)) for n in frame.shape)
    prepared = _Prepared.of(frame)
    if prepared is None:
        return FrameSpectrum(None, lengths, frame.shape, _finite(frame))
    columns = spectrum_columns(window, lengths[1], reach)
    # The real FFT along x, then the complex one along y for the columns read only: the
    # kernels of a 2048-pixel-wide frame reach ~45 % of them (a quarter less work).
    # Along x in blocks of rows, each prepared (offset, scale, padding) just before its
    # transform: the padded frame and the whole real FFT are never held, only blocks
    # that stay in the cache (20 MB less memory written and read per 1024 × 2048
    # strip); every row's transform is the same.
    spectrum = np.empty((lengths[0], columns), dtype=np.complex64)
    spectrum[frame.shape[0] :] = 0  # the transform of the zero padding
    block = np.empty((min(_FFT_ROWS, frame.shape[0]), lengths[1]), dtype=np.float32)
    for r0 in range(0, frame.shape[0], block.shape[0]):
        rows = prepared.rows(r0, r0 + block.shape[0], block)
        half = sfft.rfft(rows, axis=1, workers=workers)
        spectrum[r0 : r0 + rows.shape[0]] = half[:, :columns]
    spectrum = sfft.fft(spectrum, axis=0, overwrite_x=True, workers=workers)
    sample = prepared.sample(4)
    power = float(np.mean(np.square(sample, dtype=np.float64))) * frame.size
    return FrameSpectrum(spectrum, lengths, frame.shape, prepared.finite, power)


def spectrum_columns(window: int, length: int, reach) -> int:
    """Columns of the real FFT (length ``length`` along x) that the kernels and the
    background of frequencies with ``|f_x| <= reach`` (cycles/pixel) read: those within
    ``BAND_CUT`` window bins (the background's arc and stencil lie inside), or all.
    """
    half = length // 2 + 1
    if reach is None or not band_limited(window, BAND_CUT):
        return half
    return min(half, math.ceil(reach * length + BAND_CUT * length / window) + 2)


def _finite(frame):
    """The mask of finite pixels, ``None`` when all are finite."""
    # A finite sum means finite pixels (NaN and inf propagate), in one cheap pass (in
    # the frame's precision: a sum that overflows only sends it to the exact test).
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(frame)
    if np.isfinite(total):
        return None
    finite = np.isfinite(frame)
    return None if finite.all() else finite


@dataclass(frozen=True)
class _Prepared:
    """A frame made offset-free and scaled, block by block of rows, in float32.

    Removing an offset near the frame mean (in the frame's precision) first keeps the
    FFT's round-off relative to the fringes.  The frame is then scaled by a power of two
    (exact) to an RMS near 1, so that ``|Z|²`` stays far from the float32 range limits
    for any intensity unit; every output is scale-free.  NaN/inf pixels become 0 (their
    mask is ``finite``, ``None`` when all are finite).  Single precision from here: its
    round-off moves ``d`` by up to ~1e-6 relative on noise-free lattices (measured,
    ``docs/method.md``), 40 times below the accuracy target.
    """

    frame: np.ndarray
    finite: np.ndarray | None
    offset: float
    scale: float

    @classmethod
    def of(cls, frame) -> _Prepared | None:
        """The prepared ``frame``, or ``None`` if no pixel is finite."""
        finite = _finite(frame)
        if finite is not None and not finite.any():
            return None
        # Any offset near the mean serves (each window's own mean is removed exactly
        # later): that of every 4th pixel, or of all finite pixels if that has none.
        sample = frame[::4, ::4]
        sample = sample[np.isfinite(sample)]
        if not sample.size:
            sample = frame[finite]
        offset = sample.mean(dtype=np.float64)
        return cls(frame, finite, offset, _unit_scale(sample, offset))

    def rows(self, r0: int, r1: int, out):
        """Rows ``r0 … r1 - 1`` (within the frame) into ``out``, zero-padded along x to
        its width; returns the part of ``out`` they fill.
        """
        frame = self.frame[r0:r1]
        out = out[: frame.shape[0]]
        out[:, frame.shape[1] :] = 0.0
        finite = None if self.finite is None else self.finite[r0:r1]
        self._into(frame, finite, out[:, : frame.shape[1]])
        return out

    def sample(self, stride: int):
        """Every ``stride``-th pixel of each axis, prepared."""
        finite = None if self.finite is None else self.finite[::stride, ::stride]
        frame = self.frame[::stride, ::stride]
        return self._into(frame, finite, np.empty(frame.shape, dtype=np.float32))

    def _into(self, frame, finite, out):
        if 2.0**-60 <= self.scale <= 2.0**60:
            # The subtraction in the frame's own precision, then single precision.
            np.subtract(frame, frame.dtype.type(self.offset), out=out, casting="unsafe")
            out *= np.float32(self.scale)
        else:
            # Intensities far from 1 (below ~1e-18 or above ~1e18): scaled in double
            # precision first, so that float32 neither underflows nor overflows.
            out[...] = (frame.astype(np.float64) - self.offset) * self.scale
        if finite is not None:
            np.copyto(out, 0.0, where=~finite)
        return out


def _unit_scale(sample, offset) -> float:
    """A power of two that brings the RMS of ``sample - offset`` near 1 (1 if it is 0)."""
    deviation = np.abs(sample - offset, dtype=np.float64)
    peak = float(deviation.max()) if deviation.size else 0.0
    if not 0 < peak < math.inf:
        return 1.0
    # Relative to the peak, so that squaring neither overflows nor underflows.
    rms = peak * float(np.sqrt(np.mean(np.square(deviation / peak))))
    return 2.0 ** -round(math.log2(rms))


def _coefficients(
    spec: FrameSpectrum,
    demod,
    *,
    window,
    step,
    start,
    count,
    background,
    noise: bool,
    workers,
    noise_count=None,
    cut=BAND_CUT,
):
    """Windowed Fourier coefficients at c, c - e_y and c - e_x, and the background power.

    ``spec`` is the frame's spectrum; windows are centred on local pixels
    ``start + (i, j)·step`` for ``(i, j) < count``; ``demod`` is ``(k, 2)`` in
    cycles/pixel.  Returns ``coef (3, k, my, mx)`` (complex64, phase referred to each
    window's centre) and, with ``noise``, the background ``|Z|²`` expected at each
    reflection ``(k, 1, 1)`` (else ``None``; only for the first ``noise_count`` rows of
    ``demod`` if given, the others being second demodulations of the same reflections).
    ``cut``: the kernels' band in window bins (``_windows.band_taper``).
    """
    # One real 2D spectrum serves every kernel: per kernel, the band of the spectrum
    # where its (band-limited) kernel spectrum is non-zero is multiplied by it and folded
    # onto the map grid; one small batched inverse 2D FFT then gives every coefficient
    # map on the step grid.
    noise = _frame_noise(spec, demod, window, noise_count) if noise else None
    rows_of = _inverse_y(
        spec.spectrum, spec.lengths, demod, window=window, step=step, start=start,
        count=count, background=background, workers=workers, cut=cut,
    )  # fmt: skip
    return rows_of(slice(0, count[0])), noise


def _frame_noise(spec: FrameSpectrum, demod, window: int, count=None):
    """:func:`_spectral_noise` of the frame: ``(k, 1, 1)`` for the first ``count`` rows of
    ``demod`` (all if ``None``).

    Missing pixels are zeros in the spectrum: they count for nothing in the energy.
    Their holes in the fringes spread some fringe power near g, which makes the
    amplitude of that frame conservative (docs/method.md).
    """
    energy = _apodised_energy(spec.lengths, spec.shape, spec.finite)
    return _spectral_noise(
        spec.spectrum, spec.lengths, demod, window, energy, count, mean_power=spec.power
    )


def _inverse_y(spectrum, lengths, demod, *, window, step, start, count, background, workers, cut):
    """The kernels' products folded onto the map grid and inverse transformed along y:
    returns a function of a slice of map rows that gives their coefficients
    ``(3, k, rows, mx)``, the window means removed.

    The rest is row by row (the products with the x-kernels, the inverse along x and
    the means), so that :func:`_frame_maps` finishes the maps in bands of rows whose
    every array stays in the cache, with the same values.
    """
    means = background and _mean_leaks(demod, window)
    my, mx = count
    n_mean = 2 if means else 0
    boxes = [(0.0, 0.0)] * bool(means) + [tuple(f) for f in demod]
    along_x = _axis_kernels(window, lengths, 1, [f[1] for f in boxes], start, step, cut, True)
    if all(bins.size <= lengths[1] // step for bins, _ in along_x):
        halves, columns = _shared_inverse(spectrum, lengths, boxes, along_x, window, step,
                                          start, cut, my, workers)  # fmt: skip

        def planes_of(rows):
            return _shared_products(halves[:, rows], columns, means)
    else:
        folded = _band_folds(spectrum, lengths, demod, window, step, start, means, cut)
        # The inverse along y, then along x for the map rows only.
        grid = sfft.ifft(folded, axis=-2, overwrite_x=True, workers=workers)[:, :my]

        def planes_of(rows):
            return grid[:, rows]

    def rows_of(rows):
        grid = sfft.ifft(planes_of(rows), axis=-1, overwrite_x=True, workers=workers)[..., :mx]
        coef = grid[n_mean:].reshape(demod.shape[0], 3, -1, mx).transpose(1, 0, 2, 3)
        if means:
            _subtract_means(grid[:2], coef, demod, window)
        return coef

    return rows_of


def _mean_leaks(demod, window: int) -> bool:
    """Whether a window's mean leaks into any coefficient by ``_LEAKAGE_NEGLIGIBLE`` or more.

    Through the band-limited kernel's response at the reflection, relative to its peak:
    none at all for a reflection beyond the band along either axis.
    """
    leak = np.abs(_response2(window, demod)) / _response2(window, np.zeros(2))
    return bool(np.any(leak >= _LEAKAGE_NEGLIGIBLE))


def _spectral_noise(spectrum, lengths, demod, window: int, h2: float, count=None, mean_power=0.0):
    """The noise power ``E|Z|²`` of a window at each reflection, ``(k, 1, 1)`` float32.

    Only the first ``count`` rows of ``demod`` if given; the main lobes of all are kept
    out of the background.

    For noise of power spectral density ``P`` near ``g``, a window's coefficient has
    ``E|Z|² = P·(Σ w²)²``.  The frame's spectrum, apodised by a periodic Hann window
    over its padded length (three-point stencils in the spectrum: the frame's edges
    would otherwise spread every fringe's power over its row and column), has
    ``E|S|² = P·Σ h²`` (``h2``) over the frame's pixels, exponentially distributed: its
    lower quartile over the bins near ``g`` (see ``_noise_bins``), divided by ln(4/3),
    estimates that whatever sparse peaks the lattice puts there.  Floored at 1e-30 of the
    frame's mean power ``mean_power`` (the mean ``|S|²``), so that a noise-free lattice gives a
    large but finite amplitude.
    """
    shape = np.array(lengths)
    w2 = float(np.sum(hann_taps(window)[1] ** 2)) ** 2
    out = np.empty(demod.shape[0] if count is None else count)
    for r, f0 in enumerate(demod[: out.size]):
        idx, keep, contiguous = _cached_noise_bins(
            np.asarray(f0, dtype=np.float64).tobytes(),
            np.asarray(demod, dtype=np.float64).tobytes(),
            tuple(int(n) for n in shape),
            int(window),
        )
        if contiguous:
            near = _apodised_box(spectrum, lengths, *idx)[keep]
        else:
            rows, cols = np.nonzero(keep)
            near = _apodised(spectrum, lengths, idx[0][rows], idx[1][cols])
        power = near.real.astype(np.float64) ** 2 + near.imag.astype(np.float64) ** 2
        out[r] = np.quantile(power, _NOISE_QUANTILE)
    floor = 1e-30 * max(mean_power, 1e-30)
    out = np.maximum(out, floor) / -math.log1p(-_NOISE_QUANTILE) / max(h2, 1e-30) * w2
    return out.astype(np.float32)[:, None, None]


# The blocks of a frame (same padded lengths) and a frame analysed again share their
# demodulations, hence their background bins: 1-2 ms of geometry per reflection and block.
@functools.lru_cache(maxsize=64)
def _cached_noise_bins(f0, demod, shape, window):
    """:func:`_noise_bins` of frequencies given as float64 bytes, read-only, and whether
    its rows and columns are consecutive (a box).
    """
    idx, keep = _noise_bins(
        np.frombuffer(f0), np.frombuffer(demod).reshape(-1, 2), np.array(shape), window
    )
    for a in (*idx, keep):
        a.setflags(write=False)
    return idx, keep, all(np.all(np.diff(i) == 1) for i in idx)


def _noise_bins(f0, demod, shape, window: int):
    """Spectrum rows and columns around ``f0`` (strided) and which of their bins to use.

    Kept out: the main lobes of every reflection ``demod`` and of its Friedel mate (a
    hexagonal lattice has six on the circle ``|g|``).
    """
    radius = _NOISE_ARC * shape / window  # spectrum bins per axis
    stride = max(1, math.ceil(math.sqrt(np.prod(2 * radius + 1) / _NOISE_SAMPLES)))
    idx = [
        np.arange(math.ceil(c - rad), math.floor(c + rad) + 1, stride)
        for c, rad in zip(f0 * shape, radius, strict=True)
    ]
    freq = [i / n for i, n in zip(idx, shape, strict=True)]  # cycles/pixel
    alias = [(f + 0.5) % 1.0 - 0.5 for f in freq]
    # The ring is a small part of the box: squared radii with a margin of 10⁻⁹ bin find
    # its bins, on which the exact tests then run.
    ring = np.hypot(*f0) * window
    inner, outer = max(ring - _NOISE_WIDTH, 0.0) - 1e-9, ring + _NOISE_WIDTH + 1e-9
    squares = [np.square(a * window) for a in alias]
    radial2 = squares[0][:, None] + squares[1][None, :]
    keep = (radial2 >= inner * inner * (inner > 0)) & (radial2 <= outer * outer)
    rows, cols = np.nonzero(keep)
    radial = np.hypot(alias[0][rows], alias[1][cols]) * window
    ok = np.abs(radial - ring) <= _NOISE_WIDTH
    ok &= radial >= _NOISE_ZERO
    ok &= np.hypot(freq[0][rows] - f0[0], freq[1][cols] - f0[1]) * window <= _NOISE_ARC
    for g in (*demod, *-demod):
        apart = (g - f0 + 0.5) % 1.0 - 0.5
        if np.hypot(*apart) * window > _NOISE_ARC + _NOISE_OWN_LOBE + 1.0:
            continue  # its lobe lies beyond the arc
        lobe = np.hypot(alias[0][rows] - g[0], alias[1][cols] - g[1]) * window
        ok &= lobe >= _NOISE_OWN_LOBE
    keep[rows[~ok], cols[~ok]] = False
    if not ok.any():
        return idx, keep
    # Only the box round the bins kept is read from the spectrum.
    (r0, r1), (c0, c1) = ((a[ok].min(), a[ok].max() + 1) for a in (rows, cols))
    return [idx[0][r0:r1], idx[1][c0:c1]], keep[r0:r1, c0:c1]


def _apodised(spectrum, lengths, rows, cols):
    """The spectrum of the Hann-apodised frame at the bins ``(rows[i], cols[i])``.

    ``spectrum`` is the real FFT of the frame padded to ``lengths``.  A periodic Hann
    window ``½ - ½cos(2πn/L)`` multiplies the frame: its spectrum is convolved with
    ``(-¼, ½, -¼)`` along each axis.
    """
    taps = (-0.25, 0.5, -0.25)
    out = np.zeros(rows.shape, dtype=np.complex128)
    for dy, ty in zip((-1, 0, 1), taps, strict=True):
        for dx, tx in zip((-1, 0, 1), taps, strict=True):
            out += (ty * tx) * _bins_at(spectrum, lengths, rows + dy, cols + dx)
    return out


def _apodised_box(spectrum, lengths, rows, cols):
    """:func:`_apodised` on the box ``rows × cols`` (consecutive bins), complex128.

    One read of the box and its border; the stencil is applied along each axis in turn.
    """
    box = _band(
        spectrum,
        lengths,
        np.arange(rows[0] - 1, rows[-1] + 2),
        np.arange(cols[0] - 1, cols[-1] + 2),
    ).astype(np.complex128)
    box = 0.5 * box[1:-1] - 0.25 * (box[:-2] + box[2:])
    return 0.5 * box[:, 1:-1] - 0.25 * (box[:, :-2] + box[:, 2:])


def _bins_at(spectrum, lengths, rows, cols):
    """The full 2D DFT at integer bins ``(rows[i], cols[i])`` (any sign) from its real FFT.

    Bins beyond the real FFT's half are the conjugates of their mirror (real frame).
    """
    ly, lx = lengths
    c = cols % lx
    direct = c <= lx // 2
    at = np.where(direct, c, (lx - c) % lx)
    _check_columns(spectrum, at)
    values = spectrum[np.where(direct, rows, -rows) % ly, at]
    return np.where(direct, values, np.conj(values))


def _check_columns(spectrum, columns):
    """Raise if a column beyond those computed (:func:`spectrum_columns`) is to be read."""
    if columns.size and int(columns.max()) >= spectrum.shape[1]:
        raise RuntimeError(
            f"spectrum column {int(columns.max())} was not computed (only "
            f"{spectrum.shape[1]}): a frequency beyond the reach given to frame_spectrum"
        )


def _band(spectrum, lengths, rows, cols):
    """The full 2D DFT on the box of bins ``rows × cols`` (consecutive integers, any
    sign) from its real FFT, ``(rows.size, cols.size)``.

    Columns and rows are read in runs of slices, directly or (beyond the real FFT's
    half) as the conjugate of their mirror, so that the box is copied once, with no
    gathered copy in between.
    """
    ly, lx = lengths
    out = np.empty((rows.size, cols.size), dtype=spectrum.dtype)
    c = cols % lx
    direct = c <= lx // 2
    _check_columns(spectrum, np.where(direct, c, lx - c))
    edges = [0, *(np.flatnonzero(np.diff(direct)) + 1), cols.size]
    for a, b in itertools.pairwise(edges):
        if direct[a]:
            for dst, src in _runs(int(rows[0]), rows.size, ly, 1):
                out[dst, a:b] = spectrum[src, c[a] : c[b - 1] + 1]
        else:
            # Columns lx - c, decreasing; rows -ν mod ly, decreasing.
            stop = lx - c[b - 1] - 1
            mirror = slice(lx - c[a], stop if stop >= 0 else None, -1)
            for dst, src in _runs(int(rows[0]), rows.size, ly, -1):
                np.conjugate(spectrum[src, mirror], out=out[dst, a:b])
    return out


def _runs(first: int, n: int, size: int, sign: int):
    """Destination and source slices of the items ``sign·(first + i) mod size``,
    ``i < n``, in runs of consecutive source indices (increasing for ``sign = 1``,
    decreasing for ``sign = -1``).
    """
    runs, i = [], 0
    while i < n:
        j = (sign * (first + i)) % size
        if sign > 0:
            k = min(n - i, size - j)
            src = slice(j, j + k)
        else:
            k = min(n - i, j + 1)
            src = slice(j, j - k if j - k >= 0 else None, -1)
        runs.append((slice(i, i + k), src))
        i += k
    return runs


def _apodised_energy(lengths, data_shape, finite=None) -> float:
    """``Σ h²`` of the apodising window over the frame's (finite) pixels."""
    squares = []
    for length, n in zip(lengths, data_shape, strict=True):
        h = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / length)
        squares.append(h * h)
    if finite is None:
        return float(np.sum(squares[0]) * np.sum(squares[1]))
    return float(squares[0] @ finite.astype(np.float64) @ squares[1])


def _band_folds(spectrum, lengths, demod, window: int, step: int, start, means: bool, cut):
    """Every kernel times its band of the spectrum, folded onto the map grid.

    ``spectrum`` is the real FFT of the frame padded to ``lengths``; returns the planes
    ``(n_mean + 3k, L_y/step, L_x/step)`` of the small inverse FFT: with ``means``, the
    window means at c (real) and c - e_y (imaginary), at c - e_x (real); then per
    reflection the windows at c, c - e_y and c - e_x.

    A kernel is separable, ``K_y(ν_y)·K_x(ν_x)``, and zero beyond ``BAND_CUT`` window
    bins of its frequency (``cut``, ``_windows.band_response``): only that box of the spectrum is
    read (Hermitian symmetry gives the half the real FFT leaves out), multiplied, and
    added into the grid at ``ν mod (L/step)`` (folding: summing the ``step`` aliases of
    each bin makes the inverse transform of the small grid the full one sampled every
    ``step`` pixels).  The f = 0 kernels are Hermitian and their results real, so the
    means at c and c - e_y travel as the real and imaginary part of one plane.
    """
    n_mean = 2 if means else 0
    grid = (lengths[0] // step, lengths[1] // step)
    # Every box writes its part of the grid (_zero_uncovered zeroes the rest): no pass
    # that zeroes it all first.
    planes = np.empty((n_mean + 3 * demod.shape[0], *grid), dtype=spectrum.dtype)

    boxes = [(0.0, 0.0)] * bool(means) + [tuple(f) for f in demod]
    # Without the band's end bins, where the taper is 0: a box of 2·16·L/N + 1 rows
    # would fold in three parts, the last of one row.
    along = [
        _axis_kernels(window, lengths, axis, [f[axis] for f in boxes], start, step, cut, True)
        for axis in (0, 1)
    ]

    def box(b, planes):
        """Fold the c, c - e_y, c - e_x products of kernel box ``b`` into ``planes``."""
        (rows, (y_c, y_e)), (cols, (x_c, x_e)) = along[0][b], along[1][b]
        first = (rows[0], cols[0])
        values = _band(spectrum, lengths, rows, cols)
        _zero_uncovered(planes, first, values.shape)
        if rows.size > grid[0]:
            _fold_rows_first(planes, values, (y_c, y_e), (x_c, x_e), first, grid[0])
            return
        along_y = values * y_c[:, None]
        values *= y_e[:, None]  # now along y for c - e_y
        if len(planes) == 2:
            # The means: c (real part) and c - e_y (imaginary part) in one plane.
            _fold_product(planes[0], values * np.complex64(1j) + along_y, x_c, first)
            _fold_product(planes[1], along_y, x_e, first)
            return
        _fold_product(planes[0], along_y, x_c, first)
        _fold_product(planes[1], values, x_c, first)
        _fold_product(planes[2], along_y, x_e, first)

    if means:
        box(0, planes[:2])
    for r in range(demod.shape[0]):
        box(r + bool(means), planes[n_mean + 3 * r : n_mean + 3 * r + 3])
    return planes


def _fold_rows_first(planes, values, y_kernels, x_kernels, first, height: int):
    """:func:`_band_folds`'s products of one box whose rows alias (more than ``height``).

    The y-kernels first, each product folded along y onto the grid's ``height`` rows;
    then the x-kernels on those rows, folded along x: two products over the box and three
    over the folded rows, instead of five over the box.
    """
    (y_c, y_e), (x_c, x_e) = y_kernels, x_kernels
    width = values.shape[1]
    if len(planes) == 2:
        # The means: c (real part) and c - e_y (imaginary part) in one plane.
        factors = (y_c + np.complex64(1j) * y_e, y_c)
    else:
        factors = (y_c, y_e)
    # More rows than the height: the first fold writes every element.
    folded = np.empty((2, height, width), dtype=values.dtype)
    for out, factor in zip(folded, factors, strict=True):
        _fold_product(out, values, None, (first[0], 0), column=factor)
    at = (0, first[1])
    if len(planes) == 2:
        _fold_product(planes[0], folded[0], x_c, at)
        _fold_product(planes[1], folded[1], x_e, at)
        return
    _fold_product(planes[0], folded[0], x_c, at)
    _fold_product(planes[1], folded[1], x_c, at)
    _fold_product(planes[2], folded[0], x_e, at)


def _shared_inverse(spectrum, lengths, boxes, along_x, window, step, start, cut, my, workers):
    """The y-kernels' products of :func:`_band_folds`, folded and inverse transformed
    along y (first ``my`` rows), and the x-kernels on the grid's columns.

    ``boxes`` are the kernels' frequencies (the means' first if any), ``along_x`` their
    bins and x-kernels at ``c`` and ``c - e_x`` where non-zero, each band no wider than
    the map grid (no aliases along x).  The x factor of a separable kernel then
    multiplies whole columns of the folded grid, which the inverse along y leaves as
    they are: the windows at ``c`` and ``c - e_x`` share their y-kernel, so each kernel
    box needs two inverses along y (``y_c``, ``y_e``) instead of three, and the x factors
    are applied to the map rows after them (:func:`_shared_products`).  Returns
    ``(2·boxes, my, width)`` and the x-kernels ``(boxes, 2, 1, width)``.
    """
    grid = (lengths[0] // step, lengths[1] // step)
    halves = np.empty((2 * len(boxes), *grid), dtype=spectrum.dtype)
    columns = np.zeros((len(boxes), 2, 1, grid[1]), dtype=spectrum.dtype)
    along_y = _axis_kernels(window, lengths, 0, [f[0] for f in boxes], start, step, cut)
    for b, ((rows, (y_c, y_e)), (cols, (x_c, x_e))) in enumerate(
        zip(along_y, along_x, strict=True)
    ):
        values = _band(spectrum, lengths, rows, cols)
        first = (rows[0], cols[0])
        _zero_uncovered(halves[2 * b : 2 * b + 2], first, values.shape)
        _fold_product(halves[2 * b], values, None, first, column=y_c)
        _fold_product(halves[2 * b + 1], values, None, first, column=y_e)
        columns[b, 0, 0, cols % grid[1]] = x_c
        columns[b, 1, 0, cols % grid[1]] = x_e
    return sfft.ifft(halves, axis=-2, overwrite_x=True, workers=workers)[:, :my], columns


def _shared_products(halves, columns, means: bool):
    """The planes of :func:`_band_folds` after their inverse along y, for some map rows.

    ``halves`` and ``columns`` as :func:`_shared_inverse` gives them (``halves`` for
    those rows).
    """
    at_c, at_e = halves[0::2], halves[1::2]  # (boxes, rows, width): y-kernel c and c - e_y
    x_c, x_e = columns[:, 0], columns[:, 1]
    n_mean = 2 if means else 0
    shape = (n_mean + 3 * (len(at_c) - n_mean // 2), *halves.shape[1:])
    planes = np.empty(shape, halves.dtype)
    if means:
        # The means: c (real part) and c - e_y (imaginary part) in one plane, as
        # _band_folds packs them (both real).
        np.multiply(at_e[0], np.complex64(1j), out=planes[0])
        planes[0] += at_c[0]
        planes[0] *= x_c[0]
        np.multiply(at_c[0], x_e[0], out=planes[1])
    m = n_mean // 2
    np.multiply(at_c[m:], x_c[m:], out=planes[n_mean::3])
    np.multiply(at_e[m:], x_c[m:], out=planes[n_mean + 1 :: 3])
    np.multiply(at_c[m:], x_e[m:], out=planes[n_mean + 2 :: 3])
    return planes


def _axis_kernels(window, lengths, axis, freqs, start, step, cut, nonzero=False):
    """Per frequency of ``freqs``, the bins along ``axis`` and the kernels there for
    windows at ``c`` and ``c - e``: a list of ``(bins, (k_c, k_e))``.

    ``nonzero``: without the band's end bins where the taper is exactly zero.  The
    arrays are read-only: they are shared through :func:`_cached_axis_kernels`.
    """
    return _cached_axis_kernels(
        int(window), int(lengths[axis]), tuple(float(f) for f in freqs), int(start[axis]),
        int(step), float(cut), bool(nonzero),
    )  # fmt: skip


# The blocks of a frame share their x-kernels (and their y-kernels where their context is
# the same), the survey's kernels are those of the given reflections in every frame, and
# a frame analysed again (another step of the GUI, the same movie frame) has the same
# demodulations.  Every kernel of a frame's axis is computed in one pass over all their
# bins: per kernel, the numpy calls on its ~500 bins cost more than their arithmetic
# (0.08 ms each, ~30 kernels per 2048² frame, against ~0.4 ms for all at once).
@functools.lru_cache(maxsize=256)
def _cached_axis_kernels(window, length, freqs, start, step, cut, nonzero):
    each = [band_bins(window, length, f, cut) for f in freqs]
    bins = np.concatenate(each)
    at = np.repeat(np.asarray(freqs, dtype=np.float64), [b.size for b in each])
    pairs = kernel_band(window, length, at, (start, start - 1), bins, cut)
    pairs = (pairs / step).astype(np.complex64)
    out = []
    for first, b in zip(np.cumsum([0, *(b.size for b in each[:-1])]), each, strict=True):
        pair = pairs[:, first : first + b.size]
        if nonzero:
            keep = np.flatnonzero(pair[0] != 0)
            b, pair = b[keep[0] : keep[-1] + 1], pair[:, keep[0] : keep[-1] + 1]
        b.setflags(write=False)
        pair = pair.view()
        pair.setflags(write=False)
        out.append((b, pair))
    return out


def _fold_product(plane, values, row, first, column=None):
    """Add ``values · row`` (bins ``first + (i, j)``; ``row`` along the columns, or
    ``column`` along the rows instead) into the zero-initialised ``plane`` modulo its
    shape.

    The first ``plane.shape`` of the box is written in place, the rest (a box larger
    than the plane) added.
    """
    size = plane.shape
    for r0 in range(0, values.shape[0], size[0]):
        for c0 in range(0, values.shape[1], size[1]):
            part = values[r0 : r0 + size[0], c0 : c0 + size[1]]
            if column is None:
                factor = row[None, c0 : c0 + size[1]]
            else:
                factor = column[r0 : r0 + size[0], None]
            at = ((first[0] + r0) % size[0], (first[1] + c0) % size[1])
            for rows, src_rows in _wrapped(at[0], part.shape[0], size[0]):
                for cols, src_cols in _wrapped(at[1], part.shape[1], size[1]):
                    f = factor[src_rows if column is not None else slice(None),
                               src_cols if column is None else slice(None)]  # fmt: skip
                    if r0 == c0 == 0:
                        np.multiply(part[src_rows, src_cols], f, out=plane[rows, cols])
                    else:
                        plane[rows, cols] += part[src_rows, src_cols] * f


def _zero_uncovered(planes, first, extent):
    """Zero what a box of ``extent`` bins from bin ``first`` leaves out of ``planes
    (..., H, W)`` when folded onto it (:func:`_fold_product` writes the rest).

    The rows it does not reach (over every column) and the columns it does not reach.
    """
    for axis, (at, n) in enumerate(zip(first, extent, strict=True)):
        size = planes.shape[axis - 2]
        if n >= size:
            continue
        # The complement of ``at … at + n - 1`` modulo ``size``: from its end, wrapped.
        for dst, _ in _wrapped((at + n) % size, size - n, size):
            index = (Ellipsis, dst, slice(None)) if axis == 0 else (Ellipsis, dst)
            planes[index] = 0


def _wrapped(at: int, n: int, size: int):
    """Destination and source slices of ``n <= size`` items added at ``at`` modulo ``size``."""
    head = min(n, size - at)
    yield slice(at, at + head), slice(0, head)
    if head < n:
        yield slice(0, n - head), slice(head, n)


def _subtract_means(means, coef, demod, window):
    """Remove each window's Hann-weighted mean from its coefficients (in place), from
    those of the demodulations where it leaks by ``_LEAKAGE_NEGLIGIBLE`` or more.

    ``means`` holds the mean at c (real) and c - e_y (imaginary) in plane 0 and at
    c - e_x in plane 1; the mean leaks into each coefficient through the window DTFT.
    """
    norm = np.float32(1.0 / band_response(window, 0.0) ** 2)
    m_c, m_ey, m_ex = means[0].real * norm, means[0].imag * norm, means[1].real * norm
    response = _response2(window, demod)
    # Only where the mean leaks by _LEAKAGE_NEGLIGIBLE or more, as for the whole frame
    # (_mean_leaks): a reflection beyond a few bins of zero along both axes receives less.
    leaks = np.abs(response) >= _LEAKAGE_NEGLIGIBLE * _response2(window, np.zeros(2))
    for planes, mean in zip(coef, (m_c, m_ey, m_ex), strict=True):
        for r in np.flatnonzero(leaks):
            # The means and the response are real: only the real parts change (a
            # complex minus a real leaves the imaginary part as it is, and reads the
            # plane contiguously).
            np.subtract(planes[r], mean * np.float32(response[r]), out=planes[r])


def _frame_maps(
    spec: FrameSpectrum,
    demod,
    given,
    out,
    *,
    start,
    origin=(0, 0),
    window: int,
    step: int,
    pixel_size: float,
    min_amplitude: float,
    search: float,
    background: bool,
    workers: int,
):
    """The six maps of one 2D frame (its spectrum) for ``k`` reflections, into
    ``out (6, k, my, mx)``.

    Map pixel ``(i, j)`` is the window centred on local pixel ``start + (i, j)·step``,
    image pixel ``origin + (i, j)·step`` (the phase is referred to the image origin);
    windows reaching beyond the frame are NaN.  ``given`` is ``(k, 2)`` and ``demod``
    ``(k, 2)`` or ``(k, 4)`` frequencies in cycles/pixel: the demodulation of each
    reflection, and in columns 2-3 a second one (NaN where none), for a frame holding
    two lattices; each window then takes the one nearer to its own estimate.
    """
    count = out.shape[-2:]
    clean = spec.clean(window, step, start, count)
    if not clean.any():
        out[...] = np.nan
        return out
    k = given.shape[0]
    first = demod[:, :2]
    second = demod[:, 2:4] if demod.shape[1] > 2 else np.full((k, 2), np.nan)
    two = np.nonzero(np.all(np.isfinite(second), axis=1))[0]
    demods = np.concatenate([first, second[two]])
    noise = _frame_noise(spec, demods, window, k)
    rows_of = _inverse_y(
        spec.spectrum, spec.lengths, demods, window=window, step=step, start=start,
        count=count, background=background, workers=workers, cut=BAND_CUT,
    )  # fmt: skip
    # The leakage of every picked fringe, measured at its first mode, is removed from
    # the coefficients at both modes.
    terms = _leakage_terms(range(k), first, first, window, background)
    alt_terms = _leakage_terms(two, second[two], first, window, background)
    needed = {term[1] for term in terms + alt_terms}
    d32, alt_demod = first.astype(np.float32), second[two].astype(np.float32)
    # The rest is window by window: in bands of map rows, so that its arrays stay in
    # the cache (the same values, 15-20 % less time than over the whole frame).
    band = max(8, _BAND_WINDOWS // (count[1] * demods.shape[0]))
    for r0 in range(0, count[0], band):
        rows = slice(r0, min(r0 + band, count[0]))
        coef = rows_of(rows)
        z, alt = coef[:, :k], coef[:, k:]
        sources = _leakage_sources(z, first, needed)
        _remove_leakage(z, terms, sources)
        _remove_leakage(alt, alt_terms, sources)
        del sources
        fy, fx = _phase_frequencies(z)
        oy, ox = fy - d32[:, 0, None, None], fx - d32[:, 1, None, None]
        if two.size:
            _nearest_mode((z[0], fy, fx, oy, ox), (alt, alt_demod), two)
        part = out[:, :, rows]
        _band_maps(part, z[0], (fy, fx, oy, ox), noise, given, clean[rows], window,
                   pixel_size, min_amplitude, search)  # fmt: skip
        _geometric_phase(part, z[0], given, (origin[0] + r0 * step, origin[1]), step)
    return out


def _band_maps(out, z0, estimates, noise, given, clean, window, pixel_size, min_amplitude, search):
    """Amplitude, spacing, angle and sigmas of some windows into ``out (5, k, rows, mx)``.

    ``z0`` their coefficients at ``c`` and ``estimates`` their local ``fy, fx`` with
    offsets ``oy, ox`` from the demodulation, each ``(k, rows, mx)``.
    """
    fy, fx, oy, ox = estimates
    # In place where a result has its own array (temporaries cost a pass each).
    amp = np.square(z0.real)
    amp += np.square(z0.imag)
    if np.all(noise > 0):
        amp /= noise
    else:
        # A blank frame's floor can underflow float32: zero power, zero amplitude.
        with np.errstate(divide="ignore", invalid="ignore"):
            amp = np.where(amp > 0, amp / noise, np.float32(0.0))
    # Linearised variance of the phase difference for white noise: the two windows
    # share their noise except for the 1-pixel shift and the signal's rotation.
    # 1 - ρ cos x written as (1 - ρ) + 2ρ sin²(x/2): ρ is within 1e-3 of 1, and the
    # direct form would lose 4 of float32's 7 digits to the cancellation.
    rho = lag_one_correlation(window)
    a_eff = amp - np.float32(1.0)
    np.maximum(a_eff, np.float32(1e-12), out=a_eff)
    a_eff *= np.float32(4 * np.pi**2)
    one_minus, two_rho, pi = np.float32(1.0 - rho), np.float32(2 * rho), np.float32(np.pi)

    def variance(offset):
        v = np.multiply(pi, offset)
        np.sin(v, out=v)
        np.square(v, out=v)
        v *= two_rho
        v += one_minus
        v /= a_eff
        return v

    _finish(out, fy, fx, variance(oy), variance(ox), amp, given, clean, pixel_size,
            min_amplitude, search)  # fmt: skip


def _nearest_mode(first, second, two):
    """Per window and reflection, the estimate of the demodulation nearest to it.

    ``first`` holds ``z, fy, fx`` and the offsets ``oy, ox`` of ``fy, fx`` from the
    first demodulation, each ``(k, my, mx)`` (overwritten); ``second`` the coefficients
    ``(3, m, my, mx)`` of the reflections ``two`` at their second demodulation
    ``(m, 2)``.  The phase difference is unbiased at any offset inside the main lobe,
    but its variance grows as ``1 + 3β²`` with the offset ``β``: the nearer
    demodulation gives the better estimate.
    """
    z, fy, fx, oy, ox = first
    coef, d2 = second
    fy2, fx2 = _phase_frequencies(coef)
    oy2, ox2 = fy2 - d2[:, 0, None, None], fx2 - d2[:, 1, None, None]
    for i, r in enumerate(two):
        use = np.square(oy2[i]) + np.square(ox2[i]) < np.square(oy[r]) + np.square(ox[r])
        mask = np.negative(use, dtype=np.int32)  # all bits set where used
        _select(z[r], coef[0, i], mask)
        for mine, theirs in ((fy, fy2), (fx, fx2), (oy, oy2), (ox, ox2)):
            _select(mine[r], theirs[i], mask)


def _select(dst, src, mask):
    """``dst = src`` where ``mask`` (int32, -1 or 0) has its bits set: in place, bit for
    bit, for items of 4 or 8 bytes (the mask then covers both halves).

    On the bits, without a branch per item: ``dst ^= (dst ^ src) & mask``.  A masked copy
    is six times slower where the mask is scattered, as it is where no lattice chooses
    between the two modes (measured: 1.4 against 0.23 ms for 512² float32).
    """
    words = dst.itemsize // 4
    bits = dst.view(np.int32).reshape(*dst.shape, words)
    flip = np.bitwise_xor(bits, src.view(np.int32).reshape(*src.shape, words))
    flip &= mask[..., None]
    bits ^= flip


def _geometric_phase(out, z, given, origin, step: int):
    """The phase of each coefficient relative to its given ``g`` into ``out[5]``.

    For a fringe ``A cos(2π g·r + P(r))`` the coefficient of the window centred on ``c``
    is ``(A/2)·Ŵ·exp(i(2π g·c + P(c)))`` with ``Ŵ > 0`` in the main lobe, whatever the
    demodulation frequency: ``P(c) = arg(Z(c)·exp(-2πi g·c))``, ``c`` in image pixels
    from the image origin (as GPA's, ``docs/gpa.md``), in (-π, π].  NaN where the
    amplitude is (the window is not clean); kept where the local ``g`` left the search
    region or the amplitude is low (round a dislocation core, where the phase winds, and
    on the film next to a core near the crystal's edge), as GPA keeps it.
    """
    my, mx = z.shape[-2:]
    centres = [o + step * np.arange(m) for o, m in zip(origin, (my, mx), strict=True)]
    for r, (gy, gx) in enumerate(given):
        # Products reduced modulo 1 in double precision: 2π g·c reaches 10⁴ radians.
        ey = np.exp(-2j * np.pi * ((gy * centres[0]) % 1.0)).astype(np.complex64)
        ex = np.exp(-2j * np.pi * ((gx * centres[1]) % 1.0)).astype(np.complex64)
        out[5, r] = np.angle(z[r] * ey[:, None] * ex[None, :])
    np.copyto(out[5], np.float32(np.pi), where=out[5] <= -np.pi)
    out[5] += _blank(~np.isnan(out[2]))
    return out


def _phase_frequencies(coef):
    """Local ``(fy, fx)`` in cycles/pixel from the phase differences ``(3, k, my, mx)``."""
    inv = np.float32(0.5 / np.pi)
    fy = np.angle(coef[0] * np.conj(coef[1])) * inv
    fx = np.angle(coef[0] * np.conj(coef[2])) * inv
    return fy, fx


def _response2(window: int, f) -> np.ndarray:
    """2D kernel response ``R(fy)·R(fx)`` at frequency offsets ``f (..., 2)``."""
    # Both axes in one call: the leakage terms evaluate many small arrays.
    response = band_response(window, np.asarray(f, dtype=np.float64))
    return response[..., 0] * response[..., 1]


def _leakage_terms(targets, target_demod, source_demod, window: int, background: bool):
    """:func:`_terms_of_leakage`, shared by the blocks of a frame (and frames analysed
    again) with the same demodulations: a tuple of read-only terms.
    """
    targets = np.asarray(targets, dtype=np.int64)
    target_demod = np.asarray(target_demod, dtype=np.float64).reshape(-1, 2)
    source_demod = np.asarray(source_demod, dtype=np.float64).reshape(-1, 2)
    return _cached_leakage_terms(
        targets.tobytes(), target_demod.tobytes(), source_demod.tobytes(), int(window),
        bool(background),
    )  # fmt: skip


@functools.lru_cache(maxsize=64)
def _cached_leakage_terms(targets, target_demod, source_demod, window, background):
    terms = _terms_of_leakage(
        np.frombuffer(targets, dtype=np.int64),
        np.frombuffer(target_demod).reshape(-1, 2),
        np.frombuffer(source_demod).reshape(-1, 2),
        window,
        background,
    )
    for term in terms:
        term[4].setflags(write=False)
    return tuple(terms)


def _terms_of_leakage(targets, target_demod, source_demod, window: int, background: bool):
    """The leakage of every picked component into each target coefficient.

    ``targets`` are the reflection indices of the target coefficients, demodulated at
    ``target_demod (m, 2)``; ``source_demod (k, 2)`` the demodulations of the
    coefficients that measure the sources (the picked fringes).  Returns
    ``(target position, source j, conjugate?, c0, gradient)`` per term of at least
    ``_LEAKAGE_NEGLIGIBLE``.

    Each real fringe ``j`` is a pair of components ``a_j exp(2πi f_j·r)`` and its
    conjugate at ``-f_j``; through the window's side lobes both add
    ``a_j C(f0_k - f_j)`` and ``conj(a_j) C(f0_k + f_j)`` to the coefficient of
    reflection ``k`` (``C`` the kernel response, minus the part removed with the window
    mean).  With ``a_j`` from the measured coefficient ``Z_j / C(f0_j - f_j)`` and
    the ratios expanded to first order in the local offset ``f_j - f0_j``, one
    correction leaves a residual of second order in the leakage (about 1e-8 instead
    of 1e-4 for reflections 10 bins apart in a 64-pixel window).  A fringe measured at
    one demodulation serves targets at any other (a reflection's second mode is the
    same fringe).
    """
    w0 = _response2(window, np.zeros(2))
    h = 1e-3 / window
    probes = np.array([[0.0, 0.0], [h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
    targets = np.asarray(targets, dtype=int)
    signs = np.array([-1.0, 1.0])
    at_targets = _response2(window, target_demod)[:, None, None]
    # Every source j at once: (j, probe) candidate true frequencies of component j.
    f0 = np.asarray(source_demod, dtype=np.float64)[:, None, :]
    f = f0 + probes
    if background:
        mean_part = _response2(window, f) / w0
    else:
        mean_part = np.zeros(f.shape[:-1])
    own = _response2(window, f0 - f) - mean_part * _response2(window, f0)
    # (j, target, sign, probe): the components at ±f seen at each target's demodulation
    seen = (
        target_demod[None, :, None, None, :] + signs[None, None, :, None, None] * f[:, None, None]
    )
    ratio = _response2(window, seen) - mean_part[:, None, None] * at_targets
    ratio /= own[:, None, None]
    grad = np.stack([ratio[..., 1] - ratio[..., 2], ratio[..., 3] - ratio[..., 4]], -1)
    grad /= 2 * h
    size = np.abs(ratio[..., 0]) + np.abs(grad).sum(axis=-1) * 0.5 / window
    terms = []
    for j in range(f.shape[0]):
        for t, kk in enumerate(targets):
            for i, sign in enumerate(signs):
                if (sign > 0 or kk != j) and size[j, t, i] >= _LEAKAGE_NEGLIGIBLE:
                    terms.append((t, j, sign > 0, ratio[j, t, i, 0], grad[j, t, i].copy()))
    return terms


def _leakage_sources(coef, demod, needed):
    """Uncorrected copies of the sources ``needed`` of ``coef (3, k, ...)`` and their
    first-order local frequency offsets from ``demod (k, 2)``.

    Single precision, as the coefficients: the correction itself is below 1e-3.
    """
    d32 = demod.astype(np.float32)
    sources = {}
    for j in sorted(needed):
        source = coef[:, j].copy()
        fy, fx = _phase_frequencies(source)
        sources[j] = (source, (fy - d32[j, 0], fx - d32[j, 1]))
    return sources


def _remove_leakage(coef, terms, sources):
    """Subtract the leakage ``terms`` (:func:`_leakage_terms`) from ``coef`` (in place)."""
    if not terms:
        return coef
    product = np.empty_like(coef[:, 0])
    for t, j, conjugate, c0, grad in terms:
        source, offset = sources[j]
        factor = np.float32(grad[0]) * offset[0]
        factor += np.float32(grad[1]) * offset[1]
        factor += np.float32(c0)
        # The factor is real: conj(Z)·factor = conj(Z·factor).
        np.multiply(source, factor, out=product)
        if conjugate:
            np.conjugate(product, out=product)
        coef[:, t] -= product
    return coef


def _finish(out, fy, fx, vy, vx, amp, given, clean, pixel_size, min_amplitude, search):
    """Spacing, angle, amplitude and sigmas into ``out (5, r, my, mx)``, NaN rules applied
    (``vy`` and ``vx`` are overwritten).

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
    deg = np.float32(180.0 / np.pi)  # np.degrees is 4 times slower in float32
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(np.float32(pixel_size), fmag, out=out[0])
        # 0 - fy turns -0.0 into +0.0, so that atan2 gives +π, never -π: (-180°, 180°].
        np.subtract(np.float32(0.0), fy, out=out[1])
        np.arctan2(out[1], fx, out=out[1])
        out[1] *= deg
        np.copyto(out[2], amp)
        # fy²·vy + fx²·vx and fx²·vy + fy²·vx, in arrays free by now (fmag, vy, vx).
        np.multiply(fy2, vy, out=out[3])
        out[3] += np.multiply(fx2, vx, out=fmag)
        np.multiply(fx2, vy, out=vy)
        vy += np.multiply(fy2, vx, out=vx)
        np.sqrt(out[3], out=out[3])
        out[3] /= f2
        out[3] *= out[0]
        np.sqrt(vy, out=out[4])
        out[4] /= f2
        out[4] *= deg
        # NaN where not ok and 0 elsewhere, added: no branch per pixel (masked copies
        # are ten times slower on scattered masks).
        blank = _blank(ok)
        for i in (0, 1, 3, 4):
            out[i] += blank
        out[2] += _blank(clean)
    return out


def _blank(ok):
    """float32 0 where ``ok``, NaN elsewhere (``0/1`` and ``0/0``)."""
    with np.errstate(invalid="ignore"):
        return np.divide(np.float32(0.0), ok.astype(np.float32))


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
