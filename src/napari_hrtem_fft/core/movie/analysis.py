"""The movie analysis: one generator, frame by frame, for every front end.

:func:`iter_analyze_movie` is the movie analysis.  It checks its inputs at the call,
then, as a generator, measures the drift when asked, analyses the frames one by one
(tracking the lattice from frame to frame if asked), post-processes each frame with an
optional hook, collects the maps (in memory or streamed to a zarr store) and returns a
:class:`~napari_hrtem_fft.core.movie.result.MovieResult`.  It yields a
:class:`~napari_hrtem_fft.core.movie.result.MovieProgress` after every step, with the
frame's maps; closing it stops before the next step (a store is then left without its
completion marker).  The lattice-map widget runs it in a napari ``thread_worker``, the
command line and :func:`analyze_movie` run it to the end.
"""

from __future__ import annotations

import inspect
import logging
import numbers
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from ..maps import LatticeMaps, map_shape
from ..reciprocal import as_reflections, g_from_spacing_angle
from ..statistics import weighted_median
from .result import MovieProgress, MovieResult
from .storage import (
    MovieMapsCollector,
    _is_dask,
    _open_store,
    _refuse_existing,
    movie_parameters,
    read_zarr_maps,
    to_zarr,
    write_zarr_record,
)

__all__ = ["analyze_movie", "frame_lattice", "iter_analyze_movie"]

logger = logging.getLogger(__name__)

# Frames registered per call of register_frames (each call re-reads the reference
# frame): the granularity of progress and of stopping while the drift is measured.
_DRIFT_BATCH = 8

#: What may be passed as ``drift``: besides None or an array, "measure".
MEASURE = "measure"


def _check_stack(stack) -> tuple[int, int, int]:
    shape = getattr(stack, "shape", None)
    if shape is None:
        raise TypeError(f"stack must be an array (t, y, x), got {type(stack).__name__}")
    if len(shape) != 3:
        raise ValueError(f"stack must have 3 dimensions (t, y, x), got shape {tuple(shape)}")
    dtype = getattr(stack, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "iuf":
        raise TypeError(f"stack must hold real numbers, got dtype {dtype}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _frame_indices(frames, t: int) -> np.ndarray:
    """Frame numbers selected by ``frames`` (None, slice, range or integers)."""
    if frames is None:
        return np.arange(t)
    if isinstance(frames, slice):
        idx = np.arange(t)[frames]
    elif isinstance(frames, numbers.Integral) and not isinstance(frames, bool):
        idx = np.array([int(frames)])
    else:
        idx = np.asarray(list(frames) if isinstance(frames, range) else frames)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"frames must be a slice, a range or integers, got {frames!r}")
        idx = idx.astype(np.intp)
        if np.any((idx < -t) | (idx >= t)):
            raise ValueError(f"frames {idx.tolist()} out of range for a movie of {t} frames")
        idx = np.where(idx < 0, idx + t, idx)
    if idx.size == 0:
        raise ValueError(f"frames {frames!r} selects no frame of a movie of {t} frames")
    return idx


def _frame(stack, k: int) -> np.ndarray:
    frame = stack[int(k)]
    if _is_dask(frame):
        frame = frame.compute()
    return np.asarray(frame)


def _found_g(maps: LatticeMaps, mask: np.ndarray | None, min_windows: int) -> np.ndarray:
    """Robust lattice of one frame: amplitude-weighted median of the local g, ``(n, 2)``.

    Weak windows (film, crystal edges) are NaN or weigh little; the median ignores the
    rest of the outliers.  NaN for a reflection found in fewer than ``min_windows``
    windows: a lone window of noise above the amplitude threshold must not steer the
    next frame.
    """
    d = np.asarray(maps.d_spacing)
    angle = np.asarray(maps.angle)
    amp = np.asarray(maps.amplitude, dtype=np.float64)
    out = np.full((d.shape[0], 2), np.nan)
    for k in range(d.shape[0]):
        ok = np.isfinite(d[k]) & np.isfinite(angle[k]) & np.isfinite(amp[k])
        if mask is not None:
            ok &= mask
        if np.count_nonzero(ok) < min_windows:
            continue
        # g of the selected windows only: this runs once per frame of a tracked movie.
        g = g_from_spacing_angle(d[k][ok].astype(np.float64), angle[k][ok].astype(np.float64))
        w = np.maximum(amp[k][ok], 0.0)
        out[k] = [weighted_median(g[:, c], w) for c in (0, 1)]
    return out


def _check_drift(drift, t: int) -> np.ndarray | None:
    if drift is None:
        return None
    arr = np.asarray(drift, dtype=np.float64)
    if arr.shape != (t, 2):
        raise ValueError(
            f"drift must have shape ({t}, 2) as (dy, dx) pixels per frame of the stack, "
            f"got {arr.shape}"
        )
    return arr


def _check_region(region, t_stack: int, idx: np.ndarray, map_shape):
    """``(frame number -> bool mask (my, mx), one mask for all frames?)`` or ``(None, False)``."""
    if region is None:
        return None, False
    mask = np.asarray(region)
    if mask.dtype != bool:
        raise TypeError(f"region must be a boolean mask on the map grid, got dtype {mask.dtype}")
    if mask.shape[-2:] != tuple(map_shape):
        raise ValueError(
            f"region of shape {mask.shape} does not match the map grid {tuple(map_shape)}"
        )
    if mask.ndim == 2:
        return (lambda k: mask), True
    if mask.ndim == 3 and mask.shape[0] == t_stack:
        return (lambda k: mask[k]), False
    if mask.ndim == 3 and mask.shape[0] == idx.size:
        position = {int(k): i for i, k in enumerate(idx)}
        return (lambda k: mask[position[int(k)]]), False
    raise ValueError(
        f"region must be (my, mx) or (t, my, mx) with t = {t_stack} (stack) or "
        f"{idx.size} (analysed frames), got {mask.shape}"
    )


@dataclass(frozen=True)
class _MovieInputs:
    """Checked arguments of :func:`iter_analyze_movie`."""

    idx: np.ndarray  # frame numbers to analyse
    refl: np.ndarray  # (n, 2) reflections in 1/nm
    reference: np.ndarray  # (n, 2) strain reference in 1/nm
    with_strain: bool
    drift_px: np.ndarray | None  # (t_stack, 2) given
    measure: bool  # measure the drift of the analysed frames
    region_of: Callable[[int], np.ndarray] | None  # frame number -> mask (my, mx)
    static_region: bool  # one mask drawn on the frame of zero drift


def _check_movie_inputs(
    stack, reflections, step, track, frames, region, drift, correct_drift, lazy, postprocess,
    strain_reference, min_windows, analyze_options,
) -> _MovieInputs:  # fmt: skip
    from ..strain import has_two_directions

    t, h, w = _check_stack(stack)
    idx = _frame_indices(frames, t)
    refl = as_reflections(reflections)
    for name, value in (("track", track), ("correct_drift", correct_drift), ("lazy", lazy)):
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be a positive integer number of pixels, got {step!r}")
    measure = isinstance(drift, str)
    if measure and drift != MEASURE:
        raise ValueError(f"drift must be None, an array (t, 2) or {MEASURE!r}, got {drift!r}")
    drift_px = None if measure else _check_drift(drift, t)
    if correct_drift and drift is None:
        raise ValueError(f"correct_drift needs a drift: give one, or drift={MEASURE!r}")
    if lazy and (track or postprocess is not None):
        raise ValueError("lazy analyses every frame at once: it cannot track or post-process")
    if postprocess is not None and not callable(postprocess):
        raise TypeError(f"postprocess must be callable or None, got {type(postprocess).__name__}")
    region_of, static_region = _check_region(region, t, idx, map_shape((h, w), step))
    compute_strain = analyze_options.get("compute_strain", True)
    if not isinstance(compute_strain, bool | np.bool_):
        raise TypeError(f"compute_strain must be True or False, got {compute_strain!r}")
    reference = refl if strain_reference is None else as_reflections(strain_reference)
    if reference.shape != refl.shape:
        raise ValueError(
            f"strain_reference must have one (gy, gx) per reflection, shape {refl.shape}, "
            f"got {reference.shape}"
        )
    if not isinstance(min_windows, numbers.Integral) or min_windows < 1:
        raise ValueError(f"min_windows must be a positive integer, got {min_windows!r}")
    with_strain = bool(compute_strain) and has_two_directions(reference)
    return _MovieInputs(
        idx, refl, reference, with_strain, drift_px, measure, region_of, static_region
    )


def iter_analyze_movie(
    stack,
    reflections,
    *,
    pixel_size: float,
    track: bool = True,
    frames=None,
    region=None,
    drift=None,
    correct_drift: bool = False,
    strain_reference=None,
    min_windows: int = 5,
    postprocess: Callable[[LatticeMaps, np.ndarray], LatticeMaps] | None = None,
    store=None,
    overwrite: bool = False,
    lazy: bool = False,
    **analyze_options,
) -> Generator[MovieProgress, None, MovieResult]:
    """Map lattice spacing, angle and strain through a movie, step by step.

    Only one frame is in memory at a time (a dask stack is computed frame by frame):
    the caller shows progress, looks at each frame's maps, and stops by closing the
    generator.  Every argument is checked at the call, before any frame is read.

    Parameters
    ----------
    stack : array_like or dask.array.Array
        Movie ``(t, y, x)``.
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹ of the first analysed frame.
    pixel_size : float
        Pixel size in nm.
    track : bool
        If True, the reflections demodulated in each frame are the robust lattice found
        in the previous frame (amplitude-weighted median of the local g inside
        ``region``), so that changes larger than ``search`` over the movie are followed.
        A reflection found in fewer than ``min_windows`` windows of a frame keeps its
        previous value.
    frames : slice, range or sequence of int, optional
        Frames to analyse, in order (default all).
    region : array_like of bool, optional
        Where the lattice is followed: a mask on the map grid ``(my, mx)`` (drawn on the
        frame of zero drift; it moves with the drift) or one per frame ``(t, my, mx)``
        (used as given; ``t`` the stack's frames or the analysed ones).  Default: every
        window with a detected lattice.  Only used for tracking.
    drift : array_like or "measure", optional
        Drift ``(t, 2)`` as ``(dy, dx)`` pixels for every frame of ``stack`` (e.g. from
        :func:`napari_hrtem_fft.register_frames`), or ``"measure"``: registered here,
        relative to the first analysed frame, before the analysis.  Without
        ``correct_drift`` the region moves with it.
    correct_drift : bool
        Analyse a drift-corrected copy of the frames (the particle stands still in the
        maps; the copy is the result's ``corrected``) instead of moving the region.
    strain_reference : array_like, optional
        Reference reflections ``(n, 2)`` of the strain maps (default: ``reflections``), so
        that strain is relative to the same lattice in every frame.
    min_windows : int
        Fewest windows with an estimate (inside ``region``) for a reflection to count as
        found in a frame.
    postprocess : callable, optional
        ``postprocess(maps, frame) -> maps`` applied to each frame's maps after the
        lattice was found in them (masks, smoothing); ``frame`` is the analysed image.
    store : str or pathlib.Path, optional
        A zarr store to write the maps to (layout of :func:`to_zarr`): each frame is
        written as soon as it is analysed, so memory does not grow with the length of
        the movie; the result's maps are then lazy dask arrays read from the store.  It
        gets its completion marker when the last frame is written.
    overwrite : bool
        Replace an existing ``store``; otherwise an existing store is an error (raised
        before any frame is analysed).
    lazy : bool
        Analyse every frame with the same reflections in one lazy ``analyze`` graph
        (dask in, dask out; numpy input is analysed at once) instead of frame by frame:
        no tracking and no ``postprocess``; progress comes at the end.
    **analyze_options
        Options of :func:`napari_hrtem_fft.analyze`, with its defaults: ``window``,
        ``step``, ``search``, ``refine``, ``min_amplitude``, ``compute_strain``,
        ``chunks``, ``background``.

    Yields
    ------
    MovieProgress
        ``"starting"`` with the number of steps, one step per batch of registered
        frames, then one per analysed frame with its number and post-processed maps
        ``(n, my, mx)`` (``maps.parameters["found"]``: the lattice found, ``(n, 2)``
        nm⁻¹, NaN where not found).

    Returns
    -------
    MovieResult
        Maps ``(n, t, my, mx)`` relative to ``reflections`` and how they were obtained.

    Raises
    ------
    ValueError, TypeError
        On a stack that is not ``(t, y, x)``, frames out of range, a region or drift of
        the wrong shape, or invalid analysis options; at the call, before any frame.
    """
    from ..engine import analyze

    options = {"pixel_size": pixel_size, **analyze_options}
    # The engine's defaults, so that the step of the region checks is the step analysed.
    bound = inspect.signature(analyze).bind(None, None, **options)
    bound.apply_defaults()
    step = bound.arguments["step"]
    inputs = _check_movie_inputs(
        stack, reflections, step, track, frames, region, drift, correct_drift, lazy,
        postprocess, strain_reference, min_windows, analyze_options,
    )  # fmt: skip
    if lazy and store is not None:
        _refuse_existing(store, overwrite)  # written once the lazy maps are built
    root = None if store is None or lazy else _open_store(store, overwrite)
    return _analysis(
        stack, inputs, {**options, "step": step}, track=bool(track),
        correct=bool(correct_drift), lazy=bool(lazy), postprocess=postprocess,
        min_windows=int(min_windows), store=store, root=root, overwrite=overwrite,
    )  # fmt: skip


def _analysis(
    stack, inputs: _MovieInputs, options, *, track, correct, lazy, postprocess,
    min_windows, store, root, overwrite,
) -> Generator[MovieProgress, None, MovieResult]:  # fmt: skip
    idx = inputs.idx
    measure = inputs.measure and idx.size > 1
    total = idx.size * (2 if measure else 1)
    yield MovieProgress(0, total, "starting")
    drift = None if inputs.drift_px is None else inputs.drift_px[idx]
    if inputs.measure:
        drift = np.zeros((idx.size, 2))
        if measure:
            drift = yield from _measure_drift(stack, idx, total)
    mode = "none" if drift is None else ("correct" if correct else "follow")
    source, corrected, follow = stack, None, None
    if correct:
        corrected = _drift_corrected(stack, idx, drift)
        source = corrected
    elif drift is not None and inputs.static_region:
        # A single mask is drawn on the frame of zero drift; per-frame masks are used as given.
        follow = np.full((int(stack.shape[0]), 2), np.nan)
        follow[idx] = drift
    done = total - idx.size
    record = {"track": track, "frames": idx.tolist(), "drift_mode": mode}
    # What relative_to_region needs to refer a frame's phase (each frame's own
    # reflections) and to move a reference region drawn on the first frame.
    record["drift_px"] = None if drift is None else np.asarray(drift).tolist()

    if lazy:
        maps = _untracked(source, inputs, options, correct)
        maps.parameters["movie"] = record
        used = np.broadcast_to(inputs.refl, (idx.size, *inputs.refl.shape)).copy()
        record["reflections_per_frame"] = used.tolist()
        result = MovieResult(maps, used, None, idx, drift, False, mode, corrected)
        yield MovieProgress(total, total, f"{idx.size} frames analysed")
        if store is not None:
            to_zarr(result, store, overwrite=overwrite)
            result.maps = read_zarr_maps(store)
        return result

    collected = MovieMapsCollector(idx.size, group=root)
    used, found, blank = [], [], []
    g = inputs.refl.copy()
    for position, k in enumerate(idx):
        k = int(k)
        frame = np.asarray(corrected[position]) if correct else _frame(source, k)
        maps = _analyse_frame(frame, g, k, inputs, options, follow, min_windows)
        lattice = np.asarray(maps.parameters["found"], dtype=np.float64)
        used.append(np.asarray(maps.reflections, dtype=np.float64))
        found.append(lattice)
        if postprocess is not None:
            maps = postprocess(maps, frame)
        if not np.any(np.isfinite(np.asarray(maps.d_spacing))):
            blank.append(k)
        collected.add(position, maps)
        done += 1
        yield MovieProgress(
            done, total, f"frame {k} done ({position + 1} of {idx.size})", frame=k, maps=maps
        )
        if track:
            g = np.where(np.isfinite(lattice).all(axis=1)[:, None], lattice, g)
    record["reflections_per_frame"] = np.stack(used).tolist()
    maps = collected.maps(reflections=inputs.refl, parameters={"movie": record})
    result = MovieResult(
        maps, np.stack(used), np.stack(found), idx, drift, track, mode, corrected, blank
    )
    if root is not None:
        write_zarr_record(root, maps, result)
        result.maps = read_zarr_maps(store)
    return result


def _analyse_frame(frame, g, k, inputs, options, follow, min_windows):
    """One frame's maps demodulated at ``g``, with the lattice found in its region."""
    from ..drift import shift_region
    from ..engine import analyze

    maps = analyze(frame, g, **{**options, "compute_strain": False})
    mask = None
    if inputs.region_of is not None:
        mask = inputs.region_of(k)
        if follow is not None:
            mask = shift_region(mask, follow[k : k + 1], step=options["step"])[0]
    reference = inputs.reference if inputs.with_strain else None
    return frame_lattice(maps, mask, reference=reference, min_windows=min_windows, frame=k)


def frame_lattice(maps, mask, *, reference, min_windows: int, frame=None) -> LatticeMaps:
    """One frame's maps (from ``analyze``) with the lattice found in them and their strain.

    The step of the movie analysis after the engine, shared with the live analysis
    (:mod:`napari_hrtem_fft.core.live`), which runs the engine itself.

    Parameters
    ----------
    maps : LatticeMaps
        Maps ``(n, my, mx)`` of the frame, without strain.
    mask : numpy.ndarray or None
        Where the lattice is followed, ``(my, mx)``, already moved with the drift.
    reference : numpy.ndarray or None
        Strain reference ``(n, 2)`` in nm⁻¹; None: no strain.
    min_windows : int
        As for :func:`iter_analyze_movie`.
    frame : int, optional
        The frame's number, for the warning when a reflection is lost.

    Returns
    -------
    LatticeMaps
        ``maps`` with ``parameters["found"]`` (the lattice found, ``(n, 2)`` nm⁻¹, NaN
        where not found) and ``strain`` relative to ``reference``.
    """
    from ..strain import strain as strain_maps

    found = _found_g(maps, mask, min_windows)
    maps.parameters["found"] = found.tolist()
    if reference is not None:
        maps.strain = strain_maps(maps, reference=reference)
    lost = ~np.all(np.isfinite(found), axis=1)
    if lost.any():
        lost_labels = ", ".join(f"g{i + 1}" for i in np.flatnonzero(lost))
        logger.warning("frame %s: %s not found; keeping the previous value", frame, lost_labels)
    return maps


def _measure_drift(stack, idx: np.ndarray, total: int):
    """Drift of the frames ``idx`` relative to the first, in batches: yields progress,
    returns the drift ``(t, 2)`` in pixels.
    """
    from ..drift import register_frames

    drift = np.zeros((idx.size, 2))
    rest = [int(k) for k in idx[1:]]
    done = 1
    yield MovieProgress(done, total, f"drift: frame {int(idx[0])} is the reference")
    for start in range(0, len(rest), _DRIFT_BATCH):
        batch = rest[start : start + _DRIFT_BATCH]
        measured = register_frames(stack[[int(idx[0]), *batch]], reference=0)
        drift[1 + start : 1 + start + len(batch)] = measured[1:]
        done += len(batch)
        yield MovieProgress(done, total, f"drift: {done} of {idx.size} frames registered")
    return drift


def _drift_corrected(stack, idx: np.ndarray, drift: np.ndarray):
    """The frames ``idx`` moved by minus their drift: lazy, one frame per chunk."""
    import dask.array as da

    from ..drift import apply_drift

    lazy = stack if _is_dask(stack) else da.from_array(np.asarray(stack))
    return apply_drift(lazy[idx].rechunk({0: 1}), drift)


def analyze_movie(
    stack,
    reflections,
    *,
    track: bool = True,
    progress: Callable[[int, int], object] | None = None,
    lazy: bool | None = None,
    **options,
) -> MovieResult:
    """Map lattice spacing, angle and strain through a movie: :func:`iter_analyze_movie`
    run to the end.

    Parameters
    ----------
    stack, reflections, track
        As for :func:`iter_analyze_movie`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each step.
    lazy : bool, optional
        As for :func:`iter_analyze_movie`; default ``not track``: an untracked dask
        stack is analysed lazily (maps as dask arrays), a tracked one frame by frame.
    **options
        Every other argument of :func:`iter_analyze_movie` (``pixel_size``, ``window``,
        ``step``, ``search``, ``frames``, ``region``, ``drift``, ``correct_drift``,
        ``strain_reference``, ``min_windows``, ``postprocess``, ``store``,
        ``overwrite`` and the options of :func:`napari_hrtem_fft.analyze`).

    Returns
    -------
    MovieResult
        Maps ``(n, t, my, mx)`` and the reflections used per frame: numpy arrays for an
        analysis frame by frame, lazy dask arrays for a lazy one or when ``store`` is
        given.

    Raises
    ------
    ValueError, TypeError
        As :func:`iter_analyze_movie`, before any frame is analysed.
    """
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    if lazy is None:
        lazy = not track and options.get("postprocess") is None
    steps = iter_analyze_movie(stack, reflections, track=track, lazy=lazy, **options)
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None and step.done:
            progress(step.done, step.total)


def _untracked(source, inputs: _MovieInputs, options, corrected) -> LatticeMaps:
    """Every frame with the same reflections: one lazy (or in-process) ``analyze`` call.

    ``source`` is the stack, or the drift-corrected analysed frames if ``corrected``.
    """
    from ..engine import analyze
    from ..strain import strain as strain_maps

    idx, refl, t = inputs.idx, inputs.refl, int(source.shape[0])
    if corrected or (idx.size == t and np.array_equal(idx, np.arange(t))):
        sub = source
    else:
        sub = source[idx] if _is_dask(source) else np.asarray(source)[idx]
    # The engine computes strain relative to the reflections with the maps; relative to
    # another reference it is computed from them afterwards.
    own_reference = np.array_equal(inputs.reference, refl)
    options = {**options, "compute_strain": inputs.with_strain and own_reference}
    if _is_dask(sub) and sub.shape[0] > 1 and options.get("refine", True):
        # One graph per frame, joined along t: the refining pass waits for the medians
        # of its own frame only, so a scheduler can finish frames one after another and
        # memory does not grow with the length of the movie.
        maps = _concat_frames([analyze(sub[k : k + 1], refl, **options) for k in range(len(sub))])
    else:
        maps = analyze(sub, refl, **options)
    if inputs.with_strain and not own_reference:
        maps.strain = strain_maps(maps, reference=inputs.reference)
    return maps


def _concat_frames(per_frame: list[LatticeMaps]) -> LatticeMaps:
    """Lazy single-frame maps ``(n, 1, my, mx)`` → one LatticeMaps ``(n, t, my, mx)``."""
    import dask.array as da

    first = per_frame[0]
    # Per-reflection maps (n, 1, my, mx) join on axis 1, strain (1, my, mx) on axis 0.
    joined = {
        name: da.concatenate(
            [m.arrays()[name] for m in per_frame], axis=int(name in LatticeMaps.FIELDS)
        )
        for name in first.arrays()
    }
    maps = first.with_arrays(joined)
    maps.parameters = movie_parameters(first.parameters)
    return maps
