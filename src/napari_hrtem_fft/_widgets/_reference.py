"""A reference region for strain and phase, shared by the lattice-map and movie docks.

The user chooses a Shapes layer (its closed shapes: rectangles, polygons, ellipses) or
a Labels layer and a label value: a 2D label image for every frame, or for a movie one
label image per frame ``(t, y, x)``, e.g. painted on each frame of the movie layer.  The
section turns it into a mask on a map grid and
hands the maps to :func:`napari_hrtem_fft.core.strain.relative_to_region`: strain and
phase relative to the median lattice inside the region, in each frame of a movie.  What
was chosen is recorded in ``maps.parameters["reference"]``, which every result layer
carries in its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from magicgui.widgets import ComboBox, Container

from .._napari.regions import labels_mask, region_choices, shapes_mask, watch_edits
from ._common import label_value_field

__all__ = ["ReferenceSection", "rectangle_nm"]


def rectangle_nm(layer, origin: Sequence[float]) -> list[float] | None:
    """The region as the CLI's ``--reference``: ``[y0, y1, x0, x1]`` nm, or None.

    Only when a Shapes layer holds exactly one closed shape and it is an axis-aligned
    rectangle; nm from ``origin``.

    Parameters
    ----------
    layer : napari.layers.Shapes
        The reference layer (world units nm).
    origin : sequence of float
        World ``(y, x)`` of the image origin (the image layer's translate).
    """
    closed = [k for k, kind in enumerate(layer.shape_type) if kind != "line" and kind != "path"]
    if len(closed) != 1 or layer.shape_type[closed[0]] != "rectangle":
        return None
    vertices = np.asarray(layer.data[closed[0]], dtype=np.float64)
    world = np.array([layer.data_to_world(v) for v in vertices])[:, -2:]
    # Axis-aligned: two distinct values per axis.
    if any(len(np.unique(np.round(world[:, a], 9))) != 2 for a in (0, 1)):
        return None
    rel = world - np.asarray(origin, dtype=np.float64)[-2:]
    (y0, x0), (y1, x1) = rel.min(axis=0), rel.max(axis=0)
    return [float(y0), float(y1), float(x0), float(x1)]


def _label_frames(layer, grid: dict, map_frames) -> list[int]:
    """Frames of a ``(t, y, x)`` Labels layer sampled for the given map frames."""
    world = grid["map_translate"][0] + np.asarray(map_frames) * grid["map_scale"][0]
    index = np.rint((world - layer.translate[0]) / layer.scale[0]).astype(int)
    return index.tolist()


class ReferenceSection(Container):
    """Choose the strain and phase reference: a Shapes or Labels layer (and a label).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose Shapes and Labels layers are offered.

    Notes
    -----
    ``changed`` is emitted when the choice changes or the chosen layer is edited, so
    that a dock can recompute; the layer's events are disconnected when the section is
    destroyed (:meth:`disconnect_layers`).
    """

    def __init__(self, viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._watched: list = []
        self._init_widgets()
        self._init_layout()
        self._connect_events()

    # ------------------------------------------------------------------ build

    def _init_widgets(self) -> None:
        self._layer = ComboBox(
            label="reference",
            choices=self._choices,
            nullable=True,
            value=None,
            tooltip=(
                "Optional Shapes layer (its rectangles, polygons, ellipses) or Labels "
                "layer: strain and phase relative to the median lattice inside it, in "
                "each frame of a movie (recorded in the layers' metadata). None: "
                "relative to the reflections."
            ),
        )
        self._label_value = label_value_field(
            "reference label",
            "Label value of the reference in the Labels layer; 0 = every label.",
        )

    def _init_layout(self) -> None:
        self.margins = (0, 0, 0, 0)
        self.extend([self._layer, self._label_value])
        self._label_value.visible = False

    def _connect_events(self) -> None:
        self._layer.changed.connect(self._on_layer_changed)
        self.native.destroyed.connect(self.disconnect_layers)

    def _choices(self, widget=None) -> list[tuple[str, object]]:
        return region_choices(self._viewer.layers)

    # ---------------------------------------------------------------- events

    def _on_layer_changed(self, event=None) -> None:
        from napari.layers import Labels

        layer = self._layer.value
        self._label_value.visible = isinstance(layer, Labels)
        self._watched = watch_edits(self._watched, layer, self._on_edited)

    def _on_edited(self, event=None) -> None:
        self.changed.emit(self)

    def disconnect_layers(self, *args) -> None:
        """Stop watching the chosen layer's edits (also when the section is destroyed)."""
        self._watched = watch_edits(self._watched, None, self._on_edited)

    # ------------------------------------------------------------------- API

    @property
    def layer(self):
        """The chosen Shapes or Labels layer, or None."""
        return self._layer.value

    @layer.setter
    def layer(self, layer) -> None:
        self._layer.value = layer

    @property
    def label_value(self) -> int:
        """Label value of a Labels reference (0: every label)."""
        return int(self._label_value.value)

    @label_value.setter
    def label_value(self, value: int) -> None:
        self._label_value.value = int(value)

    def mask(self, map_shape, map_scale, map_translate) -> np.ndarray | None:
        """The region on a map grid (world placement of the map layers), or None.

        Parameters
        ----------
        map_shape : sequence of int
            Map shape ``(..., my, mx)`` without the reflection axis: ``(t, my, mx)``
            for the maps of a movie.
        map_scale, map_translate : sequence of float
            World size of a map pixel and world centre of map pixel ``(0, 0)``, per
            map axis; at least ``(y, x)``, and the time axis ``(t, y, x)`` for a
            per-frame Labels reference.

        Returns
        -------
        numpy.ndarray or None
            Boolean ``(my, mx)``: map pixels whose centres lie in a closed shape, or on
            the label (nearest label pixel); ``(t, my, mx)`` for a Labels layer
            ``(t, y, x)``, whose label frame for each map frame is the one at the same
            world time (nearest); None without a reference layer.

        Raises
        ------
        ValueError
            If a ``(t, y, x)`` Labels layer is given for maps without a time axis, the
            Labels layer has another number of axes, or the region holds no map pixel
            (in some frame: those frames are named).
        """
        from napari.layers import Labels

        layer = self._layer.value
        if layer is None:
            return None
        axes = 3 if isinstance(layer, Labels) and layer.ndim == 3 else 2
        if isinstance(layer, Labels) and layer.ndim not in (2, 3):
            raise ValueError(
                f"the reference Labels layer {layer.name!r} must be 2D (y, x) or one label "
                f"image per frame (t, y, x); it has {layer.ndim} axes"
            )
        if axes == 3 and min(len(map_shape), len(map_scale), len(map_translate)) < 3:
            raise ValueError(
                f"the reference Labels layer {layer.name!r} has a label image per frame "
                "(t, y, x), but these maps are of one image: use a 2D Labels layer"
            )
        grid = {
            "map_shape": tuple(map_shape)[-axes:],
            "map_scale": tuple(map_scale)[-axes:],
            "map_translate": tuple(map_translate)[-axes:],
        }
        if isinstance(layer, Labels):
            mask = labels_mask(layer, label=self.label_value, **grid)
        else:
            mask = shapes_mask(layer, **grid)
        empty = ~mask.reshape(-1, *mask.shape[-2:]).any(axis=(-2, -1))
        if empty.any():
            labels = isinstance(layer, Labels) and self.label_value
            what = f"label {self.label_value} of " if labels else ""
            where = ""
            if mask.ndim == 3:
                frames = _label_frames(layer, grid, np.flatnonzero(empty))
                where = f" in frame(s) {', '.join(str(f) for f in frames)}"
            raise ValueError(
                f"the reference region ({what}{layer.name!r}) holds no map pixel "
                f"centre{where}: draw it over the analysed crystal"
            )
        return mask

    def record(self, origin: Sequence[float] = (0.0, 0.0)) -> dict | None:
        """What the reference is, for the metadata (None without a reference layer).

        Parameters
        ----------
        origin : sequence of float
            World ``(y, x)`` of the image origin, for ``rectangle_nm``.

        Returns
        -------
        dict or None
            ``layer`` (name), ``kind`` (``"shapes"`` or ``"labels"``), for labels
            ``label``, for shapes ``shapes`` (type and world vertices of each closed
            shape) and ``rectangle_nm`` (``[y0, y1, x0, x1]`` from the image origin, as
            the CLI's ``--reference``, when the region is one axis-aligned rectangle).
        """
        from napari.layers import Labels

        layer = self._layer.value
        if layer is None:
            return None
        if isinstance(layer, Labels):
            record = {"layer": layer.name, "kind": "labels", "label": self.label_value}
            if layer.ndim == 3:
                record["per_frame"] = True  # one label image per frame (t, y, x)
            return record
        shapes = [
            {
                "type": kind,
                "vertices": [
                    [float(c) for c in layer.data_to_world(v)[-2:]] for v in np.asarray(data)
                ],
            }
            for kind, data in zip(layer.shape_type, layer.data, strict=True)
            if kind not in ("line", "path")
        ]
        return {
            "layer": layer.name,
            "kind": "shapes",
            "shapes": shapes,
            "rectangle_nm": rectangle_nm(layer, origin),
        }

    def apply(self, maps, *, map_scale, map_translate, origin=None):
        """``maps`` with strain and phase relative to the region (unchanged without one).

        Parameters
        ----------
        maps : LatticeMaps
            Maps of an image or a movie (a 2D region applies to every frame, a
            ``(t, y, x)`` Labels layer frame by frame).
        map_scale, map_translate : sequence of float
            World placement of the map grid (see :meth:`mask`); with the time axis for
            a per-frame Labels reference.
        origin : sequence of float, optional
            World ``(y, x)`` of the image origin (default ``map_translate``: map pixel
            ``(0, 0)`` is centred on image pixel ``(0, 0)``).

        Raises
        ------
        ValueError
            As :meth:`mask` and :func:`~napari_hrtem_fft.core.strain.relative_to_region`.
        """
        from ..core.strain import relative_to_region

        mask = self.mask(np.shape(maps.d_spacing)[1:], map_scale, map_translate)
        if mask is None:
            return maps
        origin = tuple(map_translate)[-2:] if origin is None else origin
        return relative_to_region(maps, mask, record=self.record(origin))
