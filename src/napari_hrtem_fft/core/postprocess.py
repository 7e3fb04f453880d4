"""Post-processing of lattice maps: outlier removal, masks and NaN-aware smoothing.

All functions are pure: they return new :class:`~napari_hrtem_fft.core.maps.LatticeMaps`
or arrays and never modify their inputs.  Missing values are NaN throughout; spatial
operations act on the two trailing map axes ``(my, mx)`` only, independently for each
reflection and frame.  When the input maps carry strain, the returned maps carry strain
recomputed from the processed values with the same reference.  Each step is appended to
``parameters["postprocessing"]`` for provenance.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import ndimage

from .maps import LatticeMaps
from .reciprocal import as_reflections, g_angle, g_spacing

__all__ = [
    "apply_mask",
    "clean",
    "crystal_mask",
    "intensity_mask",
    "mask_to_map",
    "otsu_threshold",
    "smooth",
]

_FIELDS = ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma")
_SMOOTH_METHODS = ("block", "gaussian", "median")
# Amplitude of a window centred on a crystal edge, relative to the crystal level next
# to it.  Peak power scales as the square of the crystal's (Hann-weighted) share of the
# window, so a window half-filled by crystal has a quarter of it.  The engine's amplitude
# (power over a background measured where the lattice has no reflection) follows that
# law on the synthetic particle (benchmarks/crystal_mask.py: share 0.61 → 0.36 of the
# level at window 128), and the edge lands within 9 px (windows 64, 128) and 44 px
# (window 256) of the true one.
_EDGE_POWER_FRACTION = 1 / 4
# Significance of a peak when the maps do not record the analysis' min_amplitude: its
# power ten times its background (the engine's default).
_SIGNIFICANT_AMPLITUDE = 10.0
# The crystal level near an edge: this percentile of the amplitudes within window/2.
_LEVEL_PERCENTILE = 90
# The smoothing's Gaussian reaches this many σ (scipy's default).
_TRUNCATE = 4.0
# Side (map pixels) of the blocks whose bounds settle most edge windows of the crystal
# mask without reading their level.
_BOUND_TILE = 8


# ------------------------------------------------------------------- helpers


def _is_dask(a) -> bool:
    return type(a).__module__.split(".")[0] == "dask"


def _check_maps(maps) -> None:
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")


def _map_shape(maps: LatticeMaps) -> tuple:
    return tuple(np.shape(maps.d_spacing)[1:])


def _numpy(a) -> np.ndarray:
    return np.asarray(a.compute() if _is_dask(a) else a)


def _per_frame(a, func, dtype):
    """Apply ``func`` (numpy, acts on the two last axes of its input) to ``a``.

    Dask arrays stay lazy: the map axes are made single chunks (maps are small in y, x),
    and ``func`` runs per block of the leading axes.
    """
    if _is_dask(a):
        nd = a.ndim
        a = a.rechunk({nd - 2: -1, nd - 1: -1})
        return a.map_blocks(func, dtype=dtype)
    return func(np.asarray(a))


def _wrap_degrees(a):
    """Angle difference wrapped into [-180, 180)."""
    return (a + 180.0) % 360.0 - 180.0


def _derived(maps: LatticeMaps, record: dict, *, kept=None, **fields) -> LatticeMaps:
    """New maps with some fields replaced, strain recomputed, provenance appended.

    ``kept``: the fields are ``maps``' own where this boolean map mask holds and NaN
    elsewhere; the strain is then masked the same way instead of recomputed (it is
    computed pixel by pixel from the fields: where they are unchanged, so is it).
    """
    params = dict(maps.parameters)
    params["postprocessing"] = [*params.get("postprocessing", []), record]
    new = dataclasses.replace(maps, **fields, strain=None, parameters=params)
    if maps.strain is not None and kept is not None:
        masked = {
            name: np.where(kept, value, np.nan) for name, value in maps.strain.components().items()
        }
        new.strain = dataclasses.replace(maps.strain, **masked)
    elif maps.strain is not None:
        from .strain import strain

        new.strain = strain(new, reference=maps.strain.reference)
    return new


def _disk(radius: int) -> np.ndarray:
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy**2 + xx**2 <= r * r + r  # the +r rounds the disk like a drawn circle


def _check_int(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# ---------------------------------------------------------------------- clean


def clean(
    maps: LatticeMaps,
    *,
    d_tolerance: float = 0.05,
    angle_tolerance: float = 5.0,
    reference=None,
    min_neighbors: int = 0,
) -> LatticeMaps:
    """Set outliers to NaN: values far from the reference lattice, and isolated pixels.

    Parameters
    ----------
    maps : LatticeMaps
        Input maps (not modified).
    d_tolerance : float
        Largest accepted relative spacing deviation ``|d / d_ref - 1|`` (0.05 = 5 %).
    angle_tolerance : float
        Largest accepted angle deviation ``|angle - angle_ref|`` in degrees, wrapped
        into [-180°, 180°).
    reference : array_like, optional
        Reference reflections ``(n, 2)`` ``(gy, gx)`` in nm⁻¹.  Default: per reflection,
        the NaN-ignoring median spacing and (wrap-aware) median angle of the maps.
    min_neighbors : int
        After the tolerance test, a pixel with fewer valid pixels among its 8
        neighbours (same reflection and frame) is removed too; 0 (default) keeps
        isolated pixels.

    Returns
    -------
    LatticeMaps
        Copy with ``d_spacing``, ``angle``, ``d_sigma`` and ``angle_sigma`` NaN at the
        rejected pixels of each reflection.  ``amplitude`` (the peak strength, which
        stays a valid measurement) is kept.  Strain, if present, is recomputed.

    Raises
    ------
    ValueError
        On negative tolerances or a reference of the wrong shape.
    """
    _check_maps(maps)
    if not (math.isfinite(d_tolerance) and d_tolerance > 0):
        raise ValueError(f"d_tolerance must be a positive fraction, got {d_tolerance!r}")
    if not (math.isfinite(angle_tolerance) and angle_tolerance > 0):
        raise ValueError(f"angle_tolerance must be positive degrees, got {angle_tolerance!r}")
    min_neighbors = _check_int(min_neighbors, "min_neighbors")
    if min_neighbors > 8:
        raise ValueError(f"min_neighbors must be at most 8, got {min_neighbors}")
    n = maps.n_reflections
    refl = as_reflections(maps.reflections, name="reflections")
    if reference is None:
        # Medians of deviations from the analysed reflections, so that angles near ±180°
        # are not split in two by the wrap.
        d = _numpy(maps.d_spacing).reshape(n, -1)
        dev = _wrap_degrees(_numpy(maps.angle).reshape(n, -1) - g_angle(refl)[:, None])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN reflection → NaN
            ref_d = np.nanmedian(d, axis=1)
            ref_angle = g_angle(refl) + np.nanmedian(dev, axis=1)
    else:
        ref = as_reflections(reference, name="reference")
        if ref.shape != refl.shape:
            raise ValueError(f"reference must have shape {refl.shape}, got {ref.shape}")
        ref_d, ref_angle = g_spacing(ref), g_angle(ref)
    extra = (1,) * (np.ndim(maps.d_spacing) - 1)
    ref_d = ref_d.reshape(n, *extra)
    ref_angle = ref_angle.reshape(n, *extra)
    with np.errstate(invalid="ignore"):
        good = (np.abs(maps.d_spacing / ref_d - 1.0) <= d_tolerance) & (
            np.abs(_wrap_degrees(maps.angle - ref_angle)) <= angle_tolerance
        )
    if min_neighbors:
        kernel = np.ones((3, 3))
        kernel[1, 1] = 0

        def enough_neighbours(valid):
            k = kernel.reshape((1,) * (valid.ndim - 2) + kernel.shape)
            count = ndimage.convolve(valid.astype(np.int16), k.astype(np.int16), mode="constant")
            return valid & (count >= min_neighbors)

        good = _per_frame(good, enough_neighbours, bool)
    fields = {
        name: np.where(good, getattr(maps, name), np.nan)
        for name in ("d_spacing", "angle", "d_sigma", "angle_sigma")
    }
    record = {
        "clean": {
            "d_tolerance": float(d_tolerance),
            "angle_tolerance": float(angle_tolerance),
            "reference_d_nm": np.ravel(ref_d).tolist(),
            "reference_angle_deg": np.ravel(ref_angle).tolist(),
            "min_neighbors": min_neighbors,
        }
    }
    return _derived(maps, record, **fields)


# --------------------------------------------------------------------- smooth


def _normalized_filter(a: np.ndarray, filt) -> np.ndarray:
    """NaN-aware linear filter: filter(values·valid) / filter(valid), NaN stays NaN."""
    a = np.asarray(a, dtype=np.float64)
    valid = np.isfinite(a)
    num = filt(np.where(valid, a, 0.0))
    den = filt(valid.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out


def _nan_median_filter(a: np.ndarray, size: int) -> np.ndarray:
    """Median of the finite values in a ``size × size`` neighbourhood; NaN stays NaN."""
    a = np.asarray(a, dtype=np.float64)
    lo = (size - 1) // 2
    hi = size - 1 - lo
    pad = [(0, 0)] * (a.ndim - 2) + [(lo, hi), (lo, hi)]
    padded = np.pad(a, pad, constant_values=np.nan)
    out = np.empty_like(a)
    lead = a.shape[:-2]
    # One 2-D map at a time keeps the size²-fold window view small.
    for idx in np.ndindex(*lead):
        view = np.lib.stride_tricks.sliding_window_view(padded[idx], (size, size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[idx] = np.nanmedian(view.reshape(*view.shape[:2], -1), axis=-1)
    out[~np.isfinite(a)] = np.nan
    return out


def _smoother(method: str, size):
    if method == "median":
        return lambda a: _nan_median_filter(a, size)
    if method == "block":

        def filt(x):
            sizes = (1,) * (x.ndim - 2) + (size, size)
            return ndimage.uniform_filter(x, size=sizes, mode="constant", cval=0.0)

    else:

        def filt(x):
            sigmas = (0,) * (x.ndim - 2) + (size, size)
            return ndimage.gaussian_filter(x, sigma=sigmas, mode="constant", cval=0.0)

    return lambda a: _normalized_filter(a, filt)


def smooth(maps: LatticeMaps, size, method: str = "block") -> LatticeMaps:
    """NaN-aware spatial smoothing of the maps.

    The local reciprocal vectors ``(gy, gx)`` are smoothed and converted back to spacing
    and angle (so that angles near ±180° average correctly); amplitude and the
    uncertainties are smoothed like values.  Linear filters use normalized convolution
    (only finite neighbours count, the edges are not padded with zeros); ``"median"``
    takes the median of the finite neighbours.  Pixels that are NaN stay NaN.

    Parameters
    ----------
    maps : LatticeMaps
        Input maps (not modified).
    size : int or float
        In map pixels: the side of the square for ``"block"`` and ``"median"``
        (integer ≥ 1), the Gaussian standard deviation for ``"gaussian"`` (> 0).
    method : {"block", "gaussian", "median"}
        Filter.

    Returns
    -------
    LatticeMaps
        Smoothed copy; strain, if present, recomputed from the smoothed vectors.  The
        ``d_sigma`` and ``angle_sigma`` maps are local means, not reduced by the
        averaging (neighbouring windows overlap, so their errors are correlated).

    Raises
    ------
    ValueError
        On an unknown ``method`` or a non-positive ``size``.
    """
    _check_maps(maps)
    if method not in _SMOOTH_METHODS:
        raise ValueError(f"method must be one of {_SMOOTH_METHODS}, got {method!r}")
    if method == "gaussian":
        if isinstance(size, bool) or not (
            isinstance(size, int | float | np.number) and math.isfinite(size) and size > 0
        ):
            raise ValueError(f"size must be a positive standard deviation (map px), got {size!r}")
        size = float(size)
    else:
        size = _check_int(size, "size", minimum=1)
    func = _smoother(method, size)
    d = maps.d_spacing
    a = np.radians(maps.angle)
    gy = _per_frame(-np.sin(a) / d, func, np.float64)
    gx = _per_frame(np.cos(a) / d, func, np.float64)
    dtype = np.result_type(getattr(d, "dtype", np.float64), np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        new_d = 1.0 / np.hypot(gy, gx)
        new_angle = np.degrees(np.arctan2(-gy, gx))
    fields = {"d_spacing": new_d.astype(dtype), "angle": new_angle.astype(dtype)}
    for name in ("amplitude", "d_sigma", "angle_sigma"):
        fields[name] = _per_frame(getattr(maps, name), func, np.float64).astype(dtype)
    record = {"smooth": {"size": size, "method": method}}
    return _derived(maps, record, **fields)


# ---------------------------------------------------------------------- masks


def otsu_threshold(values, *, bins: int = 256) -> float:
    """Otsu's threshold: the split maximising the between-class variance.

    Parameters
    ----------
    values : array_like
        Samples; NaN and infinities are ignored.
    bins : int
        Histogram bins.

    Returns
    -------
    float
        The threshold, in the units of ``values`` (values above it form the upper class).
        Where the criterion is flat (an empty gap between the classes), the middle of
        the plateau within 0.1 % of its maximum.

    Raises
    ------
    ValueError
        If fewer than two distinct finite values are given.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2 or v.min() == v.max():
        raise ValueError("values must hold at least two distinct finite numbers")
    hist, edges = np.histogram(v, bins=bins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)[:-1]
    w1 = v.size - w0
    s0 = np.cumsum(hist * centers)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] + hist[-1] * centers[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    # Between well-separated classes the criterion is flat over the empty gap; take the
    # middle of the (near-)maximal plateau rather than wherever round-off puts the argmax.
    plateau = np.nonzero(between >= (1.0 - 1e-3) * between.max())[0]
    return float(np.median(edges[1:][plateau]))


def _square_dilation(m: np.ndarray) -> np.ndarray:
    """``ndimage.binary_dilation(m, structure=np.ones((3, 3)))``: the square is separable
    (one pass along each axis; zero outside).
    """
    row = m.copy()
    row[:, 1:] |= m[:, :-1]
    row[:, :-1] |= m[:, 1:]
    out = row.copy()
    out[1:] |= row[:-1]
    out[:-1] |= row[1:]
    return out


def _square_erosion(m: np.ndarray) -> np.ndarray:
    """``ndimage.binary_erosion(m, structure=np.ones((3, 3)))`` (zero outside)."""
    return ~_square_dilation(np.pad(~m, 1, constant_values=True))[1:-1, 1:-1]


def _fill_holes(m: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes(m)``: the background not 4-connected to the border."""
    labels, count = ndimage.label(~m)
    if not count:
        return m
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    hole = np.ones(count + 1, dtype=bool)
    hole[border] = False
    hole[0] = False
    return m | hole[labels]


def _morphology(mask2d: np.ndarray, opening: int, closing: int, fill_holes: bool, min_size: int):
    out = mask2d
    # The default discs of radius 1 are 3 × 3 squares (see _disk): separable, done with
    # whole-array shifts, a few times faster than ndimage's general binary morphology.
    if opening == 1:
        out = _square_dilation(_square_erosion(out))
    elif opening:
        out = ndimage.binary_opening(out, structure=_disk(opening))
    if closing:
        # Pad so that closing does not glue objects to the image border.
        pad = closing + 1
        padded = np.pad(out, pad)
        if closing == 1:
            padded = _square_erosion(_square_dilation(padded))
        else:
            padded = ndimage.binary_closing(padded, structure=_disk(closing))
        out = padded[pad:-pad, pad:-pad]
    if fill_holes:
        out = _fill_holes(out)
    if min_size > 1:
        labels, count = ndimage.label(out)
        if count:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            out = sizes[labels] >= min_size
    return out


def _disc_footprint(radius: float) -> np.ndarray:
    r = max(1, math.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return np.hypot(yy, xx) <= radius + 0.5


def _disc_rows(footprint: np.ndarray) -> list[tuple[int, int]]:
    """``(dy, half width)`` of each row of a disc footprint that is not empty.

    ``dy`` is the row's offset from the centre; a disc's row is one run of pixels
    centred on the column of the centre, ``2 · half + 1`` long.
    """
    r = footprint.shape[0] // 2
    counts = footprint.sum(axis=1)
    return [(dy, int(n) // 2) for dy, n in zip(range(-r, r + 1), counts, strict=True) if n]


def _footprint_at(footprint: np.ndarray, at: tuple, shape: tuple):
    """Flat indices ``(n, k)`` of the ``k`` footprint pixels around each of ``n`` pixels
    ``at`` of a map of ``shape``, clamped to the map (scipy's ``mode="nearest"``); in
    chunks of at most 2**20 indices, each with its slice of ``at``.
    """
    r = footprint.shape[0] // 2
    h, w = shape
    dy, dx = np.nonzero(footprint)
    ys, xs = at
    chunk = max(1, 2**20 // dy.size)
    for start in range(0, ys.size, chunk):
        part = slice(start, start + chunk)
        row = np.clip(ys[part, None] + (dy - r), 0, h - 1)
        col = np.clip(xs[part, None] + (dx - r), 0, w - 1)
        yield part, row * w + col


def _sum_buffer(shape: tuple, radius: int):
    """A zero buffer for :func:`_disc_sums_at` of one map of ``shape`` ``(h, w)``, and
    the view of it where the map's values go (complex: a map in the real part and
    another in the imaginary part are summed in one pass).

    ``radius`` rows above and below, ``radius + 1`` columns on the left (a row's sum is a
    difference of running sums) and ``radius`` on the right.  The caller writes the
    values into the view, so that no padded copy of them is made.
    """
    h, w = shape
    padded = np.zeros((h + 2 * radius, w + 2 * radius + 1), dtype=np.complex128)
    return padded, padded[radius : radius + h, radius + 1 : radius + 1 + w]


def _disc_sums_at(padded: np.ndarray, footprint: np.ndarray, at: tuple) -> np.ndarray:
    """``ndimage.convolve(v, footprint, mode="constant")[at]`` of the map ``v`` held in
    ``padded`` (from :func:`_sum_buffer` with the footprint's radius), which is
    overwritten by its running sums along x.

    ``at`` is a pair of index arrays, as from ``np.nonzero``.  Row by row of the disc,
    from running sums along x: the footprint of the crystal level spans two windows
    (33 × 33 map pixels at window 128, step 8) and is read only along the crystal's
    edge.  The sums agree with the direct ones to round-off (~1e-12 relative).
    """
    r = footprint.shape[0] // 2
    running = np.cumsum(padded, axis=-1, out=padded)
    width = running.shape[-1]
    ys, xs = at
    flat = (ys + r) * width + (xs + r)  # each pixel's index in ``running``
    running = running.ravel()
    total = np.zeros(len(ys), dtype=running.dtype)
    for dy, half in _disc_rows(footprint):
        total += running.take(flat + (dy * width + half + 1))
        total -= running.take(flat + (dy * width - half))
    return total


def _near(where: np.ndarray, radius: float) -> np.ndarray:
    """``ndimage.binary_dilation(w, structure=_disc_footprint(radius))`` of each map ``w``
    of a stack ``(..., h, w)``, exactly.

    Row by row of the disc: ``where`` dilated along x by the row's half width (from
    running counts, the same cost at any width), shifted by the row's offset along y.
    Faster than the distance transform it first replaced (~3 ms against ~12 ms on a
    512² map), and than a running maximum (numpy passes without the GIL).
    """
    out = np.zeros_like(where, dtype=bool)
    if not where.any():
        return out
    h, w = where.shape[-2:]
    rows = _disc_rows(_disc_footprint(radius))
    reach = max(half for _, half in rows)
    # Running counts along x, zero on the left and constant on the right of the map:
    # a run [x - half, x + half] holds a pixel of ``where`` when the count grows over it.
    dtype = np.int16 if w < 2**15 else np.int64
    count = np.zeros((*where.shape[:-1], w + 2 * reach + 1), dtype=dtype)
    np.cumsum(where, axis=-1, dtype=dtype, out=count[..., reach + 1 : reach + 1 + w])
    count[..., reach + 1 + w :] = count[..., reach + w : reach + w + 1]
    along_x = {}
    for dy, half in rows:
        if half not in along_x:
            right = count[..., reach + 1 + half : reach + 1 + half + w]
            along_x[half] = right > count[..., reach - half : reach - half + w]
        spread = along_x[half]
        if abs(dy) >= h:
            continue  # a row of the disc beyond a map shorter than the disc
        if dy >= 0:
            out[..., dy:, :] |= spread[..., : h - dy, :]
        else:
            out[..., :dy, :] |= spread[..., -dy:, :]
    return out


def _percentile_at_most_at(
    values: np.ndarray, percentile: float, footprint: np.ndarray, at: tuple, bound
) -> np.ndarray:
    """``ndimage.percentile_filter(values, ..., mode="nearest")[at] <= bound``.

    ``values`` is one map ``(h, w)``, ``at`` a pair of index arrays, ``bound`` one value
    per pixel.  The ``rank``-th smallest value of a footprint (scipy's rank) is at most
    ``bound`` exactly when at least ``rank + 1`` of its values are: a count, by
    gathering each footprint at the pixels ``at`` only (the few edge pixels that bounds
    leave open), instead of a partition of each footprint.
    """
    size = int(footprint.sum())
    rank = size - 1 if percentile >= 100 else int(float(size) * percentile / 100.0)
    bound = np.asarray(bound)
    count = np.empty(len(at[0]), dtype=np.int64)
    for part, index in _footprint_at(footprint, at, values.shape):
        count[part] = np.count_nonzero(values.ravel().take(index) <= bound[part, None], axis=1)
    return count >= rank + 1


def _gaussian_in_place(x: np.ndarray) -> np.ndarray:
    """The crystal mask's smoothing: Gaussian of σ = 1 map pixel over the two last
    axes, zero outside the map, in place.
    """
    return ndimage.gaussian_filter(
        x, 1.0, mode="constant", cval=0.0, axes=(-2, -1), output=x, truncate=_TRUNCATE
    )


def _normalisation(valid: np.ndarray) -> np.ndarray:
    """``_gaussian_in_place(valid.astype(float))`` of one map ``(h, w)``, pixel for pixel.

    Rows whose whole Gaussian reach along y holds one and the same row of ``valid``
    (the rows of a map between its NaN borders) all give the same filtered row: it is
    filtered once, from a slab of ``2 · reach + 1`` rows; the other rows from slabs
    that reach ``reach`` rows beyond them (the filter's arithmetic for a pixel depends
    only on the values within its reach).
    """
    h = valid.shape[0]
    r = int(_TRUNCATE + 0.5)  # scipy's radius for σ = 1
    out = np.empty(valid.shape)
    same = np.zeros(h, dtype=bool)
    run = np.concatenate([[0], np.cumsum(np.any(valid[1:] != valid[:-1], axis=1))])
    if h > 2 * r:
        inside = np.arange(r, h - r)
        same[inside] = run[inside - r] == run[inside + r]
    start = 0
    while start < h:
        stop = start + 1
        if same[start]:
            while stop < h and same[stop] and run[stop] == run[start]:
                stop += 1
            out[start:stop] = _gaussian_in_place(valid[start - r : start + r + 1].astype(float))[r]
        else:
            while stop < h and not same[stop]:
                stop += 1
            lo, hi = max(start - r, 0), min(stop + r, h)
            slab = _gaussian_in_place(valid[lo:hi].astype(float))
            out[start:stop] = slab[start - lo : stop - lo]
        start = stop
    return out


def _smoothed_log(amp: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """``exp`` of the NaN-aware Gaussian (σ = 1 map pixel) of ``log(amp)`` over ``finite``,
    for each map of a stack ``(n, h, w)``; NaN elsewhere.

    The normalisation (the filtered ``finite``) is filtered once for maps that share
    their finite pixels, as a movie's reflections mostly do, and only where it varies
    (:func:`_normalisation`).
    """
    # In place: fresh arrays of a stack of maps cost page faults as much as the passes.
    num = np.zeros(amp.shape)
    np.log(amp, out=num, where=finite, dtype=np.float64)  # float32 maps: a float64 log
    _gaussian_in_place(num)
    dens = []  # (finite pixels, filtered normalisation) of each map
    for values, valid in zip(num, finite, strict=True):
        den = next((d for v, d in dens if np.array_equal(v, valid)), None)
        if den is None:
            den = _normalisation(valid)
            dens.append((valid, den))
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(values, den, out=values)
    np.copyto(num, np.nan, where=~finite)
    return np.exp(num, out=num)


def _shows_crystal(amp: np.ndarray, significant: float, reach: float) -> np.ndarray:
    """Where each amplitude map ``(my, mx)`` of a stack ``(..., my, mx)`` shows crystal
    (see step 1 of :func:`crystal_mask`); ``reach`` is ``window/2`` in map pixels.
    """
    shape = amp.shape
    # The maps' own precision (the engine's float32) for the tests of each window; the
    # smoothing computes in float64.
    amp = np.asarray(amp)
    if amp.dtype.kind != "f":
        amp = amp.astype(np.float64)
    amp = amp.reshape(-1, *shape[-2:])
    finite = (amp > 0) & (amp < np.inf)
    out = finite.copy()
    # A map whose every window is above significance (with a margin for round-off) is
    # crystal throughout: the smoothing below averages logarithms, so it cannot bring a
    # window under.  Real images that the crystal fills are mostly such maps.
    if significant > 0:
        todo = np.flatnonzero((amp <= significant * (1 + 1e-5)).any(axis=(-2, -1)))
    else:
        todo = np.arange(len(amp))
    if todo.size:
        # Neighbouring windows share most of their pixels, but each amplitude divides by
        # its own few-bin background estimate: smoothing log(amplitude) over one map
        # pixel (NaN-aware) takes that noise out and keeps the place of the edge.
        whole = todo.size == len(amp)  # no copy of the stack when every map is judged
        smoothed = _smoothed_log(amp if whole else amp[todo], finite if whole else finite[todo])

        # One map at a time: the edge test's gathers stay in cache (threads did not
        # overlap them: short numpy calls, and ndimage holds the GIL).
        for i, index in enumerate(todo):
            out[index] = _edge_test(smoothed[i], finite[index], significant, reach)
    return out.reshape(shape)


def _identity(dtype, reduce):
    """The value that ``reduce`` (``np.maximum`` or ``np.minimum``) leaves the other
    operand unchanged with, for ``dtype`` (bool or float).
    """
    if np.dtype(dtype).kind == "b":
        return reduce is np.minimum
    return -np.inf if reduce is np.maximum else np.inf


def _blocks(values: np.ndarray, tile: int, reduce, where=None) -> np.ndarray:
    """``reduce`` (``np.maximum`` or ``np.minimum``) of a map over blocks of
    ``tile × tile`` pixels, of the pixels ``where`` only if given (the others and the
    last blocks' padding count as the reduction's identity).
    """
    h, w = values.shape
    fill = _identity(values.dtype, reduce)
    if where is None and h % tile == 0 and w % tile == 0:
        padded = values  # read only
    else:
        padded = np.full((-(-h // tile) * tile, -(-w // tile) * tile), fill, dtype=values.dtype)
        np.copyto(padded[:h, :w], values, where=True if where is None else where)
    # Strided passes, one per row and column of a block (a reduction over the block
    # axes of a reshaped array is several times slower).
    cols = padded[:, ::tile].copy()
    for k in range(1, tile):
        reduce(cols, padded[:, k::tile], out=cols)
    blocks = cols[::tile].copy()
    for k in range(1, tile):
        reduce(blocks, cols[k::tile], out=blocks)
    return blocks


def _spread(blocks: np.ndarray, tile: int, reach: int, reduce) -> np.ndarray:
    """Each block's ``reduce`` over the blocks that hold a pixel within ``reach`` pixels
    (along each axis) of one of its own: block ``(i // tile, j // tile)`` bounds the
    values within ``reach`` of pixel ``(i, j)``.
    """
    size = 2 * -(-reach // tile) + 1
    spread = ndimage.maximum_filter if reduce is np.maximum else ndimage.minimum_filter
    return spread(blocks, size=size, mode="constant", cval=_identity(blocks.dtype, reduce))


def _edge_test(amp: np.ndarray, finite: np.ndarray, significant: float, reach: float):
    """:func:`_shows_crystal` of one smoothed amplitude map ``(my, mx)``."""
    peak = finite & (amp > significant)
    # Film (a window without a significant peak) within reach: the edge test applies.
    near_film = _near(finite & ~peak, reach)
    edge = peak & near_film  # where the level is read
    if not edge.any():
        return peak
    # A window at the edge must reach a quarter of the crystal level, the larger of two
    # estimates (so: a quarter of each): the geometric mean amplitude of the windows
    # wholly in the crystal (no film within reach) within one window, or of all of them
    # where none is that close (so that a patch of film is judged against the crystal,
    # not against itself); and the strong windows within reach (the 90th percentile,
    # film counting as 0).  Both are read at the edge only, and most edge windows are
    # settled by bounds over blocks of 8 × 8 map pixels: a geometric mean lies between
    # the smallest and largest of its values, a percentile is at most their largest.
    inner = peak & ~near_film
    ys, xs = np.nonzero(edge)
    level_disc = _disc_footprint(2 * reach)
    tile = _BOUND_TILE
    by, bx = ys // tile, xs // tile
    # An inner window in the blocks of 4 × 4 that lie within the square inscribed in an
    # edge window's level disc makes the disc's mean its own (no fallback).
    small = 4
    around = (int((2 * reach + 0.5) / math.sqrt(2)) - small + 1) // small
    if around >= 0:
        blocks = _spread(_blocks(inner, small, np.maximum), small, small * around, np.maximum)
        has_inner = blocks[ys // small, xs // small] > 0
    else:
        has_inner = np.zeros(ys.size, dtype=bool)
    values = np.where(peak, amp, 0.0)  # film counts as 0 in the percentile
    strongest = _blocks(values, tile, np.maximum)
    r = level_disc.shape[0] // 2
    a = amp[ys, xs]
    # The mean's round-off (running sums along 512-px rows of logs: ~1e-12 relative)
    # stays far below these margins.  The largest inner window is at most the largest
    # significant one.
    high = a >= _EDGE_POWER_FRACTION * (1 + 1e-6) * _spread(strongest, tile, r, np.maximum)[by, bx]
    weakest = _blocks(amp, tile, np.minimum, where=inner)
    low = a < _EDGE_POWER_FRACTION * (1 - 1e-6) * _spread(weakest, tile, r, np.minimum)[by, bx]
    reaches = has_inner & high
    todo = ~(has_inner & (high | low))
    if todo.any():
        at = (ys[todo], xs[todo])
        # The log amplitudes of the inner windows (real part) and their count
        # (imaginary part), summed in one pass.
        padded, level = _sum_buffer(amp.shape, r)
        logs = np.zeros(amp.shape)
        np.log(amp, out=logs, where=inner)  # contiguous: the fast loop
        level.real = logs
        level.imag = inner
        # The fallback, should a disc hold no inner window: read before the sums
        # overwrite the logs.
        fallback = logs[inner].mean() if inner.any() else None
        sums = _disc_sums_at(padded, level_disc, at)
        total, count = sums.real, sums.imag
        mean = total / np.maximum(count, 1.0)
        alone = count <= 0.5
        if alone.any():
            # The fallback: the whole map's inner windows, or its strongest window.
            if fallback is not None:
                mean[alone] = fallback
            else:
                mean[alone] = np.log(np.max(amp[peak], initial=1.0))
        reaches[todo] = amp[at] >= _EDGE_POWER_FRACTION * np.exp(mean)
    # The percentile at most amp / fraction (a power of two: exact); certainly so where
    # that bound is at least the largest value near the window.
    pct_disc = _disc_footprint(reach)
    largest = _spread(strongest, tile, pct_disc.shape[0] // 2, np.maximum)[by, bx]
    bound = a / _EDGE_POWER_FRACTION
    sure = reaches & (bound >= largest)
    check = reaches & ~sure
    if check.any():
        sure[check] = _percentile_at_most_at(
            values, _LEVEL_PERCENTILE, pct_disc, (ys[check], xs[check]), bound[check]
        )
    nearby = np.zeros_like(edge)
    nearby[ys[sure], xs[sure]] = True
    return peak & (~near_film | nearby)


def crystal_mask(
    maps: LatticeMaps,
    *,
    threshold=None,
    min_reflections: int = 1,
    min_size: int | None = None,
    closing: int = 1,
    opening: int = 1,
    fill_holes: bool = True,
    margin: float = 0.0,
) -> np.ndarray:
    """Crystalline map pixels, from the local peak strength ``maps.amplitude``.

    1. Threshold: a pixel shows reflection ``k`` where ``amplitude_k`` exceeds its
       threshold.  Automatic by default, adapted to each place of the image:

       - ``log(amplitude)`` is first smoothed over one map pixel (NaN-aware), which
         takes out the noise of each window's own background estimate;
       - a window shows the reflection when its amplitude is *significant*: above the
         analysis' ``min_amplitude`` (10 by default, a peak ten times its background),
         the test that already decides whether the window has a finite ``d``;
       - where a window without a significant peak (film, vacuum) lies within
         ``window/2`` image pixels, the window must also reach a quarter of the local
         crystal level ``L``: the larger of the 90th percentile of the amplitudes
         within ``window/2`` and the geometric mean amplitude of the windows that lie
         wholly in the crystal within one window (or anywhere).  A window centred on a
         crystal edge holds half crystal and has a quarter of the peak power inside.

       A crystal that fills the image is thus kept wherever it shows a significant
       lattice peak, however much its contrast varies (thickness, tilt, focus); only
       next to film does the edge test trim the windows that reach over the edge.
    2. A pixel is crystalline if at least ``min_reflections`` reflections show.
    3. Per frame: binary opening then closing with discs of the given radii, hole
       filling, removal of objects smaller than ``min_size`` map pixels.
    4. Erosion by ``margin`` (image pixels), for example ``window/2`` to keep only the
       map pixels whose whole window lies in the crystal.

    Parameters
    ----------
    maps : LatticeMaps
        Input maps.
    threshold : float or array_like, optional
        Amplitude threshold (power signal-to-noise ratio, dimensionless), one value or
        one per reflection, the same everywhere.  Default: automatic (see above).
    min_reflections : int
        Minimum number of reflections present for a crystalline pixel.
    min_size : int, optional
        Smallest object kept, in map pixels.  Default: a quarter of the window area,
        ``(window/step)² / 4``.
    closing, opening : int
        Radii of the closing and opening discs in map pixels (0: skip).
    fill_holes : bool
        Fill holes enclosed by crystal.
    margin : float
        Erosion distance in image pixels, applied last (default 0: every window
        centred on the crystal is kept).

    Returns
    -------
    numpy.ndarray
        Boolean mask of the map shape ``(..., my, mx)``.

    Raises
    ------
    ValueError
        On invalid options.
    """
    _check_maps(maps)
    n = maps.n_reflections
    min_reflections = _check_int(min_reflections, "min_reflections", minimum=1)
    if min_reflections > n:
        raise ValueError(f"min_reflections ({min_reflections}) exceeds the {n} reflections")
    opening = _check_int(opening, "opening")
    closing = _check_int(closing, "closing")
    cells = maps.window / maps.step
    min_size = math.ceil(cells**2 / 4) if min_size is None else min_size
    min_size = _check_int(min_size, "min_size")
    if isinstance(margin, bool) or not isinstance(margin, int | float | np.number):
        raise TypeError(f"margin must be a number of image pixels, got {margin!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be >= 0 image pixels, got {margin!r}")

    amp = _numpy(maps.amplitude)
    extra = (1,) * (amp.ndim - 1)
    if threshold is None:
        significant = float(maps.parameters.get("min_amplitude", _SIGNIFICANT_AMPLITUDE))
        present = _shows_crystal(amp, significant, cells / 2)
    else:
        thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n,)).copy()
        if not np.all(np.isfinite(thr)):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
        with np.errstate(invalid="ignore"):
            present = amp.astype(np.float64) > thr.reshape(n, *extra)  # NaN compares False
    mask = present.sum(axis=0, dtype=np.int16 if n < 2**15 else np.int64) >= min_reflections

    erode = round(margin / maps.step)
    out = np.empty_like(mask)
    for idx in np.ndindex(*mask.shape[:-2]):
        m = _morphology(mask[idx], opening, closing, fill_holes, min_size)
        if erode:
            m = ndimage.binary_erosion(m, structure=_disk(erode), border_value=1)
        out[idx] = m
    return out


def intensity_mask(
    image,
    threshold: float,
    *,
    sigma: float = 4.0,
    opening: int = 2,
    closing: int = 2,
    dark: bool = False,
    percentiles=(1.0, 99.0),
) -> np.ndarray:
    """Mask from image intensity: smooth, normalise to [0, 1], threshold, clean up.

    Parameters
    ----------
    image : array_like
        Image ``(..., y, x)``; each 2-D frame is processed on its own.
    threshold : float
        Threshold on the normalised intensity, in [0, 1].
    sigma : float
        Gaussian smoothing in image pixels before thresholding; choose it larger than
        the lattice period so that fringes do not cut the mask (0: no smoothing).
    opening, closing : int
        Radii of the binary opening and closing discs, image pixels (0: skip).
    dark : bool
        Select pixels *below* the threshold (a particle darker than the film, as in
        bright-field HRTEM); by default pixels above it are selected.
    percentiles : tuple of float
        The smoothed intensity is mapped linearly so that these percentiles become 0
        and 1 (clipped), which ignores hot and dead pixels.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the image's shape.

    Raises
    ------
    TypeError
        If ``image`` is not real-valued.
    ValueError
        On a threshold outside [0, 1], negative sizes or bad percentiles.
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"image must be a real-valued numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions (y, x), got {arr.shape}")
    if not (0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be in [0, 1] (normalised intensity), got {threshold}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be >= 0 pixels, got {sigma!r}")
    opening = _check_int(opening, "opening")
    closing = _check_int(closing, "closing")
    lo_p, hi_p = percentiles
    if not (0 <= lo_p < hi_p <= 100):
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    out = np.empty(arr.shape, dtype=bool)
    for idx in np.ndindex(*arr.shape[:-2]):
        frame = arr[idx].astype(np.float64)
        if sigma:
            frame = ndimage.gaussian_filter(frame, sigma, mode="reflect")
        lo, hi = np.nanpercentile(frame, [lo_p, hi_p])
        norm = np.clip((frame - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(frame)
        m = norm < threshold if dark else norm > threshold
        out[idx] = _morphology(m, opening, closing, fill_holes=False, min_size=0)
    return out


def mask_to_map(mask, step: int) -> np.ndarray:
    """Sample an image-sized mask on the map grid.

    Map pixel ``(i, j)`` takes the mask value at image pixel ``(i·step, j·step)``, the
    centre of its window, giving shape ``(..., ceil(H/step), ceil(W/step))``.

    Parameters
    ----------
    mask : array_like of bool
        Image-sized mask ``(..., H, W)``.
    step : int
        Map step in image pixels.

    Returns
    -------
    numpy.ndarray
        Boolean map-sized mask.
    """
    step = _check_int(step, "step", minimum=1)
    m = np.asarray(mask)
    if m.ndim < 2:
        raise ValueError(f"mask must have at least 2 dimensions (y, x), got {m.shape}")
    return m[..., ::step, ::step].astype(bool)


def apply_mask(maps: LatticeMaps, mask) -> LatticeMaps:
    """Set every map to NaN outside a mask.

    Parameters
    ----------
    maps : LatticeMaps
        Input maps (not modified).
    mask : array_like of bool
        True where values are kept; map-sized, broadcastable to ``(..., my, mx)``
        (use :func:`mask_to_map` for an image-sized mask).

    Returns
    -------
    LatticeMaps
        Copy with all fields (and strain) NaN outside the mask.

    Raises
    ------
    ValueError
        If the mask does not broadcast to the map shape.
    """
    _check_maps(maps)
    m = np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"mask must be boolean, got dtype {m.dtype}")
    shape = _map_shape(maps)
    try:
        np.broadcast_to(m, shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {m.shape} does not match the map shape {shape}; "
            "sample an image-sized mask with mask_to_map(mask, step)"
        ) from None
    fields = {name: np.where(m, getattr(maps, name), np.nan) for name in _FIELDS}
    record = {"apply_mask": {"kept_fraction": float(np.broadcast_to(m, shape).mean())}}
    return _derived(maps, record, kept=m, **fields)
