"""Lattice maps of a movie, frame by frame, as a generator of progress steps; no Qt.

:func:`run_movie_analysis` is what the lattice-map widget runs in a napari
``thread_worker`` for a movie ``(t, y, x)``: frame by frame
(:func:`napari_hrtem_fft.core.movie.iter_analyze_movie`), optionally tracking the
lattice and measuring the drift, with progress and Cancel between frames.  The options,
the post-processing and the image counterpart (:func:`run_analysis`) are in
:mod:`napari_hrtem_fft.core.pipeline`.  Tests drive it without a viewer.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from ..core.pipeline import AnalysisOptions, Progress, postprocess

__all__ = ["DRIFT_MODES", "MovieRun", "run_movie_analysis"]


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
                maps = postprocess(maps, frame, options)
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
