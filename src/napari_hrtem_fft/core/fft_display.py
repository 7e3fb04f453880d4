"""A region's spectrum made to be looked at: fine-grained, log-scaled, contrasted, framed.

:func:`~napari_hrtem_fft.core.fft.region_fft` gives one value per FFT bin: a 128-px
window is a 128×128 spectrum whose reflections are 4-bin blocks, blocky at any useful
zoom.  :func:`display_spectrum` zero-pads the apodised window before the transform,
which samples the same spectrum (the window's discrete-time Fourier transform) on a
finer grid: no interpolation artefact, and the peaks look like the smooth Hann lobes
they are.  Display pixel ``i`` is the frequency ``(i - size//2) / (size·pixel_size)``
nm⁻¹, so a world position on the layer is still exactly ``(gy, gx)`` in nm⁻¹.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as scipy_fft

from .fft import (
    _check_image,
    _check_pixel_size,
    _check_window,
    _detrend_plane,
    _patch,
    _window_origin,
    hann_window,
)

__all__ = ["SpectrumImage", "blank_spectrum", "display_size", "display_spectrum"]

# Smallest side of the displayed spectrum (pixels): a 64- or 128-px window is padded
# to it (8× or 4× finer than the FFT bins), which is fine enough for a dock-sized
# canvas and costs a few milliseconds.
_MIN_DISPLAY = 512
# The zero-frequency tail (the window's own envelope, particle edges, the detrended
# ramp's residue) lies within this many FFT bins of g = 0; it is left out of the
# contrast and of the search for the strongest reflection.
_DC_BINS = 4.0
# Framing: the view shows out to this multiple of the strongest reflection's |g|, so
# that the next orders and the other low-order planes are in view with it ...
_FRAME_FACTOR = 2.2
# ... but never fewer than this many FFT bins (a lattice near the zero frequency).
_FRAME_MIN_BINS = 12.0
# Contrast: black at the median of the framed spectrum (its background), white at its
# strongest reflection (log power: the weak ones stay visible).
_CONTRAST_PERCENTILES = (50.0, 100.0)


@dataclass(frozen=True)
class SpectrumImage:
    """Log power spectrum of one image window, for display as a napari image layer.

    Attributes
    ----------
    data : numpy.ndarray
        ``(size, size)`` float32 ``log10`` of the power of the zero-padded, detrended,
        Hann-apodised window, fft-shifted: the zero frequency is at ``(size//2,
        size//2)``.
    scale : tuple of float
        Display pixel size ``1/(size·pixel_size)`` in nm⁻¹, both axes.
    contrast_limits : tuple of float
        Robust display range of ``data``: its background level and the level of the
        strong reflections inside :attr:`radius`.
    radius : float
        Radius (nm⁻¹) of the low-order region worth framing: a few times the strongest
        reflection's ``|g|``, at most the Nyquist frequency.
    bin : float
        FFT bin of the window, ``1/(window·pixel_size)`` nm⁻¹ (what a reflection's
        precision is measured in).
    center : tuple of int
        Centre ``(y, x)`` in pixels of the window used, after clamping it inside the
        image.
    """

    data: np.ndarray
    scale: tuple[float, float]
    contrast_limits: tuple[float, float]
    radius: float
    bin: float
    center: tuple[int, int]

    @property
    def translate(self) -> tuple[float, float]:
        """``-(size//2)·scale`` in nm⁻¹, per axis.

        The zero frequency is then at the world origin: a world position is
        ``(gy, gx)`` in nm⁻¹.
        """
        zero = self.data.shape[-1] // 2
        return (-zero * self.scale[0], -zero * self.scale[1])


def display_size(window: int) -> int:
    """Side (pixels) of the displayed spectrum of a ``window``-pixel window.

    A whole multiple of the window (each FFT bin is then a display pixel), at least
    512 pixels; never smaller than the window.
    """
    window = int(window)
    return window * max(1, -(-_MIN_DISPLAY // window))


def blank_spectrum(window: int, pixel_size: float) -> SpectrumImage:
    """A flat spectrum with the shape and calibration of a ``window``-pixel one.

    What the FFT canvas is laid out with before the first spectrum: the spectrum of
    that window then replaces its data only, and napari does not recompute the canvas's
    extent and sliders on the user's click.

    Parameters
    ----------
    window : int
        Side (pixels) of the windows whose spectra will be shown.
    pixel_size : float
        Their image's pixel size (nm).

    Returns
    -------
    SpectrumImage
        Zeros of :func:`display_size`, the calibration :func:`display_spectrum` gives
        that window, contrast limits (0, 1), the Nyquist radius, and the centre of a
        window at the image's corner (no image is read).
    """
    window = int(window)
    pixel_size = _check_pixel_size(pixel_size)
    size = display_size(window)
    scale = 1.0 / (size * pixel_size)
    return SpectrumImage(
        data=np.zeros((size, size), np.float32),
        scale=(scale, scale),
        contrast_limits=(0.0, 1.0),
        radius=0.5 / pixel_size,
        bin=1.0 / (window * pixel_size),
        center=(window // 2, window // 2),
    )


def _radial_bins(window: int) -> np.ndarray:
    """``|u|`` (FFT bins) of every bin of a fft-shifted ``window``-pixel spectrum."""
    u = np.arange(window) - window // 2
    return np.hypot(u[:, None], u[None, :])


def display_spectrum(image, center=None, *, window: int, pixel_size: float) -> SpectrumImage:
    """The spectrum of a square image window, ready to show: fine, log-scaled, framed.

    The window is detrended (mean and intensity ramp removed, so that they do not
    streak the axes), apodised with the periodic Hann window, zero-padded to
    :func:`display_size` and transformed.  Zero padding samples the window's spectrum
    more finely without changing it: a reflection's peak stays at its ``g``.

    Parameters
    ----------
    image : array_like
        2-D image ``(y, x)`` (numpy, dask or memory-mapped); only the window is read.
    center : tuple of float, optional
        Window centre ``(y, x)`` in pixels (default: the image centre), moved inside
        the image if the window would leave it (as in :func:`region_fft`).
    window : int
        Window side in pixels.
    pixel_size : float
        Image pixel size in nm.

    Returns
    -------
    SpectrumImage
        The log power, its calibration (nm⁻¹), contrast limits and framing radius.

    Raises
    ------
    TypeError, ValueError
        For a non-numeric or non-2-D image, a window that is not an integer or larger
        than the image, or a pixel size that is not a positive number.
    """
    _check_image(image)
    shape = np.shape(image)
    window = _check_window(window, shape)
    pixel_size = _check_pixel_size(pixel_size)
    origin = _window_origin(shape, center, window)
    patch = _detrend_plane(_patch(image, origin, window)) * hann_window(window)
    size = display_size(window)
    pad = size // window
    # Zero padding at the end (not centred) only adds a linear phase: same power.
    spectrum = scipy_fft.fft2(patch, s=(size, size), workers=-1)
    power = np.abs(scipy_fft.fftshift(spectrum)) ** 2
    # A floor far below any real signal keeps log10 finite on an all-flat window.
    floor = max(float(power.max()), 1e-300) * 1e-12
    data = np.log10(power + floor).astype(np.float32)

    nyquist_bins = window / 2.0
    # Every pad-th display pixel, counted from the zero frequency, is an FFT bin: the
    # statistics are taken on those only, window² values instead of size².
    sub = data[::pad, ::pad]
    r = _radial_bins(window)
    outside_dc = (r > _DC_BINS) & (r <= nyquist_bins)
    if outside_dc.any():
        strongest = float(r[outside_dc][np.argmax(sub[outside_dc])])
    else:
        strongest = nyquist_bins
    radius_bins = min(nyquist_bins, max(_FRAME_FACTOR * strongest, _FRAME_MIN_BINS))
    framed = sub[(r > _DC_BINS) & (r <= radius_bins)]
    if framed.size < 16:
        framed = sub.ravel()
    low, high = (float(v) for v in np.percentile(framed, _CONTRAST_PERCENTILES))
    if not high > low:
        high = low + 1.0
    bin_size = 1.0 / (window * pixel_size)
    scale = 1.0 / (size * pixel_size)
    return SpectrumImage(
        data=data,
        scale=(scale, scale),
        contrast_limits=(low, high),
        radius=radius_bins * bin_size,
        bin=bin_size,
        center=(origin[0] + window // 2, origin[1] + window // 2),
    )
