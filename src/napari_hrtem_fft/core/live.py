"""Live analysis of an acquisition while it is being recorded.

:func:`iter_live` follows a frame source (anything with ``poll() -> list of frames``,
such as :class:`napari_hrtem_fft.io._watch.FolderFrames`): for every new frame it
registers the drift against the previous analysed frame (the regions follow it),
analyses the frame with the movie analysis (:func:`~napari_hrtem_fft.core.movie.
analyze_movie` on that one frame, with the lattice found in the previous frame: the
tracking of the offline analysis, one code path), appends the maps to a zarr store on
disk and adds a row to the time trace of each region.  Only the newest frame's maps are
kept in memory.

It keeps up rather than falling behind: when several frames are waiting, the newest is
analysed and the others are skipped, and the update says which.  Closing the generator
(or :meth:`LiveControl.stop`) ends the run with a complete store, which equals an
offline :func:`~napari_hrtem_fft.core.movie.analyze_movie` of the analysed frames with
the drift the live run measured (within float32 rounding: the store holds float32).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .maps import LatticeMaps
from .movie import (
    MovieResult,
    TimeTrace,
    analyze_movie,
    movie_parameters,
    read_zarr_maps,
    time_trace,
    write_zarr_geometry,
)

# The store's record and completion marker, written as the offline analysis writes them.
from .movie.storage import _write_record
from .reciprocal import as_reflections

__all__ = ["LiveControl", "LiveResult", "LiveUpdate", "Prepended", "iter_live"]


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


class LiveControl:
    """Pause, resume and stop a live run from another thread (a button, a signal handler)."""

    def __init__(self) -> None:
        self._paused = threading.Event()
        self._stopped = threading.Event()

    def pause(self) -> None:
        """Stop analysing; frames written meanwhile are skipped when resumed (newest first)."""
        self._paused.set()

    def resume(self) -> None:
        """Analyse again, starting with the newest frame."""
        self._paused.clear()

    def stop(self) -> None:
        """End the run after the frame being analysed; the store is then completed."""
        self._stopped.set()

    @property
    def paused(self) -> bool:
        """Whether the run is paused."""
        return self._paused.is_set()

    @property
    def stopped(self) -> bool:
        """Whether the run was asked to stop."""
        return self._stopped.is_set()


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

    @property
    def message(self) -> str:
        """One line saying what happened, with the skipped frames."""
        if self.kind != "frame":
            return self.kind
        text = f"frame {self.frame} ({self.name}) at {self.time:.2f} s"
        if self.skipped:
            text += f"; skipped {_ranges(self.skipped)} (analysis behind the acquisition)"
        return text


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


def iter_live(
    source,
    reflections,
    *,
    pixel_size: float,
    store,
    overwrite: bool = False,
    region=None,
    trace_regions: Mapping | None = None,
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
    register : bool
        Register each frame's drift against the previous analysed frame
        (:func:`~napari_hrtem_fft.core.drift.register_frames` on frames binned to about
        512 pixels, so that a 2048² frame registers in a fraction of its analysis).
    skip : bool
        When several frames are waiting, analyse the newest and skip the others (keeps
        up with the acquisition); False analyses every frame (replay of a folder).
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
    for name, mask in [("region", region), *regions.items()]:
        if mask is not None and (np.asarray(mask).dtype != bool or np.ndim(mask) != 2):
            raise TypeError(f"region {name!r} must be a boolean mask (my, mx) or None")
    store = Path(store)
    root = _open_store(store, overwrite)
    run = _LiveRun(
        refl, pixel_size, root, store, region, regions, bool(register), min_windows,
        analyze_options,
    )  # fmt: skip
    return _live(source, run, bool(skip), control or LiveControl(), poll_interval)


def _open_store(store: Path, overwrite: bool):
    import zarr

    if store.exists() and not overwrite:
        raise FileExistsError(f"{str(store)!r} already exists (pass overwrite=True to replace it)")
    return zarr.open_group(str(store), mode="w")


class _LiveRun:
    """State of a live run: tracked lattice, drift, store and traces."""

    def __init__(
        self, refl, pixel_size, root, store, region, regions, register, min_windows, options
    ):  # fmt: skip
        self.reference = refl
        self.register = register
        self.g = refl.copy()
        self.options = {"pixel_size": float(pixel_size), "min_windows": min_windows, **options}
        self.root, self.store = root, store
        self.region = None if region is None else np.asarray(region)
        self.regions = {k: None if v is None else np.asarray(v) for k, v in regions.items()}
        self.first: LatticeMaps | None = None
        self.previous: np.ndarray | None = None
        self.drift = np.zeros(2)
        self.frames, self.times, self.drifts, self.used, self.found = [], [], [], [], []
        self.skipped: list[int] = []
        self.traces: dict[str, TimeTrace] = {}

    def analyse(self, frame) -> LatticeMaps:
        """One frame: drift, maps (stored), traces; returns its maps ``(n, my, mx)``."""
        from .drift import register_frames, shift_region

        data = np.asarray(frame.data)
        binned, factor = _binned(data)
        if self.previous is not None and self.register:
            step = register_frames(np.stack([self.previous, binned]), reference=0)[1]
            if np.all(np.isfinite(step)):
                self.drift = self.drift + step * factor
        self.previous = binned
        drift = self.drift[None]
        movie = analyze_movie(
            data[None], self.g, track=True, region=self.region, drift=drift,
            strain_reference=self.reference, **self.options,
        )  # fmt: skip
        maps = movie.maps.with_arrays(
            {k: np.asarray(a)[:, 0] if a.ndim == 4 else np.asarray(a)[0]
             for k, a in movie.maps.arrays().items()}
        )  # fmt: skip
        found = movie.found[0]
        maps.parameters["found"] = found.tolist()
        # The tracking rule of the offline analysis: a lattice not found keeps its value.
        self.g = np.where(np.isfinite(found).all(axis=1)[:, None], found, self.g)
        self._store_frame(maps)
        self.frames.append(int(frame.index))
        self.times.append(float(frame.time))
        self.drifts.append(self.drift.copy())
        self.used.append(movie.reflections[0])
        self.found.append(found)
        for name, mask in self.regions.items():
            if mask is not None:
                mask = shift_region(mask, drift, step=maps.step)[0]
            row = time_trace(maps, region=mask, times=np.array([frame.time]))
            row.frames = np.array([frame.index])
            self.traces[name] = _append(self.traces.get(name), row)
        return maps

    def _store_frame(self, maps: LatticeMaps) -> None:
        """Append one frame's maps to the store's arrays (``(n, t, my, mx)``, ``(t, my, mx)``).

        The arrays grow by one frame at a time: at any moment they hold exactly the
        frames stored, so a run that ends abruptly leaves nothing to cut.
        """
        per_reflection = LatticeMaps.FIELDS
        if self.first is None:
            self.first = maps
            for name, a in maps.arrays().items():
                a = np.asarray(a)
                axis = 1 if name in per_reflection else 0
                shape = (*a.shape[:axis], 0, *a.shape[axis:])
                chunks = (*a.shape[:axis], 1, *a.shape[axis:])
                self.root.create_array(
                    name, shape=shape, chunks=chunks, dtype="float32", fill_value=float("nan")
                )
        for name, a in maps.arrays().items():
            axis = 1 if name in per_reflection else 0
            frame = np.expand_dims(np.asarray(a, dtype=np.float32), axis)
            self.root[name].append(frame, axis=axis)

    def finish(self) -> LiveResult:
        """Cut the store to the frames analysed and write its record (completion marker)."""
        times = np.asarray(self.times, dtype=np.float64)
        n = len(self.frames)
        if n == 0:
            _remove_store(self.root, self.store)
            return LiveResult(None, self.traces, self.skipped, times, None)
        maps = self.first.with_arrays({name: self.root[name] for name in self.first.arrays()})
        maps.reflections = self.reference
        maps.parameters = {
            **movie_parameters(self.first.parameters),
            "movie": {"track": True, "frames": self.frames, "drift_mode": "follow"},
            "live": {"times_s": times.tolist(), "skipped": self.skipped},
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
        _write_record(self.root, maps, result)  # last: the completion marker
        result.maps = read_zarr_maps(self.store)
        return LiveResult(result, self.traces, self.skipped, times, self.store)


# Registration works on frames binned down to about this size (pixels): the drift of the
# particle and film is kept, the lattice fringes (which move with strain, not drift)
# average out, and a 2048² pair registers 16 times faster.
_REGISTER_SIZE = 512


def _binned(frame: np.ndarray) -> tuple[np.ndarray, int]:
    """``frame`` averaged over ``b × b`` blocks (edges cut) for registration, and ``b``."""
    b = max(1, min(frame.shape) // _REGISTER_SIZE)
    if b == 1:
        return frame, 1
    h, w = (frame.shape[0] // b) * b, (frame.shape[1] // b) * b
    blocks = frame[:h, :w].reshape(h // b, b, w // b, b)
    return blocks.mean(axis=(1, 3), dtype=np.float32), b


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
    try:
        while not control.stopped:
            if control.paused:
                time.sleep(poll_interval)
                yield LiveUpdate("paused", analysed=len(run.frames), traces=run.traces)
                continue
            waiting = list(source.poll())
            if not waiting:
                time.sleep(poll_interval)
                yield LiveUpdate("waiting", analysed=len(run.frames), traces=run.traces)
                continue
            if skip:
                run.skipped += [int(f.index) for f in waiting[:-1]]
                batches = [([int(f.index) for f in waiting[:-1]], waiting[-1])]
            else:
                batches = [([], f) for f in waiting]
            for skipped, frame in batches:
                maps = run.analyse(frame)
                yield LiveUpdate(
                    "frame", int(frame.index), float(frame.time), str(frame.name), maps,
                    run.drift.copy(), skipped, time.monotonic() - frame.complete,
                    len(run.frames), run.traces, np.asarray(frame.data),
                )  # fmt: skip
                if control.stopped:
                    break
    finally:
        result = run.finish()
    return result
