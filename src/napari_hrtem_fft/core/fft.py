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
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (2,) or not np.all(np.isfinite(c)):
        raise ValueError(f"center must be a finite (y, x) pixel position, got {center!r}")
    origin = []
    for ax in range(2):
        start = int(np.round(c[ax])) - window // 2
        origin.append(min(max(start, 0), shape[ax] - window))
    return origin[0], origin[1]


def _patch(image, origin, window: int) -> np.ndarray:
    y0, x0 = origin
    # Slice before converting, so that a dask array or memory map reads only the window.
    return np.asarray(image[y0 : y0 + window, x0 : x0 + window], dtype=np.float64)


def _detrend_plane(patch: np.ndarray) -> np.ndarray:
    """Subtract the least-squares plane, so that an intensity ramp does not leak into
    the low-frequency bins as spurious peaks."""
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
        # Row sums against ex and its first two derivatives: (m, N, 3).
        px = patches @ np.stack([ex, dphase * ex, dphase**2 * ex], axis=-1)
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
    """Plane-detrended, Hann-apodised windows ``(m, N, N)`` at distinct clamped centres."""
    shape = np.shape(image)
    origins = sorted({_window_origin(shape, c, window) for c in centers})
    hann = hann_window(window)
    return np.stack([_detrend_plane(_patch(image, o, window)) * hann for o in origins])


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


def _radial_background(power: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Median power of each one-bin-wide annulus, smoothed over three annuli in log scale.

    The median ignores the few peak bins of an annulus; the smoothing tames the
    sampling noise of the small inner annuli (a 3-point mean follows linear trends of
    the log background, such as a power law, without bias).
    """
    rings = np.rint(radius).astype(int)
    med = np.asarray(ndimage.median(power, labels=rings, index=np.arange(rings.max() + 1)))
    log_med = np.log(np.maximum(med, np.finfo(np.float64).tiny))
    smoothed = log_med.copy()
    smoothed[1:-1] = (log_med[:-2] + log_med[1:-1] + log_med[2:]) / 3.0
    return np.exp(smoothed)[rings]


def _noise_threshold(n_windows: int, n_bins: int) -> float:
    """Peak-over-median ratio that noise alone exceeds with probability ``_FALSE_ALARM``.

    For Gaussian noise the power in a bin, averaged over ``m`` independent windows, is
    Gamma(m)-distributed (exponential for one window).  The windows overlap, so only
    half of them are counted as independent, which also absorbs the sampling error of
    the median background (checked on pure noise: no detections in 10³ images).
    """
    m = max(1.0, n_windows / 2.0)
    # Quantiles of Gamma(shape m, scale 1/m); the 1/m cancels in the ratio.
    upper = special.gammainccinv(m, _FALSE_ALARM / n_bins)
    return float(upper / special.gammaincinv(m, 0.5))


def find_reflections(
    image,
    *,
    pixel_size: float,
    window: int = 128,
    center=None,
    max_count: int = 8,
    min_spacing: float | None = None,
    exclude_radius: float = 2,
    threshold: float | None = None,
) -> np.ndarray:
    """Find the strongest lattice reflections in an image region.

    The power spectra of up to 3×3 half-overlapping, plane-detrended, Hann-apodised
    windows around ``center`` are averaged (fewer, down to one, when the image is
    small).  A bin is a candidate when it is the maximum within ±3 bins, its power
    over the median power of its annulus (the radially averaged background) exceeds
    ``threshold``, and it is at least 10⁻⁴ of the strongest peak's power (below
    that lie the Hann side lobes).  Candidates are refined below the bin size by
    maximising the summed windowed DTFT power (Newton iterations on the DTFT itself).

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
        Smallest lattice spacing ``d`` (nm) to report; reflections with
        ``|g| > 1/min_spacing`` are ignored.  Default: up to Nyquist.
    exclude_radius : float
        Bins within this radius of the zero frequency are ignored.
    threshold : float, optional
        Minimum peak power over the (smoothed) annulus median.  Default: the level that
        Gaussian noise exceeds anywhere in the spectrum with probability 10⁻³, counting
        half of the averaged windows as independent (about 23 for one window, 6 for
        nine).

    Returns
    -------
    numpy.ndarray
        ``(k, 2)`` reflections ``(gy, gx)`` in nm⁻¹, ``k ≤ max_count`` (possibly 0),
        strongest (highest power over background) first.  Of each Friedel pair ±g
        only the one with angle in (-90°, 90°] is returned (``gx > 0``, or ``gx = 0``
        and ``gy < 0``).  Bins beyond ``window//2 - 1`` from the centre (Nyquist) are
        never reported.

    Raises
    ------
    TypeError, ValueError
        On invalid ``image``, ``window``, ``pixel_size`` or options.
    """
    _check_image(image)
    shape = np.shape(image)
    window = _check_window(window, shape)
    pixel_size = _check_pixel_size(pixel_size)
    if isinstance(max_count, bool) or not isinstance(max_count, int | np.integer):
        raise TypeError(f"max_count must be an integer, got {max_count!r}")
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1, got {max_count}")
    if min_spacing is not None and not (np.isfinite(min_spacing) and min_spacing > 0):
        raise ValueError(f"min_spacing must be a positive number of nm, got {min_spacing!r}")
    if not (np.isfinite(exclude_radius) and exclude_radius >= 0):
        raise ValueError(f"exclude_radius must be >= 0 bins, got {exclude_radius!r}")
    if threshold is not None and not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive ratio, got {threshold!r}")

    tiles = 3 if min(shape) >= 2 * window else (2 if min(shape) >= 1.5 * window else 1)
    patches = _prepared_windows(image, _tiling_centers(shape, center, window, tiles), window)
    power = np.mean(np.abs(np.fft.fftshift(np.fft.fft2(patches), axes=(-2, -1))) ** 2, axis=0)

    half = window // 2
    k = np.arange(window) - half
    ky, kx = k[:, None], k[None, :]
    radius = np.hypot(ky, kx)
    max_radius = half - 1.0
    if min_spacing is not None:
        max_radius = min(max_radius, window * pixel_size / min_spacing)
    usable = (radius > exclude_radius) & (radius <= max_radius)
    half_plane = (kx > 0) | ((kx == 0) & (ky < 0))
    candidates = usable & half_plane
    n_bins = int(candidates.sum())
    if n_bins == 0:
        return np.empty((0, 2))

    background = _radial_background(power, radius)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = power / background
    if threshold is None:
        threshold = _noise_threshold(len(patches), n_bins)

    size = 2 * _PEAK_NEIGHBOURHOOD + 1
    is_max = power == ndimage.maximum_filter(power, size=size, mode="wrap")
    peaks = candidates & is_max & (snr > threshold)
    if not np.any(peaks):
        return np.empty((0, 2))
    # Relative to the strongest peak anywhere (also beyond Nyquist), whose side lobes
    # may reach into the usable range.
    peaks &= power >= _DYNAMIC_RANGE * power[radius > exclude_radius].max()
    iy, ix = np.nonzero(peaks)
    order = np.argsort(-snr[iy, ix], kind="stable")[:max_count]
    found = []
    for i in order:
        start = np.array([ky[iy[i], 0], kx[0, ix[i]]], dtype=np.float64)
        found.append(_bins_to_g(_refine_bins(patches, start, 1.0), window, pixel_size))
    return _canonical(np.array(found).reshape(-1, 2))
