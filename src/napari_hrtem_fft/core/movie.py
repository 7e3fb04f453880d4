"""In-situ movies: tracked analysis frame by frame, time traces, regions, scale-out.

A movie is a stack ``(t, y, x)``.  :func:`analyze_movie` maps it with
:func:`napari_hrtem_fft.analyze`; with ``track=True`` the reflections demodulated in
frame ``k + 1`` start from the lattice found in frame ``k``, so that a lattice that
expands or rotates by more than the search region over the movie is followed without
re-picking.  :func:`time_trace` reduces the maps to statistics per frame inside a
region, :func:`trace_to_csv` writes them; :func:`compute_maps` and :func:`to_zarr`
compute lazy maps on any dask scheduler, including a ``dask.distributed`` cluster.

Maps of a movie are the usual :class:`~napari_hrtem_fft.core.maps.LatticeMaps` with a
time axis: ``(n, t, my, mx)`` per reflection, ``(t, my, mx)`` for strain.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .maps import LatticeMaps, StrainMaps
from .quantities import MAP_QUANTITIES, OPTIONAL_QUANTITIES, STRAIN_QUANTITIES
from .reciprocal import as_reflections, g_from_spacing_angle
from .records import jsonable
from .statistics import STATISTICS, summarize, summarize_angles, weighted_median

__all__ = [
    "MovieMapsCollector",
    "MovieResult",
    "TimeTrace",
    "analyze_movie",
    "compute_maps",
    "iter_analyze_movie",
    "movie_parameters",
    "read_zarr_maps",
    "region_from_polygon",
    "time_trace",
    "to_zarr",
    "trace_text",
    "trace_to_csv",
    "write_zarr_geometry",
]

logger = logging.getLogger(__name__)

_FIELDS = LatticeMaps.FIELDS
_STRAIN = StrainMaps.FIELDS

# Key of the completion marker in a store's record, and the error without it.
_COMPLETE = "complete"
_INCOMPLETE = (
    "{store!r} is incomplete: its writing was interrupted before the completion marker "
    "(analyse again into a new store, or with overwrite)"
)


# --------------------------------------------------------------------------- helpers


def _is_dask(a) -> bool:
    return hasattr(a, "dask") and hasattr(a, "compute")


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


def _map_shape(h: int, w: int, step: int) -> tuple[int, int]:
    return -(-h // step), -(-w // step)


# --------------------------------------------------------------------------- analysis


@dataclass
class MovieResult:
    """Maps of a movie and how they were obtained.

    Attributes
    ----------
    maps : LatticeMaps
        Maps with a time axis: ``(n, t, my, mx)`` per reflection, strain ``(t, my, mx)``.
        numpy arrays for a tracked analysis, dask arrays for a lazy untracked one.
    reflections : numpy.ndarray
        Reflections demodulated in each frame, ``(t, n, 2)`` as ``(gy, gx)`` in nm⁻¹ (the
        start of the search; with tracking, the lattice found in the previous frame).
    found : numpy.ndarray or None
        Robust lattice found in each frame (amplitude-weighted median of the local g in
        the region), ``(t, n, 2)`` in nm⁻¹; NaN where not found; None for a lazy result.
    frames : numpy.ndarray
        Frame numbers of the input stack, ``(t,)``.
    drift : numpy.ndarray or None
        Drift ``(t, 2)`` as ``(dy, dx)`` in pixels of the analysed frames, if given.
    tracked : bool
        Whether the reflections followed the lattice from frame to frame.
    """

    maps: LatticeMaps
    reflections: np.ndarray
    found: np.ndarray | None
    frames: np.ndarray
    drift: np.ndarray | None = None
    tracked: bool = False

    @property
    def n_frames(self) -> int:
        """Number of analysed frames ``t``."""
        return int(self.frames.size)


def iter_analyze_movie(
    stack,
    reflections,
    *,
    pixel_size: float,
    window: int = 128,
    step: int = 8,
    search: float = 0.1,
    track: bool = True,
    frames=None,
    region=None,
    drift=None,
    strain_reference=None,
    min_windows: int = 5,
    **analyze_options,
) -> Iterator[tuple[int, LatticeMaps]]:
    """Analyse a movie frame by frame, yielding each frame's maps as soon as it is done.

    Only one frame is in memory at a time (a dask stack is computed frame by frame), so a
    caller can show progress, keep or drop results, and stop between frames.  Arguments
    are as for :func:`analyze_movie`; the options are checked before the first frame.

    Returns
    -------
    iterator of (int, LatticeMaps)
        A generator of ``(frame, maps)``: the frame number in the input stack and its
        maps ``(n, my, mx)`` (numpy).  ``maps.reflections`` are the reflections
        demodulated in that frame; ``maps.strain`` is relative to ``strain_reference``
        (default: the initial ``reflections``) when computed;
        ``maps.parameters["found"]`` is the robust lattice found (``(n, 2)`` nm⁻¹ list,
        NaN where not found).  Closing the generator stops before the next frame.

    Raises
    ------
    ValueError, TypeError
        As :func:`analyze_movie`, at the call (before any frame is read).
    """
    inputs = _check_movie_inputs(stack, reflections, step, track, frames, region, drift)
    options = dict(pixel_size=pixel_size, window=window, step=step, search=search)
    return _tracked_stream(
        stack, inputs, options, bool(track), strain_reference, min_windows, analyze_options
    )


@dataclass(frozen=True)
class _MovieInputs:
    """Checked arguments shared by :func:`iter_analyze_movie` and :func:`analyze_movie`."""

    idx: np.ndarray  # frame numbers to analyse
    refl: np.ndarray  # (n, 2) reflections in 1/nm
    drift_px: np.ndarray | None  # (t_stack, 2)
    region_of: Callable[[int], np.ndarray] | None  # frame number -> mask (my, mx)
    static_region: bool  # one mask drawn on the frame of zero drift


def _check_movie_inputs(stack, reflections, step, track, frames, region, drift) -> _MovieInputs:
    t, h, w = _check_stack(stack)
    idx = _frame_indices(frames, t)
    refl = as_reflections(reflections)
    if not isinstance(track, bool | np.bool_):
        raise TypeError(f"track must be True or False, got {track!r}")
    if not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be a positive integer number of pixels, got {step!r}")
    drift_px = _check_drift(drift, t)
    region_of, static_region = _check_region(region, t, idx, _map_shape(h, w, int(step)))
    return _MovieInputs(idx, refl, drift_px, region_of, static_region)


def _tracked_stream(
    stack, inputs: _MovieInputs, options, track, strain_reference, min_windows, analyze_options
) -> Iterator[tuple[int, LatticeMaps]]:
    """Checks the options of the frame-by-frame analysis, then its generator."""
    from .strain import has_two_directions

    analyze_options = dict(analyze_options)
    compute_strain = analyze_options.pop("compute_strain", True)
    if not isinstance(compute_strain, bool | np.bool_):
        raise TypeError(f"compute_strain must be True or False, got {compute_strain!r}")
    refl = inputs.refl
    reference = refl if strain_reference is None else as_reflections(strain_reference)
    if reference.shape != refl.shape:
        raise ValueError(
            f"strain_reference must have one (gy, gx) per reflection, shape {refl.shape}, "
            f"got {reference.shape}"
        )
    with_strain = bool(compute_strain) and has_two_directions(reference)
    if not isinstance(min_windows, numbers.Integral) or min_windows < 1:
        raise ValueError(f"min_windows must be a positive integer, got {min_windows!r}")
    # A single mask is drawn on the frame of zero drift; per-frame masks are used as given.
    follow = inputs.drift_px if inputs.static_region else None
    return _iterate(
        stack, inputs.idx, refl, reference, options, analyze_options, inputs.region_of, follow,
        track, with_strain, int(min_windows),
    )  # fmt: skip


def _iterate(
    stack, idx, refl, reference, options, analyze_options, region_of, drift_px, track,
    with_strain, min_windows,
) -> Iterator[tuple[int, LatticeMaps]]:  # fmt: skip
    from .drift import shift_region
    from .engine import analyze
    from .strain import strain as strain_maps

    step = options["step"]
    g = refl.copy()
    for k in idx:
        frame = _frame(stack, k)
        maps = analyze(frame, g, compute_strain=False, **options, **analyze_options)
        mask = None
        if region_of is not None:
            mask = region_of(k)
            if drift_px is not None:
                mask = shift_region(mask, drift_px[k : k + 1], step=step)[0]
        found = _found_g(maps, mask, min_windows)
        maps.parameters["found"] = found.tolist()
        if with_strain:
            maps.strain = strain_maps(maps, reference=reference)
        lost = ~np.all(np.isfinite(found), axis=1)
        if lost.any():
            lost_labels = ", ".join(f"g{i + 1}" for i in np.flatnonzero(lost))
            logger.warning("frame %s: %s not found; keeping the previous value", k, lost_labels)
        yield int(k), maps
        if track:
            g = np.where(lost[:, None], g, found)


def analyze_movie(
    stack,
    reflections,
    *,
    pixel_size: float,
    window: int = 128,
    step: int = 8,
    search: float = 0.1,
    track: bool = True,
    frames=None,
    region=None,
    drift=None,
    strain_reference=None,
    min_windows: int = 5,
    progress: Callable[[int, int], object] | None = None,
    store=None,
    overwrite: bool = False,
    **analyze_options,
) -> MovieResult:
    """Map lattice spacing, angle and strain through a movie, following the lattice.

    Parameters
    ----------
    stack : array_like or dask.array.Array
        Movie ``(t, y, x)``.  A dask stack is read one frame at a time (tracked) or
        analysed lazily (untracked).
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹ of the first analysed frame.
    pixel_size : float
        Pixel size in nm.
    window, step, search : int, int, float
        As for :func:`napari_hrtem_fft.analyze` (pixels, pixels, fraction of ``|g|``).
    track : bool
        If True, the reflections demodulated in each frame are the robust lattice found
        in the previous frame (amplitude-weighted median of the local g inside
        ``region``), so that changes larger than ``search`` over the movie are followed.
        A reflection found in fewer than ``min_windows`` windows of a frame keeps its
        previous value.  If False, every
        frame uses ``reflections`` and the analysis of a dask stack stays lazy.
    frames : slice, range or sequence of int, optional
        Frames to analyse, in order (default all).
    region : array_like of bool, optional
        Where the lattice is followed: a mask on the map grid ``(my, mx)`` (drawn on the
        frame of zero drift; it moves with ``drift``) or one per frame ``(t, my, mx)``
        (used as given).
        Default: every window with a detected lattice.  Only used for tracking.
    drift : array_like, optional
        Drift ``(t, 2)`` as ``(dy, dx)`` pixels for every frame of ``stack`` (e.g. from
        :func:`napari_hrtem_fft.register_frames`); moves ``region`` with the particle.
    strain_reference : array_like, optional
        Reference reflections ``(n, 2)`` of the strain maps (default: ``reflections``), so
        that strain is relative to the same lattice in every frame.
    min_windows : int
        Fewest windows with an estimate (inside ``region``) for a reflection to count as
        found in a frame.
    progress : callable, optional
        Called as ``progress(done, total)`` after each frame (tracked analysis).
    store : str or pathlib.Path, optional
        A zarr store to write the maps to (layout of :func:`to_zarr`): each frame is
        written as soon as it is analysed, so memory does not grow with the length of
        the movie; the result's maps are then lazy dask arrays read from the store.
    overwrite : bool
        Replace an existing ``store``; otherwise an existing store is an error (raised
        before any frame is analysed).
    **analyze_options
        Further options of :func:`napari_hrtem_fft.analyze` (``refine``,
        ``min_amplitude``, ``compute_strain``, ``chunks``, ``background``).

    Returns
    -------
    MovieResult
        Maps ``(n, t, my, mx)`` and the reflections used per frame.  The maps are numpy
        arrays for a tracked analysis, lazy dask arrays for an untracked one or when
        ``store`` is given.

    Raises
    ------
    ValueError, TypeError
        On a stack that is not ``(t, y, x)``, frames out of range, a region or drift of
        the wrong shape, or invalid analysis options (checked before any frame).
    """
    inputs = _check_movie_inputs(stack, reflections, step, track, frames, region, drift)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    idx = inputs.idx
    sub_drift = None if inputs.drift_px is None else inputs.drift_px[idx]
    if not track:
        result = _untracked(
            stack, inputs, pixel_size, window, step, search, strain_reference, progress,
            analyze_options,
        )  # fmt: skip
        if store is not None:
            to_zarr(result, store, overwrite=overwrite)
            result.maps = read_zarr_maps(store)
        return result

    options = dict(pixel_size=pixel_size, window=window, step=step, search=search)
    stream = _tracked_stream(
        stack, inputs, options, True, strain_reference, min_windows, analyze_options
    )
    root = None if store is None else _open_store(store, overwrite)
    collected = MovieMapsCollector(idx.size, group=root)
    used, found = [], []
    for done, (_, maps) in enumerate(stream, start=1):
        used.append(maps.reflections)
        found.append(maps.parameters["found"])
        collected.add(done - 1, maps)
        if progress is not None:
            progress(done, idx.size)
    used = np.stack(used)
    found = np.array(found, dtype=np.float64)
    maps = collected.maps(parameters={"movie": {"track": True, "frames": idx.tolist()}})
    result = MovieResult(maps, used, found, idx, sub_drift, tracked=True)
    if root is not None:
        _write_record(root, maps, result)
        result.maps = read_zarr_maps(store)
    return result


def movie_parameters(parameters: dict) -> dict:
    """The parameters of one frame's maps that hold for the whole movie.

    Parameters
    ----------
    parameters : dict
        ``LatticeMaps.parameters`` of a frame.

    Returns
    -------
    dict
        A copy without the entries measured per frame: ``found`` (the lattice found in
        that frame, kept per frame by :class:`MovieResult`) and ``demodulation`` (the
        frame's demodulation vectors), which would describe the first frame only.
    """
    return {k: v for k, v in parameters.items() if k not in ("found", "demodulation")}


class MovieMapsCollector:
    """Maps of a movie filled frame by frame into arrays allocated at the first frame.

    Per-reflection maps go to arrays ``(n, t, my, mx)``, strain to ``(t, my, mx)``: no
    list of frames is kept to stack, so memory holds one copy of the movie's maps, or,
    with ``group``, one frame (the arrays are then float32 arrays of a zarr group in the
    layout of :func:`to_zarr`, written frame by frame).

    Parameters
    ----------
    t : int
        Number of frames of the movie.
    group : zarr.Group, optional
        Where to create the arrays; default numpy arrays in memory.

    Raises
    ------
    ValueError
        If ``t`` is not a positive integer.
    """

    def __init__(self, t: int, *, group=None) -> None:
        if not isinstance(t, numbers.Integral) or t < 1:
            raise ValueError(f"t must be a positive integer number of frames, got {t!r}")
        self.t = int(t)
        self._group = group
        self._first: LatticeMaps | None = None
        self._arrays: dict = {}

    def add(self, position: int, maps: LatticeMaps) -> None:
        """Store one frame's maps ``(n, my, mx)`` at frame ``position`` (0 … t - 1).

        Raises
        ------
        TypeError
            If ``maps`` is not a LatticeMaps.
        ValueError
            If ``position`` is out of range, or the frame has strain maps where the
            first frame had none or the other way round.
        """
        if not isinstance(maps, LatticeMaps):
            raise TypeError(f"maps must be LatticeMaps, got {type(maps).__name__}")
        if not isinstance(position, numbers.Integral) or not 0 <= position < self.t:
            raise ValueError(
                f"position must be a frame position in [0, {self.t}), got {position!r}"
            )
        arrays = maps.arrays()
        if self._first is None:
            self._first = maps
            self._arrays = {
                name: self._allocate(name, np.asarray(a)) for name, a in arrays.items()
            }
        if arrays.keys() != self._arrays.keys():
            raise ValueError(
                f"the frame at position {position} has maps {sorted(arrays)}, "
                f"the first frame {sorted(self._arrays)}"
            )
        for name, a in arrays.items():
            target = self._arrays[name]
            where = (slice(None), int(position)) if name in _FIELDS else int(position)
            target[where] = np.asarray(a, dtype=target.dtype)

    def _allocate(self, name: str, frame: np.ndarray):
        if name in _FIELDS:
            shape = (frame.shape[0], self.t, *frame.shape[1:])
            chunks = (frame.shape[0], 1, *frame.shape[1:])
        else:
            shape, chunks = (self.t, *frame.shape), (1, *frame.shape)
        if self._group is None:
            return np.empty(shape, frame.dtype)
        return _create_map_array(self._group, name, shape, chunks, self._first.geometry())

    def maps(self, *, reflections=None, parameters: dict | None = None) -> LatticeMaps:
        """The movie's maps ``(n, t, my, mx)``.

        Parameters
        ----------
        reflections : array_like, optional
            ``(n, 2)`` reflections in nm⁻¹ of the result (default: the first frame's).
        parameters : dict, optional
            Entries added to the first frame's :func:`movie_parameters`.

        Returns
        -------
        LatticeMaps
            The arrays filled so far (numpy, or zarr with ``group``) with the first
            frame's geometry and strain reference.

        Raises
        ------
        ValueError
            If no frame was added.
        """
        first = self._first
        if first is None:
            raise ValueError("no frame was added to the movie")
        merged = movie_parameters(first.parameters)
        merged.update(parameters or {})
        movie = first.with_arrays(self._arrays)
        movie.parameters = merged
        if reflections is not None:
            movie.reflections = as_reflections(reflections)
        return movie


def _untracked(
    stack, inputs: _MovieInputs, pixel_size, window, step, search, strain_reference, progress,
    analyze_options,
) -> MovieResult:  # fmt: skip
    """Every frame with the same reflections: one lazy (or in-process) ``analyze`` call."""
    from .engine import analyze
    from .strain import strain as strain_maps

    idx, refl, t = inputs.idx, inputs.refl, int(stack.shape[0])
    compute_strain = analyze_options.pop("compute_strain", True)
    if idx.size == t and np.array_equal(idx, np.arange(t)):
        sub = stack
    else:
        sub = stack[idx] if _is_dask(stack) else np.asarray(stack)[idx]
    options = dict(
        pixel_size=pixel_size,
        window=window,
        step=step,
        search=search,
        compute_strain=compute_strain and strain_reference is None,
        **analyze_options,
    )
    if _is_dask(sub) and sub.shape[0] > 1 and options.get("refine", True):
        # One graph per frame, joined along t: the refining pass waits for the medians
        # of its own frame only, so a scheduler can finish frames one after another and
        # memory does not grow with the length of the movie.
        maps = _concat_frames([analyze(sub[k : k + 1], refl, **options) for k in range(len(sub))])
    else:
        maps = analyze(sub, refl, **options)
    if compute_strain and strain_reference is not None:
        maps.strain = strain_maps(maps, reference=as_reflections(strain_reference))
    maps.parameters["movie"] = {"track": False, "frames": idx.tolist()}
    if progress is not None:
        progress(idx.size, idx.size)
    used = np.broadcast_to(refl, (idx.size, *refl.shape)).copy()
    drift = None if inputs.drift_px is None else inputs.drift_px[idx]
    return MovieResult(maps, used, None, idx, drift, tracked=False)


def _concat_frames(per_frame: list[LatticeMaps]) -> LatticeMaps:
    """Lazy single-frame maps ``(n, 1, my, mx)`` → one LatticeMaps ``(n, t, my, mx)``."""
    import dask.array as da

    first = per_frame[0]
    joined = {
        name: da.concatenate([m.arrays()[name] for m in per_frame], axis=int(name in _FIELDS))
        for name in first.arrays()
    }
    maps = first.with_arrays(joined)
    maps.parameters = movie_parameters(first.parameters)
    return maps


# --------------------------------------------------------------------------- regions


def region_from_polygon(vertices_nm, map_shape, map_scale, map_translate=(0.0, 0.0)):
    """Boolean mask on the map grid of the map pixels inside a polygon.

    Parameters
    ----------
    vertices_nm : array_like
        ``(v, 2)`` vertices ``(y, x)`` in world units (nm), e.g. a napari Shapes
        polygon; extra leading columns (a time coordinate) are ignored.
    map_shape : tuple of int
        Shape of the maps; the last two entries ``(my, mx)`` are used.
    map_scale : float or sequence of float
        Size of a map pixel in nm (``maps.map_scale``), one value or ``(sy, sx)``.
    map_translate : sequence of float
        World position ``(y, x)`` in nm of the centre of map pixel ``(0, 0)``.

    Returns
    -------
    numpy.ndarray
        Boolean ``(my, mx)``: True where the map pixel centre lies inside the polygon.

    Raises
    ------
    ValueError
        If there are fewer than 3 vertices, a value is not finite, or the scale is not
        positive.
    """
    from matplotlib.path import Path as _Path

    v = np.asarray(vertices_nm, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2 or v.shape[0] < 3:
        raise ValueError(f"vertices_nm must have shape (v >= 3, 2) as (y, x) nm, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices_nm must be finite")
    shape = tuple(int(s) for s in tuple(map_shape)[-2:])
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"map_shape must end with (my, mx) >= 1, got {map_shape}")
    scale = np.broadcast_to(np.atleast_1d(np.asarray(map_scale, dtype=np.float64))[-2:], (2,))
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"map_scale must be positive nm per map pixel, got {map_scale}")
    shift = np.broadcast_to(np.atleast_1d(np.asarray(map_translate, dtype=np.float64))[-2:], (2,))
    yy = shift[0] + np.arange(shape[0]) * scale[0]
    xx = shift[1] + np.arange(shape[1]) * scale[1]
    points = np.stack(np.meshgrid(yy, xx, indexing="ij"), axis=-1).reshape(-1, 2)
    return _Path(v[:, -2:]).contains_points(points).reshape(shape)


# --------------------------------------------------------------------------- time traces


@dataclass
class TimeTrace:
    """Statistics of the maps per frame inside a region.

    Attributes
    ----------
    frames : numpy.ndarray
        Frame numbers ``(t,)``.
    times : numpy.ndarray or None
        Time of each frame ``(t,)`` in seconds, if known.
    reflections : numpy.ndarray
        Reflections ``(n, 2)`` in nm⁻¹ (labelled g1 … gn).
    stats : dict of str to numpy.ndarray
        ``"{quantity}_{statistic}"`` with quantity ``d`` (nm) or ``angle`` (degrees),
        shape ``(t, n)``, and ``exx``, ``eyy``, ``exy`` (dimensionless), ``rotation``
        (degrees), shape ``(t,)``; statistic ``mean``, ``median``, ``std`` (standard
        deviation, ddof=0 as in the statistics dock) or ``count`` (pixels used).
    units : dict of str to str
        Unit of each quantity.
    """

    frames: np.ndarray
    times: np.ndarray | None
    reflections: np.ndarray
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.stats[key]

    def keys(self):
        """Names of the statistics."""
        return self.stats.keys()

    def columns(self) -> dict[str, np.ndarray]:
        """Flat table: one 1-D column per frame, named with reflection label and unit."""
        cols: dict[str, np.ndarray] = {"frame": self.frames}
        if self.times is not None:
            cols["time_s"] = self.times
        for key, values in self.stats.items():
            quantity, _, stat = key.rpartition("_")
            unit = "" if stat == "count" else self.units.get(quantity, "")
            suffix = f"_{unit}" if unit and unit != "1" else ""
            if values.ndim == 2:
                for k in range(values.shape[1]):
                    cols[f"{quantity}_{stat}_g{k + 1}{suffix}"] = values[:, k]
            else:
                cols[f"{key}{suffix}"] = values
        return cols


def _region_for_frame(region, k: int, t: int, n: int, map_shape) -> np.ndarray | None:
    """Mask ``(n, my, mx)`` for frame position ``k`` (None: everything finite)."""
    if region is None:
        return None
    if region.ndim == 2:
        mask = region
    elif region.ndim == 3:
        mask = region[k]
    else:
        mask = region[:, k]
    return np.broadcast_to(mask, (n, *map_shape))


def time_trace(maps, region=None, *, times=None) -> TimeTrace:
    """Mean, median, spread and count of every map per frame inside a region.

    Parameters
    ----------
    maps : LatticeMaps or MovieResult
        Maps ``(n, t, my, mx)`` (a single frame ``(n, my, mx)`` is one frame); numpy or
        dask (computed one frame at a time).
    region : array_like of bool or "crystal", optional
        Map pixels to use: ``(my, mx)`` for every frame (for a MovieResult with a drift,
        drawn on the frame of zero drift and moved with it, as in
        :func:`analyze_movie`), ``(t, my, mx)`` per frame, or
        ``(n, t, my, mx)`` per reflection and frame (strain uses pixels inside for every
        reflection); ``"crystal"`` for :func:`napari_hrtem_fft.crystal_mask` of each
        frame.  Default: every finite value.  NaN values are always left out.
    times : float or array_like, optional
        Frame interval in seconds, or the time of each frame ``(t,)`` in seconds.

    Returns
    -------
    TimeTrace
        Per frame and reflection: ``d_*`` (nm) and ``angle_*`` (degrees, circular); per
        frame: ``exx_*``, ``eyy_*``, ``exy_*``, ``rotation_*`` when the maps have strain.

    Raises
    ------
    TypeError
        If ``maps`` is not LatticeMaps/MovieResult or ``region`` is not boolean.
    ValueError
        If ``region`` or ``times`` does not match the maps.
    """
    import dask

    frames = None
    drift = None
    if isinstance(maps, MovieResult):
        frames, drift = maps.frames, maps.drift
        maps = maps.maps
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be LatticeMaps or MovieResult, got {type(maps).__name__}")
    d_all = maps.d_spacing
    n = maps.n_reflections
    if d_all.ndim == 3:
        single = True
        t = 1
    elif d_all.ndim == 4:
        single = False
        t = int(d_all.shape[1])
    else:
        raise ValueError(f"maps must be (n, my, mx) or (n, t, my, mx), got {d_all.shape}")
    map_shape = tuple(int(s) for s in d_all.shape[-2:])
    frames = np.arange(t) if frames is None else np.asarray(frames)
    crystal = isinstance(region, str)
    if crystal and region != "crystal":
        raise ValueError(f"region must be a boolean mask or 'crystal', got {region!r}")
    mask = None
    if region is not None and not crystal:
        mask = np.asarray(region)
        if mask.dtype != bool:
            raise TypeError(f"region must be a boolean mask, got dtype {mask.dtype}")
        allowed = [map_shape, (t, *map_shape), (n, t, *map_shape)]
        if single:
            allowed.append((n, *map_shape))
        if mask.shape not in allowed:
            raise ValueError(
                f"region of shape {mask.shape} does not match maps {tuple(d_all.shape)}: "
                f"use (my, mx), (t, my, mx) or (n, t, my, mx)"
            )
        if single and mask.ndim == 3:
            mask = mask[:, None] if mask.shape[0] == n and n != 1 else mask
        if drift is not None and mask.ndim == 2 and not single:
            from .drift import shift_region

            mask = shift_region(mask, drift, step=maps.step)
    if times is None:
        time_s = None
    elif np.ndim(times) == 0:
        dt = float(times)
        if not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"times as a frame interval must be > 0 s, got {times}")
        time_s = frames.astype(np.float64) * dt
    else:
        time_s = np.asarray(times, dtype=np.float64)
        if time_s.shape != (t,):
            raise ValueError(f"times must have one value per frame ({t},), got {time_s.shape}")

    strain = maps.strain
    names = ["d", "angle"] + (list(_STRAIN) if strain is not None else [])
    stats = {
        f"{q}_{s}": np.full((t, n) if q in ("d", "angle") else (t,), np.nan)
        for q in names
        for s in STATISTICS
    }
    for k in range(t):
        pick = (slice(None),) if single else (slice(None), k)
        parts = {"d": d_all[pick], "angle": maps.angle[pick]}
        if crystal:
            parts["amplitude"] = maps.amplitude[pick]
        if strain is not None:
            for c in _STRAIN:
                parts[c] = getattr(strain, c) if single else getattr(strain, c)[k]
        values = dict(zip(parts, dask.compute(*parts.values()), strict=True))
        values = {key: np.asarray(v) for key, v in values.items()}
        if crystal:
            from .postprocess import crystal_mask

            frame_maps = LatticeMaps(
                d_spacing=values["d"],
                angle=values["angle"],
                amplitude=values["amplitude"],
                d_sigma=np.full_like(values["d"], np.nan),
                angle_sigma=np.full_like(values["d"], np.nan),
                reflections=maps.reflections,
                window=maps.window,
                step=maps.step,
                pixel_size=maps.pixel_size,
            )
            frame_mask = np.broadcast_to(crystal_mask(frame_maps), (n, *map_shape))
        else:
            frame_mask = _region_for_frame(mask, k, t, n, map_shape)
        for r in range(n):
            inside = np.ones(map_shape, dtype=bool) if frame_mask is None else frame_mask[r]
            for q, func in (("d", summarize), ("angle", summarize_angles)):
                result = func(values[q][r][inside])
                for s, value in zip(STATISTICS, result, strict=True):
                    stats[f"{q}_{s}"][k, r] = value
        if strain is not None:
            inside = (
                np.ones(map_shape, dtype=bool)
                if frame_mask is None
                else np.all(frame_mask, axis=0)
            )
            for c in _STRAIN:
                result = summarize(values[c][inside])
                for s, value in zip(STATISTICS, result, strict=True):
                    stats[f"{c}_{s}"][k] = value
    for key in stats:
        if key.endswith("_count"):
            stats[key] = stats[key].astype(np.int64)
    units = {"d": MAP_QUANTITIES["d_spacing"][0], "angle": MAP_QUANTITIES["angle"][0]}
    units.update({c: u for c, (u, _) in STRAIN_QUANTITIES.items()})
    return TimeTrace(
        frames=frames,
        times=time_s,
        reflections=np.asarray(maps.reflections, dtype=np.float64),
        stats=stats,
        units={q: units[q] for q in names},
    )


def trace_to_csv(trace: TimeTrace, path, *, overwrite: bool = False) -> Path:
    """Write a time trace as CSV: ``#`` header lines with the reflections and units.

    Parameters
    ----------
    trace : TimeTrace
        From :func:`time_trace`.
    path : str or pathlib.Path
        Output file.
    overwrite : bool
        Replace an existing file; otherwise an existing file is an error.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    TypeError
        If ``trace`` is not a TimeTrace.
    """
    from .reciprocal import g_angle, g_spacing

    if not isinstance(trace, TimeTrace):
        raise TypeError(f"trace must be a TimeTrace, got {type(trace).__name__}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists (pass overwrite=True to replace it)")
    header = [
        "# napari-hrtem-fft time trace: statistics per frame inside the region",
        "# units: d in nm, angle and rotation in degrees (counter-clockwise on screen), "
        "strain dimensionless, time in s; std is the standard deviation (ddof=0); "
        "count is the number of map pixels used",
    ]
    d = g_spacing(trace.reflections)
    ang = g_angle(trace.reflections)
    for k, (g, dk, ak) in enumerate(zip(trace.reflections, d, ang, strict=True)):
        header.append(
            f"# g{k + 1} = ({g[0]:.6g}, {g[1]:.6g}) 1/nm (gy, gx): d = {dk:.6g} nm, "
            f"angle = {ak:.4g} deg"
        )
    mode = "w" if overwrite else "x"
    with path.open(mode, newline="", encoding="utf-8") as fh:
        fh.write("\n".join(header) + "\n" + trace_text(trace))
    return path


def trace_text(trace: TimeTrace, *, delimiter: str = ",") -> str:
    """A time trace as delimited text: a row of column names, then one row per frame.

    The columns of :meth:`TimeTrace.columns` (units in the names: d in nm, angles in
    degrees, time in s); numbers written exactly (shortest round-trip form), counts as
    integers, missing values as ``nan``.  :func:`trace_to_csv` writes this below its
    header lines.

    Parameters
    ----------
    trace : TimeTrace
        From :func:`time_trace`.
    delimiter : str
        One character between values (``","`` for CSV, ``"\t"`` to paste into a
        spreadsheet).

    Returns
    -------
    str
        The text, lines ending in ``"\n"``.

    Raises
    ------
    TypeError
        If ``trace`` is not a TimeTrace.
    ValueError
        If ``delimiter`` is not one character.
    """
    import csv
    import io

    if not isinstance(trace, TimeTrace):
        raise TypeError(f"trace must be a TimeTrace, got {type(trace).__name__}")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    cols = trace.columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(list(cols))
    for row in zip(*cols.values(), strict=True):
        writer.writerow([_csv_value(v) for v in row])
    return buffer.getvalue()


def _csv_value(v) -> str:
    if isinstance(v, numbers.Integral):
        return str(int(v))
    v = float(v)
    return "nan" if math.isnan(v) else repr(v)


# --------------------------------------------------------------------------- scale-out


class _Scheduler:
    """``scheduler`` argument → something ``dask.compute`` accepts; owns a client it made."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.client = None

    def __enter__(self):
        s = self.scheduler
        if isinstance(s, str) and "://" in s:
            from distributed import Client

            self.client = Client(s, set_as_default=False)
            return self.client
        if s is None or isinstance(s, str) or callable(s) or hasattr(s, "get"):
            return s
        raise TypeError(
            "scheduler must be None, a dask scheduler name, a scheduler address "
            f"'tcp://host:port' or a distributed.Client, got {type(s).__name__}"
        )

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        return False


def compute_maps(maps, *, scheduler=None):
    """Compute lazy maps (all fields in one pass over the data) on a chosen scheduler.

    Parameters
    ----------
    maps : LatticeMaps or MovieResult
        Maps holding dask arrays (numpy arrays pass through).
    scheduler : str, distributed.Client or None
        ``None`` (dask's default or the active client), a dask scheduler name
        (``"threads"``, ``"processes"``, ``"synchronous"``), the address of a
        ``dask.distributed`` scheduler (``"tcp://host:8786"``; a client is opened and
        closed for this call) or a ``distributed.Client``.

    Returns
    -------
    LatticeMaps or MovieResult
        A copy with numpy arrays.

    Raises
    ------
    TypeError
        If ``maps`` or ``scheduler`` has the wrong type.
    """
    import dask

    if isinstance(maps, MovieResult):
        return replace(maps, maps=compute_maps(maps.maps, scheduler=scheduler))
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be LatticeMaps or MovieResult, got {type(maps).__name__}")
    arrays = maps.arrays()
    with _Scheduler(scheduler) as sched:
        values = dask.compute(*arrays.values(), scheduler=sched)
    return maps.with_arrays(dict(zip(arrays, (np.asarray(v) for v in values), strict=True)))


def to_zarr(
    maps,
    store,
    *,
    overwrite: bool = False,
    scheduler=None,
    frames_per_batch=None,
    geometry: dict | None = None,
):
    """Write maps to a chunked zarr store, computing lazy maps block by block.

    Every map of :meth:`LatticeMaps.arrays` is an array of the store (``d_spacing``,
    ``angle``, ``amplitude``, ``d_sigma``, ``angle_sigma`` and, when computed,
    ``phase`` as ``(n, ..., my, mx)``; ``exx``, ``eyy``, ``exy``, ``rotation`` as
    ``(..., my, mx)``), float32 with NaN for missing values, chunked as the dask
    arrays.  Each array carries ``axes``, ``scale``, ``translate``, ``units``,
    ``value_unit`` and ``description`` (:func:`write_zarr_geometry`); the group carries
    the analysis parameters under ``napari_hrtem_fft``, written last with the
    completion marker: a store whose writing was interrupted is refused by
    :func:`read_zarr_maps`.  Blocks are written by the workers as they are computed, so
    memory stays at a few blocks per worker.

    Parameters
    ----------
    maps : LatticeMaps or MovieResult
        Maps (numpy or dask).
    store : str or pathlib.Path or zarr store
        Where to write (a directory ending in ``.zarr`` by convention).
    overwrite : bool
        Replace an existing store; otherwise an existing store is an error.
    scheduler : str, distributed.Client or None
        As for :func:`compute_maps`.
    frames_per_batch : int or "auto", optional
        Compute a movie this many frames at a time (``"auto"``: two per worker thread;
        default: all at once).  Bounds
        memory for graphs that tie all frames together (``analyze`` of a whole dask
        stack with ``refine=True`` waits for every frame's first pass before the
        second); :func:`analyze_movie` builds graphs that need no batches.
    geometry : dict, optional
        World placement of the map axes (``scale``, ``translate`` and optionally
        ``units``, as :meth:`LatticeMaps.geometry` gives for the analysed image);
        default ``maps.geometry()`` (nm from the image origin).

    Returns
    -------
    zarr.Group
        The written group.

    Raises
    ------
    FileExistsError
        If the store exists and ``overwrite`` is False.
    TypeError
        If ``maps`` has the wrong type.
    ValueError
        If ``frames_per_batch`` is not a positive integer, ``"auto"`` or None.
    """
    import dask
    import dask.array as da

    movie = None
    if isinstance(maps, MovieResult):
        movie, maps = maps, maps.maps
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be LatticeMaps or MovieResult, got {type(maps).__name__}")
    if not (
        frames_per_batch is None
        or frames_per_batch == "auto"
        or (isinstance(frames_per_batch, numbers.Integral) and frames_per_batch >= 1)
    ):
        raise ValueError(
            "frames_per_batch must be a positive integer, 'auto' or None, "
            f"got {frames_per_batch!r}"
        )
    geometry = maps.geometry() if geometry is None else geometry
    root = _open_store(store, overwrite)
    sources, targets = [], []
    for name, data in maps.arrays().items():
        arr = data if _is_dask(data) else da.from_array(np.asarray(data))
        arr = arr.astype(np.float32)
        # Regular chunks (zarr's grid) matching the dask blocks: no two tasks write one
        # chunk, so no lock is needed.
        regular = tuple(max(c) for c in arr.chunks)
        sources.append(arr.rechunk(regular))
        targets.append(_create_map_array(root, name, arr.shape, regular, geometry))
    with _Scheduler(scheduler) as sched:
        for regions in _frame_batches(sources, frames_per_batch, sched):
            parts = [src[region] for src, region in zip(sources, regions, strict=True)]
            delayed = da.store(parts, targets, regions=regions, lock=False, compute=False)
            dask.compute(delayed, scheduler=sched)
    _write_record(root, maps, movie)
    return root


def _frame_batches(sources, frames_per_batch, scheduler):
    """Regions of every source per batch of frames (the axis after ``n`` for maps).

    Computing a long movie in one graph lets the scheduler run ahead on the cheap input
    tasks and keep every frame's intermediate results (tens of MB per 2048² frame);
    batches of a few frames per worker keep memory independent of the movie length.
    """
    maps_ndim = sources[0].ndim
    if maps_ndim < 4:
        yield [tuple(slice(None) for _ in range(src.ndim)) for src in sources]
        return
    t = int(sources[0].shape[1])
    chunk = max(int(c) for c in sources[0].chunks[1])
    if frames_per_batch is None:
        frames_per_batch = t
    elif frames_per_batch == "auto":
        frames_per_batch = 2 * _n_workers(scheduler)
    batch = max(chunk, int(frames_per_batch) // chunk * chunk)
    for t0 in range(0, t, batch):
        frames = slice(t0, min(t0 + batch, t))
        yield [
            (slice(None), frames) + (slice(None),) * (src.ndim - 2)
            if src.ndim == maps_ndim
            else (frames,) + (slice(None),) * (src.ndim - 1)
            for src in sources
        ]


def _n_workers(scheduler) -> int:
    """Threads that compute at once on ``scheduler`` (for batch sizes)."""
    if hasattr(scheduler, "nthreads"):
        return max(1, sum(scheduler.nthreads().values()))
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return 1
    import dask

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def read_zarr_maps(store) -> LatticeMaps:
    """Open maps written by :func:`to_zarr` lazily (dask arrays on the store's chunks).

    Parameters
    ----------
    store : str or pathlib.Path or zarr store
        The store.

    Returns
    -------
    LatticeMaps
        Lazy maps with the stored geometry and parameters.

    Raises
    ------
    ValueError
        If the store was not written by :func:`to_zarr`, or its writing did not finish
        (no completion marker: the analysis or the writing was interrupted).
    """
    import dask.array as da
    import zarr

    root = zarr.open_group(str(store) if isinstance(store, Path) else store, mode="r")
    record = root.attrs.get("napari_hrtem_fft")
    if not isinstance(record, dict) or record.get("kind") != "lattice_maps":
        if any(name in root for name in _FIELDS):
            raise ValueError(_INCOMPLETE.format(store=str(store)))
        raise ValueError(f"{str(store)!r} holds no maps written by napari_hrtem_fft.to_zarr")
    if record.get(_COMPLETE) is not True:
        raise ValueError(_INCOMPLETE.format(store=str(store)))
    optional = [name for name in LatticeMaps.OPTIONAL if name not in root]
    fields = {name: da.from_zarr(root[name]) for name in _FIELDS if name not in optional}
    fields.update(dict.fromkeys(optional))
    strain = None
    if all(c in root for c in _STRAIN):
        strain = StrainMaps(
            **{c: da.from_zarr(root[c]) for c in _STRAIN},
            reference=np.asarray(record.get("strain_reference", record["reflections"]), float),
        )
    return LatticeMaps(
        **fields,
        reflections=np.asarray(record["reflections"], dtype=np.float64),
        window=int(record["window"]),
        step=int(record["step"]),
        pixel_size=float(record["pixel_size"]),
        strain=strain,
        parameters=dict(record.get("parameters", {})),
    )


def _open_store(store, overwrite: bool):
    import zarr

    if isinstance(store, str | Path) and Path(store).exists() and not overwrite:
        raise FileExistsError(f"{str(store)!r} already exists (pass overwrite=True to replace it)")
    try:
        return zarr.open_group(
            str(store) if isinstance(store, Path) else store, mode="w" if overwrite else "w-"
        )
    except (zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
        raise FileExistsError(f"{store!r} already exists") from None


def _write_record(root, maps: LatticeMaps, movie: MovieResult | None) -> None:
    """Geometry, reflections and parameters of the maps as group attributes.

    Written last, after every array: its completion marker says the store is whole.
    """
    record = {
        "kind": "lattice_maps",
        _COMPLETE: True,
        "pixel_size": maps.pixel_size,
        "window": maps.window,
        "step": maps.step,
        "map_scale": maps.map_scale,
        "reflections": maps.reflections,
        "parameters": maps.parameters,
    }
    if maps.strain is not None:
        record["strain_reference"] = maps.strain.reference
    if movie is not None:
        record["movie"] = {
            "frames": movie.frames,
            "tracked": movie.tracked,
            "reflections_per_frame": movie.reflections,
            "found_per_frame": movie.found,
            "drift_px": movie.drift,
        }
    root.attrs.update({"napari_hrtem_fft": jsonable(record, max_items=None)})


def _create_map_array(root, name: str, shape, chunks, geometry: dict):
    """A float32 NaN-filled array for one map, with its axes and units as attributes."""
    target = root.create_array(
        name, shape=tuple(shape), chunks=tuple(chunks), dtype="float32", fill_value=float("nan")
    )
    target.attrs.update(_array_attrs(name, len(shape), geometry))
    return target


def _array_attrs(name: str, ndim: int, geometry: dict) -> dict:
    """Axes, world placement, units and meaning of the zarr array of one map."""
    per_reflection = name in _FIELDS
    lead = ["t", "z", "c"][: ndim - 2 - per_reflection]
    axes = (["reflection"] if per_reflection else []) + lead + ["y", "x"]
    head = [1.0] if per_reflection else []
    units = list(geometry.get("units") or [""] * len(lead) + ["nm", "nm"])
    unit, what = (MAP_QUANTITIES | OPTIONAL_QUANTITIES | STRAIN_QUANTITIES)[name]
    return {
        "axes": axes,
        "scale": head + [float(v) for v in geometry["scale"]],
        "translate": [0.0] * len(head) + [float(v) for v in geometry["translate"]],
        "units": [""] * len(head) + [str(u) for u in units],
        "value_unit": unit,
        "description": what,
    }


def write_zarr_geometry(store, geometry: dict) -> None:
    """Give every map array of a store the world placement of the analysed image.

    Parameters
    ----------
    store : str, pathlib.Path or zarr.Group
        A store written by :func:`to_zarr` or :func:`analyze_movie`.
    geometry : dict
        ``scale``, ``translate`` and optionally ``units`` per map axis
        ``(..., my, mx)``, e.g. from :meth:`LatticeMaps.geometry`.
    """
    import zarr

    root = store
    if not isinstance(store, zarr.Group):
        root = zarr.open_group(str(store), mode="r+")
    for name in (*_FIELDS, *_STRAIN):
        if name in root:
            root[name].attrs.update(_array_attrs(name, root[name].ndim, geometry))
