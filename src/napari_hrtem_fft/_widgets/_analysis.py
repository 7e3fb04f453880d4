"""The lattice-map analysis as a generator of progress steps; no Qt, no napari.

:func:`run_analysis` is what the lattice-map widget runs in a napari ``thread_worker``
for an image.  It builds the lazy (dask) analysis of :func:`napari_hrtem_fft.analyze`
over image blocks of 512 px, computes it in a helper thread and yields progress every
50 ms, so that a Cancel stops it within a fraction of a second, and returns the
finished, post-processed :class:`~napari_hrtem_fft.core.maps.LatticeMaps`.
:func:`run_movie_analysis` is its counterpart for a movie ``(t, y, x)``: frame by frame
(:func:`napari_hrtem_fft.core.movie.iter_analyze_movie`), optionally tracking the
lattice and measuring the drift, with progress and Cancel between frames.  Tests drive
both without a viewer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DRIFT_MODES",
    "SMOOTHING_METHODS",
    "AnalysisCancelled",
    "AnalysisFailure",
    "AnalysisOptions",
    "MovieRun",
    "Progress",
    "reporting_errors",
    "run_analysis",
    "run_movie_analysis",
    "run_reporting_errors",
    "run_to_end",
]

logger = logging.getLogger(__name__)

SMOOTHING_METHODS = ("none", "block", "gaussian", "median")

# Side of the image blocks (pixels) computed as one dask task: large enough that the
# window overlap costs little, small enough that one task takes well under a second
# (the latency of Cancel) and progress moves in visible steps.
_BLOCK_PIXELS = 512

# Seconds between progress reports while the blocks are computed.
_POLL = 0.05


@dataclass(frozen=True)
class AnalysisOptions:
    """Every option of a lattice-map run, recorded in the result layers' metadata.

    Attributes
    ----------
    window : int
        Window size in pixels (even).
    step : int
        Step between windows in pixels.
    search : float
        Search tolerance around each reflection, as passed to
        :func:`napari_hrtem_fft.analyze`.
    refine : bool
        Sub-bin refinement of every peak.
    compute_strain : bool
        Compute strain maps (needs two non-collinear reflections).
    crystal_mask : bool
        Blank (NaN) map pixels without a clear lattice peak.
    crystal_threshold : float or None
        Peak-strength threshold of the crystal mask; None lets
        :func:`napari_hrtem_fft.crystal_mask` choose.
    intensity_mask : bool
        Blank map pixels on the wrong side of ``intensity_threshold``.
    intensity_threshold : float
        Threshold on the smoothed image intensity normalised to [0, 1] (1st to 99th
        percentile), see :func:`napari_hrtem_fft.intensity_mask`.
    intensity_dark : bool
        Keep pixels darker than the threshold (a particle darker than the film),
        instead of brighter.
    smoothing : str
        One of :data:`SMOOTHING_METHODS`.
    smoothing_size : int
        Smoothing size in map pixels.
    """

    window: int = 128
    step: int = 8
    search: float = 0.1
    refine: bool = True
    compute_strain: bool = True
    crystal_mask: bool = True
    crystal_threshold: float | None = None
    intensity_mask: bool = False
    intensity_threshold: float = 0.5
    intensity_dark: bool = False
    smoothing: str = "none"
    smoothing_size: int = 3

    def __post_init__(self) -> None:
        for name in ("window", "step", "smoothing_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        if self.window < 8 or self.window % 2:
            raise ValueError(f"window must be an even number of pixels ≥ 8, got {self.window}")
        if self.step < 1:
            raise ValueError(f"step must be at least 1 pixel, got {self.step}")
        if not (np.isfinite(self.search) and self.search > 0):
            raise ValueError(f"search must be a positive number, got {self.search!r}")
        if not 0.0 <= self.intensity_threshold <= 1.0:
            raise ValueError(
                "intensity_threshold must be in [0, 1] (normalised intensity), "
                f"got {self.intensity_threshold!r}"
            )
        if self.smoothing not in SMOOTHING_METHODS:
            raise ValueError(
                f"smoothing must be one of {SMOOTHING_METHODS}, got {self.smoothing!r}"
            )
        if self.smoothing_size < 1:
            raise ValueError(f"smoothing_size must be at least 1, got {self.smoothing_size}")

    def as_dict(self) -> dict:
        """The options as a plain dict (for metadata and JSON)."""
        return dataclasses.asdict(self)

    def engine_options(self) -> dict:
        """The keyword arguments of the engine (``analyze``, ``iter_analyze_movie``)."""
        return {
            "window": self.window,
            "step": self.step,
            "search": self.search,
            "refine": self.refine,
            "compute_strain": self.compute_strain,
        }


@dataclass(frozen=True)
class Progress:
    """One progress report of :func:`run_analysis`.

    Attributes
    ----------
    done, total : int
        Steps done and the total number of steps.
    message : str
        What is being done.
    """

    done: int
    total: int
    message: str


def _spatial_chunk(window: int, step: int) -> int:
    """Image block side: a multiple of ``step`` and at least the overlap depth."""
    depth = step * math.ceil((window // 2) / step)
    return max(depth, step * math.ceil(_BLOCK_PIXELS / step))


class AnalysisCancelled(Exception):
    """Raised inside the dask computation when the user cancels."""


class _Tracker:
    """dask scheduler callbacks: count finished tasks, stop when ``cancel`` is set.

    Raising in the pre-task hook makes the threaded scheduler stop submitting tasks
    and re-raise, so a cancelled run ends after the tasks already running (each one
    image block, a fraction of a second).
    """

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.total = 0
        self.done = 0

    def start_state(self, dsk, state) -> None:
        self.total = sum(len(state[k]) for k in ("ready", "waiting", "running"))
        self.total += len(state.get("finished", ()))

    def pretask(self, key, dsk, state) -> None:
        if self.cancel.is_set():
            raise AnalysisCancelled

    def posttask(self, key, result, dsk, state, worker_id) -> None:
        self.done += 1

    def callbacks(self) -> tuple:
        """The (start, start_state, pretask, posttask, finish) tuple dask expects."""
        return (None, self.start_state, self.pretask, self.posttask, None)


def run_analysis(
    image,
    reflections,
    *,
    pixel_size: float,
    options: AnalysisOptions | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, object]:
    """Lattice maps of an image, computed block by block with progress reports.

    Parameters
    ----------
    image : array_like
        Image ``(y, x)`` or movie ``(..., y, x)``, numpy or dask.
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹.
    pixel_size : float
        nm per pixel.
    options : AnalysisOptions, optional
        Window, step, masks, smoothing, strain (defaults: ``AnalysisOptions()``).
    cancel : threading.Event, optional
        Set it (from any thread) to stop the computation after the image blocks
        already running; the generator then returns None.

    Yields
    ------
    Progress
        Every 50 ms while the maps are computed (tasks done of all tasks), then after
        each post-processing step.

    Returns
    -------
    LatticeMaps or None
        numpy maps, masked (NaN) and smoothed as the options say; None if cancelled.

    Raises
    ------
    TypeError, ValueError
        On invalid input, with the engine's message.
    """
    import dask
    import dask.array as da

    from ..core.engine import analyze
    from ..core.reciprocal import as_reflections

    options = AnalysisOptions() if options is None else options
    if not isinstance(options, AnalysisOptions):
        raise TypeError(f"options must be AnalysisOptions, got {type(options).__name__}")
    reflections = as_reflections(reflections)
    if np.ndim(image) < 2:
        raise ValueError(
            f"image must have at least 2 dimensions (y, x), got shape {np.shape(image)}"
        )
    if min(np.shape(image)[-2:]) < options.window:
        raise ValueError(
            f"window ({options.window} px) is larger than the image "
            f"({np.shape(image)[-2]}×{np.shape(image)[-1]} px)"
        )

    side = _spatial_chunk(options.window, options.step)
    chunks = (1,) * (np.ndim(image) - 2) + (side, side)
    if isinstance(image, da.Array):
        lazy_image = image.rechunk(chunks)
    else:
        lazy_image = da.from_array(np.asarray(image), chunks=chunks)
    lazy = analyze(lazy_image, reflections, pixel_size=pixel_size, **options.engine_options())
    arrays = lazy.arrays()
    post_steps = int(options.crystal_mask) + int(options.intensity_mask)
    post_steps += int(options.smoothing != "none")

    # All maps in one computation (they share every block's FFTs), in a helper
    # thread, so that this generator can report progress while it runs.
    tracker = _Tracker(threading.Event() if cancel is None else cancel)
    yield Progress(0, 1, "starting")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lattice-maps") as pool:
        future = pool.submit(
            dask.compute, *arrays.values(), scheduler="threads", callbacks=[tracker.callbacks()]
        )
        try:
            while not future.done():
                wait([future], timeout=_POLL)
                total = max(tracker.total, 1) + post_steps
                yield Progress(min(tracker.done, total - post_steps), total, "computing maps")
        finally:
            # Closed early (the caller stopped iterating): stop the computation too.
            if not future.done():
                tracker.cancel.set()
        if tracker.cancel.is_set():
            # Cancelled while computing: the scheduler raised AnalysisCancelled, or
            # finished anyway; either way the caller asked for nothing.
            return None
        out = [np.asarray(a) for a in future.result()]
    total = max(tracker.total, 1) + post_steps
    maps = lazy.with_arrays(dict(zip(arrays, out, strict=True)))

    done = total - post_steps
    yield Progress(done, total, "maps computed")
    post = _post_process(maps, image, options)
    while True:
        try:
            message = next(post)
        except StopIteration as stop:
            maps = stop.value
            break
        done += 1
        yield Progress(done, total, message)
    maps.parameters.update({"widget_options": options.as_dict()})
    return maps


def _post_process(maps, image, options: AnalysisOptions) -> Generator[str, None, object]:
    """Masks and smoothing of ``options``; yields the name of each step, returns the maps.

    ``image`` is the analysed image (or frame), read only for the intensity mask.
    """
    if options.crystal_mask or options.intensity_mask:
        from ..core.postprocess import apply_mask, crystal_mask, intensity_mask, mask_to_map

        mask = np.ones(maps.d_spacing.shape[1:], dtype=bool)
        if options.crystal_mask:
            mask &= np.asarray(crystal_mask(maps, threshold=options.crystal_threshold))
            yield "crystal mask"
        if options.intensity_mask:
            image_mask = intensity_mask(
                image, options.intensity_threshold, dark=options.intensity_dark
            )
            mask &= np.asarray(mask_to_map(image_mask, options.step))
            yield "intensity mask"
        maps = apply_mask(maps, mask)
    if options.smoothing != "none":
        from ..core.postprocess import smooth

        maps = smooth(maps, options.smoothing_size, method=options.smoothing)
        yield f"{options.smoothing} smoothing"
    return maps


#: How the drift of a movie is handled: not at all; measured, and a drift-corrected
#: copy analysed; measured, and the tracking region moved with it.
DRIFT_MODES = ("none", "correct", "follow")

# Frames registered per call of register_frames (each call re-reads the reference
# frame): the granularity of progress and Cancel while the drift is measured.
_DRIFT_BATCH = 8


@dataclass
class MovieRun:
    """What :func:`run_movie_analysis` returns.

    Attributes
    ----------
    maps : LatticeMaps
        Post-processed numpy maps ``(n, t, my, mx)``, strain ``(t, my, mx)``, relative to
        the reflections given (``maps.reflections``).
    frames : range
        Frame numbers of the input stack that were analysed, in order.
    tracked : bool
        Whether the reflections followed the lattice from frame to frame.
    reflections : numpy.ndarray
        Reflections demodulated in each frame, ``(t, n, 2)`` nm⁻¹.
    found : numpy.ndarray
        Robust lattice found in each frame, ``(t, n, 2)`` nm⁻¹ (NaN where not found).
    drift : numpy.ndarray or None
        Drift ``(t, 2)`` as ``(dy, dx)`` image pixels of the analysed frames relative to
        the first one; None if not measured.
    drift_mode : str
        One of :data:`DRIFT_MODES`.
    corrected : dask.array.Array or None
        The drift-corrected frames ``(t, y, x)`` that were analysed (lazy), for
        ``drift_mode == "correct"``.
    blank_frames : list of int
        Frames whose maps are all NaN because the crystal mask found no crystal.
    """

    maps: object
    frames: range
    tracked: bool
    reflections: np.ndarray
    found: np.ndarray
    drift: np.ndarray | None = None
    drift_mode: str = "none"
    corrected: object = None
    blank_frames: list = dataclasses.field(default_factory=list)


def _check_frames(frames, t: int) -> range:
    if not isinstance(frames, range):
        raise TypeError(f"frames must be a range of frame numbers, got {type(frames).__name__}")
    if len(frames) == 0 or frames.step < 1:
        raise ValueError(f"frames {frames} selects no frame (give start < stop, step >= 1)")
    if frames.start < 0 or frames[-1] >= t:
        raise ValueError(
            f"frames {frames.start}–{frames[-1]} are out of range for a movie of {t} frames "
            f"(0–{t - 1})"
        )
    return frames


def _measure_drift(stack, frames: range, total: int, cancel: threading.Event):
    """Drift of ``frames`` relative to the first, in batches: yields Progress, returns
    the drift ``(t, 2)`` pixels, or None if cancelled."""
    from ..core.drift import register_frames

    drift = np.zeros((len(frames), 2))
    rest = list(frames)[1:]
    done = 1
    yield Progress(done, total, f"drift: frame {frames[0]} is the reference")
    for start in range(0, len(rest), _DRIFT_BATCH):
        if cancel.is_set():
            return None
        batch = rest[start : start + _DRIFT_BATCH]
        measured = register_frames(stack[[frames[0], *batch]], reference=0)
        drift[1 + start : 1 + start + len(batch)] = measured[1:]
        done += len(batch)
        yield Progress(done, total, f"drift: {done} of {len(frames)} frames registered")
    return drift


def _blank(maps):
    """The frame's maps, all NaN (no crystal to measure)."""
    from ..core.postprocess import apply_mask

    return apply_mask(maps, np.zeros(maps.d_spacing.shape[1:], dtype=bool))


def run_movie_analysis(
    stack,
    reflections,
    *,
    pixel_size: float,
    frames: range,
    options: AnalysisOptions | None = None,
    track: bool = False,
    drift_mode: str = "none",
    region=None,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, object]:
    """Lattice maps of a movie, frame by frame, with progress after every frame.

    Each frame is analysed by :func:`napari_hrtem_fft.core.movie.iter_analyze_movie`
    (only that frame is read) and post-processed as ``options`` say; Cancel takes
    effect between frames.

    Parameters
    ----------
    stack : array_like
        Movie ``(t, y, x)``, numpy or dask.
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹ of the first analysed frame.
    pixel_size : float
        nm per pixel.
    frames : range
        Frame numbers to analyse (``range(k, k + 1)`` for one frame).
    options : AnalysisOptions, optional
        Window, step, masks, smoothing, strain.
    track : bool
        Each frame demodulated at the lattice found in the previous one.
    drift_mode : str
        One of :data:`DRIFT_MODES`.  ``"correct"``: measure the drift of the frames
        (relative to the first analysed frame) and analyse a drift-corrected copy, so
        that the particle stands still in the maps.  ``"follow"``: measure it and move
        ``region`` with it, the maps staying on the original frames.
    region : array_like of bool, optional
        Where the lattice is followed when tracking: a mask ``(my, mx)`` on the map grid,
        drawn on the first analysed frame (see ``iter_analyze_movie``).
    cancel : threading.Event, optional
        Set it to stop after the current frame; the generator then returns None.

    Yields
    ------
    Progress
        Per registered batch of frames (drift) and per analysed frame.

    Returns
    -------
    MovieRun or None
        None if cancelled.

    Raises
    ------
    TypeError, ValueError
        On invalid input, before any frame is analysed.
    """
    import dask.array as da

    from ..core.movie import MovieMapsCollector, iter_analyze_movie
    from ..core.reciprocal import as_reflections

    options = AnalysisOptions() if options is None else options
    if not isinstance(options, AnalysisOptions):
        raise TypeError(f"options must be AnalysisOptions, got {type(options).__name__}")
    if np.ndim(stack) != 3:
        raise ValueError(f"stack must be a movie (t, y, x), got shape {np.shape(stack)}")
    t = int(np.shape(stack)[0])
    frames = _check_frames(frames, t)
    if drift_mode not in DRIFT_MODES:
        raise ValueError(f"drift_mode must be one of {DRIFT_MODES}, got {drift_mode!r}")
    if min(np.shape(stack)[-2:]) < options.window:
        raise ValueError(
            f"window ({options.window} px) is larger than the frames "
            f"({np.shape(stack)[-2]}×{np.shape(stack)[-1]} px)"
        )
    reflections = as_reflections(reflections)
    cancel = threading.Event() if cancel is None else cancel
    measure = drift_mode != "none" and len(frames) > 1
    total = len(frames) * (2 if measure else 1)
    yield Progress(0, total, "starting")

    drift = None
    source, analysed, drift_arg = stack, frames, None
    if measure:
        drift = yield from _measure_drift(stack, frames, total, cancel)
        if drift is None:
            return None
        if drift_mode == "correct":
            from ..core.drift import apply_drift

            lazy = stack if isinstance(stack, da.Array) else da.from_array(np.asarray(stack))
            lazy = lazy[frames.start : frames.stop : frames.step].rechunk({0: 1})
            source, analysed = apply_drift(lazy, drift), range(len(frames))
        else:
            drift_arg = np.full((t, 2), np.nan)
            drift_arg[list(frames)] = drift
    done = total - len(frames)

    stream = iter_analyze_movie(
        source,
        reflections,
        pixel_size=pixel_size,
        track=bool(track) and len(frames) > 1,
        frames=analysed,
        region=region,
        drift=drift_arg,
        **options.engine_options(),
    )
    collected = MovieMapsCollector(len(frames))
    used, found, blank = [], [], []
    try:
        for position, (k, maps) in enumerate(stream):
            used.append(np.asarray(maps.reflections, dtype=np.float64))
            found.append(np.asarray(maps.parameters["found"], dtype=np.float64))
            frame_number = frames[position]
            amplitude = np.asarray(maps.amplitude)
            if options.crystal_mask and not np.any(np.isfinite(amplitude) & (amplitude > 0)):
                # Nothing to threshold (a blank frame): no crystal, no estimate.
                maps = _blank(maps)
                blank.append(frame_number)
            else:
                frame = None
                if options.intensity_mask:
                    frame = source[k]
                    frame = np.asarray(frame.compute() if hasattr(frame, "compute") else frame)
                maps = run_to_end(_post_process(maps, frame, options))
            collected.add(position, maps)
            done += 1
            yield Progress(
                done, total, f"frame {frame_number} done ({position + 1} of {len(frames)})"
            )
            if cancel.is_set():
                return None
    finally:
        stream.close()

    tracked = bool(track) and len(frames) > 1
    extra = {
        "widget_options": options.as_dict(),
        "movie": {
            "frames": list(frames),
            "track": tracked,
            "drift_mode": drift_mode if measure else "none",
        },
    }
    return MovieRun(
        maps=collected.maps(reflections=reflections, parameters=extra),
        frames=frames,
        tracked=tracked,
        reflections=np.stack(used),
        found=np.stack(found),
        drift=drift,
        drift_mode=drift_mode if measure else "none",
        corrected=source if measure and drift_mode == "correct" else None,
        blank_frames=blank,
    )


@dataclass(frozen=True)
class AnalysisFailure:
    """What :func:`run_reporting_errors` returns instead of raising.

    Attributes
    ----------
    error : Exception
        The exception raised by the analysis.
    """

    error: Exception


def run_reporting_errors(*args, **kwargs) -> Generator[Progress, None, object]:
    """:func:`run_analysis`, with any error returned as :class:`AnalysisFailure`."""
    return (yield from reporting_errors(run_analysis(*args, **kwargs)))


def reporting_errors(generator: Generator) -> Generator[Progress, None, object]:
    """Run an analysis generator, with any error returned as :class:`AnalysisFailure`.

    The widget runs its analyses through this: its worker thread then always ends with
    a result, which the widget shows as a notification, instead of re-raising the
    error in the GUI thread where, depending on napari's settings, it may only be
    printed.  Closing this generator closes ``generator``.
    """
    try:
        return (yield from generator)
    except Exception as exc:  # every failure must reach the user, whatever its type
        logger.exception("lattice-map analysis failed")
        return AnalysisFailure(exc)


def run_to_end(generator: Generator, on_step=None) -> object:
    """Exhaust a :func:`run_analysis` generator and return its result (scripts, demo).

    ``on_step``: called with every item the generator yields (e.g. each Progress).
    """
    while True:
        try:
            step = next(generator)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)
