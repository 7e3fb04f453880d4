"""Lattice maps of a movie, frame by frame, as a generator of progress steps; no Qt.

:func:`run_movie_analysis` is what the lattice-map widget runs in a napari
``thread_worker`` for a movie ``(t, y, x)``: the core movie generator
(:func:`napari_hrtem_fft.core.movie.iter_analyze_movie`, which tracks the lattice and
measures the drift when asked) with the widget's options and post-processing, and
Cancel between steps.  The options, the post-processing and the image counterpart
(:func:`run_analysis`) are in :mod:`napari_hrtem_fft.core.pipeline`.  Tests drive it
without a viewer.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

import numpy as np

from ..core.pipeline import AnalysisOptions, postprocess

__all__ = ["DRIFT_MODES", "run_movie_analysis"]


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
            from ..core.postprocess import apply_mask

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
    from ..core.movie import iter_analyze_movie

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
