"""Storage and scale-out of movie maps: frame-by-frame collection, zarr, schedulers.

:class:`MovieMapsCollector` fills a movie's maps frame by frame (numpy, or a zarr group
written as it goes); :func:`compute_maps` and :func:`to_zarr` compute lazy maps on any
dask scheduler, including a ``dask.distributed`` cluster; :func:`read_zarr_maps` opens a
store lazily.  A store's record (group attribute ``napari_hrtem_fft``) is written last
with a completion marker, so an interrupted analysis or write leaves a store that
:func:`read_zarr_maps` refuses instead of maps with silent NaN frames.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..maps import LatticeMaps, StrainMaps
from ..quantities import MAP_QUANTITIES, OPTIONAL_QUANTITIES, STRAIN_QUANTITIES
from ..reciprocal import as_reflections
from ..records import jsonable
from .result import MovieResult

__all__ = [
    "MovieMapsCollector",
    "compute_maps",
    "movie_parameters",
    "read_zarr_maps",
    "to_zarr",
    "write_zarr_geometry",
    "write_zarr_record",
]

_FIELDS = LatticeMaps.FIELDS
_STRAIN = StrainMaps.FIELDS

# Key of the completion marker in a store's record, and the error without it.
_COMPLETE = "complete"
_INCOMPLETE = (
    "{store!r} is incomplete: its writing was interrupted before the completion marker "
    "(analyse again into a new store, or with overwrite)"
)


def _is_dask(a) -> bool:
    return hasattr(a, "dask") and hasattr(a, "compute")


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
    write_zarr_record(root, maps, movie)
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


def _refuse_existing(store, overwrite: bool) -> None:
    """FileExistsError for an existing store path unless ``overwrite``."""
    if isinstance(store, str | Path) and Path(store).exists() and not overwrite:
        raise FileExistsError(f"{str(store)!r} already exists (pass overwrite=True to replace it)")


def _open_store(store, overwrite: bool):
    import zarr

    _refuse_existing(store, overwrite)
    try:
        return zarr.open_group(
            str(store) if isinstance(store, Path) else store, mode="w" if overwrite else "w-"
        )
    except (zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
        raise FileExistsError(f"{store!r} already exists") from None


def write_zarr_record(root, maps: LatticeMaps, movie: MovieResult | None) -> None:
    """Geometry, reflections and parameters of the maps as group attributes.

    Written last, after every array: its completion marker says the store is whole
    (:func:`read_zarr_maps` refuses a store without it).  The movie analysis and the
    live run (:mod:`napari_hrtem_fft.core.live`) both finish their stores with it.

    Parameters
    ----------
    root : zarr.Group
        The store's root group.
    maps : LatticeMaps
        The maps written to it (their grid, reflections, parameters, strain reference).
    movie : MovieResult, optional
        Frames, tracking, per-frame reflections and drift of a movie.
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
