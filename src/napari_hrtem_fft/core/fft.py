"""FFT of one image region and detection of the lattice reflections in it.

Frequencies follow :mod:`napari_hrtem_fft.core.reciprocal`: a reflection is the
reciprocal vector ``(gy, gx)`` in nm⁻¹, i.e. its position on an FFT layer drawn with
``scale = 1/(window·pixel_size)`` and the zero frequency at the world origin.

Every spectrum here is computed on a periodic-Hann-apodised window.  Peak positions
are refined below the bin size by maximising the windowed discrete-time Fourier
transform (DTFT) itself, evaluated directly at non-integer frequencies, so that the
refinement has no interpolation bias: for a noise-free lattice it recovers ``g`` to
about 10⁻⁴ bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as scipy_fft
from scipy import ndimage, special

__all__ = ["RegionFFT", "find_reflections", "hann_window", "refine_reflection", "region_fft"]

# Candidate peaks must be the largest value within this many bins: the main lobe of
# the Hann window is 4 bins wide and its first side lobe (-31.5 dB) lies 2.4 bins out.
_PEAK_NEIGHBOURHOOD = 3
# Weaker peaks than this fraction of the strongest one are ignored: the Hann side
# lobes beyond the first are below 1e-4 in power (-41 dB), which would otherwise pass
# the noise threshold in (nearly) noise-free images.
_DYNAMIC_RANGE = 1e-4
# Probability that a pure-noise spectrum yields any reflection (default threshold).
_FALSE_ALARM = 1e-3
# Newton iterations of the sub-bin refinement (it converges in 3-4).
_NEWTON_ITERATIONS = 8
# Local background of a candidate peak: a low quantile of the power on a ring of these
# radii (bins) around it.  The Hann main lobe is ±2 bins, so the ring starts outside it;
# the quantile ignores the other reflections a ring crosses in a dense lattice.
_RING_INNER = 3.0
_RING_OUTER = 6.0
_RING_QUANTILE = 0.25
# Scan streaks: the background is also measured along the ky and kx lines through a
# candidate, from _RING_INNER to _LINE_OUTER bins on either side.
_LINE_OUTER = 10
# Shortest spacing ever suggested, in pixels.
_MIN_PIXELS = 3.0
# Two refined reflections are parallel (g ≈ n·h) within this many bins per order |n|.
_HARMONIC_TOLERANCE = 0.5


@dataclass(frozen=True)
class RegionFFT:
    """Log-amplitude spectrum of one image window, ready to draw as a napari layer.

    Attributes
    ----------
    data : numpy.ndarray
        ``(window, window)`` float32 ``log1p(|FFT|)``, fft-shifted: the zero
        frequency is at index ``(window//2, window//2)``.
    scale : tuple of float
        Bin size ``1/(window·pixel_size)`` in nm⁻¹, for both axes.
    translate : tuple of float
        ``-(window//2)·scale`` (nm⁻¹), so that the zero frequency is at the world origin
        and a world position is directly ``(gy, gx)`` in nm⁻¹.
    center : tuple of int
        Centre ``(y, x)`` of the window actually used, in image pixels (after clamping
        the window inside the image).
    window : int
        Window size in pixels.
    pixel_size : float
        Image pixel size in nm.
    """

    data: np.ndarray
    scale: tuple[float, float]
    translate: tuple[float, float]
    center: tuple[int, int]
    window: int
    pixel_size: float


def hann_window(window: int) -> np.ndarray:
    """Separable periodic Hann window ``(window, window)``, float64, peak value 1.

    The periodic form ``0.5 - 0.5 cos(2π n / N)`` (not the symmetric one) is the one
    whose spectrum is exactly three DFT bins wide, which the sub-bin refinement assumes.

    Parameters
    ----------
    window : int
        Window size ``N`` in pixels.
    """
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)
    return np.outer(w, w)


# --------------------------------------------------------------------------- checks


def _check_image(image) -> None:
    """Type and dimension checks shared by the public functions (no data copy)."""
    dtype = getattr(image, "dtype", None)
    if dtype is None:
        image = np.asarray(image)
        dtype = image.dtype
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"image must be a real-valued numeric array, got dtype {dtype}")
    if np.ndim(image) != 2:
        raise ValueError(
            f"image must be 2-D (y, x); got shape {np.shape(image)}. "
            "Pass one frame of a movie, e.g. image[t]."
        )


def _check_window(window, shape) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise TypeError(f"window must be an integer number of pixels, got {window!r}")
    window = int(window)
    if window < 8:
        raise ValueError(f"window must be at least 8 pixels, got {window}")
    if shape[0] < window or shape[1] < window:
        raise ValueError(
            f"window ({window} px) is larger than the image ({shape[0]}×{shape[1]} px); "
            "choose a smaller window"
        )
    return window


def _check_pixel_size(pixel_size) -> float:
    if isinstance(pixel_size, bool | np.bool_):
        raise TypeError(f"pixel_size must be a number (nm), got {pixel_size!r}")
    try:
        value = float(pixel_size)
    except (TypeError, ValueError):
        raise TypeError(f"pixel_size must be a number (nm), got {pixel_size!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel_size must be a positive number of nm, got {pixel_size!r}")
    return value


def _window_origin(shape, center, window: int) -> tuple[int, int]:
    """Top-left corner of the window centred on ``center``, clamped inside the image."""
    if center is None:
        center = (shape[0] // 2, shape[1] // 2)
    try:
        c = np.asarray(center, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"center must be a (y, x) pixel position, got {center!r}") from None
    if c.shape != (2,) or not np.all(np.isfinite(c)):
        raise ValueError(f"center must be a finite (y, x) pixel position, got {center!r}")
    origin = []
    for ax in range(2):
        start = int(np.round(c[ax])) - window // 2
        origin.append(min(max(start, 0), shape[ax] - window))
    return origin[0], origin[1]


def _patch(image, origin, window: int) -> np.ndarray:
    """The window at ``origin`` as float64, with its non-finite pixels filled.

    A dead or masked pixel (NaN) would otherwise make the whole spectrum NaN.  It is
    replaced by the mean of its finite 3×3 neighbours (which follows the lattice
    fringes of a few-pixel period closely), or by the mean of the window's finite
    pixels where it has none; an all-NaN window becomes zeros.
    """
    y0, x0 = origin
    # Slice before converting, so that a dask array or memory map reads only the window.
    patch = np.array(image[y0 : y0 + window, x0 : x0 + window], dtype=np.float64)
    finite = np.isfinite(patch)
    if finite.all():
        return patch
    if not finite.any():
        return np.zeros_like(patch)
    values = np.where(finite, patch, 0.0)
    total = ndimage.uniform_filter(values, 3, mode="nearest")
    count = ndimage.uniform_filter(finite.astype(np.float64), 3, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(count > 0, total / count, values[finite].mean())
    patch[~finite] = local[~finite]
    return patch


def _detrend_plane(patch: np.ndarray) -> np.ndarray:
    """Subtract the least-squares plane, so that an intensity ramp does not leak into
    the low-frequency bins as spurious peaks.
    """
    n = patch.shape[0]
    c = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    # The centred coordinates are orthogonal to the constant and to each other.
    slope_y = (c @ patch.sum(axis=1)) / (n * (c @ c))
    slope_x = (patch.sum(axis=0) @ c) / (n * (c @ c))
    return patch - patch.mean() - slope_y * c[:, None] - slope_x * c[None, :]


# ---------------------------------------------------------------------- region FFT


def region_fft(image, center=None, *, window: int, pixel_size: float) -> RegionFFT:
    """Log-amplitude FFT of a square image window, calibrated in nm⁻¹.

    The window's mean is subtracted (so that the zero frequency does not dominate the
    display), it is apodised with the separable periodic Hann window, transformed and
    shifted so that the zero frequency is at index ``(window//2, window//2)``.

    Parameters
    ----------
    image : array_like
        2-D image ``(y, x)`` (numpy, dask or memory-mapped); only the window is read.
    center : tuple of float, optional
        Window centre ``(y, x)`` in pixels (default: the image centre).  The window
        covers pixels ``c - window//2 … c + window - window//2 - 1``; if it would leave
        the image it is moved inside, and the centre used is returned.
    window : int
        Window size in pixels.
    pixel_size : float
        Image pixel size in nm.

    Returns
    -------
    RegionFFT
        ``data`` is float32 ``log1p(|FFT|)``; ``scale`` and ``translate`` (nm⁻¹) place
        the zero frequency at the world origin, so world positions are ``(gy, gx)``.

    Raises
    ------
    TypeError
        If ``image`` is complex or not numeric, or ``window`` is not an integer.
    ValueError
        If ``image`` is not 2-D, is smaller than ``window``, or ``pixel_size`` is not
        positive.
    """
    _check_image(image)
    shape = np.shape(image)
    window = _check_window(window, shape)
    pixel_size = _check_pixel_size(pixel_size)
    origin = _window_origin(shape, center, window)
    patch = _patch(image, origin, window)
    patch -= patch.mean()
    spectrum = np.fft.fftshift(np.fft.fft2(patch * hann_window(window)))
    scale = 1.0 / (window * pixel_size)
    return RegionFFT(
        data=np.log1p(np.abs(spectrum)).astype(np.float32),
        scale=(scale, scale),
        translate=(-(window // 2) * scale, -(window // 2) * scale),
        center=(origin[0] + window // 2, origin[1] + window // 2),
        window=window,
        pixel_size=pixel_size,
    )


# ------------------------------------------------------------ sub-bin refinement


def _refine_bins(patches: np.ndarray, start: np.ndarray, max_shift: float) -> np.ndarray:
    """Maximise ``Σ_w |DTFT_w(u)|²`` over the windows ``w`` near ``start`` (bins).

    ``patches`` are the apodised windows ``(m, N, N)``; ``u = (uy, ux)`` is a frequency
    in bins (cycles per window).  The DTFT, its gradient and its Hessian are evaluated
    directly (separable sums, ``O(m N²)`` each), and Newton steps are limited to half a
    bin.  If the iteration leaves ``start ± max_shift`` the best integer bin is kept.
    """
    n = patches.shape[-1]
    # Centred coordinates: a phase factor only, |DTFT| is unchanged, derivatives stay small.
    coord = np.arange(n, dtype=np.float64) - n // 2
    dphase = -2j * np.pi * coord / n
    u = np.asarray(start, dtype=np.float64).copy()
    for _ in range(_NEWTON_ITERATIONS):
        ey = np.exp(dphase * u[0])
        ex = np.exp(dphase * u[1])
        # Row sums against ex and its first two derivatives: (m, N, 3).  Two real
        # products: a complex one would first copy the patches to complex.
        basis = np.stack([ex, dphase * ex, dphase**2 * ex], axis=-1)
        px = (patches @ basis.real) + 1j * (patches @ basis.imag)
        # Column sums against ey and its derivatives: s[d] is (m, 3) for d = 0, 1, 2.
        s = np.einsum("dy,myk->dmk", np.stack([ey, dphase * ey, dphase**2 * ey]), px)
        f, fx, fxx = s[0, :, 0], s[0, :, 1], s[0, :, 2]
        fy, fxy, fyy = s[1, :, 0], s[1, :, 1], s[2, :, 0]
        cf = np.conj(f)
        grad = 2.0 * np.array([np.sum(np.real(cf * fy)), np.sum(np.real(cf * fx))])
        hyy = 2.0 * np.sum(np.abs(fy) ** 2 + np.real(cf * fyy))
        hxx = 2.0 * np.sum(np.abs(fx) ** 2 + np.real(cf * fxx))
        hxy = 2.0 * np.sum(np.real(np.conj(fy) * fx) + np.real(cf * fxy))
        hess = np.array([[hyy, hxy], [hxy, hxx]])
        if np.all(np.linalg.eigvalsh(hess) < 0):
            delta = -np.linalg.solve(hess, grad)
        else:
            # Not yet in the concave main lobe: a short step uphill.
            delta = 0.25 * grad / (np.linalg.norm(grad) + np.finfo(float).tiny)
        length = np.linalg.norm(delta)
        if length > 0.5:
            delta *= 0.5 / length
        u += delta
        if length < 1e-10:
            break
    if np.any(np.abs(u - start) > max_shift) or not np.all(np.isfinite(u)):
        return np.asarray(start, dtype=np.float64)
    return u


def _bins_to_g(u, window: int, pixel_size: float) -> np.ndarray:
    return np.asarray(u, dtype=np.float64) / (window * pixel_size)


def _canonical(g: np.ndarray) -> np.ndarray:
    """The member of the Friedel pair ±g whose angle is in (-90°, 90°]."""
    g = np.array(g, dtype=np.float64)
    # A refined gx of round-off size on a vertical reflection is zero: otherwise its sign
    # would pick between 90° and -90° at random.
    g[..., 1] = np.where(np.abs(g[..., 1]) <= 1e-9 * np.abs(g[..., 0]), 0.0, g[..., 1])
    flip = (g[..., 1] < 0) | ((g[..., 1] == 0) & (g[..., 0] > 0))
    return np.where(flip[..., None], -g, g)


def _prepared_windows(image, centers, window: int) -> np.ndarray:
    """Plane-detrended, Hann-apodised windows ``(m, N, N)`` at distinct clamped centres.

    The windows are divided by their largest absolute value, so that neither sums nor
    squared spectra of extreme intensities (1e-300 … 1e300) under- or overflow; every
    use of them (peak positions, power ratios) is scale-free.
    """
    shape = np.shape(image)
    origins = sorted({_window_origin(shape, c, window) for c in centers})
    raw = np.stack([_patch(image, o, window) for o in origins])
    scale = np.max(np.abs(raw))
    if 0 < scale < np.inf:
        raw /= scale
    hann = hann_window(window)
    return np.stack([_detrend_plane(p) * hann for p in raw])


def refine_reflection(image, g, *, pixel_size: float, window: int = 128, center=None):
    """Snap reflection(s) to the nearest spectrum peak, with sub-bin precision.

    The strongest bin within ±2 bins of each ``g`` in the power spectrum of the
    window at ``center`` is refined by maximising the Hann-windowed DTFT amplitude.
    The window is plane-detrended and Hann-apodised, as in :func:`find_reflections`.

    Parameters
    ----------
    image : array_like
        2-D image ``(y, x)``.
    g : array_like
        Approximate reflection ``(gy, gx)`` or reflections ``(n, 2)``, nm⁻¹ (e.g. a
        click on the :func:`region_fft` layer).
    pixel_size : float
        Image pixel size in nm.
    window : int
        Window size in pixels.
    center : tuple of float, optional
        Window centre ``(y, x)`` in pixels (default: image centre), as for
        :func:`region_fft`.

    Returns
    -------
    numpy.ndarray
        Refined reflection(s) in nm⁻¹, same shape as ``g`` (``(2,)`` or ``(n, 2)``).
        The half-plane of each input is kept (no Friedel canonicalisation).

    Raises
    ------
    TypeError, ValueError
        On invalid ``image``, ``g``, ``window`` or ``pixel_size``.
    """
    from .reciprocal import as_reflections

    _check_image(image)
    window = _check_window(window, np.shape(image))
    pixel_size = _check_pixel_size(pixel_size)
    single = np.ndim(g) == 1
    refl = as_reflections(g, name="g")
    patches = _prepared_windows(image, [center], window)
    power = np.abs(np.fft.fftshift(np.fft.fft2(patches[0]))) ** 2
    half = window // 2
    out = np.empty_like(refl)
    for i, gi in enumerate(refl):
        u0 = gi * window * pixel_size
        best, best_power = None, -1.0
        for ky in range(int(np.floor(u0[0])) - 2, int(np.ceil(u0[0])) + 3):
            for kx in range(int(np.floor(u0[1])) - 2, int(np.ceil(u0[1])) + 3):
                inside = abs(ky - u0[0]) <= 2 and abs(kx - u0[1]) <= 2
                in_range = -half <= ky < window - half and -half <= kx < window - half
                if inside and in_range and power[ky + half, kx + half] > best_power:
                    best, best_power = (ky, kx), power[ky + half, kx + half]
        if best is None:
            raise ValueError(f"g = {gi.tolist()} 1/nm lies outside the spectrum (Nyquist)")
        out[i] = _bins_to_g(_refine_bins(patches, np.array(best, float), 1.0), window, pixel_size)
    return out[0] if single else out


# ------------------------------------------------------------- peak detection


def _tiling_centers(shape, center, window: int, tiles: int):
    """Centres of a ``tiles × tiles`` grid of half-overlapping windows around ``center``."""
    if center is None:
        center = (shape[0] / 2.0, shape[1] / 2.0)
    offsets = (np.arange(tiles) - (tiles - 1) / 2.0) * (window / 2.0)
    return [(center[0] + dy, center[1] + dx) for dy in offsets for dx in offsets]


def _ring_offsets(inner: float, outer: float) -> np.ndarray:
    """Integer offsets ``(dy, dx)`` with ``inner <= |(dy, dx)| <= outer``, shape ``(m, 2)``."""
    r = int(np.ceil(outer))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    dist = np.hypot(dy, dx)
    keep = (dist >= inner) & (dist <= outer)
    return np.stack([dy[keep], dx[keep]], axis=1)


_RING = _ring_offsets(_RING_INNER, _RING_OUTER)
_LINE = np.concatenate(
    [np.arange(-_LINE_OUTER, 1 - _RING_INNER), np.arange(_RING_INNER, _LINE_OUTER + 1)]
).astype(int)


def _local_background(power: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """Background power under the candidate bins ``(iy, ix)`` (array indices).

    The largest of three low quantiles (``_RING_QUANTILE``) of the power around the bin:
    on a ring of ``_RING_INNER`` to ``_RING_OUTER`` bins, and along the ``ky`` and the
    ``kx`` line through the bin, ``_RING_INNER`` to ``_LINE_OUTER`` bins on either side.
    The ring lies outside the peak's main lobe, and a low quantile ignores the other
    reflections and the zero-frequency tail it crosses, even in a dense lattice.  The
    lines catch scan noise: jitter between scan lines draws lines of raised power along
    the slow-scan axis, through the origin and through every reflection, and
    interference adds peaks on them; only a peak standing out of such a line counts.
    """
    n = power.shape[0]
    ring = power[(iy[:, None] + _RING[:, 0]) % n, (ix[:, None] + _RING[:, 1]) % n]
    along_x = power[iy[:, None], (ix[:, None] + _LINE) % n]
    along_y = power[(iy[:, None] + _LINE) % n, ix[:, None]]
    return np.max(
        [np.quantile(v, _RING_QUANTILE, axis=1) for v in (ring, along_x, along_y)], axis=0
    )


def _noise_threshold(n_windows: int, n_bins: int, false_alarm: float = _FALSE_ALARM) -> float:
    """Peak-over-background ratio that noise alone exceeds with probability ``_FALSE_ALARM``.

    For Gaussian noise the power in a bin, averaged over ``m`` independent windows, is
    Gamma(m)-distributed (exponential for one window); the background is its
    ``_RING_QUANTILE`` quantile.  The windows overlap, so only half of them are counted
    as independent, which also absorbs the sampling error of the ring quantile
    (checked on pure noise: no detections in 10³ images).
    """
    m = max(1.0, n_windows / 2.0)
    # Quantiles of Gamma(shape m, scale 1/m); the 1/m cancels in the ratio.
    upper = special.gammainccinv(m, false_alarm / n_bins)
    return float(upper / special.gammaincinv(m, _RING_QUANTILE))


def _is_multiple(g: np.ndarray, of: np.ndarray, tolerance: float) -> bool:
    """Whether ``g ≈ n·of`` for an integer ``n ≠ 0`` (either sign; n = ±1 is a duplicate
    or a Friedel mate), within ``tolerance`` bins per unit of ``|n|``.
    """
    norm2 = float(of @ of)
    if norm2 == 0.0:
        return False
    n = np.rint(float(g @ of) / norm2)
    return n != 0 and np.linalg.norm(g - n * of) <= tolerance * max(1.0, abs(n))


def _mean_power(patches: np.ndarray) -> np.ndarray:
    """Mean power spectrum of real windows ``(m, N, N)``, fft-shifted ``(N, N)``.

    Computed from the half spectrum (``rfft2``, half the work) and completed by the
    Friedel symmetry of a real signal, ``P(-k) = P(k)``.
    """
    n = patches.shape[-1]
    half_power = np.mean(np.abs(scipy_fft.rfft2(patches)) ** 2, axis=0)
    power = np.empty((n, n))
    power[:, : n // 2 + 1] = half_power
    power[:, n // 2 + 1 :] = half_power[(-np.arange(n)) % n][:, n // 2 - 1 : 0 : -1]
    return np.fft.fftshift(power)


def _significant_peaks(
    image,
    center,
    window,
    *,
    pixel_size,
    min_spacing,
    exclude_radius,
    threshold,
    false_alarm,
    min_strength,
):
    """Windows ``(m, N, N)`` and significant peak bins ``(k, 2)`` by strength (steps 1-4
    of :func:`find_reflections`).
    """
    shape = np.shape(image)
    tiles = 3 if min(shape) >= 2 * window else (2 if min(shape) >= 1.5 * window else 1)
    patches = _prepared_windows(image, _tiling_centers(shape, center, window, tiles), window)
    power = _mean_power(patches)

    half = window // 2
    k = np.arange(window) - half
    ky, kx = k[:, None], k[None, :]
    radius = np.hypot(ky, kx)
    max_radius = min(half - 1.0, window / _MIN_PIXELS)
    if min_spacing is not None:
        max_radius = min(max_radius, window * pixel_size / min_spacing)
    usable = (radius > exclude_radius) & (radius <= max_radius)
    half_plane = (kx > 0) | ((kx == 0) & (ky < 0))
    candidates = usable & half_plane
    n_bins = int(candidates.sum())
    if n_bins == 0 or not np.any(power[radius > exclude_radius] > 0):
        return patches, np.empty((0, 2))
    if threshold is None:
        threshold = _noise_threshold(len(patches), n_bins, false_alarm)

    size = 2 * _PEAK_NEIGHBOURHOOD + 1
    is_max = power == ndimage.maximum_filter(power, size=size, mode="wrap")
    # Relative to the strongest peak anywhere (also beyond Nyquist), whose side lobes
    # may reach into the usable range.
    strong = power >= _DYNAMIC_RANGE * power[radius > exclude_radius].max()
    iy, ix = np.nonzero(candidates & is_max & strong)
    cky, ckx = iy - half, ix - half
    background = _local_background(power, iy, ix)
    peak = power[iy, ix]
    with np.errstate(divide="ignore", invalid="ignore"):
        significant = peak > threshold * background
    iy, ix, cky, ckx = iy[significant], ix[significant], cky[significant], ckx[significant]
    excess = (peak - background)[significant]
    order = np.argsort(-excess, kind="stable")
    order = order[excess[order] >= min_strength * excess[order[:1]].max(initial=0.0)]
    bins = np.stack([cky, ckx], axis=1).astype(np.float64)[order]

    return patches, bins


def _as_float(value, name: str, unit: str) -> float:
    """A real number option (not bool), else TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number ({unit}), got {value!r}")
    return float(value)


def _in_range(value, name: str, unit: str, ok, allowed: str) -> float:
    """A finite real option that passes ``ok``, else an error saying what is ``allowed``."""
    number = _as_float(value, name, unit)
    if not (np.isfinite(number) and ok(number)):
        raise ValueError(f"{name} must be {allowed}, got {number!r}")
    return number


def find_reflections(
    image,
    *,
    pixel_size: float,
    window: int = 128,
    center=None,
    max_count: int = 4,
    min_spacing: float | None = None,
    exclude_radius: float = 2,
    threshold: float | None = None,
    independent: bool = True,
    min_strength: float = 0.01,
) -> np.ndarray:
    """Suggest the strongest low-order lattice reflections of an image region.

    This is the one detector behind the picker's *Suggest*, the CLI's ``--auto`` and the
    API; its defaults give the reflections a microscopist would pick.

    1. The power spectra of up to 3×3 half-overlapping, plane-detrended, Hann-apodised
       windows around ``center`` are averaged (fewer, down to one, on small images).
       Non-finite pixels are replaced by the mean of the finite pixels of their window.
    2. Candidates are the bins that are the maximum within ±3 bins, lie between
       ``exclude_radius`` bins and the shortest allowed spacing (``min_spacing``, never
       below 3 pixels), and hold at least 10⁻⁴ of the strongest peak's power (below lie
       the Hann side lobes).
    3. Each candidate's background is measured locally: a low quantile (0.25) of the
       power on a ring 3–6 bins around it, which lies outside the peak's main lobe and
       ignores the other reflections and the zero-frequency tail it crosses.  Near the
       ``kx = 0`` and ``ky = 0`` axes the median power along that axis (3–8 bins on
       either side) is used when larger, so that the lines of raised power that scan
       noise draws through the origin are never suggested, while a real reflection
       standing out of such a line still is.
    4. A candidate is significant when its power over that background exceeds
       ``threshold``; significant candidates are ranked by their power *above* the
       background (peak strength), so that strong low-order reflections come first and
       faint peaks in the low background of high frequencies come last.  Peaks weaker
       than ``min_strength`` times the strongest are dropped.
    5. With ``independent`` (default), a candidate is skipped when it is ``n·g``
       (``n = ±1, ±2, …``, within half a bin per order) of a reflection already taken,
       and a candidate that is a higher order of a weaker significant one is replaced by
       that lowest order: the result holds one member of each set of parallel planes.
    6. Each reflection taken is refined below the bin size by maximising the summed
       windowed DTFT power (Newton iterations on the DTFT itself).

    Parameters
    ----------
    image : array_like
        2-D image ``(y, x)``.
    pixel_size : float
        Image pixel size in nm.
    window : int
        Window size in pixels.
    center : tuple of float, optional
        Centre ``(y, x)`` of the analysed region in pixels (default: image centre).
    max_count : int
        Maximum number of reflections returned.
    min_spacing : float, optional
        Smallest lattice spacing ``d`` (nm) to report.  Spacings below 3 pixels are
        never reported (they are too coarsely sampled to map).  Default: 3 pixels.
    exclude_radius : float
        Bins within this radius of the zero frequency are ignored.
    threshold : float, optional
        Minimum peak power over the local background.  Default: the level that
        Gaussian noise exceeds anywhere in the spectrum with probability 10⁻³, counting
        half of the averaged windows as independent.
    independent : bool
        Return only independent reflections (no two parallel, see step 5).  False
        returns every significant peak, higher orders included, by strength.
    min_strength : float
        Weakest peak strength (power above the local background) returned, as a
        fraction of the strongest peak's: the default 0.01 (a tenth in amplitude) keeps
        the lattice's reflections and drops faint interference peaks of the scan.  0
        returns every significant peak.

    Returns
    -------
    numpy.ndarray
        ``(k, 2)`` reflections ``(gy, gx)`` in nm⁻¹, ``k ≤ max_count`` (possibly 0),
        strongest first.  Of each Friedel pair ±g only the one with angle in
        (-90°, 90°] is returned (``gx > 0``, or ``gx = 0`` and ``gy < 0``).

    Raises
    ------
    TypeError, ValueError
        On invalid ``image``, ``window``, ``pixel_size``, ``center`` or options; the
        message names the parameter.
    """
    _check_image(image)
    shape = np.shape(image)
    window = _check_window(window, shape)
    pixel_size = _check_pixel_size(pixel_size)
    if isinstance(max_count, bool) or not isinstance(max_count, int | np.integer):
        raise TypeError(f"max_count must be an integer, got {max_count!r}")
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1, got {max_count}")
    if min_spacing is not None:
        positive = "a positive number of nm"
        min_spacing = _in_range(min_spacing, "min_spacing", "nm", lambda v: v > 0, positive)
    exclude_radius = _in_range(
        exclude_radius, "exclude_radius", "bins", lambda v: v >= 0, ">= 0 bins"
    )
    if threshold is not None:
        threshold = _in_range(
            threshold, "threshold", "power ratio", lambda v: v > 0, "a positive ratio"
        )
    min_strength = _in_range(
        min_strength, "min_strength", "fraction", lambda v: 0 <= v <= 1, "a fraction in [0, 1]"
    )
    if not isinstance(independent, bool | np.bool_):
        raise TypeError(f"independent must be True or False, got {independent!r}")
    if center is not None:
        _window_origin(shape, center, window)  # validates center

    # Small windows put the low-order reflections of typical lattices (d = 15-30 px)
    # within a few bins of the zero frequency, where main lobes merge: the window is
    # doubled (at most twice, within the image) while no peak is found or the strongest
    # lies closer to the origin than the outer radius of its background ring.
    sizes = [window]
    while len(sizes) < 3 and 2 * sizes[-1] <= min(shape):
        sizes.append(2 * sizes[-1])
    found = None
    for size in sizes:
        patches, bins = _significant_peaks(
            image,
            center,
            size,
            pixel_size=pixel_size,
            min_spacing=min_spacing,
            exclude_radius=exclude_radius * size / window,
            threshold=threshold,
            false_alarm=_FALSE_ALARM / len(sizes),
            min_strength=min_strength,
        )
        if len(bins) or found is None:
            found = size, patches, bins
        if len(bins) and np.hypot(*bins[0]) >= _RING_OUTER:
            break
    window, patches, bins = found

    refined: dict[int, np.ndarray] = {}

    def refine(i: int) -> np.ndarray:
        if i not in refined:
            refined[i] = _refine_bins(patches, bins[i], 1.0)
        return refined[i]

    taken: list[int] = []
    for i in range(len(bins)):
        if len(taken) == max_count:
            break
        if independent:
            # Cheap test on the bin positions first, exact one on the refined positions.
            if any(_is_multiple(bins[i], bins[j], 1.5) for j in taken) and any(
                _is_multiple(refine(i), refine(j), _HARMONIC_TOLERANCE) for j in taken
            ):
                continue
            lower = [
                j
                for j in range(len(bins))
                if j != i
                and float(bins[j] @ bins[j]) < float(bins[i] @ bins[i])
                and _is_multiple(bins[i], bins[j], 1.5)
                and _is_multiple(refine(i), refine(j), _HARMONIC_TOLERANCE)
            ]
            if lower:
                # The lowest order of this set of planes stands for it.
                i = min(lower, key=lambda j: float(bins[j] @ bins[j]))
                if i in taken or any(
                    _is_multiple(refine(i), refine(j), _HARMONIC_TOLERANCE) for j in taken
                ):
                    continue
        taken.append(i)
    if not taken:
        return np.empty((0, 2))
    found = np.array([refine(i) for i in taken])
    return _canonical(_bins_to_g(found, window, pixel_size))
