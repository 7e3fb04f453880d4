"""Periodic Hann window kernels for the rolling-window Fourier coefficients (private).

A window of even size ``N`` centred on pixel ``c`` covers pixels ``c - N/2 … c + N/2 - 1``
with weights ``w(u) = 0.5 + 0.5 cos(2π u / N)``, ``u = -N/2 … N/2 - 1``.  This is the
periodic Hann window (``0.5 - 0.5 cos(2π n / N)``, ``n = u + N/2``) used everywhere in
the package; ``w(-N/2) = 0``, so the weights are exactly symmetric about ``c`` and the
window's DTFT is real and even.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "band_bins",
    "band_limited",
    "band_response",
    "band_taper",
    "hann_dtft",
    "hann_taps",
    "kernel_band",
    "lag_one_correlation",
]

#: The kernels' spectra are kept within ±``BAND_CUT`` window bins (1/N) of their
#: frequency, tapered by a raised cosine from ``BAND_CUT/2`` bins on.  The Hann spectrum
#: falls as 1/(πβ³) (6·10⁻⁴ of its peak at 8 bins, 8·10⁻⁵ at 16): the tapered window
#: differs from the Hann window by at most 4·10⁻⁴ of its peak, puts 7·10⁻⁵ of its weight
#: outside the N-pixel footprint, and its response is known exactly (``band_response``),
#: so that the estimator and the leakage corrections keep their exactness.
BAND_CUT = 16.0


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
    # Closed form: with ``w(-N/2) = 0`` the sum runs over ``|u| < N/2``, where
    # ``w(u) = ½ + ¼e^{2πiu/N} + ¼e^{-2πiu/N}``: three Dirichlet kernels
    # ``D(x) = sin(π(N-1)x)/sin(πx)`` (1-periodic for even N, ``N - 1`` at integers).
    # In double precision the side lobes lose at most 4 of 16 digits to cancellation.
    f = np.asarray(f, dtype=np.float64)
    n = int(window)
    # The three kernels in one pass (the small arrays of the leakage terms are many).
    x = np.stack([f, f - 1.0 / n, f + 1.0 / n])
    x -= np.round(x)
    s = np.sin(np.pi * x)
    tiny = np.abs(s) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.sin(np.pi * (n - 1) * x) / np.where(tiny, 1.0, s)
    d = np.where(tiny, float(n - 1), d)
    return 0.5 * d[0] + 0.25 * (d[1] + d[2])


def band_limited(window: int, cut: float = BAND_CUT) -> bool:
    """Whether the kernels of an ``N``-pixel window are band-limited (``N > 2·cut``).

    Smaller windows keep the whole Hann spectrum: their band would span the spectrum.
    """
    return window > 2 * cut


def band_taper(window: int, f, cut: float = BAND_CUT) -> np.ndarray:
    """The taper of the kernel spectra at frequency offsets ``f`` (cycles/pixel, any shape).

    1 within ``cut/2`` window bins, a raised cosine down to 0 at ``cut`` (offsets
    wrapped into [-½, ½): the spectrum is periodic); 1 everywhere for windows that are
    not band-limited.
    """
    f = np.asarray(f, dtype=np.float64)
    if not band_limited(window, cut):
        return np.ones_like(f)
    beta = np.abs(f - np.round(f)) * window
    x = np.clip(2.0 * beta / cut - 1.0, 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * x)


def band_response(window: int, f, cut: float = BAND_CUT) -> np.ndarray:
    """The response ``R(f) = Ŵ(f)·T(f)`` of the band-limited kernel at offsets ``f``.

    The coefficient of a component ``exp(2πi f·r)`` demodulated at ``f0`` is
    ``R(f0 − f)`` per axis (``Ŵ(f)`` for windows that are not band-limited).
    """
    return hann_dtft(window, f) * band_taper(window, f, cut)


def band_bins(window: int, length: int, freq: float, cut: float = BAND_CUT) -> np.ndarray:
    """DFT bins ``ν`` (any integers; ``ν mod L`` in the spectrum) of a kernel at ``freq``.

    Those within ``cut`` window bins of ``freq·L`` (the taper's support), or one whole
    period centred on it when the window is not band-limited.
    """
    centre = freq * length
    if band_limited(window, cut):
        half = cut * length / window
        return np.arange(int(np.ceil(centre - half)), int(np.floor(centre + half)) + 1)
    first = int(np.ceil(centre - length / 2))
    return np.arange(first, first + length)


def kernel_band(window: int, length: int, freq, shifts, bins, cut: float = BAND_CUT) -> np.ndarray:
    """The band-limited kernel spectra at DFT ``bins``: ``R(ν/L − f)·exp(2πiνp/L)``.

    Multiplying a signal's DFT by one and inverse transforming gives the windowed
    Fourier coefficient at ``f`` of the window centred on ``q + p`` (circularly), for the
    tapered window of :func:`band_response`, on the bins of :func:`band_bins`; one row
    per shift ``p``.  ``freq`` (cycles/pixel) is one frequency, or one per bin (the
    kernels of several frequencies side by side).  Returns ``(len(shifts), len(bins))``
    complex128.
    """
    bins = np.asarray(bins, dtype=np.int64)
    response = band_response(window, bins / length - freq, cut)
    # The ramp's phase is reduced modulo the length in integers (full precision).
    phase = ((np.outer(shifts, bins).astype(np.int64)) % length) / length
    return response * np.exp(2j * np.pi * phase)


def lag_one_correlation(window: int) -> float:
    """``Σ_u w(u) w(u+1) / Σ_u w(u)²`` of the periodic Hann window (close to 1)."""
    _, w = hann_taps(window)
    return float(np.sum(w[:-1] * w[1:]) / np.sum(w * w))
