"""Regions drawn in napari (Shapes or Labels layers) as masks on a map grid.

The lattice-map widget (where a movie's lattice is tracked) and the time-trace dock
(where the maps are summarised per frame) share these.  Everything is in world
coordinates: a map grid is given by its shape, the world size of a map pixel and the
world position of the centre of map pixel ``(0, 0)``, exactly as a map layer's
``scale`` and ``translate``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layers import PICKER_KEY

__all__ = [
    "CLOSED_SHAPES",
    "is_region_layer",
    "labels_mask",
    "region_choices",
    "shape_polygons",
    "shapes_mask",
    "watch_edits",
]

#: Shape types that enclose an area (lines and paths do not).
CLOSED_SHAPES = ("rectangle", "polygon", "ellipse")

# Vertices of the polygon that stands for an ellipse: far below a map pixel of error
# for any ellipse drawn on a map.
_ELLIPSE_VERTICES = 128


def is_region_layer(layer) -> bool:
    """True for Shapes and Labels layers a user can draw regions in.

    The picker's window outline is a Shapes layer too, but not a region.
    """
    from napari.layers import Labels, Shapes

    if isinstance(layer, Labels):
        return True
    return isinstance(layer, Shapes) and layer.metadata.get(PICKER_KEY) != "outline"


def region_choices(layers) -> list[tuple[str, object]]:
    """``(label, layer)`` of every region layer, for a combo box: ``"name (shapes)"``."""
    from napari.layers import Labels

    return [
        (f"{layer.name} ({'labels' if isinstance(layer, Labels) else 'shapes'})", layer)
        for layer in layers
        if is_region_layer(layer)
    ]


def watch_edits(watched: list, layer, callback) -> list:
    """Call ``callback`` when ``layer`` is edited, instead of the layers in ``watched``.

    Edits are data events (Shapes and Labels) and paint events (Labels).  Returns the
    new list of watched layers, to pass again on the next change; a layer already
    watched stays connected once.
    """
    from napari.layers import Labels, Shapes

    if any(old is layer for old in watched):
        return watched
    for old in watched:
        old.events.data.disconnect(callback)
        if isinstance(old, Labels):
            old.events.paint.disconnect(callback)
    if not isinstance(layer, Shapes | Labels):
        return []
    layer.events.data.connect(callback)
    if isinstance(layer, Labels):
        layer.events.paint.connect(callback)
    return [layer]


def _ellipse(corners: np.ndarray) -> np.ndarray:
    """Polygon of the ellipse inscribed in napari's 4-corner box (possibly rotated)."""
    center = corners.mean(axis=0)
    a = (corners[1] - corners[0]) / 2.0
    b = (corners[3] - corners[0]) / 2.0
    theta = np.linspace(0.0, 2.0 * np.pi, _ELLIPSE_VERTICES, endpoint=False)
    return center + np.cos(theta)[:, None] * a + np.sin(theta)[:, None] * b


def shape_polygons(layer) -> list[np.ndarray]:
    """World ``(y, x)`` vertices of every closed shape of a Shapes layer.

    Rectangles and polygons keep their vertices, ellipses become polygons; lines and
    paths are skipped.  Leading (time) coordinates are dropped: a shape counts in every
    frame.
    """
    polygons = []
    for kind, data in zip(layer.shape_type, layer.data, strict=True):
        if kind not in CLOSED_SHAPES:
            continue
        world = np.array([layer.data_to_world(v) for v in np.asarray(data)], dtype=np.float64)
        world = world[:, -2:]
        polygons.append(_ellipse(world) if kind == "ellipse" else world)
    return polygons


def shapes_mask(
    layer,
    *,
    map_shape: Sequence[int],
    map_scale: Sequence[float],
    map_translate: Sequence[float],
) -> np.ndarray:
    """Map pixels whose centres lie inside any closed shape of a Shapes layer.

    Parameters
    ----------
    layer : napari.layers.Shapes
        The region; lines and paths are ignored.
    map_shape : sequence of int
        Map shape; the last two entries ``(my, mx)`` are used.
    map_scale, map_translate : sequence of float
        World size of a map pixel and world position of the centre of map pixel
        ``(0, 0)``; the last two entries (y, x) are used.

    Returns
    -------
    numpy.ndarray
        Boolean ``(my, mx)``; all False when the layer holds no closed shape.
    """
    from ..core.movie import region_from_polygon

    shape = tuple(int(s) for s in tuple(map_shape)[-2:])
    mask = np.zeros(shape, dtype=bool)
    for polygon in shape_polygons(layer):
        mask |= region_from_polygon(
            polygon, shape, tuple(map_scale)[-2:], map_translate=tuple(map_translate)[-2:]
        )
    return mask


def labels_mask(
    layer,
    *,
    map_shape: Sequence[int],
    map_scale: Sequence[float],
    map_translate: Sequence[float],
    label: int = 0,
) -> np.ndarray:
    """Map pixels on a label of a Labels layer (nearest label pixel to each centre).

    Parameters
    ----------
    layer : napari.layers.Labels
        Label image ``(y, x)`` (every frame) or ``(t, y, x)`` (per frame).
    map_shape, map_scale, map_translate : sequence
        The map grid, one entry per map axis (``(t, my, mx)`` for a movie).
    label : int
        The label to use; 0 means any label above 0.

    Returns
    -------
    numpy.ndarray
        Boolean mask: ``(my, mx)`` for a 2-D label image, else of ``map_shape``.

    Raises
    ------
    ValueError
        If the label image has more axes than the map.
    """
    from ..core.statistics import labels_on_map

    data = np.asarray(layer.data)
    ndim = data.ndim
    grid = tuple(int(s) for s in map_shape)[-ndim:] if ndim == 2 else tuple(map_shape)
    sampled = labels_on_map(
        data,
        labels_scale=tuple(layer.scale),
        labels_translate=tuple(layer.translate),
        map_shape=grid,
        map_scale=tuple(map_scale)[-len(grid) :],
        map_translate=tuple(map_translate)[-len(grid) :],
    )
    return sampled > 0 if int(label) == 0 else sampled == int(label)
