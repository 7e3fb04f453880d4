"""Live analysis of an acquisition while it is being recorded.

:func:`iter_live` follows a frame source (anything with ``poll() -> list of frames``,
such as :class:`napari_hrtem_fft.io._watch.FolderFrames`): for every new frame it
analyses the frame with the engine while a helper thread registers its drift against
the previous analysed frame (the regions follow it), then finds the lattice in it and
its strain with the step of the offline movie analysis
(:func:`~napari_hrtem_fft.core.movie.frame_lattice`: the tracking of
:func:`~napari_hrtem_fft.core.movie.analyze_movie`, one code path), makes strain and
phase relative to a reference region if one is given, appends the maps to a zarr store
on disk and adds a row to the time trace of each region.  Only the newest frames' maps
are kept in memory: a background thread writes each frame's maps to the store while
the next frame is analysed (:class:`LiveStore`), so the write is not part of the
latency.  Regions can be changed during the run (:meth:`LiveControl.set_regions`).

It keeps up rather than falling behind: when several frames are waiting, the newest is
analysed and the others are skipped, and the update says which (the very first frame,
the reference of the drift, the regions and the strain, is always analysed).  Closing the generator
(or :meth:`LiveControl.stop`) ends the run with a complete store, which equals an
offline :func:`~napari_hrtem_fft.core.movie.analyze_movie` of the analysed frames with
the drift the live run measured (within float32 rounding: the store holds float32).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .maps import LatticeMaps

# The store's record and completion marker, written as the offline analysis writes them.
from .movie import (
    MovieResult,
    TimeTrace,
    movie_parameters,
    read_zarr_maps,
    time_trace,
    write_zarr_geometry,
    write_zarr_record,
)
from .reciprocal import as_reflections

logger = logging.getLogger(__name__)

__all__ = [
    "LiveControl",
    "LiveResult",
    "LiveStack",
    "LiveStore",
    "LiveUpdate",
    "Prepended",
    "Stages",
    "iter_live",
    "regions_on_grid",
]


class Prepended:
    """A frame source that first returns ``frames`` already taken from ``source``.

    The command line and the dock look at the first frame (calibration, reflections)
    before the live run starts; the run must still analyse it.
    """

    def __init__(self, frames, source) -> None:
        self.frames, self.source = list(frames), source

    def poll(self) -> list:
        """The held frames, then what ``source.poll()`` returns."""
        frames, self.frames = self.frames + list(self.source.poll()), []
        return frames


#: ``LiveControl.set_regions`` argument left as it is.
_KEEP = object()


class LiveControl:
    """Pause, resume and stop a live run, and change its regions, from another thread.

    A button, a signal handler or an edited Shapes layer acts between frames: the frame
    being analysed is finished as it was started.  A run in another process follows a
    control of its own, told each change (:meth:`listen`).
    """

    def __init__(self) -> None:
        self._paused = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._regions: dict = {}
        self._given = threading.Event()
        self._listeners: list[Callable[[str, object], None]] = []

    def listen(self, callback: Callable[[str, object], None]) -> Callable[[], None]:
        """Call ``callback(kind, value)`` at every change, in the thread that made it.

        ``kind`` is the method called (``"pause"``, ``"resume"``, ``"stop"``) with
        value None, or ``"give_regions"`` with the change (:meth:`give_regions`).

        Returns
        -------
        callable
            Ends the calls.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _tell(self, kind: str, value=None) -> None:
        for callback in list(self._listeners):
            callback(kind, value)

    def pause(self) -> None:
        """Stop analysing; frames written meanwhile are skipped when resumed (newest first)."""
        self._paused.set()
        self._tell("pause")

    def resume(self) -> None:
        """Analyse again, starting with the newest frame."""
        self._paused.clear()
        self._tell("resume")

    def stop(self) -> None:
        """End the run after the frame being analysed; the store is then completed."""
        self._stopped.set()
        self._tell("stop")

    def set_regions(self, trace_regions=_KEEP, *, reference=_KEEP, reference_record=None):
        """Trace regions and reference region of the next frames analysed.

        Both are masks on the first frame's map grid, as the arguments of
        :func:`iter_live`, and follow the drift.  A region left out keeps its value.

        Parameters
        ----------
        trace_regions : mapping of str to (array_like of bool or None), optional
            The new trace regions (replacing all of them); a trace that a region no
            longer has ends, a new region's trace starts at the next frame.
        reference : array_like of bool or None, optional
            The new reference region (None: strain relative to the reflections).
        reference_record : object, optional
            How the reference was given (JSON-friendly), for the store's record.

        Raises
        ------
        TypeError
            If a region is not a boolean mask ``(my, mx)`` (or None).
        """
        change = {}
        if trace_regions is not _KEEP:
            regions = {"all": None} if trace_regions is None else dict(trace_regions)
            change["regions"] = {str(k): _checked_mask(k, v) for k, v in regions.items()}
        if reference is not _KEEP:
            change["reference"] = (_checked_mask("reference", reference), reference_record)
        self.give_regions(change)

    def give_regions(self, change: dict) -> None:
        """Regions taken from another control (:meth:`take_regions`), e.g. in another process."""
        with self._lock:
            self._regions.update(change)
        self._given.set()
        self._tell("give_regions", change)

    def take_regions(self) -> dict:
        """The regions set since the last call (``"regions"``, ``"reference"``), emptied."""
        with self._lock:
            regions, self._regions = self._regions, {}
        return regions

    @property
    def regions_given(self) -> bool:
        """Whether :meth:`set_regions` was called (a front end that sets them at start)."""
        return self._given.is_set()

    @property
    def paused(self) -> bool:
        """Whether the run is paused."""
        return self._paused.is_set()

    @property
    def stopped(self) -> bool:
        """Whether the run was asked to stop."""
        return self._stopped.is_set()


def _checked_mask(name, mask) -> np.ndarray | None:
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype != bool or arr.ndim != 2:
        raise TypeError(f"region {name!r} must be a boolean mask (my, mx) or None")
    return arr


@dataclass
class LiveUpdate:
    """What a live run yields: a new frame's maps, or that it is waiting or paused.

    Attributes
    ----------
    kind : {"frame", "waiting", "paused"}
        ``"frame"`` when a frame was analysed; otherwise nothing new.
    frame : int or None
        The analysed frame's number in the acquisition.
    time : float or None
        Its time in s since the first frame of the source.
    name : str
        Its file (or ``file[k]``).
    maps : LatticeMaps or None
        Its maps ``(n, my, mx)``; ``maps.parameters["found"]`` is the lattice found.
    drift : numpy.ndarray
        Drift ``(dy, dx)`` in pixels of this frame relative to the first analysed one.
    skipped : list of int
        Frames skipped since the previous update because the analysis was behind (or
        paused): they are not in the store.
    latency : float or None
        Seconds from the frame's file being found complete to its maps and traces
        being updated.
    analysed : int
        Frames analysed so far.
    traces : dict of str to TimeTrace
        Time trace of each region over the frames analysed so far.
    image : numpy.ndarray or None
        The analysed frame ``(y, x)``.
    store : LiveStore or None
        The maps of every frame analysed so far (:meth:`LiveStore.stack`).
    work : float or None
        Seconds the run spent on this frame (reading it, registration, analysis,
        traces): the latency without the wait for the frame analysed before it.
    complete : float or None
        ``time.monotonic()`` when the frame's file was found complete.
    stages : dict of str to (float, float)
        Wall and CPU seconds of each stage of this frame (:class:`Stages`), in order;
        for benchmarks, as cheap to record as a clock read per stage.
    cpu : float or None
        CPU seconds the analysing process had used when the update was made
        (``time.process_time()``): between two updates, its CPU per frame.
    """

    kind: str
    frame: int | None = None
    time: float | None = None
    name: str = ""
    maps: LatticeMaps | None = None
    drift: np.ndarray = field(default_factory=lambda: np.zeros(2))
    skipped: list[int] = field(default_factory=list)
    latency: float | None = None
    analysed: int = 0
    traces: dict[str, TimeTrace] = field(default_factory=dict)
    image: np.ndarray | None = None
    store: LiveStore | None = None
    work: float | None = None
    complete: float | None = None
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)
    cpu: float | None = None

    @property
    def message(self) -> str:
        """One line saying what happened, with the skipped frames."""
        if self.kind != "frame":
            return self.kind
        text = f"frame {self.frame} ({self.name}) at {self.time:.2f} s"
        if self.skipped:
            text += f"; skipped {_ranges(self.skipped)} (analysis behind the acquisition)"
        return text


class Stages:
    """Wall and CPU seconds of the stages of one frame of a live run, in order.

    :meth:`mark` ends a stage: the time since the previous mark (or the start).  CPU
    time is the process's (every thread: the engine's threads, the helpers), so a
    stage's CPU can exceed its wall time; :meth:`add` records one measured elsewhere
    (a helper thread's own).
    """

    def __init__(self) -> None:
        self.times: dict[str, tuple[float, float]] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def mark(self, name: str, *, minus_cpu: float = 0.0) -> None:
        """End stage ``name`` now; ``minus_cpu``: CPU seconds already counted elsewhere."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[name] = (wall - self._wall, cpu - self._cpu - minus_cpu)
        self._wall, self._cpu = wall, cpu

    def add(self, name: str, wall: float, cpu: float) -> None:
        """A stage measured elsewhere (it does not move the start of the next)."""
        self.times[name] = (float(wall), float(cpu))


def _timed(function):
    """``function`` returning ``(its result, (wall s, thread CPU s))`` (a helper thread's)."""

    def timed(*args):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = function(*args)
        return result, (time.perf_counter() - wall, time.thread_time() - cpu)

    return timed


@dataclass
class LiveResult:
    """The end of a live run.

    Attributes
    ----------
    movie : MovieResult or None
        The analysed frames as an offline analysis gives them, maps read lazily from
        the store; None if no frame was analysed (the store is then not created).
    traces : dict of str to TimeTrace
        Time trace of each region.
    skipped : list of int
        Every frame skipped.
    times : numpy.ndarray
        Time in s of each analysed frame.
    store : pathlib.Path or None
        The store.
    """

    movie: MovieResult | None
    traces: dict[str, TimeTrace]
    skipped: list[int]
    times: np.ndarray
    store: Path | None


def _ranges(frames: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``"3-5, 9"``."""
    parts, start = [], None
    for k, f in enumerate(frames):
        if start is None:
            start = f
        if k + 1 == len(frames) or frames[k + 1] != f + 1:
            parts.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)


def regions_on_grid(polygons: Mapping, frame_shape, *, pixel_size: float, step: int) -> dict:
    """Trace regions drawn in nm on the first frame, as masks on its map grid.

    Parameters
    ----------
    polygons : mapping of str to array_like
        Name → ``(v, 2)`` vertices ``(y, x)`` in nm (world coordinates of a frame
        placed at the origin, as a napari Shapes layer over it or ``--region``).
    frame_shape : tuple of int
        Frame shape ``(y, x)`` in pixels.
    pixel_size : float
        Pixel size in nm.
    step : int
        Map step in pixels.

    Returns
    -------
    dict of str to numpy.ndarray
        Boolean ``(my, mx)`` masks for ``iter_live(trace_regions=...)``.

    Raises
    ------
    ValueError
        If a region holds no map pixel (drawn outside the frame) or is not a polygon.
    """
    from .maps import map_geometry, map_shape
    from .movie import region_from_polygon

    geometry = map_geometry((pixel_size, pixel_size), (0.0, 0.0), int(step))
    shape = map_shape(frame_shape[-2:], step)
    masks = {}
    for name, vertices in polygons.items():
        mask = region_from_polygon(vertices, shape, geometry["scale"], geometry["translate"])
        if not mask.any():
            raise ValueError(f"region {name!r} holds no map pixel of the frame")
        masks[str(name)] = mask
    return masks


def iter_live(
    source,
    reflections,
    *,
    pixel_size: float,
    store,
    overwrite: bool = False,
    region=None,
    trace_regions: Mapping | None = None,
    reference=None,
    reference_record=None,
    register: bool = True,
    skip: bool = True,
    control: LiveControl | None = None,
    poll_interval: float = 0.05,
    min_windows: int = 5,
    **analyze_options,
) -> Generator[LiveUpdate, None, LiveResult]:
    """Analyse the frames of an acquisition as they are written.

    Parameters
    ----------
    source : object
        Frame source: ``source.poll()`` returns the frames completed since the last
        call, each with ``index``, ``data`` ``(y, x)``, ``time`` (s), ``name`` and
        ``complete`` (``time.monotonic()`` when found complete), as
        :class:`napari_hrtem_fft.io._watch.LiveFrame`.
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹ of the first frame; strain is
        relative to them in every frame.
    pixel_size : float
        Pixel size in nm.
    store : str or pathlib.Path
        Zarr store the maps are appended to (layout of
        :func:`~napari_hrtem_fft.core.movie.to_zarr`); complete when the run ends.
    overwrite : bool
        Replace an existing store; otherwise an existing store is an error.
    region : array_like of bool, optional
        Where the lattice is followed, ``(my, mx)`` on the first frame's map grid; it
        moves with the drift.  Default every window with a detected lattice.
    trace_regions : mapping of str to (array_like of bool or None), optional
        Regions of the time traces, ``(my, mx)`` on the first frame's map grid (they
        move with the drift); None for every finite value.  Default ``{"all": None}``.
        :meth:`LiveControl.set_regions` changes them from the next frame on.
    reference : array_like of bool, optional
        Reference region of the strain and phase, ``(my, mx)`` on the first frame's map
        grid (it moves with the drift): in each frame they are relative to the median
        lattice inside it (:func:`~napari_hrtem_fft.core.strain.relative_to_region`),
        so the strain there is 0 whatever the lattice does.  Default: relative to
        ``reflections``.  A frame whose region holds no valid value has NaN strain.
    reference_record : object, optional
        How the reference was given (e.g. a rectangle in nm), JSON-friendly; stored
        with the reference lattice of each frame in the store's
        ``parameters["reference"]``.
    register : bool
        Register each frame's drift against the previous analysed frame
        (:class:`~napari_hrtem_fft.core.drift.PreviousFrameRegistration`: frames binned
        to about 512 pixels, the previous frame's spectrum kept, so that a 2048² frame
        registers in a small fraction of its analysis).
    skip : bool
        When several frames are waiting, analyse the newest and skip the others (keeps
        up with the acquisition; the first frame of the run is always analysed); False
        analyses every frame (replay of a folder).
    control : LiveControl, optional
        Pause, resume and stop from another thread.
    poll_interval : float
        Seconds between looks at the source while nothing is new.
    min_windows : int
        As for :func:`~napari_hrtem_fft.core.movie.analyze_movie`.
    **analyze_options
        Options of :func:`napari_hrtem_fft.analyze` (``window``, ``step``, ``search``,
        ``refine``, ``min_amplitude``, ``compute_strain``, ``background``).

    Yields
    ------
    LiveUpdate
        After every analysed frame, and at every look at the source while waiting or
        paused (so that a caller can stop or show that it is alive).

    Returns
    -------
    LiveResult
        Ends when closed, or after :meth:`LiveControl.stop`.

    Raises
    ------
    FileExistsError
        If the store exists and ``overwrite`` is False (at the call).
    TypeError, ValueError
        On a source without ``poll``, invalid regions or a non-positive interval.
    """
    if not callable(getattr(source, "poll", None)):
        raise TypeError(f"source must have a poll() method, got {type(source).__name__}")
    refl = as_reflections(reflections)
    if not (isinstance(poll_interval, numbers.Real) and math.isfinite(poll_interval)):
        raise ValueError(f"poll_interval must be a number of seconds, got {poll_interval!r}")
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be > 0 s, got {poll_interval}")
    regions = {"all": None} if trace_regions is None else dict(trace_regions)
    region = _checked_mask("region", region)
    regions = {str(k): _checked_mask(k, v) for k, v in regions.items()}
    reference = _checked_mask("reference", reference)
    store = Path(store)
    root = _open_store(store, overwrite)
    run = _LiveRun(
        refl, pixel_size, root, store, region, bool(register), min_windows, analyze_options,
    )  # fmt: skip
    run.set_regions({"regions": regions, "reference": (reference, reference_record)})
    return _live(source, run, bool(skip), control or LiveControl(), poll_interval)


def _open_store(store: Path, overwrite: bool):
    import zarr

    if store.exists() and not overwrite:
        raise FileExistsError(f"{str(store)!r} already exists (pass overwrite=True to replace it)")
    return zarr.open_group(str(store), mode="w")


class _LiveRun:
    """State of a live run: tracked lattice, drift, regions, store and traces."""

    def __init__(self, refl, pixel_size, root, store, region, register, min_windows, options):
        import inspect

        from .drift import PreviousFrameRegistration
        from .engine import analyze
        from .strain import has_two_directions

        self.reflections = refl
        self.g = refl.copy()
        defaults = inspect.signature(analyze).parameters
        self.step = int(options.get("step", defaults["step"].default))
        self.options = {"pixel_size": float(pixel_size), **options, "compute_strain": False}
        compute = options.get("compute_strain", defaults["compute_strain"].default)
        self.with_strain = bool(compute) and has_two_directions(refl)
        self.min_windows = min_windows
        self.root, self.store = root, store
        self.maps_store = LiveStore(root)
        self.region = region
        self.regions: dict[str, np.ndarray | None] = {}
        self.reference: np.ndarray | None = None
        self.reference_record = None
        self.first: LatticeMaps | None = None
        # The tracked lattice stays within the search region of the reflections: the
        # binning of the registration must resolve their fringes up to its edge.
        fringes = float(np.hypot(*refl.T).max()) * pixel_size * (1 + options.get("search", 0.1))
        self.registration = PreviousFrameRegistration(max_frequency=fringes) if register else None
        # The registration of a frame runs beside its analysis (it needs only the pixels;
        # the drift moves the regions once the maps are there).
        self._helper = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-register")
            if register
            else None
        )
        self.drift = np.zeros(2)
        self.frames, self.times, self.drifts, self.used, self.found = [], [], [], [], []
        self.references: list[np.ndarray] = []  # reference lattice (n, 2) of each frame
        self.skipped: list[int] = []
        self.traces: dict[str, TimeTrace] = {}

    def set_regions(self, change: dict) -> None:
        """Apply :meth:`LiveControl.take_regions` from the next frame on."""
        if "regions" in change:
            self.regions = dict(change["regions"])
            # A region's trace restarts when the region is gone (or renamed).
            self.traces = {k: v for k, v in self.traces.items() if k in self.regions}
        if "reference" in change:
            self.reference, self.reference_record = change["reference"]

    def _on_grid(self, mask, name: str, shape) -> np.ndarray | None:
        """``mask`` moved with the drift (None stays None)."""
        from .drift import shift_region

        if mask is None:
            return None
        if mask.shape != tuple(shape):
            raise ValueError(
                f"region {name!r} of shape {mask.shape} does not match the map grid {tuple(shape)}"
            )
        return shift_region(mask, self.drift[None], step=self.step)[0]

    def analyse(self, frame, data: np.ndarray, stages: Stages | None = None) -> LatticeMaps:
        """One frame (``data``, its pixels): drift, maps (stored), traces; its maps.

        ``stages``: where the wall and CPU time of each step is recorded.
        """
        from .engine import analyze
        from .movie import frame_lattice

        stages = stages or Stages()
        helper = self._helper
        registering = None
        if helper is not None:
            registering = helper.submit(_timed(self.registration), data)
        try:
            maps = analyze(data, self.g, **self.options)
        finally:
            step, took = (None, (0.0, 0.0)) if registering is None else registering.result()
        # The registration ran in its own thread beside the analysis: its CPU apart.
        stages.mark("analyse", minus_cpu=took[1])
        stages.add("register (beside)", *took)
        if step is not None and np.all(np.isfinite(step)):
            self.drift = self.drift + step
        shape = np.shape(maps.d_spacing)[-2:]
        mask = self._on_grid(self.region, "region", shape)
        reference = self.reflections if self.with_strain else None
        maps = frame_lattice(maps, mask, reference=reference, min_windows=self.min_windows,
                             frame=frame.index)  # fmt: skip
        maps = self._relative(maps, self._on_grid(self.reference, "reference", shape))
        found = np.asarray(maps.parameters["found"], dtype=np.float64)
        # The tracking rule of the offline analysis: a lattice not found keeps its value.
        self.g = np.where(np.isfinite(found).all(axis=1)[:, None], found, self.g)
        stages.mark("lattice")
        if self.first is None:
            self.first = maps
        self.maps_store.add(maps)
        stages.mark("store queue")
        self.frames.append(int(frame.index))
        self.times.append(float(frame.time))
        self.drifts.append(self.drift.copy())
        self.used.append(np.asarray(maps.reflections, dtype=np.float64))
        self.found.append(found)
        for name, region in self.regions.items():
            row = time_trace(maps, region=self._on_grid(region, name, shape),
                             times=np.array([frame.time]))  # fmt: skip
            row.frames = np.array([frame.index])
            self.traces[name] = _append(self.traces.get(name), row)
        stages.mark("traces")
        return maps

    def _relative(self, maps: LatticeMaps, reference) -> LatticeMaps:
        """Strain and phase relative to the reference region (moved with the drift)."""
        from .strain import relative_to_region

        n = np.shape(maps.d_spacing)[0]
        if reference is None:
            self.references.append(np.full((n, 2), np.nan))
            return maps
        try:
            maps = relative_to_region(maps, reference, record=self.reference_record)
        except ValueError as exc:
            # Drifted off the crystal, or the lattice is not found there in this frame.
            logger.warning("reference region: %s; strain is NaN in this frame", exc)
            strain = {k: a for k, a in maps.arrays().items() if k not in LatticeMaps.FIELDS}
            maps = maps.with_arrays({k: np.full_like(a, np.nan) for k, a in strain.items()})
            self.references.append(np.full((n, 2), np.nan))
            return maps
        self.references.append(np.asarray(maps.parameters["reference"]["reflections"]))
        return maps

    def finish(self) -> LiveResult:
        """Cut the store to the frames analysed and write its record (completion marker)."""
        try:
            self.maps_store.close()
        finally:
            if self._helper is not None:
                self._helper.shutdown(wait=True)
        times = np.asarray(self.times, dtype=np.float64)
        n = len(self.frames)
        if n == 0:
            _remove_store(self.root, self.store)
            return LiveResult(None, self.traces, self.skipped, times, None)
        maps = self.first.with_arrays({name: self.root[name] for name in self.first.arrays()})
        maps.reflections = self.reflections
        maps.parameters = {
            **movie_parameters(self.first.parameters),
            "movie": {
                "track": True,
                "frames": self.frames,
                "drift_mode": "follow",
                "drift_px": np.stack(self.drifts).tolist(),
                "reflections_per_frame": np.stack(self.used).tolist(),
            },
            "live": {"times_s": times.tolist(), "skipped": self.skipped},
        }
        maps.parameters.pop("reference", None)
        if any(np.isfinite(r).any() for r in self.references):
            maps.parameters["reference"] = {
                "region": self.reference_record,
                "reflections": [np.round(r, 9).tolist() for r in self.references],
                "convention": "strain and phase relative to the median local g inside the "
                "region (moved with the drift), per frame; NaN: no reference in that frame",
            }
        result = MovieResult(
            maps=maps,
            reflections=np.stack(self.used),
            found=np.stack(self.found),
            frames=np.asarray(self.frames),
            drift=np.stack(self.drifts),
            tracked=True,
        )
        write_zarr_geometry(self.root, maps.geometry())
        write_zarr_record(self.root, maps, result)  # last: the completion marker
        result.maps = read_zarr_maps(self.store)
        return LiveResult(result, self.traces, self.skipped, times, self.store)


class _StoredFrames:
    """Maps of a live run's frames by position, from memory or from the zarr store.

    What :class:`LiveStore` and a reader of its store in another process
    (:class:`~napari_hrtem_fft.core.live_process.LiveStoreReader`) share: a subclass
    says which frames it holds in memory (:meth:`_held`) and gives the store's array
    that holds a frame (:meth:`_array`).
    """

    count: int
    _shapes: dict[str, tuple[int, ...]]

    def _held(self, position: int) -> dict[str, np.ndarray] | None:
        raise NotImplementedError

    def _array(self, name: str, position: int):
        raise NotImplementedError

    @property
    def names(self) -> list[str]:
        """Names of the stored maps (empty before the first frame)."""
        return list(self._shapes)

    def frame(self, name: str, position: int) -> np.ndarray:
        """One frame's map ``name`` (``(n, my, mx)`` or ``(my, mx)``), from memory or the store."""
        if not 0 <= position < self.count:
            raise IndexError(f"frame position {position} of {self.count} stored")
        held = self._held(position)
        if held is not None:
            return held[name]
        where = (slice(None), position) if name in LatticeMaps.FIELDS else position
        return np.asarray(self._array(name, position)[where])

    def stack(self, name: str, reflection: int | None = None) -> LiveStack:
        """Map ``name`` of every frame stored so far as an array ``(t, my, mx)``.

        ``reflection``: which reflection of a per-reflection map (from 0).
        """
        if name not in self._shapes:
            raise KeyError(f"no map {name!r} stored (maps: {', '.join(self._shapes)})")
        return LiveStack(self, name, reflection, self.count)


class LiveStore(_StoredFrames):
    """The maps of a live run's frames: written to a zarr group by a background thread.

    Each map of :meth:`LatticeMaps.arrays` is a float32 array of the group in the layout
    of :func:`~napari_hrtem_fft.core.movie.to_zarr` (``(n, t, my, mx)`` per reflection,
    ``(t, my, mx)`` for strain), one chunk per frame, uncompressed (compressing a
    frame's maps costs the thread as much CPU time as writing them, taken from the
    analysis on a 2-core machine).  Each chunk of a store on the local file system is
    written as its file (the raw little-endian bytes the array's only codec says, under
    a temporary name renamed into place, as zarr writes it): zarr's own write of the
    ten arrays costs its event loop and I/O threads about 4 times the CPU (13.6 against
    3.7 ms per 2048² frame at step 8, ``benchmarks/bench_live.py --store``).  The
    arrays grow by :attr:`BLOCK` frames at a time (a resize rewrites every array's
    metadata) and are cut to the frames analysed by :meth:`close`; until then their
    frames past :attr:`count` are NaN.  A frame's maps stay in memory until they are written, at
    most :attr:`QUEUE` frames: :meth:`stack` reads either.

    While the live run analyses a frame (:meth:`hold`), the thread writes only when
    :attr:`QUEUE` frames wait: otherwise it waits for the run to be idle
    (:meth:`release`), so that its work (much of it Python, holding the GIL) does not
    slow the analysis down when the run keeps up with the acquisition.

    Parameters
    ----------
    group : zarr.Group
        Where the arrays are created (at the first frame).
    """

    #: Frames the arrays grow by.
    BLOCK = 32
    #: Frames at most waiting to be written; the analysis waits beyond.
    QUEUE = 2

    def __init__(self, group) -> None:
        self.group = group
        #: Where the group is stored (its store's root, as text).
        self.path = str(getattr(group.store, "root", group.store))
        self.count = 0
        #: Frames completely written to the group (the first ones, in order).
        self.written = 0
        self._capacity = 0
        self._arrays: dict = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._pending: dict[int, dict[str, np.ndarray]] = {}
        self._writes: deque = deque()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-store")
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        #: Wall and CPU seconds of the last frame written (its thread's, waits included).
        self.last_write = (0.0, 0.0)

    def hold(self) -> None:
        """A frame is being analysed: write only when :attr:`QUEUE` frames wait."""
        self._idle.clear()

    def release(self) -> None:
        """The run is idle (waiting for frames): write what waits."""
        self._idle.set()

    def _gate(self) -> None:
        """Wait until the run is idle, the queue is full or the store is closed."""
        while not (self._idle.is_set() or self._closing or len(self._pending) >= self.QUEUE):
            self._idle.wait(0.01)

    def add(self, maps: LatticeMaps) -> None:
        """Queue one frame's maps ``(n, my, mx)`` for writing; raises a failed write's error."""
        arrays = {name: np.asarray(a, dtype=np.float32) for name, a in maps.arrays().items()}
        if not self._shapes:
            self._shapes = {name: a.shape for name, a in arrays.items()}
        position = self.count
        self._pending[position] = arrays
        self.count += 1
        while len(self._writes) >= self.QUEUE:
            self._writes.popleft().result()
        self._writes.append(self._pool.submit(self._write, position, arrays))

    def _write(self, position: int, arrays: dict[str, np.ndarray]) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        if not self._arrays:
            for name, a in arrays.items():
                axis = 1 if name in LatticeMaps.FIELDS else 0
                self._arrays[name] = self.group.create_array(
                    name, shape=(*a.shape[:axis], 0, *a.shape[axis:]),
                    chunks=(*a.shape[:axis], 1, *a.shape[axis:]), dtype="float32",
                    fill_value=float("nan"), compressors=None,
                )  # fmt: skip
        if position >= self._capacity:
            self._resize(self._capacity + self.BLOCK)
        for name, a in arrays.items():
            self._gate()
            field = name in LatticeMaps.FIELDS
            path = self._chunk_path(name, (0, position, 0, 0) if field else (position, 0, 0))
            if path is None:
                self._arrays[name][(slice(None), position) if field else position] = a
            else:
                _write_file(path, np.ascontiguousarray(a, dtype="<f4"))
        # Only once written: a reader that misses it here finds it in the store.
        del self._pending[position]
        self.written = position + 1
        self.last_write = (time.perf_counter() - wall, time.thread_time() - cpu)

    def _chunk_path(self, name: str, chunk: tuple[int, ...]) -> Path | None:
        """The file of chunk ``chunk`` of array ``name`` if its bytes are the raw array.

        None for another store than the local file system's, or an array whose codecs
        are not exactly little-endian bytes (zarr then writes the chunk).
        """
        from zarr.codecs import BytesCodec
        from zarr.storage import LocalStore

        array = self._arrays[name]
        metadata = array.metadata
        if (
            not isinstance(self.group.store, LocalStore)
            or getattr(metadata, "zarr_format", None) != 3
            or tuple(metadata.codecs) != (BytesCodec(endian="little"),)
        ):
            return None
        return Path(self.group.store.root, array.path, metadata.encode_chunk_key(chunk))

    def _resize(self, t: int) -> None:
        for name, array in self._arrays.items():
            shape = list(array.shape)
            shape[1 if name in LatticeMaps.FIELDS else 0] = t
            array.resize(tuple(shape))
        self._capacity = t

    def _held(self, position: int) -> dict[str, np.ndarray] | None:
        return self._pending.get(position)

    def _array(self, name: str, position: int):
        return self._arrays[name]

    def close(self) -> None:
        """Finish the writes and cut the arrays to the frames stored."""
        self._closing = True
        self._idle.set()
        try:
            while self._writes:
                self._writes.popleft().result()
        finally:
            self._pool.shutdown(wait=True)
        if self._arrays:
            self._resize(self.count)


class LiveStack:
    """One map of the frames of a live run, ``(t, my, mx)``, read frame by frame.

    An array-like (``shape``, ``dtype``, ``ndim``, indexing) for a napari layer: only
    the frames indexed are read, from memory while they wait to be written, else from
    the store.  It holds the frames stored when it was made (:meth:`LiveStore.stack`).
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, store: LiveStore, name: str, reflection: int | None, count: int):
        self._store, self._name, self._reflection = store, name, reflection
        shape = store._shapes[name]
        self.shape = (int(count), *shape[-2:])

    def _frame(self, position: int) -> np.ndarray:
        frame = self._store.frame(self._name, position)
        return frame if self._reflection is None else frame[self._reflection]

    def __len__(self) -> int:
        """Frames stored when the stack was made."""
        return self.shape[0]

    def __getitem__(self, key):
        """The indexed frames (only those are read), as numpy indexing gives them."""
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (3 - len(key) + 1)
            key = key[:at] + fill + key[at + 1 :]
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        positions = np.arange(self.shape[0])[first]
        if np.ndim(positions) == 0:
            return self._frame(int(positions))[rest]
        frames = [self._frame(int(p)) for p in np.ravel(positions)]
        stack = np.stack(frames) if frames else np.empty((0, *self.shape[1:]), self.dtype)
        return stack.reshape(*np.shape(positions), *self.shape[1:])[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        """Every frame (reads them all)."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _write_file(path: Path, data: np.ndarray) -> None:
    """``data``'s bytes as file ``path``, renamed into place once written.

    A reader (the dock's layers, in another process) sees the old file or the new one,
    never a part.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    with open(part, "wb") as file:
        file.write(memoryview(data).cast("B"))
    os.replace(part, path)


def _remove_store(root, store: Path) -> None:
    import shutil

    del root
    shutil.rmtree(store, ignore_errors=True)


def _append(trace: TimeTrace | None, row: TimeTrace) -> TimeTrace:
    """A time trace with one more frame."""
    if trace is None:
        return row
    times = None if trace.times is None else np.concatenate([trace.times, row.times])
    stats = {k: np.concatenate([v, row.stats[k]]) for k, v in trace.stats.items()}
    return TimeTrace(
        np.concatenate([trace.frames, row.frames]), times, trace.reflections, stats, trace.units
    )


def _live(source, run: _LiveRun, skip, control, poll_interval):
    unreadable: list[int] = []  # frames whose pixels could not be read, not said yet
    try:
        while not control.stopped:
            if control.paused:
                run.maps_store.release()
                time.sleep(poll_interval)
                yield LiveUpdate("paused", analysed=len(run.frames), traces=run.traces)
                continue
            polled = Stages()
            waiting = list(source.poll())
            polled.mark("poll")
            if not waiting:
                run.maps_store.release()
                time.sleep(poll_interval)
                yield LiveUpdate("waiting", analysed=len(run.frames), traces=run.traces)
                continue
            if skip:
                batches = []
                if not run.frames and len(waiting) > 1:
                    # The first frame is the reference of the drift, of the regions
                    # drawn on it and of the strain: always analysed.
                    batches, waiting = [([], waiting[0])], waiting[1:]
                run.skipped += [int(f.index) for f in waiting[:-1]]
                batches.append(([int(f.index) for f in waiting[:-1]], waiting[-1]))
            else:
                batches = [([], f) for f in waiting]
            run.maps_store.hold()
            for skipped, frame in batches:
                stages, polled = polled, Stages()
                run.set_regions(control.take_regions())
                started = time.monotonic()
                try:
                    # A source may read a frame's pixels only now (only those analysed).
                    data = np.asarray(frame.data)
                except (OSError, ValueError) as exc:
                    logger.warning("frame %s skipped: %s", frame.index, exc)
                    run.skipped.append(int(frame.index))
                    unreadable.append(int(frame.index))
                    continue
                stages.mark("read")
                maps = run.analyse(frame, data, stages)
                # The frame written before this one, by the store's thread.
                stages.add("store write (behind)", *run.maps_store.last_write)
                yield LiveUpdate(
                    "frame", int(frame.index), float(frame.time), str(frame.name), maps,
                    run.drift.copy(), sorted(unreadable + skipped),
                    time.monotonic() - frame.complete, len(run.frames), run.traces, data,
                    run.maps_store, time.monotonic() - started, frame.complete, stages.times,
                    time.process_time(),
                )  # fmt: skip
                unreadable = []
                if control.stopped:
                    break
    finally:
        result = run.finish()
    return result
