"""Geometric phase analysis (GPA, Hÿtch, Snoeck & Kilaas 1998) on the map grid.

Method (conventions and comparison with the local-FFT maps in ``docs/gpa.md``)
-----------------------------------------------------------------------------
For a reflection ``g`` the image is filtered with a Gaussian mask around ``g`` in its
Fourier transform,

    H_g(r) = IFFT[ FFT(I) · M(k − g) ](r),     M(k) = exp(−|k|² / 2σ_k²),

which isolates one fringe ``A_g(r) exp(i(2π g·r + P_g(r)))``: ``P_g = arg(H_g e^{−2πi g·r})``
is the geometric phase relative to ``g`` (``P_g = −2π g·u`` for a displacement ``u``) and
the local reciprocal vector is ``∇arg(H_g)/2π = g + ∇P_g/2π``, computed exactly as
``Im(H̄_g ∇H_g)/(2π|H_g|²)`` with ``∇H_g`` from the same masked spectrum times ``2πik``.

It is computed the fast way: one real FFT of the whole frame; per reflection the masked
spectrum is cut to the bins where the Gaussian exceeds ~4·10⁻⁶ (5 σ) and *folded* onto
the map grid (bin ``k`` added to bin ``k mod (L/step)``), which makes a small inverse FFT
of size ``(L_y/step, L_x/step)`` return the filtered field exactly at the image pixels
``(i·step, j·step)``.  The frame is first split into its periodic and smooth parts
(Moisan 2011), so that the jump between opposite edges does not streak the spectrum.

``resolution_nm`` is the full width at half maximum of the Gaussian point-spread function
in real space, ``σ_r = resolution / (2√(2 ln 2))``, ``σ_k = 1/(2π σ_r)``.  A step in the
lattice then appears with a 10–90 % width of ``1.088 · resolution``;
:func:`matched_resolution` gives the resolution whose step width equals that of a
local-FFT Hann window.
"""

from __future__ import annotations

import math
import os

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from .engine import DEFAULT_MIN_AMPLITUDE, check_flag, check_image, check_int, check_real
from .maps import LatticeMaps, map_shape
from .reciprocal import as_reflections
from .strain import has_two_directions, strain

__all__ = ["analyze_gpa", "gpa_window", "matched_resolution"]

# FWHM of a Gaussian in units of its standard deviation.
_FWHM_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

# The mask is cut where it falls below exp(-12.5) = 3.7e-6 of its peak.
_MASK_CUT_SIGMA = 5.0

# A reflection must lie this many mask widths σ_k from the centre of the spectrum, so that
# the mask takes < exp(-8) = 3e-4 of the low frequencies (thickness, amorphous film).
_MIN_SIGMAS_FROM_CENTRE = 4.0

# Map pixels closer than this many resolutions (FWHM) to the image edge or to missing data
# are NaN: at 1.5 FWHM (3.5 σ) the wrapped-around lattice of the opposite edge moves d by
# up to 2e-4 on a noise-free lattice, at 1.0 FWHM by 2e-3 (measured, docs/gpa.md).
_EDGE_MARGIN = 1.5

# 10-90 % width of a step seen through a periodic Hann window of N pixels, in units of N:
# the Hann CDF 1/2 + s + sin(2πs)/2π reaches 0.9 at s = 0.24119.
_HANN_STEP_WIDTH = 2 * 0.241192
# 10-90 % width of a step blurred by a Gaussian, in units of its FWHM: 2·1.28155 σ.
_GAUSS_STEP_WIDTH = 2 * 1.2815516 / _FWHM_SIGMA


def matched_resolution(window: int, pixel_size: float) -> float:
    """GPA resolution (nm) whose step response matches a local-FFT Hann window.

    The local-FFT phase difference averages the local lattice with the periodic Hann
    weights of its window; a Gaussian mask averages it with a Gaussian point-spread
    function.  The two give the same 10–90 % width of a step (0.482 ``window`` pixels)
    when the Gaussian's FWHM is 0.443 ``window`` pixels.

    Parameters
    ----------
    window : int
        Local-FFT window size in pixels.
    pixel_size : float
        Pixel size in nm.

    Returns
    -------
    float
        ``resolution_nm`` for :func:`analyze_gpa`, in nm.
    """
    return float(window) * float(pixel_size) * _HANN_STEP_WIDTH / _GAUSS_STEP_WIDTH


def gpa_window(resolution_nm: float, pixel_size: float) -> int:
    """Footprint (pixels, even) recorded as ``LatticeMaps.window`` for a GPA resolution.

    A map pixel is NaN where the image lacks data within 1.5 ``resolution_nm`` (3.5 σ of
    the point-spread function) along either axis, i.e. in a square of this side centred
    on it.
    """
    return 2 * _margin(resolution_nm, pixel_size)


def _margin(resolution_nm: float, pixel_size: float) -> int:
    return math.ceil(_EDGE_MARGIN * resolution_nm / pixel_size - 1e-9)


# --------------------------------------------------------------------------- pieces


def _smooth_spectrum(frame: np.ndarray, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Spectrum of the smooth component of ``frame`` at bins ``(ky, kx)`` (Moisan 2011).

    ``frame = periodic + smooth``, where ``smooth`` solves a discrete Poisson equation
    whose source is the jump between opposite edges; it holds the cross-shaped streaks
    of the image's non-periodic edges.  Its transform at any bin needs only the 1-D FFTs
    of the two edge differences, so it is evaluated at the masked bins only.
    """
    h, w = frame.shape
    top_bottom = sfft.fft((frame[-1, :] - frame[0, :]).astype(np.float64))
    left_right = sfft.fft((frame[:, -1] - frame[:, 0]).astype(np.float64))
    ey = np.exp(-2j * np.pi * ky * (h - 1) / h)
    ex = np.exp(-2j * np.pi * kx * (w - 1) / w)
    v = top_bottom[kx % w] * (1 - ey) + left_right[ky % h] * (1 - ex)
    denom = 2 * np.cos(2 * np.pi * ky / h) + 2 * np.cos(2 * np.pi * kx / w) - 4
    with np.errstate(divide="ignore", invalid="ignore"):
        out = v / denom
    return np.where((ky % h == 0) & (kx % w == 0), 0, out)


def _gather(spec: np.ndarray, shape, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Full-spectrum values at integer bins ``(ky, kx)`` (any sign) from an rfft2."""
    h, w = shape
    neg = kx < 0
    iy = np.where(neg, -ky, ky) % h
    ix = np.where(neg, -kx, kx) % w
    # Bins beyond w//2 are the conjugates of their mirror (real input).
    mirror = ix > w // 2
    iy = np.where(mirror, (-iy) % h, iy)
    ix = np.where(mirror, w - ix, ix)
    vals = spec[iy, ix]
    return np.where(neg ^ mirror, np.conj(vals), vals)


def _fold(values: np.ndarray, ky: np.ndarray, kx: np.ndarray, out: np.ndarray) -> None:
    """Add ``values (..., a, b)`` at bins ``(ky, kx)`` into ``out`` at ``(ky mod gy, kx mod gx)``.

    ``ky`` is ``(a, 1)`` and ``kx`` is ``(1, b)``: a box of consecutive bins.  When the box
    fits in the grid no two bins meet and the fold is a plain assignment.
    """
    gy, gx = out.shape[-2:]
    iy, ix = ky[:, 0] % gy, kx[0] % gx
    if iy.size <= gy and ix.size <= gx:
        out[..., iy[:, None], ix[None, :]] = values
        return
    for k in np.ndindex(*values.shape[:-2]):
        flat = out[k].reshape(-1)
        np.add.at(flat, (iy[:, None] * gx + ix[None, :]).ravel(), values[k].ravel())


def _padded_size(size: int, step: int) -> int:
    """Smallest fast FFT length >= size that is a multiple of step."""
    n = -(-size // step) * step
    while sfft.next_fast_len(n, real=True) != n:
        n += step
    return n


def _frame_gpa(frame, freqs, *, sigma_k, step, out_shape, origin=(0, 0)):
    """Filtered fields on the map grid for one 2D frame.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` finite image, float.
    freqs : numpy.ndarray
        ``(n, 2)`` mask centres in cycles/pixel.
    sigma_k : float
        Mask standard deviation in cycles/pixel.
    origin : tuple of int
        Image position of ``frame[0, 0]`` (for the phase reference of blocks).

    Returns
    -------
    h, demod, hy, hx : numpy.ndarray
        ``(n, my, mx)`` complex at the map pixels: ``H_g``, ``H_g·exp(-2πi f·r)`` (``r``
        the global image pixel) and the derivatives of ``H_g`` per pixel along y and x.
    background : numpy.ndarray
        ``(n,)`` expected ``|H_g|²`` of the noise alone (spectral median around ``g``).
    """
    h, w = frame.shape
    hp, wp = _padded_size(h, step), _padded_size(w, step)
    frame = np.subtract(frame, frame.mean(dtype=np.float64), dtype=np.float32)
    if (hp, wp) != (h, w):
        frame = np.pad(frame, ((0, hp - h), (0, wp - w)), mode="symmetric")
    spec = sfft.rfft2(frame, workers=os.cpu_count() or 1)
    grid = (hp // step, wp // step)
    npix = float(hp * wp)
    cut = _MASK_CUT_SIGMA * sigma_k
    n = freqs.shape[0]
    fields = np.zeros((3, n, *grid), dtype=np.complex64)
    background = np.empty(n)
    for r, (fy, fx) in enumerate(freqs):
        ky = np.arange(math.ceil((fy - cut) * hp), math.floor((fy + cut) * hp) + 1)[:, None]
        kx = np.arange(math.ceil((fx - cut) * wp), math.floor((fx + cut) * wp) + 1)[None, :]
        ky, kx = np.broadcast_arrays(ky, kx)
        vals = _gather(spec, (hp, wp), ky, kx) - _smooth_spectrum(frame, ky, kx)
        dy, dx = ky / hp - fy, kx / wp - fx
        rho2 = (dy * dy + dx * dx) / (sigma_k * sigma_k)
        mask = np.exp(-0.5 * rho2)
        # Noise level: median power between 3 and 5 σ from g, where the Gaussian-spread
        # peak of a strained lattice has faded; the median of a χ²₂ power is ln 2 × mean.
        shell = (rho2 > 9.0) & (rho2 <= 25.0)
        power = np.median(np.abs(vals[shell]) ** 2) / math.log(2.0)
        background[r] = power * float(np.sum(mask * mask)) / npix**2
        masked = vals * mask
        box = np.stack([masked, masked * (2j * np.pi * ky / hp), masked * (2j * np.pi * kx / wp)])
        _fold(box, ky[:, :1], kx[:1, :], fields[:, r])
    small = sfft.ifft2(fields, axes=(-2, -1), workers=os.cpu_count() or 1, overwrite_x=True)
    small *= np.float32(grid[0] * grid[1] / npix)
    small = small[:, :, : out_shape[0], : out_shape[1]]
    # Demodulate by exp(-2πi f·r), r the global image pixel of each map pixel.
    yy = origin[0] + step * np.arange(out_shape[0])
    xx = origin[1] + step * np.arange(out_shape[1])
    ramp_y = np.exp(-2j * np.pi * freqs[:, 0, None] * yy).astype(np.complex64)
    ramp_x = np.exp(-2j * np.pi * freqs[:, 1, None] * xx).astype(np.complex64)
    demod = small[0] * ramp_y[:, :, None] * ramp_x[:, None, :]
    # The derivatives enter only through Im(conj(H)·∇H), which needs no demodulation.
    return small[0], demod, small[1], small[2], background


_DEG = np.float32(180.0 / np.pi)


def _frame_maps(
    frame,
    finite,
    freqs,
    *,
    sigma_k,
    step,
    margin,
    out_shape,
    origin,
    image_shape,
    pixel_size,
    given,
    min_amplitude,
    search,
):
    """All map fields ``(6, n, my, mx)`` float32 of one frame (d, angle, amp, σd, σa, phase)."""
    raw, demod, hy, hx, background = _frame_gpa(
        frame, freqs, sigma_k=sigma_k, step=step, out_shape=out_shape, origin=origin
    )
    n = freqs.shape[0]
    col = (slice(None), None, None)
    out = np.empty((6, n, *out_shape), dtype=np.float32)
    d, angle, amp, d_sigma, angle_sigma, phase = out
    power = raw.real * raw.real + raw.imag * raw.imag
    conj = np.conj(raw)
    with np.errstate(all="ignore"):
        # Local frequency ∇arg(H)/2π in cycles/pixel.
        fy = (conj * hy).imag / (np.float32(2 * np.pi) * power)
        fx = (conj * hx).imag / (np.float32(2 * np.pi) * power)
        np.divide(power, background[col].astype(np.float32), out=amp)
        # sqrt and a constant factor: np.hypot and np.degrees are 10x slower in float32.
        fmag = np.sqrt(fy * fy + fx * fx)
        np.divide(np.float32(pixel_size), fmag, out=d)
        np.arctan2(-fy, fx, out=angle)
        angle *= _DEG
        angle[angle <= -180.0] += 360.0
        # White noise of the measured level through a Gaussian mask: per-axis variance of
        # the local frequency (σ_k²/2 + δ²)/(2·amp), δ the offset from the mask centre.
        off2 = (fy - freqs[(*col, 0)].astype(np.float32)) ** 2
        off2 += (fx - freqs[(*col, 1)].astype(np.float32)) ** 2
        rel = np.sqrt((np.float32(sigma_k**2 / 2) + off2 / 2) / (2 * amp)) / fmag
        np.multiply(d, rel, out=d_sigma)
        np.multiply(rel, _DEG, out=angle_sigma)
        np.arctan2(demod.imag, demod.real, out=phase)
        phase[phase <= -np.pi] = np.pi
        # Search region around the given reflections, as analyze() does.
        gmag = np.hypot(given[:, 0], given[:, 1])[col].astype(np.float32)
        cos = (fy * given[(*col, 0)] + fx * given[(*col, 1)]).astype(np.float32) / (fmag * gmag)
        ok = (np.abs(fmag / gmag - 1) <= search) & (cos >= np.float32(np.cos(search)))
    ok &= amp >= min_amplitude
    valid = _valid_pixels(
        finite,
        step=step,
        margin=margin,
        out_shape=out_shape,
        origin=origin,
        image_shape=image_shape,
    )
    bad = ~(ok & valid)
    for field in (d, angle, d_sigma, angle_sigma):
        field[bad] = np.nan
    amp[:, ~valid] = np.nan
    phase[:, ~valid] = np.nan
    return out


def _valid_pixels(finite, *, step, margin, out_shape, origin, image_shape):
    """Map pixels whose ``±margin`` square lies inside the image and holds finite data."""
    my, mx = out_shape
    yy = origin[0] + step * np.arange(my)
    xx = origin[1] + step * np.arange(mx)
    vy = (yy >= margin) & (yy <= image_shape[0] - 1 - margin)
    vx = (xx >= margin) & (xx <= image_shape[1] - 1 - margin)
    valid = vy[:, None] & vx[None, :]
    if finite is not None and not finite.all():
        bad = ndimage.maximum_filter(~finite, size=2 * margin + 1, mode="constant", cval=False)
        valid &= ~bad[(yy - origin[0])[:, None], (xx - origin[1])[None, :]]
    return valid


def _numpy_frames(arr, freqs, opts):
    lead = arr.shape[:-2]
    h, w = arr.shape[-2:]
    step = opts["step"]
    out_shape = map_shape((h, w), step)
    flat = arr.reshape(-1, h, w)
    out = np.empty((6, freqs.shape[0], flat.shape[0], *out_shape), dtype=np.float32)
    for t, frame in enumerate(flat):
        frame = np.asarray(frame)
        finite = np.isfinite(frame)
        work = np.float64 if frame.dtype == np.float64 else np.float32
        frame = np.where(finite, frame, 0).astype(work) if not finite.all() else frame.astype(work)
        if not finite.all():
            # Missing pixels at the mean of the others, so they add no jump to the spectrum.
            frame[~finite] = frame[finite].mean() if finite.any() else 0
        out[:, :, t] = _frame_maps(
            frame, finite, freqs, out_shape=out_shape, origin=(0, 0), image_shape=(h, w), **opts
        )
    return out.reshape(6, freqs.shape[0], *lead, *out_shape)


def _split(size: int, chunk: int, depth: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` pixels along an axis, the last one merged into its neighbour
    when shorter than the overlap ``depth`` (dask would otherwise rechunk under us).
    """
    parts = [chunk] * (size // chunk)
    if size % chunk:
        parts.append(size % chunk)
    if len(parts) > 1 and parts[-1] < depth:
        last = parts.pop()
        parts[-1] += last
    return tuple(parts)


def _dask_frames(x, freqs, opts, depth, chunk):
    import dask.array as da

    step = opts["step"]
    h, w = x.shape[-2:]
    nlead = x.ndim - 2
    x = x.rechunk((1,) * nlead + (_split(h, chunk, depth), _split(w, chunk, depth)))
    xo = da.overlap.overlap(
        x, depth={nlead: depth, nlead + 1: depth}, boundary={nlead: "none", nlead + 1: "none"}
    )
    ychunks, xchunks = x.chunks[-2], x.chunks[-1]
    ystarts = np.cumsum((0, *ychunks[:-1]))
    xstarts = np.cumsum((0, *xchunks[:-1]))
    n = freqs.shape[0]

    def block(b, block_info=None):
        loc = block_info[0]["chunk-location"]
        iy, ix = loc[-2], loc[-1]
        cy0, cx0 = int(ystarts[iy]), int(xstarts[ix])
        oy0, ox0 = max(cy0 - depth, 0), max(cx0 - depth, 0)
        core = (-(-ychunks[iy] // step), -(-xchunks[ix] // step))
        frame = np.asarray(b).reshape(b.shape[-2:])
        finite = np.isfinite(frame)
        work = np.float64 if frame.dtype == np.float64 else np.float32
        frame = frame.astype(work)
        if not finite.all():
            frame[~finite] = frame[finite].mean() if finite.any() else 0
        # Map pixels of the core, computed on the block's own grid whose origin is the
        # core's first pixel minus the context (a multiple of step).
        full = map_shape(frame.shape, step)
        maps = _frame_maps(
            frame, finite, freqs, out_shape=full, origin=(oy0, ox0), image_shape=(h, w), **opts
        )
        sy, sx = (cy0 - oy0) // step, (cx0 - ox0) // step
        maps = maps[:, :, sy : sy + core[0], sx : sx + core[1]]
        return maps.reshape(6, n, *(1,) * nlead, *core)

    out_chunks = (
        (6,),
        (n,),
        *x.chunks[:-2],
        tuple(-(-c // step) for c in ychunks),
        tuple(-(-c // step) for c in xchunks),
    )
    return da.map_blocks(
        block,
        xo,
        new_axis=[0, 1],
        chunks=out_chunks,
        dtype=np.float32,
        meta=np.empty((0,) * (x.ndim + 2), np.float32),
    )


def _check_masks(refl, pixel_size: float, resolution_nm: float, sigma_nm: float) -> None:
    """Each mask centre inside Nyquist and far enough from the centre of the spectrum."""
    nyquist = 0.5 / pixel_size
    gmag = np.hypot(refl[:, 0], refl[:, 1])
    for k, g in enumerate(refl):
        if np.any(np.abs(g) >= nyquist):
            raise ValueError(
                f"reflection {k} {g.tolist()} lies at or beyond Nyquist (|gy| or |gx| >= "
                f"{nyquist:.4g} 1/nm for pixel_size {pixel_size} nm)"
            )
        if gmag[k] < _MIN_SIGMAS_FROM_CENTRE * sigma_nm:
            finest = _MIN_SIGMAS_FROM_CENTRE * _FWHM_SIGMA / (2 * np.pi * gmag[k])
            raise ValueError(
                f"resolution_nm {resolution_nm:.4g} is too fine for reflection {k} "
                f"{g.tolist()}: its mask would reach the centre of the spectrum; use "
                f"resolution_nm >= {finest:.4g} nm"
            )


def analyze_gpa(
    image,
    reflections,
    *,
    pixel_size: float,
    step: int = 8,
    resolution_nm: float | None = None,
    window: int | None = None,
    search: float = 0.1,
    min_amplitude: float = DEFAULT_MIN_AMPLITUDE,
    compute_strain: bool = True,
    chunks: int | None = None,
) -> LatticeMaps:
    """Map local lattice spacing, angle, phase and strain by geometric phase analysis.

    Parameters
    ----------
    image : array_like or dask.array.Array
        Image ``(y, x)`` or stack ``(..., y, x)`` of real numbers; NaN/inf pixels are
        missing data.  numpy in gives numpy maps (one FFT per frame); dask in gives lazy
        dask maps computed block-wise with an overlap of two resolutions.
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹: the mask centres and the reference
        of the phase.
    pixel_size : float
        Image pixel size in nm.
    step : int
        Map pixel ``(i, j)`` is image pixel ``(i·step, j·step)``.
    resolution_nm : float, optional
        FWHM of the Gaussian point-spread function in nm (mask ``σ_k = 2√(2 ln 2) /
        (2π · resolution)`` in nm⁻¹).  Must be at least ``1.5 d`` of every reflection.
        Default: :func:`matched_resolution` of ``window``.
    window : int, optional
        Instead of ``resolution_nm``: the local-FFT window size (pixels) to match; 128
        when neither is given.
    search : float
        Estimates whose ``|g|`` differs from the given one by more than this fraction,
        or whose direction by more than this many radians, are NaN (as in ``analyze``).
    min_amplitude : float
        Smallest amplitude (``|H_g|²`` over its expected value for the noise alone)
        accepted for ``d``, angle and their sigmas.
    compute_strain : bool
        Compute strain maps when two non-collinear reflections are given.
    chunks : int, optional
        Block side in pixels for dask input (default 2048, at least 4 resolutions).

    Returns
    -------
    LatticeMaps
        ``d_spacing``, ``angle``, ``amplitude``, ``d_sigma``, ``angle_sigma`` and
        ``phase`` (radians in (-π, π], relative to the given ``g`` with the image origin
        as reference), float32 ``(n, ..., ceil(H/step), ceil(W/step))``.  Every field is
        NaN within 1.5 ``resolution_nm`` of the image edge or of missing pixels; d, angle and
        sigmas also where the amplitude is below ``min_amplitude`` or outside the search
        region.  ``window`` is the NaN footprint :func:`gpa_window`;
        ``parameters["method"] == "gpa"``.

    Raises
    ------
    TypeError
        If the image is not real numbers or an option has the wrong type.
    ValueError
        If an option is out of range, a reflection lies at or beyond Nyquist, or the
        resolution is too fine for a reflection (its mask would reach the centre of the
        spectrum).
    """
    image, shape, _dtype = check_image(image)
    pixel_size = check_real(pixel_size, "pixel_size")
    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be > 0 (nm), got {pixel_size}")
    step = check_int(step, "step", 1)
    if resolution_nm is not None and window is not None:
        raise ValueError("give resolution_nm or window, not both")
    if resolution_nm is None:
        window = 128 if window is None else check_int(window, "window", 2)
        resolution_nm = matched_resolution(window, pixel_size)
    resolution_nm = check_real(resolution_nm, "resolution_nm")
    if resolution_nm <= 0:
        raise ValueError(f"resolution_nm must be > 0, got {resolution_nm}")
    search = check_real(search, "search")
    if not 0 < search <= 0.5:
        raise ValueError(f"search must be in (0, 0.5], got {search}")
    min_amplitude = check_real(min_amplitude, "min_amplitude")
    if min_amplitude < 0:
        raise ValueError(f"min_amplitude must be >= 0, got {min_amplitude}")
    compute_strain = check_flag(compute_strain, "compute_strain")
    refl = as_reflections(reflections)
    sigma_nm = _FWHM_SIGMA / (2 * np.pi * resolution_nm)  # mask σ in nm⁻¹
    _check_masks(refl, pixel_size, resolution_nm, sigma_nm)
    margin = _margin(resolution_nm, pixel_size)
    if shape[-2] <= 2 * margin or shape[-1] <= 2 * margin:
        raise ValueError(
            f"image (y, x) size {shape[-2:]} leaves no map pixel {margin} pixels "
            f"(resolution_nm {resolution_nm:.4g}) from its edges"
        )
    opts = dict(
        sigma_k=sigma_nm * pixel_size,
        step=step,
        margin=margin,
        pixel_size=pixel_size,
        given=refl * pixel_size,
        min_amplitude=min_amplitude,
        search=search,
    )
    freqs = refl * pixel_size
    import dask.array as da

    if isinstance(image, da.Array):
        depth = -(-2 * margin // step) * step
        chunk = 2048 if chunks is None else check_int(chunks, "chunks", 1)
        chunk = max(-(-chunk // step) * step, -(-4 * margin // step) * step, depth)
        packed = _dask_frames(image, freqs, opts, depth, chunk)
        block = chunk
    else:
        packed = _numpy_frames(np.asarray(image), freqs, opts)
        block = None
    parameters = {
        "method": "gpa",
        "pixel_size": pixel_size,
        "step": step,
        "resolution_nm": resolution_nm,
        "mask_sigma_nm-1": sigma_nm,
        "mask": "Gaussian exp(-|k-g|^2/2σ_k^2), cut at 5σ_k",
        "search": search,
        "min_amplitude": min_amplitude,
        "compute_strain": bool(compute_strain),
        "reflections": refl.tolist(),
        "window_pixels": "NaN footprint: ±resolution_nm around each map pixel",
        "edges": "periodic + smooth decomposition (Moisan 2011)",
        "chunks": block,
        "precision": "float32 (complex64 FFTs)",
    }
    names = ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma", "phase")
    fields = {name: packed[i] for i, name in enumerate(names)}
    maps = LatticeMaps(
        **fields,
        reflections=refl,
        window=gpa_window(resolution_nm, pixel_size),
        step=step,
        pixel_size=pixel_size,
        parameters=parameters,
    )
    if compute_strain and has_two_directions(refl):
        maps.strain = strain(maps)
    return maps
