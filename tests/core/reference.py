"""Slow, obviously-correct reference estimator of the local reciprocal vector.

Per window: subtract the Hann-weighted mean, then maximise the periodogram
``P(f) = |Σ_r w(r) (I(r) - m) exp(-2πi f·r)|²`` of the Hann-windowed window over the
continuous frequency ``f`` (cycles/pixel) by a quasi-Newton search with the analytic
gradient, started at the given reflection.  This is the classical "periodogram
peak" estimator; it has no interpolation bias but costs milliseconds per window, so
the tests run it on a subsample of windows only.

The window has the same geometry as :func:`napari_hrtem_fft.analyze`: for a window
``N`` centred on pixel ``c`` it covers pixels ``c - N/2 … c + N/2 - 1`` with the
periodic Hann weights ``0.5 + 0.5 cos(2π u / N)``, ``u = -N/2 … N/2 - 1``.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize


def _hann(window: int) -> tuple[np.ndarray, np.ndarray]:
    u = np.arange(-(window // 2), window // 2, dtype=np.float64)
    return u, 0.5 + 0.5 * np.cos(2.0 * np.pi * u / window)


def periodogram_peak(image, center, g, *, pixel_size: float, window: int) -> np.ndarray:
    """Reciprocal vector ``(gy, gx)`` (nm⁻¹) maximising the Hann periodogram of one window.

    Parameters
    ----------
    image : numpy.ndarray
        2D image.
    center : tuple of int
        Window centre ``(y, x)`` in pixels; the window must lie inside the image.
    g : array_like
        Starting reciprocal vector ``(gy, gx)`` in nm⁻¹.
    pixel_size : float
        nm per pixel.
    window : int
        Window size ``N`` (even).

    Returns
    -------
    numpy.ndarray
        ``(2,)`` reciprocal vector of the periodogram maximum, nm⁻¹.
    """
    u, w = _hann(window)
    cy, cx = int(center[0]), int(center[1])
    half = window // 2
    patch = np.asarray(image[cy - half : cy + half, cx - half : cx + half], dtype=np.float64)
    if patch.shape != (window, window):
        raise ValueError("the window must lie inside the image")
    ww = np.outer(w, w)
    patch = ww * (patch - np.sum(ww * patch) / np.sum(ww))
    f_start = np.asarray(g, dtype=np.float64) * pixel_size

    def negative_power(f):
        ey = np.exp(-2j * np.pi * f[0] * u)
        ex = np.exp(-2j * np.pi * f[1] * u)
        py = patch @ ex  # sum over x, a function of y
        value = ey @ py
        d_fy = ey @ (-2j * np.pi * u * py)
        d_fx = ey @ (patch @ (-2j * np.pi * u * ex))
        power = abs(value) ** 2
        grad = 2.0 * np.real(np.conj(value) * np.array([d_fy, d_fx]))
        return -power, -grad

    # Scale so that one unit is one DFT bin: the optimiser's tolerances then mean bins.
    scale = 1.0 / window

    def objective(x):
        p, gr = negative_power(f_start + x * scale)
        return p, gr * scale

    p0 = -objective(np.zeros(2))[0]
    result = optimize.minimize(
        lambda x: tuple(v / p0 for v in objective(x)),
        np.zeros(2),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-12, "xrtol": 1e-12},
    )
    return (f_start + result.x * scale) / pixel_size
