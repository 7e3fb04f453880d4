"""Statistics of lattice maps: one kernel in the maps' units, pure numpy.

:func:`summarize` and :func:`summarize_angles` are the statistics every summary of
the maps uses (the statistics dock and export through :func:`reflection_statistics`,
the time traces of a movie): mean, median, population standard deviation and count of
the finite values, in the units of the values (nm, degrees); angles on the circle.
:func:`weighted_median` is the robust centre of weighted values (the lattice a
tracked movie follows).

:func:`reflection_statistics` gives one row per reflection and region as the dock shows
them and the export writes them (d in nm, angles in degrees); usable from the
console or a script on any :class:`~napari_hrtem_fft.core.maps.LatticeMaps`::

    rows = reflection_statistics(maps.d_spacing, maps.angle, regions=labels)
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "COLUMNS",
    "STATISTICS",
    "circular_center",
    "labels_on_map",
    "reflection_statistics",
    "statistics_text",
    "summarize",
    "summarize_angles",
    "weighted_median",
]

#: Names of the statistics of :func:`summarize`, in its order.
STATISTICS = ("mean", "median", "std", "count")

#: Columns of a statistics row, in display order (d in nm, angles in degrees).
COLUMNS = (
    "reflection",
    "region",
    "count",
    "d mean (nm)",
    "d median (nm)",
    "d std (nm)",
    "angle mean (°)",
    "angle median (°)",
    "angle std (°)",
)


def circular_center(angles) -> float:
    """Circular mean of angles, so that 179° and -179° average to 180°, not 0°.

    Parameters
    ----------
    angles : array_like
        Angles in degrees (any shape; NaN is not allowed).

    Returns
    -------
    float
        The direction of the mean unit vector, degrees in [-180, 180]; NaN when there
        are no angles.
    """
    a = np.radians(np.asarray(angles, dtype=np.float64))
    if a.size == 0:
        return float("nan")
    return float(np.degrees(np.arctan2(np.mean(np.sin(a)), np.mean(np.cos(a)))))


def _wrap_degrees(a):
    """Angles in degrees wrapped to (-180, 180]."""
    return 180.0 - np.mod(180.0 - np.asarray(a, dtype=np.float64), 360.0)


def summarize(values) -> tuple[float, float, float, int]:
    """Mean, median, standard deviation and count of the finite values.

    Parameters
    ----------
    values : array_like
        Values in any unit (NaN and inf are left out).

    Returns
    -------
    tuple
        ``(mean, median, std, count)`` in the unit of ``values`` (std is the population
        standard deviation, ddof=0); NaN statistics and count 0 without finite values.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan, 0
    return float(np.mean(v)), float(np.median(v)), float(np.std(v)), int(v.size)


def summarize_angles(angles) -> tuple[float, float, float, int]:
    """:func:`summarize` for angles in degrees, on the circle.

    The angles are unwrapped about their circular mean (:func:`circular_center`), so
    that 179° and -179° are 2° apart, not 358°; mean and median are wrapped back to
    (-180, 180].

    Parameters
    ----------
    angles : array_like
        Angles in degrees (NaN left out).

    Returns
    -------
    tuple
        ``(mean, median, std, count)``, degrees.
    """
    v = np.asarray(angles, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan, 0
    centre = circular_center(v)
    mean, median, std, count = summarize(_wrap_degrees(v - centre))
    return float(_wrap_degrees(centre + mean)), float(_wrap_degrees(centre + median)), std, count


def weighted_median(values, weights) -> float:
    """Median of ``values`` with non-negative ``weights``.

    The smallest value at which the cumulative weight reaches half the total (a lower
    weighted median: a value of the data, not an interpolation).

    Parameters
    ----------
    values, weights : array_like
        1-D, same length; weights ≥ 0 (pairs with a non-finite value or weight should
        be left out by the caller).

    Returns
    -------
    float
        The weighted median, in the unit of ``values``; NaN when the total weight is 0.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    if cum.size == 0 or cum[-1] <= 0:
        return math.nan
    return float(v[np.searchsorted(cum, 0.5 * cum[-1])])


def labels_on_map(
    labels,
    *,
    labels_scale: Sequence[float],
    labels_translate: Sequence[float],
    map_shape: Sequence[int],
    map_scale: Sequence[float],
    map_translate: Sequence[float],
) -> np.ndarray:
    """Sample a label image at the centres of the map pixels (nearest neighbour).

    Both grids are axis-aligned in the same world coordinates: data index ``k`` of a
    grid sits at ``translate + k·scale``.  A 2-D label image applies to every frame of a
    movie map.

    Parameters
    ----------
    labels : array_like of int
        Label image ``(..., y, x)``; 0 means "no region".
    labels_scale, labels_translate : sequence of float
        World calibration of the label image, one value per label axis.
    map_shape : sequence of int
        Map shape ``(..., my, mx)`` (without the reflection axis).
    map_scale, map_translate : sequence of float
        World calibration of the map, one value per map axis.

    Returns
    -------
    numpy.ndarray
        Integer labels of shape ``map_shape``; 0 where a map pixel falls outside the
        label image.

    Raises
    ------
    ValueError
        If the label image has more axes than the map or a calibration has the wrong
        length.
    """
    labels = np.asarray(labels)
    map_shape = tuple(int(s) for s in map_shape)
    if labels.ndim < 2 or labels.ndim > len(map_shape):
        raise ValueError(
            f"labels must have 2 to {len(map_shape)} axes to match a map of shape "
            f"{map_shape}, got shape {labels.shape}"
        )
    for name, value, n in (
        ("labels_scale", labels_scale, labels.ndim),
        ("labels_translate", labels_translate, labels.ndim),
        ("map_scale", map_scale, len(map_shape)),
        ("map_translate", map_translate, len(map_shape)),
    ):
        if len(value) != n:
            raise ValueError(f"{name} needs {n} values, got {len(value)}")
    map_shape_used = map_shape[-labels.ndim :]
    m_scale = np.asarray(map_scale, float)[-labels.ndim :]
    m_translate = np.asarray(map_translate, float)[-labels.ndim :]
    l_scale = np.asarray(labels_scale, float)
    l_translate = np.asarray(labels_translate, float)
    index = []
    inside = np.ones(map_shape_used, dtype=bool)
    for axis, n in enumerate(map_shape_used):
        world = m_translate[axis] + np.arange(n) * m_scale[axis]
        idx = np.rint((world - l_translate[axis]) / l_scale[axis]).astype(int)
        ok = (idx >= 0) & (idx < labels.shape[axis])
        shape = [1] * len(map_shape_used)
        shape[axis] = n
        inside &= ok.reshape(shape)
        index.append(np.clip(idx, 0, labels.shape[axis] - 1).reshape(shape))
    sampled = np.where(inside, labels[tuple(index)], 0)
    return np.broadcast_to(sampled, map_shape).astype(np.int64)


def reflection_statistics(
    d_spacing,
    angle,
    *,
    regions=None,
    region_names: Mapping[int, str] | None = None,
) -> list[dict]:
    """Mean, median and standard deviation of d (nm) and angle (°) per reflection and region.

    The statistics of :func:`summarize` (d in nm, the unit of the maps) and
    :func:`summarize_angles`, over the map pixels where both d and angle are finite
    (NaN: no lattice found, or masked out); a reflection near ±180° is summarised on
    the circle.

    Parameters
    ----------
    d_spacing, angle : array_like
        Maps ``(n, ..., my, mx)``: spacing in nm, angle in degrees.
    regions : array_like of int, optional
        Labels ``(..., my, mx)``; one set of rows per label > 0.  Default: one region,
        every valid pixel (``"all"``).
    region_names : mapping, optional
        Display names of labels (default: the label number).

    Returns
    -------
    list of dict
        One row per (reflection, region) with the keys of :data:`COLUMNS`;
        ``reflection`` is 1-based.  Statistics of an empty region are NaN.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    d = np.asarray(d_spacing, dtype=np.float64)
    a = np.asarray(angle, dtype=np.float64)
    if d.shape != a.shape or d.ndim < 3:
        raise ValueError(
            "d_spacing and angle must both have shape (n, ..., my, mx), "
            f"got {d.shape} and {a.shape}"
        )
    if regions is None:
        masks = {"all": np.ones(d.shape[1:], dtype=bool)}
    else:
        regions = np.asarray(regions)
        if regions.shape != d.shape[1:]:
            raise ValueError(f"regions must have shape {d.shape[1:]}, got {regions.shape}")
        names = dict(region_names or {})
        masks = {
            names.get(int(label), str(int(label))): regions == label
            for label in np.unique(regions)
            if label > 0
        }
    rows = []
    for k in range(d.shape[0]):
        for region, mask in masks.items():
            valid = mask & np.isfinite(d[k]) & np.isfinite(a[k])
            d_mean, d_median, d_std, count = summarize(d[k][valid])
            a_mean, a_median, a_std, _ = summarize_angles(a[k][valid])
            rows.append(
                {
                    "reflection": k + 1,
                    "region": region,
                    "count": count,
                    "d mean (nm)": d_mean,
                    "d median (nm)": d_median,
                    "d std (nm)": d_std,
                    "angle mean (°)": a_mean,
                    "angle median (°)": a_median,
                    "angle std (°)": a_std,
                }
            )
    return rows


def statistics_text(rows: Sequence[Mapping], *, delimiter: str = "\t") -> str:
    """Rows as delimited text with a header line (TSV for the clipboard, CSV for files).

    Parameters
    ----------
    rows : sequence of mapping
        Rows of :func:`reflection_statistics` (d in nm, angles in degrees); a missing
        column is written empty.
    delimiter : str
        Field separator: ``"\\t"`` (default) or ``","``.

    Returns
    -------
    str
        The header (:data:`COLUMNS`) and one line per row, ``"\\n"``-terminated;
        floats with 6 significant digits.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        out = []
        for column in COLUMNS:
            value = row.get(column, "")
            out.append(f"{value:.6g}" if isinstance(value, float) else value)
        writer.writerow(out)
    return buffer.getvalue()
