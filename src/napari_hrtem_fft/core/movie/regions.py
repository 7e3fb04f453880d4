"""Regions of movie maps drawn in world coordinates."""

from __future__ import annotations

import numpy as np

__all__ = ["region_from_polygon"]


def region_from_polygon(vertices_nm, map_shape, map_scale, map_translate=(0.0, 0.0)):
    """Boolean mask on the map grid of the map pixels inside a polygon.

    Parameters
    ----------
    vertices_nm : array_like
        ``(v, 2)`` vertices ``(y, x)`` in world units (nm), e.g. a napari Shapes
        polygon; extra leading columns (a time coordinate) are ignored.
    map_shape : tuple of int
        Shape of the maps; the last two entries ``(my, mx)`` are used.
    map_scale : float or sequence of float
        Size of a map pixel in nm (``maps.map_scale``), one value or ``(sy, sx)``.
    map_translate : sequence of float
        World position ``(y, x)`` in nm of the centre of map pixel ``(0, 0)``.

    Returns
    -------
    numpy.ndarray
        Boolean ``(my, mx)``: True where the map pixel centre lies inside the polygon.

    Raises
    ------
    ValueError
        If there are fewer than 3 vertices, a value is not finite, or the scale is not
        positive.
    """
    from matplotlib.path import Path as _Path

    v = np.asarray(vertices_nm, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2 or v.shape[0] < 3:
        raise ValueError(f"vertices_nm must have shape (v >= 3, 2) as (y, x) nm, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices_nm must be finite")
    shape = tuple(int(s) for s in tuple(map_shape)[-2:])
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"map_shape must end with (my, mx) >= 1, got {map_shape}")
    scale = np.broadcast_to(np.atleast_1d(np.asarray(map_scale, dtype=np.float64))[-2:], (2,))
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"map_scale must be positive nm per map pixel, got {map_scale}")
    shift = np.broadcast_to(np.atleast_1d(np.asarray(map_translate, dtype=np.float64))[-2:], (2,))
    yy = shift[0] + np.arange(shape[0]) * scale[0]
    xx = shift[1] + np.arange(shape[1]) * scale[1]
    points = np.stack(np.meshgrid(yy, xx, indexing="ij"), axis=-1).reshape(-1, 2)
    return _Path(v[:, -2:]).contains_points(points).reshape(shape)
