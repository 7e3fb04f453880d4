"""One analysis pipeline for every front end (widget, command line, console); no Qt.

* :class:`AnalysisOptions`: every option of a lattice-map run, checked once, with the
  engine's rules (:func:`check_option`; the widget's spin-box limits come from
  :data:`OPTION_LIMITS`, the command line's argument checks call :func:`check_option`).
* :func:`postprocess`: the one post-processing order (outliers, then masks, then
  smoothing), as a generator of step names (:func:`postprocess_steps`) for progress.
* :func:`run_analysis`: the maps of an image as a generator of :class:`Progress`
  reports, cancellable, returning the post-processed maps.  The lattice-map widget
  runs it in a napari ``thread_worker``; :func:`run_to_end` runs it in a script.
* :func:`run_movie_analysis`: the same for a movie ``(t, y, x)``, frame by frame
  (:func:`napari_hrtem_fft.core.movie.iter_analyze_movie`, with tracking and drift),
  each frame post-processed as the options say.

For a fixed image and options, ``postprocess(analyze(image, ...), image, options)``,
the result of :func:`run_analysis`, the widget's layers and the command line's files
hold the same numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from .engine import Progress

__all__ = [
    "DRIFT_MODES",
    "METHODS",
    "OPTION_LIMITS",
    "SMOOTHING_METHODS",
    "AnalysisFailure",
    "AnalysisOptions",
    "Progress",
    "check_image_shape",
    "check_option",
    "postprocess",
    "postprocess_steps",
    "record_diagnostics",
    "reference_mask",
    "reporting_errors",
    "run_analysis",
    "run_movie_analysis",
    "run_reporting_errors",
    "run_to_end",
]

logger = logging.getLogger(__name__)

#: Smoothing methods of :func:`napari_hrtem_fft.smooth`, and "none".
SMOOTHING_METHODS = ("none", "block", "gaussian", "median")

#: Map methods of :func:`napari_hrtem_fft.analyze`.
METHODS = ("local_fft", "gpa")

#: Limits of the numeric options, the engine's (:func:`napari_hrtem_fft.analyze`):
#: ``min``/``max`` inclusive unless named ``min_exclusive``; ``multiple``: the value
#: must be a multiple of it.  ``step`` is also at most ``window`` and ``window`` at most
#: the image's smaller side (checked by :class:`AnalysisOptions` and
#: :func:`check_image_shape`).
OPTION_LIMITS = {
    "window": {"type": int, "min": 16, "multiple": 2},
    "step": {"type": int, "min": 1},
    "search": {"type": float, "min_exclusive": 0.0, "max": 0.5},
    "crystal_threshold": {"type": float, "min_exclusive": 0.0},
    "intensity_threshold": {"type": float, "min": 0.0, "max": 1.0},
    "smoothing_size": {"type": int, "min": 1},
    "resolution_nm": {"type": float, "min_exclusive": 0.0},
}


def check_option(name: str, value):
    """Check one numeric option against :data:`OPTION_LIMITS` and return it.

    Parameters
    ----------
    name : str
        A key of :data:`OPTION_LIMITS`.
    value : int or float
        The value to check.

    Returns
    -------
    int or float
        ``value`` as int (integer options) or float.

    Raises
    ------
    TypeError
        If an integer option is not an integer, or a number option not a number.
    ValueError
        If the value lies outside the limits, with a message naming them.
    """
    limits = OPTION_LIMITS[name]
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if limits["type"] is int:
        if not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    else:
        if not isinstance(value, int | float | np.integer | np.floating):
            raise TypeError(f"{name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    low, high = limits.get("min"), limits.get("max")
    low_open = limits.get("min_exclusive")
    multiple = limits.get("multiple")
    bad = (
        (low is not None and value < low)
        or (low_open is not None and value <= low_open)
        or (high is not None and value > high)
        or (multiple is not None and value % multiple)
    )
    if bad:
        raise ValueError(f"{name} must be {_describe(limits)}, got {value!r}")
    return value


def _describe(limits: dict) -> str:
    """The rule of :data:`OPTION_LIMITS` in words, for error messages."""
    parts = []
    if "multiple" in limits:
        parts.append("even" if limits["multiple"] == 2 else f"a multiple of {limits['multiple']}")
    if "min_exclusive" in limits:
        parts.append(f"> {limits['min_exclusive']:g}")
    if "min" in limits:
        parts.append(f">= {limits['min']:g}")
    if "max" in limits:
        parts.append(f"<= {limits['max']:g}")
    return " and ".join(parts)


@dataclass(frozen=True)
class AnalysisOptions:
    """Every option of a lattice-map run, checked on creation with the engine's rules.

    Attributes
    ----------
    window : int
        Window size in pixels: even, at least 16 (and at most the image's smaller side,
        see :func:`check_image_shape`).
    step : int
        Step between windows in pixels, from 1 to ``window``.
    search : float
        Search tolerance around each reflection in (0, 0.5], as passed to
        :func:`napari_hrtem_fft.analyze`.
    refine : bool
        Demodulate at the lattice found by a survey of each frame (see ``analyze``).
    compute_strain : bool
        Compute strain maps (needs two non-collinear reflections).
    clean : bool
        Set outliers (spacing > 5 % or angle > 5° from the median) to NaN
        (:func:`napari_hrtem_fft.clean`), before the masks.
    crystal_mask : bool
        Blank (NaN) map pixels without a clear lattice peak.
    crystal_threshold : float or None
        Peak-strength threshold of the crystal mask (dimensionless); None lets
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
        One of :data:`SMOOTHING_METHODS`, applied after the masks.
    smoothing_size : int
        Smoothing size in map pixels.
    method : str
        One of :data:`METHODS`: ``"local_fft"`` (rolling-window FFT) or ``"gpa"``
        (geometric phase analysis, :func:`napari_hrtem_fft.analyze_gpa`).
    resolution_nm : float or None
        GPA resolution (FWHM, nm); None matches it to ``window``.  Only with
        ``method="gpa"``.
    reference : tuple of float or None
        Reference region of the strain, a rectangle ``(y0, y1, x0, x1)`` in nm from the
        image origin (map pixel ``(i, j)`` at ``(i, j)·step·pixel_size``): strain and
        phase are relative to the median lattice of the map pixels whose centres lie
        inside, per frame (:func:`napari_hrtem_fft.core.strain.relative_to_region`),
        computed before the masks and smoothing.  None: relative to the analysed
        reflections.
    """

    window: int = 128
    step: int = 8
    search: float = 0.1
    refine: bool = True
    compute_strain: bool = True
    clean: bool = False
    crystal_mask: bool = True
    crystal_threshold: float | None = None
    intensity_mask: bool = False
    intensity_threshold: float = 0.5
    intensity_dark: bool = False
    smoothing: str = "none"
    smoothing_size: int = 3
    method: str = "local_fft"
    resolution_nm: float | None = None
    reference: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        """Check every option (see :func:`check_option`)."""
        for name in OPTION_LIMITS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_option(name, value))
        if self.step > self.window:
            raise ValueError(f"step ({self.step}) must not exceed window ({self.window})")
        for name in ("refine", "compute_strain", "clean", "crystal_mask"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.smoothing not in SMOOTHING_METHODS:
            raise ValueError(
                f"smoothing must be one of {SMOOTHING_METHODS}, got {self.smoothing!r}"
            )
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.resolution_nm is not None and self.method != "gpa":
            raise ValueError("resolution_nm is an option of method 'gpa'")
        if self.reference is not None:
            object.__setattr__(self, "reference", _check_rectangle(self.reference))

    def as_dict(self) -> dict:
        """The options as a plain dict (for metadata and JSON)."""
        return dataclasses.asdict(self)

    def engine_options(self) -> dict:
        """The keyword arguments of the engine (``analyze``, ``iter_analyze_movie``).

        ``method`` and ``resolution_nm`` only for GPA.
        """
        options = {
            "window": self.window,
            "step": self.step,
            "search": self.search,
            "refine": self.refine,
            "compute_strain": self.compute_strain,
        }
        if self.method != "local_fft":
            options.update(method=self.method, resolution_nm=self.resolution_nm)
        return options


def _check_rectangle(rect) -> tuple[float, float, float, float]:
    """A reference rectangle ``(y0, y1, x0, x1)`` in nm, finite and not empty."""
    try:
        values = tuple(float(v) for v in rect)
    except (TypeError, ValueError):
        raise TypeError(
            f"reference must be 4 numbers (y0, y1, x0, x1) in nm, got {rect!r}"
        ) from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"reference must be 4 finite numbers (y0, y1, x0, x1) in nm, got {rect!r}"
        )
    y0, y1, x0, x1 = values
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"reference rectangle must have y0 < y1 and x0 < x1, got {rect!r}")
    return values


def reference_mask(rect, map_shape, map_scale: float) -> np.ndarray:
    """The map pixels whose centres lie inside a rectangle.

    Parameters
    ----------
    rect : tuple of float
        ``(y0, y1, x0, x1)`` in nm from the image origin.
    map_shape : tuple of int
        Map shape; the last two entries ``(my, mx)`` are used.
    map_scale : float
        nm per map pixel (``maps.map_scale``).

    Returns
    -------
    numpy.ndarray
        Boolean ``(my, mx)``.

    Raises
    ------
    ValueError
        If the rectangle holds no map pixel centre.
    """
    y0, y1, x0, x1 = _check_rectangle(rect)
    my, mx = (int(v) for v in tuple(map_shape)[-2:])
    yy = np.arange(my) * map_scale
    xx = np.arange(mx) * map_scale
    mask = ((yy >= y0) & (yy <= y1))[:, None] & ((xx >= x0) & (xx <= x1))[None, :]
    if not mask.any():
        raise ValueError(
            f"reference rectangle y {y0:g} to {y1:g} nm, x {x0:g} to {x1:g} nm holds no map "
            f"pixel centre (the maps cover y 0 to {yy[-1]:.4g} nm, x 0 to {xx[-1]:.4g} nm)"
        )
    return mask


def check_image_shape(shape, window: int) -> None:
    """Check that an image (or movie) of ``shape`` holds a window of ``window`` pixels.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(..., y, x)``.
    window : int
        Window size in pixels.

    Raises
    ------
    ValueError
        If the image has fewer than two axes or is smaller than the window.
    """
    if len(shape) < 2:
        raise ValueError(f"image must have at least 2 dimensions (y, x), got shape {shape}")
    if min(shape[-2:]) < window:
        raise ValueError(
            f"window ({window} px) is larger than the image ({shape[-2]}×{shape[-1]} px)"
        )


# ------------------------------------------------------------ post-processing


#: The masks of :func:`postprocess_steps` as users see them, and their option.
MASK_NAMES = {"crystal mask": "crystal_mask", "intensity mask": "intensity_mask"}


def postprocess_steps(maps, image, options: AnalysisOptions) -> Generator[str, None, object]:
    """The post-processing of ``options``, one step at a time.

    The order is fixed for every front end: outliers (``clean``), then the crystal and
    intensity masks (combined), then smoothing, so that smoothing never spreads values
    from outside the crystal into it.

    Parameters
    ----------
    maps : LatticeMaps
        Maps from :func:`napari_hrtem_fft.analyze` (numpy or dask).
    image : array_like or None
        The analysed image (or frame); read only for the intensity mask.
    options : AnalysisOptions
        What to apply.

    Yields
    ------
    str
        The name of each step done.

    Returns
    -------
    LatticeMaps
        The processed maps (numpy maps stay numpy; dask maps stay lazy but for the
        masks, which are computed).
    """
    from . import postprocess as post

    if options.reference is not None:
        from .strain import has_two_directions, relative_to_region

        mask = reference_mask(options.reference, np.shape(maps.d_spacing), maps.map_scale)
        if not has_two_directions(maps.reflections):
            raise ValueError("a reference region needs two non-collinear reflections (strain)")
        maps = relative_to_region(maps, mask, record=list(options.reference))
        maps.parameters["strain_reference_nm"] = list(options.reference)
        yield "strain and phase relative to the reference region"
    if options.clean:
        maps = post.clean(maps)
        yield "outliers removed"
    if options.crystal_mask or options.intensity_mask:
        mask = np.ones(np.shape(maps.d_spacing)[1:], dtype=bool)
        names = [n for n, on in MASK_NAMES.items() if getattr(options, on)]
        if options.crystal_mask:
            mask &= np.asarray(post.crystal_mask(maps, threshold=options.crystal_threshold))
            yield "crystal mask"
        if options.intensity_mask:
            image_mask = post.intensity_mask(
                image, options.intensity_threshold, dark=options.intensity_dark
            )
            mask &= np.asarray(post.mask_to_map(image_mask, options.step))
            yield "intensity mask"
        maps = post.apply_mask(maps, mask)
        # Said with the maps: NaN a mask added is not an engine failure (display's
        # empty_map_warnings tells the two apart).
        maps.parameters["masks"] = names
    if options.smoothing != "none":
        maps = post.smooth(maps, options.smoothing_size, method=options.smoothing)
        yield f"{options.smoothing} smoothing"
    return maps


def postprocess(maps, image, options: AnalysisOptions):
    """Post-process maps as ``options`` say (see :func:`postprocess_steps`).

    Parameters
    ----------
    maps : LatticeMaps
        Maps from :func:`napari_hrtem_fft.analyze`.
    image : array_like or None
        The analysed image; read only for the intensity mask.
    options : AnalysisOptions
        What to apply.

    Returns
    -------
    LatticeMaps
        The processed maps.
    """
    return run_to_end(postprocess_steps(maps, image, options))


def _step_count(options: AnalysisOptions) -> int:
    """Number of steps :func:`postprocess_steps` yields for ``options``."""
    flags = (
        options.reference is not None,
        options.clean,
        options.crystal_mask,
        options.intensity_mask,
    )
    return sum(flags) + int(options.smoothing != "none")


# ----------------------------------------------------------------- analysis


def run_analysis(
    image,
    reflections,
    *,
    pixel_size: float,
    options: AnalysisOptions | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, object]:
    """Lattice maps of an image, computed block by block with progress reports.

    The maps are those of :func:`napari_hrtem_fft.analyze` (its generator
    :func:`~napari_hrtem_fft.core.engine.iter_analyze`, on the same blocks), then
    :func:`postprocess`.

    Parameters
    ----------
    image : array_like
        Image ``(y, x)`` or stack ``(..., y, x)``; dask input is read into memory.
    reflections : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹.
    pixel_size : float
        nm per pixel.
    options : AnalysisOptions, optional
        Window, step, masks, smoothing, strain (defaults: ``AnalysisOptions()``).
    cancel : threading.Event, optional
        Set it (from any thread) to stop after the image block being computed; the
        generator then returns None.

    Yields
    ------
    Progress
        After each image block, then after each post-processing step.

    Returns
    -------
    LatticeMaps or None
        numpy maps, post-processed by :func:`postprocess`; None if cancelled.

    Raises
    ------
    TypeError, ValueError
        On invalid input, with the engine's message.
    """
    from .engine import iter_analyze

    options = AnalysisOptions() if options is None else options
    if not isinstance(options, AnalysisOptions):
        raise TypeError(f"options must be AnalysisOptions, got {type(options).__name__}")
    check_image_shape(np.shape(image), options.window)
    if hasattr(image, "compute"):
        # Lazy input gives lazy maps without progress: compute the image instead.
        image = image.compute()
    stream = iter_analyze(image, reflections, pixel_size=pixel_size, **options.engine_options())
    post_steps = _step_count(options)
    blocks = 1
    yield Progress(0, blocks + post_steps, "starting")
    try:
        while True:
            try:
                block = next(stream)
            except StopIteration as finished:
                maps = finished.value
                break
            blocks = block.total
            yield Progress(block.done, blocks + post_steps, block.message)
            if cancel is not None and cancel.is_set():
                return None
    finally:
        # Cancelled, or closed early by the caller: the engine cancels its blocks.
        stream.close()

    done, total = blocks, blocks + post_steps
    record_diagnostics(maps)
    yield Progress(done, total, "maps computed")
    post = postprocess_steps(maps, image, options)
    while True:
        try:
            message = next(post)
        except StopIteration as finished:
            return finished.value
        done += 1
        yield Progress(done, total, message)


# ----------------------------------------------------------------- movies

#: How the drift of a movie is handled: not at all; measured, and a drift-corrected
#: copy analysed; measured, and the tracking region moved with it.
DRIFT_MODES = ("none", "correct", "follow")


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


def _frame_post_process(options: AnalysisOptions):
    """The per-frame post-processing of a movie: ``options``' masks and smoothing."""

    def post(maps, frame):
        amplitude = np.asarray(maps.amplitude)
        if options.crystal_mask and not np.any(np.isfinite(amplitude) & (amplitude > 0)):
            # Nothing to threshold (a blank frame): no crystal, no estimate.
            from .postprocess import apply_mask

            return apply_mask(maps, np.zeros(maps.d_spacing.shape[1:], dtype=bool))
        return postprocess(maps, frame, options)

    return post


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
) -> Generator[object, None, object]:
    """Lattice maps of a movie, frame by frame, with progress after every frame.

    :func:`napari_hrtem_fft.core.movie.iter_analyze_movie` with the widget's options:
    each frame post-processed as ``options`` say; Cancel takes effect between steps.

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
        Set it to stop after the current step; the generator then returns None.

    Yields
    ------
    MovieProgress
        Per registered batch of frames (drift) and per analysed frame.

    Returns
    -------
    MovieResult or None
        Post-processed numpy maps (the options are recorded by the caller, with the
        layers).  None if cancelled.

    Raises
    ------
    TypeError, ValueError
        On invalid input, before any frame is analysed.
    """
    from .movie import iter_analyze_movie

    options = AnalysisOptions() if options is None else options
    if not isinstance(options, AnalysisOptions):
        raise TypeError(f"options must be AnalysisOptions, got {type(options).__name__}")
    if np.ndim(stack) != 3:
        raise ValueError(f"stack must be a movie (t, y, x), got shape {np.shape(stack)}")
    frames = _check_frames(frames, int(np.shape(stack)[0]))
    if drift_mode not in DRIFT_MODES:
        raise ValueError(f"drift_mode must be one of {DRIFT_MODES}, got {drift_mode!r}")
    if min(np.shape(stack)[-2:]) < options.window:
        raise ValueError(
            f"window ({options.window} px) is larger than the frames "
            f"({np.shape(stack)[-2]}×{np.shape(stack)[-1]} px)"
        )
    several = len(frames) > 1
    movie = iter_analyze_movie(
        stack,
        reflections,
        pixel_size=pixel_size,
        track=bool(track) and several,
        frames=frames,
        region=region,
        drift="measure" if drift_mode != "none" and several else None,
        correct_drift=drift_mode == "correct" and several,
        postprocess=_frame_post_process(options),
        **options.engine_options(),
    )
    cancel = threading.Event() if cancel is None else cancel
    try:
        while True:
            try:
                step = next(movie)
            except StopIteration as stop:
                result = stop.value
                break
            yield step
            if cancel.is_set():
                return None
    finally:
        movie.close()
    return result


def record_diagnostics(maps, *, limit: float = 0.5) -> list[str]:
    """Record why reflections left their maps mostly empty, before post-processing.

    The engine's :func:`~napari_hrtem_fft.core.engine.diagnose` tells, per reflection,
    which share of the map inside the image is NaN and why (missing data, below the
    amplitude threshold, outside the search region).  That is only true of the maps as
    the engine made them: masks applied afterwards add NaN of their own.  So the front
    ends call this right after the analysis; the reasons travel with the maps in
    ``maps.parameters["diagnostics"]`` (``{"k": reason}``, ``k`` from 0) to the layer
    metadata, the status line and the record.

    Parameters
    ----------
    maps : LatticeMaps
        Numpy maps from :func:`napari_hrtem_fft.analyze` (dask maps would be computed).
    limit : float
        Reflections with more than this fraction of NaN inside the image are recorded.

    Returns
    -------
    list of str
        One line per recorded reflection, for stderr or a notification.
    """
    from .engine import diagnose

    found = [d for d in diagnose(maps) if d.nan_fraction > limit]
    maps.parameters["diagnostics"] = {str(d.index - 1): d.reason() for d in found}
    return [d.message() for d in found]


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
    """:func:`run_analysis`, with any error returned as :class:`AnalysisFailure`.

    Parameters
    ----------
    *args, **kwargs
        As for :func:`run_analysis`.

    Returns
    -------
    LatticeMaps, AnalysisFailure or None
        What :func:`run_analysis` returns, or the failure.
    """
    return (yield from reporting_errors(run_analysis(*args, **kwargs)))


def reporting_errors(generator: Generator) -> Generator[Progress, None, object]:
    """Run an analysis generator, with any error returned as :class:`AnalysisFailure`.

    The widget runs its analyses through this: its worker thread then always ends with
    a result, which the widget shows as a notification, instead of re-raising the
    error in the GUI thread where, depending on napari's settings, it may only be
    printed.  Closing this generator closes ``generator``.

    Parameters
    ----------
    generator : generator
        An analysis generator (:func:`run_analysis`).

    Returns
    -------
    object
        The generator's result, or :class:`AnalysisFailure`.
    """
    try:
        return (yield from generator)
    except Exception as exc:  # every failure must reach the user, whatever its type
        logger.exception("lattice-map analysis failed")
        return AnalysisFailure(exc)


def run_to_end(generator: Generator, on_step: Callable | None = None) -> object:
    """Exhaust an analysis generator and return its result (scripts, the demo).

    Parameters
    ----------
    generator : generator
        E.g. :func:`run_analysis` or :func:`postprocess_steps`.
    on_step : callable, optional
        Called with every item the generator yields (e.g. each Progress).

    Returns
    -------
    object
        The generator's return value.
    """
    while True:
        try:
            step = next(generator)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)
