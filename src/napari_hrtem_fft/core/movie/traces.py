"""Time traces of movie maps: statistics per frame inside a region, and their CSV.

:func:`time_trace` reduces maps ``(n, t, my, mx)`` to the statistics of
:mod:`napari_hrtem_fft.core.statistics` per frame (d in nm, angles in degrees on the
circle, strain); :func:`trace_to_csv` and :func:`trace_text` write them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..maps import LatticeMaps, StrainMaps
from ..quantities import MAP_QUANTITIES, STRAIN_QUANTITIES
from ..statistics import STATISTICS, summarize, summarize_angles
from .result import MovieResult

__all__ = ["TimeTrace", "time_trace", "trace_text", "trace_to_csv"]

_STRAIN = StrainMaps.FIELDS


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
    frames = drift = None
    if isinstance(maps, MovieResult):
        frames, drift = maps.frames, maps.drift
        maps = maps.maps
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be LatticeMaps or MovieResult, got {type(maps).__name__}")
    shape = tuple(int(s) for s in maps.d_spacing.shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"maps must be (n, my, mx) or (n, t, my, mx), got {shape}")
    single = len(shape) == 3
    t = 1 if single else shape[1]
    frames = np.arange(t) if frames is None else np.asarray(frames)
    mask = _trace_region(region, maps, drift)
    time_s = _trace_times(times, frames, t)

    strain = maps.strain
    names = ["d", "angle"] + (list(_STRAIN) if strain is not None else [])
    stats = {
        f"{q}_{s}": np.full((t, maps.n_reflections) if q in ("d", "angle") else (t,), np.nan)
        for q in names
        for s in STATISTICS
    }
    for k in range(t):
        values = _frame_values(maps, None if single else k, crystal=mask is _CRYSTAL)
        inside = _frame_region(values, maps, mask, k)
        for r in range(maps.n_reflections):
            for q, func in (("d", summarize), ("angle", summarize_angles)):
                result = func(values[q][r][inside[r]])
                for s, value in zip(STATISTICS, result, strict=True):
                    stats[f"{q}_{s}"][k, r] = value
        for c in _STRAIN if strain is not None else ():
            # Strain comes from every reflection: the pixels inside for all of them.
            result = summarize(values[c][np.all(inside, axis=0)])
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


# The region "crystal": the crystal mask of each frame.
_CRYSTAL = "crystal"


def _trace_region(region, maps: LatticeMaps, drift):
    """``region`` checked: None, :data:`_CRYSTAL`, or a boolean mask ``(my, mx)`` (single
    map), ``(t, my, mx)`` or ``(n, t, my, mx)`` (a single map: ``(n, 1, my, mx)``).
    """
    if region is None:
        return None
    if isinstance(region, str):
        if region != _CRYSTAL:
            raise ValueError(f"region must be a boolean mask or 'crystal', got {region!r}")
        return _CRYSTAL
    shape = tuple(int(s) for s in maps.d_spacing.shape)
    n, single, map_shape = shape[0], len(shape) == 3, shape[-2:]
    t = 1 if single else shape[1]
    mask = np.asarray(region)
    if mask.dtype != bool:
        raise TypeError(f"region must be a boolean mask, got dtype {mask.dtype}")
    allowed = [map_shape, (t, *map_shape), (n, t, *map_shape)]
    if single:
        allowed.append((n, *map_shape))
    if mask.shape not in allowed:
        raise ValueError(
            f"region of shape {mask.shape} does not match maps {shape}: "
            f"use (my, mx), (t, my, mx) or (n, t, my, mx)"
        )
    if single and mask.ndim == 3:
        mask = mask[:, None] if mask.shape[0] == n and n != 1 else mask
    if drift is not None and mask.ndim == 2 and not single:
        from ..drift import shift_region

        mask = shift_region(mask, drift, step=maps.step)
    return mask


def _trace_times(times, frames: np.ndarray, t: int) -> np.ndarray | None:
    """Time of each frame in s from a frame interval or one time per frame."""
    if times is None:
        return None
    if np.ndim(times) == 0:
        dt = float(times)
        if not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"times as a frame interval must be > 0 s, got {times}")
        return frames.astype(np.float64) * dt
    time_s = np.asarray(times, dtype=np.float64)
    if time_s.shape != (t,):
        raise ValueError(f"times must have one value per frame ({t},), got {time_s.shape}")
    return time_s


def _frame_values(maps: LatticeMaps, k: int | None, *, crystal: bool) -> dict:
    """The maps of frame ``k`` (every frame of a single map for None) as numpy, computed
    in one pass: ``d``, ``angle``, strain and, for the crystal mask, ``amplitude``.
    """
    import dask

    pick = (slice(None),) if k is None else (slice(None), k)
    parts = {"d": maps.d_spacing[pick], "angle": maps.angle[pick]}
    if crystal:
        parts["amplitude"] = maps.amplitude[pick]
    if maps.strain is not None:
        for c, a in maps.strain.components().items():
            parts[c] = a if k is None else a[k]
    values = dask.compute(*parts.values())
    return {key: np.asarray(v) for key, v in zip(parts, values, strict=True)}


def _frame_region(values: dict, maps: LatticeMaps, mask, k: int) -> np.ndarray:
    """Boolean ``(n, my, mx)``: the map pixels of frame position ``k`` to summarise."""
    n, map_shape = values["d"].shape[0], values["d"].shape[-2:]
    if mask is None:
        return np.ones((n, *map_shape), dtype=bool)
    if mask is _CRYSTAL:
        from ..postprocess import crystal_mask

        nan = np.full_like(values["d"], np.nan)
        frame_maps = LatticeMaps(
            d_spacing=values["d"],
            angle=values["angle"],
            amplitude=values["amplitude"],
            d_sigma=nan,
            angle_sigma=nan,
            reflections=maps.reflections,
            window=maps.window,
            step=maps.step,
            pixel_size=maps.pixel_size,
        )
        return np.broadcast_to(crystal_mask(frame_maps), (n, *map_shape))
    if mask.ndim == 2:
        frame = mask
    elif mask.ndim == 3:
        frame = mask[k]
    else:
        frame = mask[:, k]
    return np.broadcast_to(frame, (n, *map_shape))


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
    from ..reciprocal import g_angle, g_spacing

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
