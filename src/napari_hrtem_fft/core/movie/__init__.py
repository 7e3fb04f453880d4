"""In-situ movies: tracked analysis frame by frame, time traces, regions, scale-out.

A movie is a stack ``(t, y, x)``.  :func:`iter_analyze_movie` is the movie analysis, a
generator that yields progress and the maps of each frame and returns a
:class:`MovieResult`; :func:`analyze_movie` runs it to the end.  With ``track=True`` the
reflections demodulated in frame ``k + 1`` start from the lattice found in frame ``k``,
so that a lattice that expands or rotates by more than the search region over the
movie is followed without re-picking.  :func:`time_trace` reduces the maps to
statistics per frame inside a region, :func:`trace_to_csv` writes them;
:func:`compute_maps` and :func:`to_zarr` compute lazy maps on any dask scheduler,
including a ``dask.distributed`` cluster.

Maps of a movie are the usual :class:`~napari_hrtem_fft.core.maps.LatticeMaps` with a
time axis: ``(n, t, my, mx)`` per reflection, ``(t, my, mx)`` for strain.

The modules, by reason to change: :mod:`.analysis` (the generator and its frame
loop), :mod:`.traces` (time traces and their CSV), :mod:`.storage` (collection, zarr,
``compute_maps``, schedulers), :mod:`.regions` (regions in world coordinates) and
:mod:`.result` (what the analysis yields and returns).
"""

from __future__ import annotations

from .analysis import analyze_movie, frame_lattice, iter_analyze_movie
from .regions import region_from_polygon
from .result import MovieProgress, MovieResult
from .storage import (
    MovieMapsCollector,
    compute_maps,
    movie_parameters,
    read_zarr_maps,
    to_zarr,
    write_zarr_geometry,
    write_zarr_record,
)
from .traces import TimeTrace, time_trace, trace_text, trace_to_csv

__all__ = [
    "MovieMapsCollector",
    "MovieProgress",
    "MovieResult",
    "TimeTrace",
    "analyze_movie",
    "compute_maps",
    "frame_lattice",
    "iter_analyze_movie",
    "movie_parameters",
    "read_zarr_maps",
    "region_from_polygon",
    "time_trace",
    "to_zarr",
    "trace_text",
    "trace_to_csv",
    "write_zarr_geometry",
    "write_zarr_record",
]
