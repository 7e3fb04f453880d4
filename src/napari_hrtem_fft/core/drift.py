"""Rigid drift of a movie: sub-pixel registration, correction, and regions that follow it.

Convention: the drift ``s = (dy, dx)`` of frame ``k`` (pixels) is the displacement of
the content relative to the reference, ``frame_k(r) = reference(r - s)``.  Correcting a
frame therefore moves it by ``-s``.  A map grid with step ``step`` (pixels of the image
per map pixel) moves by ``s / step``.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import ndimage

__all__ = [
    "PreviousFrameRegistration",
    "apply_drift",
    "register_frames",
    "shift_polygon",
    "shift_region",
]

logger = logging.getLogger(__name__)

_WINDOWS = ("hann", "tukey")
# Power above this multiple of its ring's mean marks a Bragg reflection.
_PEAK_FACTOR = 10.0
# Fraction of the lowest Bragg frequency kept for registration.
_PEAK_CUTOFF = 0.85
# Multiply-adds per matrix product up to which OpenBLAS keeps it on the calling thread.
# Beyond, it starts threads of its own, which spin: beside the engine's threads (a live
# run registers a frame while the engine analyses it) that made the registration's
# small DFT ten times slower in thread time and slowed the analysis down.
_BLAS_ONE_THREAD = 2**16


def _check_stack(stack, name: str = "stack") -> tuple[int, int, int]:
    shape = getattr(stack, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array (t, y, x), got {type(stack).__name__}")
    if len(shape) != 3:
        raise ValueError(f"{name} must have 3 dimensions (t, y, x), got shape {tuple(shape)}")
    if min(shape) < 1 or shape[1] < 2 or shape[2] < 2:
        raise ValueError(f"{name} must have >= 1 frame of >= 2×2 pixels, got {tuple(shape)}")
    dtype = getattr(stack, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _check_window(window, shape):
    if window is None or (isinstance(window, str) and window in _WINDOWS):
        return window
    if isinstance(window, str):
        raise ValueError(f"window must be one of {_WINDOWS}, an array or None, got {window!r}")
    arr = np.asarray(window, dtype=np.float64)
    if arr.shape != tuple(shape):
        raise ValueError(f"window array must have the frame shape {tuple(shape)}, got {arr.shape}")
    return arr


def _taper_1d(n: int, margin: int, offset: float, kind: str) -> np.ndarray:
    """A taper over ``[margin, n - 1 - margin]`` moved by ``offset`` pixels, zero outside."""
    length = n - 1 - 2 * margin
    u = (np.arange(n) - offset - margin) / max(length, 1)
    inside = (u >= 0) & (u <= 1)
    if kind == "hann":
        w = np.sin(np.pi * u) ** 2
    else:
        # Tukey, flat over the central 3/4: most pixels keep their full weight.
        alpha = 0.25
        w = np.ones_like(u)
        rise = u < alpha / 2
        w[rise] = np.sin(np.pi * u[rise] / alpha) ** 2
        fall = u > 1 - alpha / 2
        w[fall] = np.sin(np.pi * (1 - u[fall]) / alpha) ** 2
    return np.where(inside, w, 0.0)


def _taper(shape, kind, margin=(0, 0), offset=(0.0, 0.0)):
    """2-D apodisation: a named taper (optionally inset and moved) or a given array."""
    if kind is None:
        return None
    if not isinstance(kind, str):
        return kind
    wy = _taper_1d(shape[0], margin[0], offset[0], kind)
    wx = _taper_1d(shape[1], margin[1], offset[1], kind)
    return wy[:, None] * wx[None, :]


def _frame(stack, k: int) -> np.ndarray:
    """One frame as float64, computing only that frame of a lazy stack."""
    frame = stack[k]
    if hasattr(frame, "compute"):
        frame = frame.compute()
    return np.asarray(frame, dtype=np.float64)


def _filled(frame: np.ndarray) -> np.ndarray | None:
    """Frame minus its mean with NaN/inf set to the mean (0); None if nothing is finite."""
    finite = np.isfinite(frame)
    if not finite.any():
        return None
    mean = frame[finite].mean()
    return np.where(finite, frame - mean, 0.0)


def _snr(spec: np.ndarray, width: int | None = None) -> np.ndarray:
    """Signal-to-noise ratio of the power per Fourier bin, zero on Bragg reflections.

    ``spec`` is a frame's full spectrum (``fft2``), or its half spectrum (``rfft2``)
    when ``width``, the frame's width, is given.

    The noise floor is the median power beyond 0.4 cycles/pixel (divided by ln 2, the
    median of an exponential variable), where HRTEM frames hold mostly shot noise; the
    signal power is the locally averaged power above that floor.  Lattice fringes move
    with strain and rotation as well as with drift (an expanding particle would drag the
    estimate towards the centre of the window), so bins far above the azimuthal
    (geometric) mean of their ring, i.e. Bragg peaks and their tails, get no weight:
    the drift is measured on the particle outline and the support film.
    """
    power = (np.abs(spec) ** 2).astype(np.float64, copy=False)
    h, w = spec.shape
    fy = np.fft.fftfreq(h)[:, None]
    if width is None:
        fx, mode = np.fft.fftfreq(w)[None, :], "wrap"
    else:
        # The half plane ends at kx = 0 and at Nyquist: mirror there, wrap along ky.
        fx, mode, w = np.fft.rfftfreq(width)[None, :], ("wrap", "mirror"), width
    k = np.hypot(fy, fx)
    floor = max(float(np.median(power[k > 0.4])) / np.log(2), 1e-12 * float(power.max()), 1e-300)
    smooth = ndimage.gaussian_filter(power, 2.0, mode=mode)
    ring = np.rint(np.hypot(fy * h, fx * w)).astype(np.intp)
    log_p = np.log(np.maximum(smooth, 1e-300))
    counts = np.bincount(ring.ravel())
    ring_mean = np.exp(np.bincount(ring.ravel(), log_p.ravel()) / np.maximum(counts, 1))
    peaks = smooth > _PEAK_FACTOR * ring_mean[ring]
    peaks[ring <= 2] = False
    snr = np.maximum(smooth - floor, 0.0) / floor
    if peaks.any():
        # Peak tails (the particle's shape transform around each reflection) reach far,
        # so keep only frequencies well below the lowest reflection.
        snr[k > _PEAK_CUTOFF * float(k[peaks].min())] = 0.0
    return snr


def _correlate(moving: np.ndarray, ref: np.ndarray, upsample: int, max_shift) -> np.ndarray:
    """Shift ``s`` with ``moving(r) ≈ ref(r - s)`` from two spectra, in pixels.

    Phase correlation: the normalised cross-power spectrum ``M·conj(R)/|M·R|`` of a
    shifted pair is ``exp(-2πi k·s)``, whose inverse FFT peaks at ``s``.  Each bin is
    weighted by the information its phase difference carries,
    ``SNR_M·SNR_R/(SNR_M + SNR_R)``: plain whitening gives noise-only bins the same
    weight as the signal and costs a factor of ten in precision on noisy frames.  The
    integer peak is refined by evaluating the inverse DFT on a grid ``1/upsample`` pixel
    fine around it (Guizar-Sicairos et al., Opt. Lett. 33, 156 (2008)).
    """
    h, w = moving.shape
    cross = _weighted_cross(moving, ref, _snr(moving), _snr(ref))
    corr = np.abs(np.fft.ifft2(cross))
    sy = np.fft.fftfreq(h, d=1.0 / h)
    sx = np.fft.fftfreq(w, d=1.0 / w)
    if max_shift is not None:
        allowed = (np.abs(sy)[:, None] <= max_shift) & (np.abs(sx)[None, :] <= max_shift)
        corr = np.where(allowed, corr, -1.0)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    shift = np.array([sy[iy], sx[ix]], dtype=np.float64)
    if upsample > 1:
        size = int(np.ceil(1.5 * upsample))
        offsets = (np.arange(size) - size // 2) / upsample
        ky = np.fft.fftfreq(h)
        kx = np.fft.fftfreq(w)
        ey = np.exp(2j * np.pi * (shift[0] + offsets)[:, None] * ky[None, :])
        ex = np.exp(2j * np.pi * (shift[1] + offsets)[:, None] * kx[None, :])
        fine = np.abs(_dft_near_peak(ey, cross, ex))
        jy, jx = np.unravel_index(int(np.argmax(fine)), fine.shape)
        # A parabola through the peak and its neighbours places it between grid points.
        shift += (
            (jy - size // 2 + _vertex(fine[jy - 1 : jy + 2, jx])) / upsample,
            (jx - size // 2 + _vertex(fine[jy, jx - 1 : jx + 2])) / upsample,
        )
    return shift


def _dft_near_peak(ey: np.ndarray, cross: np.ndarray, ex: np.ndarray) -> np.ndarray:
    """``ey @ cross @ ex.T`` in products small enough to stay on the calling thread."""
    r, c = cross.shape
    m, n = ex.shape[0], ey.shape[0]
    dtype = np.result_type(ey, cross, ex)
    right = np.empty((r, m), dtype=dtype)
    rows = max(1, _BLAS_ONE_THREAD // max(c * m, 1))
    for r0 in range(0, r, rows):
        np.matmul(cross[r0 : r0 + rows], ex.T, out=right[r0 : r0 + rows])
    out = np.zeros((n, m), dtype=dtype)
    inner = max(1, _BLAS_ONE_THREAD // max(n * m, 1))
    for r0 in range(0, r, inner):
        out += ey[:, r0 : r0 + inner] @ right[r0 : r0 + inner]
    return out


def _weighted_cross(moving, ref, snr_m, snr_r) -> np.ndarray:
    """Normalised cross-power spectrum of two spectra, weighted by the SNR of each bin."""
    weight = snr_m * snr_r / np.maximum(snr_m + snr_r, 1e-300)
    if not np.any(weight > 0):
        weight = np.ones_like(weight)
    cross = moving * np.conj(ref)
    mag = np.abs(cross)
    # Bins where either spectrum vanishes carry no phase information.
    tiny = np.finfo(mag.dtype).tiny
    return np.where(mag > 1e-12 * mag.max(), cross / np.maximum(mag, tiny), 0.0) * weight


def _vertex(values: np.ndarray) -> float:
    """Offset (in samples, within ±0.5) of the vertex of a parabola through 3 samples."""
    if values.shape[0] != 3:
        return 0.0
    left, mid, right = values
    curvature = left - 2 * mid + right
    if curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def register_frames(
    stack,
    *,
    reference: int | str = 0,
    upsample: int = 20,
    max_shift: float | None = None,
    window="tukey",
) -> np.ndarray:
    """Rigid drift of every frame by sub-pixel phase correlation.

    Phase correlation weighted by the signal-to-noise ratio of each Fourier bin, with
    tapers that move with the content and without the Bragg reflections (lattice
    fringes move with strain, not only with drift): see ``docs/movies.md``.  Frames of a
    dask (or other lazy) stack are computed one at a time, so memory stays at a few
    frames whatever the length of the movie.

    Parameters
    ----------
    stack : array_like
        Movie ``(t, y, x)``; numpy, dask or any array whose ``stack[k]`` is a frame.
        NaN or infinite pixels are replaced by the frame mean.
    reference : int or {"previous", "mean"}
        ``int``: register every frame to that frame.  ``"previous"``: register each frame
        to the one before and accumulate (follows slow changes of the content; errors add
        up as a random walk).  ``"mean"``: register to the mean of the frames aligned by a
        first ``"previous"`` pass (less noise; reads the stack twice).
    upsample : int
        Sub-pixel refinement factor: the correlation peak is sampled every
        ``1/upsample`` pixel around the integer peak, then placed between samples by a
        parabola.
    max_shift : float, optional
        Largest shift (pixels, per axis) between a frame and its reference; guards against
        locking onto a lattice period on crystal-dominated frames.
    window : {"tukey", "hann"}, array or None
        Apodisation applied to each frame before its FFT, so that the frame edges (which
        do not move with the content) do not dominate the correlation.  A named taper is
        moved with the estimated shift (unbiased); a given ``(y, x)`` array is applied
        as is; ``None`` disables it.

    Returns
    -------
    numpy.ndarray
        Drift ``(t, 2)`` as ``(dy, dx)`` in pixels relative to the reference frame
        (``frame_k(r) ≈ reference(r - drift[k])``); NaN for frames without finite pixels.

    Raises
    ------
    ValueError
        If the stack is not ``(t, y, x)``, ``reference`` is out of range or unknown,
        ``upsample < 1`` or ``max_shift <= 0``.
    TypeError
        If ``reference`` or ``upsample`` has the wrong type.
    """
    t, h, w = _check_stack(stack)
    if isinstance(reference, str):
        if reference not in ("previous", "mean"):
            raise ValueError(
                f"reference must be a frame index, 'previous' or 'mean', got {reference!r}"
            )
    elif isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        if not -t <= reference < t:
            raise ValueError(f"reference frame {reference} is out of range for {t} frames")
        reference = int(reference) % t
    else:
        raise TypeError(f"reference must be an int or a string, got {type(reference).__name__}")
    if not isinstance(upsample, (int, np.integer)) or isinstance(upsample, bool):
        raise TypeError(f"upsample must be an integer, got {type(upsample).__name__}")
    if upsample < 1:
        raise ValueError(f"upsample must be >= 1, got {upsample}")
    if max_shift is not None and not (np.isfinite(max_shift) and max_shift > 0):
        raise ValueError(f"max_shift must be a positive number of pixels or None, got {max_shift}")
    kind = _check_window(window, (h, w))

    if reference == "previous" or reference == "mean":
        shifts, mean = _register_previous(stack, t, kind, upsample, max_shift, reference)
        if reference == "previous":
            return shifts
        return _register_to(stack, t, _filled(mean), kind, upsample, max_shift, skip=None)

    ref = _filled(_frame(stack, reference))
    if ref is None:
        raise ValueError(f"reference frame {reference} has no finite pixels")
    return _register_to(stack, t, ref, kind, upsample, max_shift, skip=reference)


def _register_pair(moving, ref, kind, upsample: int, max_shift) -> np.ndarray:
    """Drift of ``moving`` relative to ``ref`` (both mean-free frames), pixels.

    A taper fixed to the frame does not move with the content, which biases phase
    correlation towards zero shift (by tenths of a pixel for shifts of tens of pixels).
    After a first estimate, the reference is tapered with a window inset by the shift
    and the moving frame with the same window moved by the estimate, so the two
    tapered images are exact shifted copies at the true shift; two or three rounds
    converge to the resolution ``1/upsample``.
    """
    shape = moving.shape
    taper = _taper(shape, kind)
    if taper is None:
        return _correlate(np.fft.fft2(moving), np.fft.fft2(ref), upsample, max_shift)
    shift = _correlate(np.fft.fft2(moving * taper), np.fft.fft2(ref * taper), upsample, max_shift)
    if not isinstance(kind, str):
        return shift
    for _ in range(4):
        margin = tuple(int(np.ceil(abs(v))) + 2 for v in shift)
        if any(2 * m > n // 2 for m, n in zip(margin, shape, strict=True)):
            logger.debug("shift %s too large for a moved taper; unrefined", shift)
            break
        ref_spec = np.fft.fft2(ref * _taper(shape, kind, margin))
        mov_spec = np.fft.fft2(moving * _taper(shape, kind, margin, offset=shift))
        new = _correlate(mov_spec, ref_spec, upsample, max_shift)
        converged = np.all(np.abs(new - shift) < 0.5 / upsample)
        shift = new
        if converged:
            break
    return shift


def _register_to(stack, t, ref, kind, upsample, max_shift, skip) -> np.ndarray:
    shifts = np.zeros((t, 2))
    for k in range(t):
        if k == skip:
            continue
        centred = _filled(_frame(stack, k))
        if centred is None:
            warnings.warn(f"frame {k} has no finite pixels; its drift is NaN", stacklevel=3)
            shifts[k] = np.nan
            continue
        shifts[k] = _register_pair(centred, ref, kind, upsample, max_shift)
        logger.debug("frame %s: drift %s px", k, shifts[k])
    return shifts


def _register_previous(stack, t, kind, upsample, max_shift, reference):
    """Frame-to-frame registration, accumulated; also the mean of the aligned frames.

    The aligned mean is accumulated in Fourier space (a phase ramp moves each frame by
    minus its drift), so the stack is read once.
    """
    shifts = np.full((t, 2), np.nan)
    want_mean = reference == "mean"
    prev = None
    prev_shift = None
    mean_spec = None
    count = 0
    for k in range(t):
        centred = _filled(_frame(stack, k))
        if centred is None:
            warnings.warn(f"frame {k} has no finite pixels; its drift is NaN", stacklevel=3)
            continue
        if prev is None:
            if k > 0:
                warnings.warn(
                    f"no finite frame before frame {k}: drift measured from frame {k}",
                    stacklevel=3,
                )
            shift = np.zeros(2)
        else:
            shift = prev_shift + _register_pair(centred, prev, kind, upsample, max_shift)
        shifts[k] = shift
        prev, prev_shift = centred, shift
        if want_mean:
            raw = np.fft.fft2(centred)
            ky = np.fft.fftfreq(raw.shape[0])[:, None]
            kx = np.fft.fftfreq(raw.shape[1])[None, :]
            aligned = raw * np.exp(2j * np.pi * (ky * shift[0] + kx * shift[1]))
            mean_spec = aligned if mean_spec is None else mean_spec + aligned
            count += 1
    if want_mean and mean_spec is None:
        raise ValueError("no frame of the stack has finite pixels")
    mean = None if mean_spec is None else np.real(np.fft.ifft2(mean_spec / count))
    return shifts, mean


class PreviousFrameRegistration:
    """Drift of each frame of a live acquisition relative to the frame before it.

    The cheap, one-frame-at-a-time form of ``register_frames(reference="previous")``
    for a live run, which must register a 2048² frame in a small fraction of its
    analysis.  Each frame is binned to about ``size`` pixels (float32 block means),
    tapered with a fixed Tukey window and transformed once (real FFT); the previous
    frame's spectrum and signal-to-noise ratio are kept, so a new frame costs one
    forward and one inverse FFT of the binned frame.  The correlation is the one of
    :func:`register_frames`: phase correlation weighted by each bin's signal-to-noise
    ratio, without the Bragg reflections, refined on a grid ``1/upsample`` binned
    pixel fine.  The moved-taper rounds of :func:`register_frames` are left out: their
    bias correction scales with the shift, and frame-to-frame shifts are small.

    Parameters
    ----------
    size : int
        Frames are binned by ``b = min(y, x) // size`` (at least 1).
    max_frequency : float, optional
        Highest lattice frequency of the frames in cycles per pixel (``|g|`` times the
        pixel size).  ``b`` is kept below ``0.5 / max_frequency`` so that the binned
        frame still resolves the fringes: aliased fringes would land in the band the
        drift is measured on.
    upsample : int
        Sub-pixel refinement factor (binned pixels).
    max_shift : float, optional
        Largest shift per axis in pixels of the full frame.

    Raises
    ------
    ValueError
        If ``size < 2``, ``upsample < 1``, or ``max_frequency``/``max_shift`` is not
        positive.
    """

    def __init__(self, *, size=512, max_frequency=None, upsample=20, max_shift=None):
        if int(size) < 2 or int(upsample) < 1:
            raise ValueError(f"size must be >= 2 and upsample >= 1, got {size}, {upsample}")
        for name, value in (("max_frequency", max_frequency), ("max_shift", max_shift)):
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive or None, got {value}")
        self.size, self.upsample = int(size), int(upsample)
        self.max_frequency, self.max_shift = max_frequency, max_shift
        self._shape = None
        self._previous = None  # (spectrum, snr) of the previous frame

    def factor(self, shape) -> int:
        """The binning ``b`` of frames of ``shape`` ``(y, x)``."""
        b = max(1, min(shape) // self.size)
        if self.max_frequency is not None:
            b = min(b, max(1, int(np.floor(0.5 / self.max_frequency - 1e-9))))
        return b

    def __call__(self, frame) -> np.ndarray:
        """Shift ``(dy, dx)`` in pixels of ``frame`` relative to the previous frame.

        ``frame(r) ≈ previous(r - shift)``.  NaN for the first frame, after a frame of
        another shape, and for a frame without finite pixels (the next frame is then
        registered against the last good one).
        """
        frame = np.asarray(frame)
        b = self.factor(frame.shape)
        binned = _block_mean(frame, b)
        if not np.isfinite(binned).all():
            finite = np.isfinite(binned)
            if not finite.any():
                return np.full(2, np.nan)
            binned = np.where(finite, binned, binned[finite].mean())
        if binned.shape != self._shape:
            self._shape, self._previous = binned.shape, None
            self._taper = _taper(binned.shape, "tukey").astype(np.float32)
        from scipy import fft

        spec = fft.rfft2((binned - binned.mean()) * self._taper)
        snr = _snr(spec, width=binned.shape[1])
        previous, self._previous = self._previous, (spec, snr)
        if previous is None:
            return np.full(2, np.nan)
        self._factor = b
        return self._correlate(spec, snr, *previous, binned.shape) * b

    def _correlate(self, moving, snr_m, ref, snr_r, shape) -> np.ndarray:
        """:func:`_correlate` on half spectra (the cross-power of real frames is Hermitian)."""
        from scipy import fft

        h, w = shape
        cross = _weighted_cross(moving, ref, snr_m, snr_r)
        corr = fft.irfft2(cross, s=shape)
        sy, sx = np.fft.fftfreq(h, d=1.0 / h), np.fft.fftfreq(w, d=1.0 / w)
        if self.max_shift is not None:
            limit = self.max_shift / self._factor  # binned pixels
            allowed = (np.abs(sy)[:, None] <= limit) & (np.abs(sx)[None, :] <= limit)
            corr = np.where(allowed, corr, -np.inf)
        iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
        shift = np.array([sy[iy], sx[ix]], dtype=np.float64)
        up = self.upsample
        if up > 1:
            # The inverse DFT near the peak from the half plane: bins 0 < kx < w/2 stand
            # for their conjugate twins too.  Only the rows and columns with weight
            # (below the Bragg cut-off) count: a third of the products.
            rows, cols = np.flatnonzero(cross.any(axis=1)), np.flatnonzero(cross.any(axis=0))
            size = int(np.ceil(1.5 * up))
            offsets = (np.arange(size) - size // 2) / up
            ky, kx = np.fft.fftfreq(h)[rows], np.fft.rfftfreq(w)[cols]
            twice = np.where((kx > 0) & (kx < 0.5), 2.0, 1.0)
            ey = np.exp(2j * np.pi * (shift[0] + offsets)[:, None] * ky[None, :])
            ex = np.exp(2j * np.pi * (shift[1] + offsets)[:, None] * kx[None, :])
            fine = np.real(_dft_near_peak(ey, cross[np.ix_(rows, cols)] * twice, ex))
            jy, jx = np.unravel_index(int(np.argmax(fine)), fine.shape)
            shift += (
                (jy - size // 2 + _vertex(fine[jy - 1 : jy + 2, jx])) / up,
                (jx - size // 2 + _vertex(fine[jy, jx - 1 : jx + 2])) / up,
            )
        return shift


def _block_mean(frame: np.ndarray, b: int) -> np.ndarray:
    """``frame`` (float32) averaged over ``b × b`` blocks, edges cut.

    Sums of strided slices: a reduction over the axes of a ``(h/b, b, w/b, b)`` view
    is several times slower on a 2048² frame.
    """
    if b == 1:
        return frame.astype(np.float32)
    h, w = (frame.shape[0] // b) * b, (frame.shape[1] // b) * b
    frame = frame[:h, :w]
    cols = frame[:, 0::b].astype(np.float32)
    for k in range(1, b):
        cols += frame[:, k::b]
    out = cols[0::b].copy()
    for k in range(1, b):
        out += cols[k::b]
    out /= b * b
    return out


def _check_shifts(shifts, t: int, name: str = "shifts") -> np.ndarray:
    arr = np.asarray(shifts, dtype=np.float64)
    if arr.shape != (t, 2):
        raise ValueError(f"{name} must have shape ({t}, 2) as (dy, dx) pixels, got {arr.shape}")
    return arr


def _check_step(step) -> float:
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a positive number of image pixels, got {step}")
    return float(step)


def _shift_frame(frame: np.ndarray, shift, order: int) -> np.ndarray:
    """``out(r) = frame(r - shift)``, NaN where the source is outside the frame or NaN."""
    frame = np.asarray(frame)
    out_dtype = frame.dtype if frame.dtype.kind == "f" else np.dtype(np.float64)
    if not np.all(np.isfinite(shift)):
        return np.full(frame.shape, np.nan, dtype=out_dtype)
    data = frame.astype(np.float64)
    bad = ~np.isfinite(data)
    if bad.all():
        return np.full(frame.shape, np.nan, dtype=out_dtype)
    if bad.any():
        data = np.where(bad, data[~bad].mean(), data)
    out = ndimage.shift(data, shift, order=order, mode="nearest")
    # Any interpolation weight from outside the frame or from a NaN pixel makes the
    # output undefined; "grid-constant" interpolates that weight in with cval=1.
    reach = ndimage.shift(bad.astype(np.float64), shift, order=1, mode="grid-constant", cval=1.0)
    out[reach > 1e-6] = np.nan
    return out.astype(out_dtype, copy=False)


def _shift_block(block, *, shifts, step, order, block_info=None):
    t0, t1 = block_info[0]["array-location"][-3]
    frames = block.reshape((-1, t1 - t0, *block.shape[-2:]))
    out_dtype = block.dtype if block.dtype.kind == "f" else np.dtype(np.float64)
    out = np.empty(frames.shape, dtype=out_dtype)
    for i in range(frames.shape[0]):
        for j in range(t1 - t0):
            out[i, j] = _shift_frame(frames[i, j], -shifts[t0 + j] / step, order)
    return out.reshape(block.shape)


def apply_drift(stack, shifts, *, step: float = 1, order: int = 3):
    """Move every frame by minus its drift, so that the content stands still.

    Parameters
    ----------
    stack : numpy.ndarray or dask.array.Array
        Frames ``(..., t, y, x)``: a movie, or maps ``(n, t, my, mx)``.  Leading axes are
        moved together.
    shifts : array_like
        Drift ``(t, 2)`` as ``(dy, dx)`` in image pixels (as from :func:`register_frames`).
    step : float
        Image pixels per pixel of ``stack``: 1 for images, the map step for maps.
    order : int
        Spline order of the interpolation (0–5); 1 keeps NaN holes of maps tight.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        Same shape; float (float32 stays float32).  Pixels whose source lies outside the
        frame or next to a NaN are NaN.  A dask input gives a lazy dask output, computed
        frame by frame.

    Raises
    ------
    ValueError
        If ``stack`` has fewer than 3 axes, ``shifts`` is not ``(t, 2)``, ``step <= 0`` or
        ``order`` is not in 0–5.
    """
    shape = getattr(stack, "shape", None)
    if shape is None or len(shape) < 3:
        raise ValueError(f"stack must have shape (..., t, y, x), got {shape}")
    t = int(shape[-3])
    shifts = _check_shifts(shifts, t)
    step = _check_step(step)
    if order not in range(6):
        raise ValueError(f"order must be an integer spline order 0–5, got {order}")
    if hasattr(stack, "map_blocks") and hasattr(stack, "chunks"):
        lazy = stack.rechunk({-2: -1, -1: -1})
        out_dtype = lazy.dtype if lazy.dtype.kind == "f" else np.dtype(np.float64)
        return lazy.map_blocks(
            _shift_block, shifts=shifts, step=step, order=order, dtype=out_dtype
        )
    arr = np.asarray(stack)
    frames = arr.reshape((-1, t, *arr.shape[-2:]))
    out = np.stack(
        [
            np.stack([_shift_frame(frames[i, k], -shifts[k] / step, order) for k in range(t)])
            for i in range(frames.shape[0])
        ]
    )
    return out.reshape(arr.shape)


def shift_region(mask, shifts, *, step: float = 1) -> np.ndarray:
    """Make a region drawn on the reference frame follow the drifting content.

    Parameters
    ----------
    mask : array_like of bool
        Region ``(y, x)`` on the reference frame, on a grid of ``step`` image pixels
        (the map grid for maps).
    shifts : array_like
        Drift ``(t, 2)`` as ``(dy, dx)`` in image pixels.
    step : float
        Image pixels per pixel of ``mask``.

    Returns
    -------
    numpy.ndarray
        Boolean ``(t, y, x)``: the region in every frame (sub-pixel shifts rounded by
        keeping pixels at least half covered).  Frames with a NaN drift get an empty region.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D, ``shifts`` is not ``(n, 2)`` or ``step <= 0``.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-D boolean array (y, x), got shape {m.shape}")
    shifts = np.asarray(shifts, dtype=np.float64)
    if shifts.ndim != 2 or shifts.shape[1] != 2:
        raise ValueError(f"shifts must have shape (t, 2) as (dy, dx) pixels, got {shifts.shape}")
    step = _check_step(step)
    weight = m.astype(np.float64)
    out = np.zeros((shifts.shape[0], *m.shape), dtype=bool)
    for k, s in enumerate(shifts):
        if np.all(np.isfinite(s)):
            moved = ndimage.shift(weight, s / step, order=1, mode="grid-constant", cval=0.0)
            out[k] = moved >= 0.5
    return out


def shift_polygon(vertices, shifts, *, pixel_size: float) -> np.ndarray:
    """Vertices of a polygon (nm) in every frame of a drifting movie.

    Parameters
    ----------
    vertices : array_like
        ``(v, 2)`` polygon vertices ``(y, x)`` in nm on the reference frame (extra leading
        columns, e.g. a napari time coordinate, are dropped).
    shifts : array_like
        Drift ``(t, 2)`` as ``(dy, dx)`` in pixels.
    pixel_size : float
        Image pixel size in nm.

    Returns
    -------
    numpy.ndarray
        ``(t, v, 2)`` vertices in nm.

    Raises
    ------
    ValueError
        If the shapes are wrong or ``pixel_size <= 0``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2 or v.shape[0] < 3:
        raise ValueError(f"vertices must have shape (v >= 3, 2) as (y, x) nm, got {v.shape}")
    shifts = np.asarray(shifts, dtype=np.float64)
    if shifts.ndim != 2 or shifts.shape[1] != 2:
        raise ValueError(f"shifts must have shape (t, 2) as (dy, dx) pixels, got {shifts.shape}")
    if not np.isfinite(pixel_size) or pixel_size <= 0:
        raise ValueError(f"pixel_size must be a positive number of nm, got {pixel_size}")
    return v[None, :, -2:] + shifts[:, None, :] * pixel_size
