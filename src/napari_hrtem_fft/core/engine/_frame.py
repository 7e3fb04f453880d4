"""Per-frame numerics: windowed Fourier coefficients of every window of a 2D frame at once.

One 2D FFT of the frame serves all reflections; per reflection the spectrum is multiplied
by the analytic kernel spectrum of one axis and folded (its ``step`` aliases summed), then
the same along the other axis, so that a small inverse 2D FFT yields exactly the
coefficients on the step grid.  The local frequency follows in closed form from the phase
difference of the windows at ``c`` and ``c - e``; see ``docs/method.md``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from .._windows import hann_dtft, hann_taps, kernel_spectra, lag_one_correlation

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


# Multiply-adds per matrix product of the first fold (half of OpenBLAS's threshold for
# starting threads of its own).
_BLAS_ONE_THREAD = 2**15

# Bytes of the first folds of one chunk of rows: they are folded again along x while they
# sit in the CPU cache, so that the first folds never travel to memory.
_FOLD_CHUNK_BYTES = 2**21


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


def _prepare(frame, window: int, step: int, start, count):
    """Offset-free float32 frame (NaN → 0), the mask of clean windows, and the mask of
    finite pixels (``None`` when all are finite).

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
        return None, np.zeros(count, dtype=bool), finite
    # Any offset near the mean serves (each window's own mean is removed exactly
    # later): that of every 4th pixel, or of all finite pixels if that has none.
    sample = frame[::4, ::4]
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        sample = frame[finite]
    offset = sample.mean(dtype=np.float64)
    scale = _unit_scale(sample, offset)
    if 2.0**-60 <= scale <= 2.0**60:
        # The subtraction in the frame's own precision, then single precision.
        data = np.subtract(frame, frame.dtype.type(offset)).astype(np.float32, copy=False)
        data *= np.float32(scale)
    else:
        # Intensities far from 1 (below ~1e-18 or above ~1e18): scaled in double
        # precision first, so that float32 neither underflows nor overflows.
        data = ((frame.astype(np.float64) - offset) * scale).astype(np.float32)
    if n_finite == finite.size:
        return data, _window_centres(frame.shape, window, step, start, count)[1], None
    np.copyto(data, 0.0, where=~finite)
    return data, _clean_windows(finite, window, step, start, count), finite


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
    data, demod, *, window, step, start, count, background, noise, workers, noise_count=None
):
    """Windowed Fourier coefficients at c, c - e_y and c - e_x, and the background power.

    ``data`` is a mean-removed float32 2D frame; ``noise`` is False (no background
    wanted), True, or the frame's mask of finite pixels when some are not; windows are
    centred on local pixels ``start + (i, j)·step`` for ``(i, j) < count``; ``demod``
    is ``(k, 2)`` in cycles/pixel.  Returns ``coef (3, k, my, mx)`` (complex64, phase
    referred to each window's centre) and the background ``|Z|²`` expected at each
    reflection ``(k, 1, 1)`` (or ``None``; only for the first ``noise_count`` rows of
    ``demod`` if given, the others being second demodulations of the same reflections).
    """
    h, w = data.shape
    # One 2D spectrum serves every kernel: fold along one axis with the first-axis
    # kernels, then along the other with the second-axis ones; one small batched
    # inverse 2D FFT then gives every coefficient map on the step grid.
    lengths = tuple(step * sfft.next_fast_len(-(-n // step)) for n in (h, w))
    spectrum = sfft.fft2(data, s=lengths, workers=workers)
    if noise is False:
        noise = None
    elif noise is True:
        energy = _apodised_energy(lengths, data.shape)
        noise = _spectral_noise(spectrum, demod, window, energy, noise_count)
    else:
        # Missing pixels are zeros here: they count for nothing in the energy.  Their
        # holes in the fringes spread some fringe power near g, which makes the
        # amplitude of that frame conservative (docs/method.md).
        energy = _apodised_energy(lengths, data.shape, noise)
        noise = _spectral_noise(spectrum, demod, window, energy, noise_count)
    kernels = _Kernels(window, step, lengths, start, spectrum.dtype)
    folded = _folds(spectrum, demod, kernels, background)
    del spectrum
    # The inverse along y, then along x for the map rows only.
    my, mx = count
    grid = sfft.ifft(folded, axis=-2, overwrite_x=True, workers=workers)[:, :my]
    grid = sfft.ifft(grid, axis=-1, workers=workers)[..., :mx]
    n_mean = 2 if background else 0
    coef = grid[n_mean:].reshape(demod.shape[0], 3, my, mx).transpose(1, 0, 2, 3)
    if background:
        _subtract_means(grid[:2], coef, demod, window)
    return coef, noise


def _spectral_noise(spectrum, demod, window: int, h2: float, count=None):
    """The noise power ``E|Z|²`` of a window at each reflection, ``(k, 1, 1)`` float32.

    Only the first ``count`` rows of ``demod`` if given; the main lobes of all are kept
    out of the background.

    For noise of power spectral density ``P`` near ``g``, a window's coefficient has
    ``E|Z|² = P·(Σ w²)²``.  The frame's spectrum, apodised by a periodic Hann window
    over its padded length (three-point stencils in the spectrum: the frame's edges
    would otherwise spread every fringe's power over its row and column), has
    ``E|S|² = P·Σ h²`` (``h2``) over the frame's pixels, exponentially distributed: its
    lower quartile over the bins near ``g`` (see ``_noise_bins``), divided by ln(4/3),
    estimates that whatever sparse peaks the lattice puts there.  Floored at 1e-30 of the frame's
    mean power, so that a noise-free lattice gives a large but finite amplitude.
    """
    shape = np.array(spectrum.shape)
    w2 = float(np.sum(hann_taps(window)[1] ** 2)) ** 2
    out = np.empty(demod.shape[0] if count is None else count)
    for r, f0 in enumerate(demod[: out.size]):
        idx, keep = _noise_bins(f0, demod, shape, window)
        rows, cols = np.nonzero(keep)
        near = _apodised(spectrum, idx[0][rows], idx[1][cols])
        power = near.real.astype(np.float64) ** 2 + near.imag.astype(np.float64) ** 2
        out[r] = np.quantile(power, _NOISE_QUANTILE)
    floor = 1e-30 * max(float(np.mean(np.abs(spectrum[::7, ::7]) ** 2)), 1e-30)
    out = np.maximum(out, floor) / -math.log1p(-_NOISE_QUANTILE) / max(h2, 1e-30) * w2
    return out.astype(np.float32)[:, None, None]


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
    from_g = np.hypot(freq[0][:, None] - f0[0], freq[1][None, :] - f0[1]) * window
    alias = [(f + 0.5) % 1.0 - 0.5 for f in freq]
    radial = np.hypot(alias[0][:, None], alias[1][None, :]) * window
    keep = np.abs(radial - np.hypot(*f0) * window) <= _NOISE_WIDTH
    keep &= (from_g <= _NOISE_ARC) & (radial >= _NOISE_ZERO)
    for g in (*demod, *-demod):
        keep &= np.hypot(alias[0][:, None] - g[0], alias[1][None, :] - g[1]) * window >= (
            _NOISE_OWN_LOBE
        )
    return idx, keep


def _apodised(spectrum, rows, cols):
    """The spectrum of the Hann-apodised frame at the bins ``(rows[i], cols[i])``.

    A periodic Hann window ``½ - ½cos(2πn/L)`` multiplies the frame: its spectrum is
    convolved with ``(-¼, ½, -¼)`` along each axis.
    """
    ly, lx = spectrum.shape
    taps = (-0.25, 0.5, -0.25)
    out = np.zeros(rows.shape, dtype=np.complex128)
    for dy, ty in zip((-1, 0, 1), taps, strict=True):
        r = (rows + dy) % ly
        for dx, tx in zip((-1, 0, 1), taps, strict=True):
            out += (ty * tx) * spectrum[r, (cols + dx) % lx]
    return out


def _apodised_energy(lengths, data_shape, finite=None) -> float:
    """``Σ h²`` of the apodising window over the frame's (finite) pixels."""
    squares = []
    for length, n in zip(lengths, data_shape, strict=True):
        h = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / length)
        squares.append(h * h)
    if finite is None:
        return float(np.sum(squares[0]) * np.sum(squares[1]))
    return float(squares[0] @ finite.astype(np.float64) @ squares[1])


class _Kernels:
    """Kernel spectra along one axis of the padded frame, in the spectrum's precision."""

    def __init__(self, window, step, lengths, start, ctype):
        self.window, self.step, self.lengths, self.start = window, step, lengths, start
        self.ctype = ctype

    def __call__(self, axis, freqs, shifts):
        spectra = kernel_spectra(self.window, self.lengths[axis], freqs, shifts)
        return (spectra / self.step).astype(self.ctype)

    def pair(self, axis, freq):
        """The kernels of the windows at ``c`` and ``c - e`` along ``axis``."""
        pos = self.start[axis]
        return self(axis, [freq, freq], [pos, pos - 1])


def _folds(spectrum, demod, kernels, background):
    """Every kernel folded along y then x: the planes of the small inverse FFT.

    Planes: the window means at c (real) and c - e_y (imaginary), at c - e_x (real);
    then per reflection the windows at c, c - e_y and c - e_x.

    Along y, every kernel at once, as a batched matrix product over the ``M = L_y/step``
    folded rows: row ``m`` of kernel ``j`` is ``Σ_a ky_j[m + a·M]·S[m + a·M]``, one read
    of the spectrum for all kernels (the means at c and c - e_y travel as the real and
    imaginary part of one kernel: the f = 0 kernels are Hermitian and their results
    real).  Then, chunk by chunk of rows while they sit in the CPU cache, along x: the
    c - e_x kernel is the c kernel times ``exp(-2πi ν/L_x)``, which at ``ν = b·P + p``
    (``P = L_x/step``) is ``exp(-2πi b/step)·exp(-2πi p/L_x)``, so that one product with
    the c kernel serves both, reduced over the aliases ``b`` with weights 1 and
    ``exp(-2πi b/step)`` (the ``exp(-2πi p/L_x)`` is applied to the folded plane).
    """
    s = kernels.step
    ly, lx = spectrum.shape
    m, p = ly // s, lx // s
    k = demod.shape[0]
    n_mean = 2 if background else 0
    y_rows, x_kernels = [], []
    if background:
        mean = kernels.pair(0, 0.0)
        y_rows.append(mean[0] + 1j * mean[1])
        x_kernels.append(kernels(1, [0.0], [kernels.start[1]])[0])
    for r in range(k):
        y_rows.extend(kernels.pair(0, demod[r, 0]))
        x_kernels.append(kernels(1, [demod[r, 1]], [kernels.start[1]])[0])
    n_y = len(y_rows)
    ker = np.stack(y_rows).astype(kernels.ctype, copy=False)
    ker = np.ascontiguousarray(ker.reshape(n_y, s, m).transpose(2, 0, 1))  # (M, n_y, s)
    spec = spectrum.reshape(s, m, lx).transpose(1, 0, 2)  # (M, s, L_x)
    weights = np.stack([np.ones(s), np.exp(-2j * np.pi * np.arange(s) / s)])
    weights = weights.astype(kernels.ctype)
    folded = np.empty((n_mean + 3 * k, m, p), dtype=kernels.ctype)
    # Column strips small enough that BLAS keeps each product on the calling thread:
    # OpenBLAS starts threads of its own from 2^16 multiply-adds per product, which in
    # the engine's thread pool (and beside other jobs) made 8 or more kernels 50 times
    # slower.
    cols = max(1, _BLAS_ONE_THREAD // (n_y * s))
    rows = max(1, _FOLD_CHUNK_BYTES // (n_y * lx * spectrum.itemsize))
    first = np.empty((rows, n_y, lx), dtype=kernels.ctype)
    product = np.empty((rows, lx), dtype=kernels.ctype)
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        part, prod = first[: r1 - r0], product[: r1 - r0]
        for x0 in range(0, lx, cols):
            x1 = x0 + cols
            np.matmul(ker[r0:r1], spec[r0:r1, :, x0:x1], out=part[:, :, x0:x1])
        # (plane of the first fold, x kernel, first output plane, with c - e_x?)
        jobs = [(0, 0, 0, True)] if background else []
        for r in range(k):
            c, i = n_mean // 2 + 2 * r, n_mean + 3 * r
            jobs += [(c, n_mean // 2 + r, i, True), (c + 1, n_mean // 2 + r, i + 1, False)]
        for j, kx, i, both in jobs:
            np.multiply(part[:, j], x_kernels[kx], out=prod)
            alias = prod.reshape(-1, s, p)
            if both:
                # c into plane i, c - e_x into plane i + 1 (means) or i + 2 (reflections)
                step_out = 1 if (background and j == 0) else 2
                out = folded[i : i + step_out + 1 : step_out, r0:r1].transpose(1, 0, 2)
                np.matmul(weights, alias, out=out)
            else:
                np.matmul(weights[:1], alias, out=folded[i : i + 1, r0:r1].transpose(1, 0, 2))
    ramp = np.exp(-2j * np.pi * np.arange(p) / lx).astype(kernels.ctype)
    if background:
        folded[1] *= ramp
    folded[n_mean + 2 :: 3] *= ramp
    return folded


def _subtract_means(means, coef, demod, window):
    """Remove each window's Hann-weighted mean from its coefficients (in place).

    ``means`` holds the mean at c (real) and c - e_y (imaginary) in plane 0 and at
    c - e_x in plane 1; the mean leaks into each coefficient through the window DTFT.
    """
    norm = np.float32(1.0 / hann_dtft(window, 0.0) ** 2)
    m_c, m_ey, m_ex = means[0].real * norm, means[0].imag * norm, means[1].real * norm
    w_y, w_x = hann_dtft(window, demod[:, 0]), hann_dtft(window, demod[:, 1])
    s_main = (w_y * w_x).astype(np.float32)
    for r in range(demod.shape[0]):
        coef[0, r] -= m_c * s_main[r]
        coef[1, r] -= m_ey * s_main[r]
        coef[2, r] -= m_ex * s_main[r]


def _frame_maps(
    frame,
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
    """The six maps of one 2D frame for ``k`` reflections, into ``out (6, k, my, mx)``.

    Map pixel ``(i, j)`` is the window centred on local pixel ``start + (i, j)·step``,
    image pixel ``origin + (i, j)·step`` (the phase is referred to the image origin);
    windows reaching beyond the frame are NaN.  ``given`` is ``(k, 2)`` and ``demod``
    ``(k, 2)`` or ``(k, 4)`` frequencies in cycles/pixel: the demodulation of each
    reflection, and in columns 2-3 a second one (NaN where none), for a frame holding
    two lattices; each window then takes the one nearer to its own estimate.
    """
    count = out.shape[-2:]
    data, clean, finite = _prepare(frame, window, step, start, count)
    if not clean.any():
        out[...] = np.nan
        return out
    k = given.shape[0]
    first = demod[:, :2]
    second = demod[:, 2:4] if demod.shape[1] > 2 else np.full((k, 2), np.nan)
    two = np.nonzero(np.all(np.isfinite(second), axis=1))[0]
    coef, noise = _coefficients(
        data,
        np.concatenate([first, second[two]]),
        window=window,
        step=step,
        start=start,
        count=count,
        background=background,
        noise=True if finite is None else finite,
        workers=workers,
        noise_count=k,
    )
    # The first modes, then the second ones where there are.  The leakage of the other
    # reflections is removed within each set of demodulations (the two modes of a
    # reflection are one and the same fringe); a reflection with one mode is the same
    # source in both sets.
    z = coef[:, :k]
    if two.size:
        alt, alt_demod = z.copy(), first.copy()
        alt[:, two], alt_demod[two] = coef[:, k:], second[two]
    sources = {}
    z = _remove_leakage(z, first, window, background, sources=sources)
    fy, fx = _phase_frequencies(z)
    z0, d32 = z[0], first.astype(np.float32).T[:, :, None, None]
    if two.size:
        shared = {j: v for j, v in sources.items() if j not in two}
        alt = _remove_leakage(alt, alt_demod, window, background, targets=two, sources=shared)
        z0, fy, fx, d32 = _nearest_mode(
            (z0, fy, fx, d32), (alt[:, two], second[two].astype(np.float32)), two
        )
    power = z0.real**2 + z0.imag**2
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = np.where(power > 0, power / noise, np.float32(0.0))
    # Linearised variance of the phase difference for white noise: the two windows
    # share their noise except for the 1-pixel shift and the signal's rotation.
    # 1 - ρ cos x written as (1 - ρ) + 2ρ sin²(x/2): ρ is within 1e-3 of 1, and the
    # direct form would lose 4 of float32's 7 digits to the cancellation.
    rho = lag_one_correlation(window)
    a_eff = np.float32(4 * np.pi**2) * np.maximum(amp - np.float32(1.0), np.float32(1e-12))
    one_minus, two_rho, pi = np.float32(1.0 - rho), np.float32(2 * rho), np.float32(np.pi)
    vy = (one_minus + two_rho * np.sin(pi * (fy - d32[0])) ** 2) / a_eff
    vx = (one_minus + two_rho * np.sin(pi * (fx - d32[1])) ** 2) / a_eff
    _finish(out, fy, fx, vy, vx, amp, given, clean, pixel_size, min_amplitude, search)
    return _geometric_phase(out, z0, given, origin, step, min_amplitude)


def _nearest_mode(first, second, two):
    """Per window and reflection, the estimate of the demodulation nearest to it.

    ``first`` holds ``z, fy, fx`` ``(k, my, mx)`` (overwritten) at the first
    demodulation ``(2, k, 1, 1)``; ``second`` the coefficients ``(3, m, my, mx)`` of the
    reflections ``two`` at their second demodulation ``(m, 2)``.  The phase difference is
    unbiased at any offset inside the main lobe, but its variance grows as ``1 + 3β²``
    with the offset ``β``: the nearer demodulation gives the better estimate.  Returns
    ``z, fy, fx`` and the demodulation of each window, ``(2, k, my, mx)``.
    """
    z, fy, fx, d = first
    coef, d2 = second
    fy2, fx2 = _phase_frequencies(coef)
    d2 = d2.T[:, :, None, None]
    off1 = np.square(fy[two] - d[0, two]) + np.square(fx[two] - d[1, two])
    off2 = np.square(fy2 - d2[0]) + np.square(fx2 - d2[1])
    use = off2 < off1
    demod = np.empty((2, *fy.shape), dtype=np.float32)
    demod[...] = d
    for i, r in enumerate(two):
        np.copyto(z[r], coef[0, i], where=use[i])
        np.copyto(fy[r], fy2[i], where=use[i])
        np.copyto(fx[r], fx2[i], where=use[i])
        for axis in range(2):
            np.copyto(demod[axis, r], d2[axis, i], where=use[i])
    return z, fy, fx, demod


def _geometric_phase(out, z, given, origin, step: int, min_amplitude: float):
    """The phase of each coefficient relative to its given ``g`` into ``out[5]``.

    For a fringe ``A cos(2π g·r + P(r))`` the coefficient of the window centred on ``c``
    is ``(A/2)·Ŵ·exp(i(2π g·c + P(c)))`` with ``Ŵ > 0`` in the main lobe, whatever the
    demodulation frequency: ``P(c) = arg(Z(c)·exp(-2πi g·c))``, ``c`` in image pixels
    from the image origin (as GPA's, ``docs/gpa.md``), in (-π, π].  NaN where the
    amplitude is NaN or below ``min_amplitude``; kept where only the local ``g`` left the
    search region (round a dislocation core, where the phase winds), as GPA keeps it.
    """
    my, mx = z.shape[-2:]
    centres = [o + step * np.arange(m) for o, m in zip(origin, (my, mx), strict=True)]
    for r, (gy, gx) in enumerate(given):
        # Products reduced modulo 1 in double precision: 2π g·c reaches 10⁴ radians.
        ey = np.exp(-2j * np.pi * ((gy * centres[0]) % 1.0)).astype(np.complex64)
        ex = np.exp(-2j * np.pi * ((gx * centres[1]) % 1.0)).astype(np.complex64)
        out[5, r] = np.angle(z[r] * ey[:, None] * ex[None, :])
    np.copyto(out[5], np.float32(np.pi), where=out[5] <= -np.pi)
    np.copyto(out[5], np.float32(np.nan), where=~(out[2] >= min_amplitude))
    return out


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


def _remove_leakage(coef, demod, window: int, background: bool, targets=None, sources=None):
    """Subtract from each coefficient (in place) the leakage of the other picked components.

    ``targets``: the reflections to correct (default all).  ``sources``: a dict that
    holds, per reflection ``j``, its uncorrected coefficients and their first-order
    offsets; entries given are used as they are (the same coefficients at the same
    demodulation), the others are computed and added.

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
    targets = range(k) if targets is None else targets
    sources = {} if sources is None else sources
    w0 = _hann2(window, np.zeros(2))
    h = 1e-3 / window
    probes = np.array([[0.0, 0.0], [h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
    terms = []  # (target k, source j, conjugate?, c0, gradient)
    for j in range(k):
        f = demod[j] + probes  # (5, 2) candidate true frequencies of component j
        mean_part = _hann2(window, f) / w0 if background else np.zeros(len(f))
        own = _hann2(window, demod[j] - f) - mean_part * _hann2(window, demod[j])
        for kk in targets:
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
    for j in sorted({term[1] for term in terms} - set(sources)):
        source = coef[:, j].copy()
        fy, fx = _phase_frequencies(source)
        sources[j] = (source, (fy - d32[j, 0], fx - d32[j, 1]))
    product = np.empty_like(coef[:, 0])
    for kk, j, conjugate, c0, grad in terms:
        source, offset = sources[j]
        factor = np.float32(grad[0]) * offset[0]
        factor += np.float32(grad[1]) * offset[1]
        factor += np.float32(c0)
        # The factor is real: conj(Z)·factor = conj(Z·factor).
        np.multiply(source, factor, out=product)
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
