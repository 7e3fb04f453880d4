"""Periodic Hann window kernels for the rolling-window Fourier coefficients (private).

A window of even size ``N`` centred on pixel ``c`` covers pixels ``c - N/2 … c + N/2 - 1``
with weights ``w(u) = 0.5 + 0.5 cos(2π u / N)``, ``u = -N/2 … N/2 - 1``.  This is the
periodic Hann window (``0.5 - 0.5 cos(2π n / N)``, ``n = u + N/2``) used everywhere in
the package; ``w(-N/2) = 0``, so the weights are exactly symmetric about ``c`` and the
window's DTFT is real and even.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hann_dtft", "hann_taps", "kernel_spectra", "lag_one_correlation"]


def hann_taps(window: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``u`` from the window centre and the periodic Hann weights ``w(u)``.

    Parameters
    ----------
    window : int
        Even window size ``N`` in pixels.

    Returns
    -------
    u : numpy.ndarray
        ``-N/2 … N/2 - 1`` (pixels), int64.
    w : numpy.ndarray
        Weights in [0, 1], float64, ``w(0) = 1``.
    """
    u = np.arange(-(window // 2), window // 2)
    return u, 0.5 + 0.5 * np.cos(2.0 * np.pi * u / window)


def hann_dtft(window: int, f) -> np.ndarray:
    """``Ŵ(f) = Σ_u w(u) exp(-2πi f u)`` at frequencies ``f`` (cycles/pixel); real, even.

    Parameters
    ----------
    window : int
        Even window size ``N``.
    f : array_like
        Frequencies in cycles per pixel, any shape.

    Returns
    -------
    numpy.ndarray
        Float64 array of the shape of ``f``; ``Ŵ(0) = N/2``.
    """
    u, w = hann_taps(window)
    f = np.asarray(f, dtype=np.float64)
    # einsum, not a BLAS product: these are tiny and BLAS threads only add overhead.
    return np.einsum("...u,u->...", np.cos(2.0 * np.pi * f[..., None] * u), w)


def kernel_spectra(window: int, length: int, freqs, shifts) -> np.ndarray:
    """DFTs that turn an FFT along one axis into sampled windowed Fourier coefficients.

    For kernel ``k`` with frequency ``f_k`` and shift ``p_k``, row ``k`` holds
    ``Ŵ(ν/L - f_k) · exp(2πi ν p_k / L)``, ``ν = 0 … L-1``.  Multiplying the DFT of a
    signal ``B`` (length ``L``) by it and inverse transforming gives
    ``Z(q) = Σ_u w(u) exp(-2πi f_k u) B(q + p_k + u)`` (circularly), i.e. the windowed
    Fourier coefficient at ``f_k`` of the window centred on ``q + p_k``, with the phase
    referred to that centre.

    Parameters
    ----------
    window : int
        Even window size ``N``.
    length : int
        DFT length ``L`` (>= window).
    freqs, shifts : array_like
        Frequencies ``f_k`` (cycles/pixel) and shifts ``p_k`` (pixels), 1D, same length.

    Returns
    -------
    numpy.ndarray
        ``(k, L)`` complex128.
    """
    u, w = hann_taps(window)
    freqs = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    shifts = np.atleast_1d(np.asarray(shifts, dtype=np.float64))
    seq = np.zeros((freqs.size, length), dtype=np.complex128)
    seq[:, u % length] = w * np.exp(2j * np.pi * freqs[:, None] * u)
    spec = np.fft.fft(seq, axis=1)
    nu = np.arange(length)
    # The ramp's phase is reduced modulo the length in integers, so that large shifts
    # keep full precision.
    phase = (np.outer(shifts, nu) % length) / length
    return spec * np.exp(2j * np.pi * phase)


def lag_one_correlation(window: int) -> float:
    """``Σ_u w(u) w(u+1) / Σ_u w(u)²`` of the periodic Hann window (close to 1)."""
    _, w = hann_taps(window)
    return float(np.sum(w[:-1] * w[1:]) / np.sum(w * w))
