"""What a movie analysis yields while it runs and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..maps import LatticeMaps

__all__ = ["MovieProgress", "MovieResult"]


@dataclass(frozen=True)
class MovieProgress:
    """One step of :func:`~napari_hrtem_fft.core.movie.iter_analyze_movie`.

    Attributes
    ----------
    done, total : int
        Steps done and the number of steps (one per registered and per analysed frame).
    message : str
        What was just done, for a status line.
    frame : int or None
        Frame number of the input stack just analysed (None for other steps).
    maps : LatticeMaps or None
        That frame's maps ``(n, my, mx)``, post-processed (None for other steps).
    """

    done: int
    total: int
    message: str
    frame: int | None = None
    maps: LatticeMaps | None = None


@dataclass
class MovieResult:
    """Maps of a movie and how they were obtained.

    Attributes
    ----------
    maps : LatticeMaps
        Maps with a time axis: ``(n, t, my, mx)`` per reflection, strain ``(t, my, mx)``.
        numpy arrays for an analysis frame by frame, dask arrays for a lazy one or one
        written to a store.
    reflections : numpy.ndarray
        Reflections demodulated in each frame, ``(t, n, 2)`` as ``(gy, gx)`` in nm⁻¹ (the
        start of the search; with tracking, the lattice found in the previous frame).
    found : numpy.ndarray or None
        Robust lattice found in each frame (amplitude-weighted median of the local g in
        the region), ``(t, n, 2)`` in nm⁻¹; NaN where not found; None for a lazy result.
    frames : numpy.ndarray
        Frame numbers of the input stack, ``(t,)``.
    drift : numpy.ndarray or None
        Drift ``(t, 2)`` as ``(dy, dx)`` in pixels of the analysed frames, if given or
        measured (measured: relative to the first analysed frame).
    tracked : bool
        Whether the reflections followed the lattice from frame to frame.
    drift_mode : str
        ``"none"``; ``"follow"`` (the region moved with ``drift``, maps on the
        original frames); ``"correct"`` (a drift-corrected copy was analysed).
    corrected : dask.array.Array or None
        The drift-corrected frames ``(t, y, x)`` that were analysed (lazy), for
        ``drift_mode == "correct"``.
    blank_frames : list of int
        Frames whose maps hold no value at all (e.g. no crystal under the crystal mask).
    """

    maps: LatticeMaps
    reflections: np.ndarray
    found: np.ndarray | None
    frames: np.ndarray
    drift: np.ndarray | None = None
    tracked: bool = False
    drift_mode: str = "none"
    corrected: object = None
    blank_frames: list = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        """Number of analysed frames ``t``."""
        return int(self.frames.size)
