"""Slow, obviously-correct reference estimator of the local reciprocal vector.

Per window: subtract the Hann-weighted mean, then maximise the periodogram
``P(f) = |Σ_r w(r) (I(r) - m) exp(-2πi f·r)|²`` of the Hann-windowed window over the
continuous frequency ``f`` (cycles/pixel) with scipy's trust-region Newton method
(analytic gradient and Hessian), started at the given reflection.  This is the
classical "periodogram peak" estimator; it has no interpolation bias but costs
milliseconds per window, so the tests run it on a subsample of windows only.

The window has the same geometry as :func:`napari_hrtem_fft.analyze`: for a window
``N`` centred on pixel ``c`` it covers pixels ``c - N/2 … c + N/2 - 1`` with the
periodic Hann weights ``0.5 + 0.5 cos(2π u / N)``, ``u = -N/2 … N/2 - 1``.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize


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
    half = window // 2
    u = np.arange(-half, half, dtype=np.float64)
    w = 0.5 + 0.5 * np.cos(2.0 * np.pi * u / window)
    cy, cx = int(center[0]), int(center[1])
    patch = np.asarray(image[cy - half : cy + half, cx - half : cx + half], dtype=np.float64)
    if patch.shape != (window, window):
        raise ValueError("the window must lie inside the image")
    ww = np.outer(w, w)
    patch = ww * (patch - np.sum(ww * patch) / np.sum(ww))
    # One unit of the search variable is one DFT bin (1/N cycles/pixel).
    f_start = np.asarray(g, dtype=np.float64) * pixel_size
    k = -2j * np.pi * u / window

    def parts(x):
        f = f_start + x / window
        ey = np.exp(-2j * np.pi * f[0] * u)
        ex = np.exp(-2j * np.pi * f[1] * u)
        # einsum rather than BLAS products: multi-threaded BLAS on these small products
        # is slow on a busy machine.
        a0, a1, a2 = (np.einsum("yx,x->y", patch, v) for v in (ex, k * ex, k * k * ex))

        def dot(a, b):
            return np.einsum("y,y->", a, b)

        value = dot(ey, a0)
        first = np.array([dot(ey, k * a0), dot(ey, a1)])
        second = np.array([[dot(ey, k * k * a0), dot(ey, k * a1)], [dot(ey, k * a1), dot(ey, a2)]])
        return value, first, second

    p0 = abs(parts(np.zeros(2))[0]) ** 2

    def fun(x):
        return -(abs(parts(x)[0]) ** 2) / p0

    def jac(x):
        v, d1, _ = parts(x)
        return -2.0 * np.real(np.conj(v) * d1) / p0

    def hess(x):
        v, d1, d2 = parts(x)
        return -2.0 * np.real(np.outer(np.conj(d1), d1) + np.conj(v) * d2) / p0

    result = optimize.minimize(
        fun, np.zeros(2), jac=jac, hess=hess, method="trust-exact", options={"gtol": 1e-10}
    )
    return (f_start + result.x / window) / pixel_size
