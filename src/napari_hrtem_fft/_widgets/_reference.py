"""A reference region for strain and phase, shared by the lattice-map and movie docks.

The user chooses a Shapes layer (its closed shapes: rectangles, polygons, ellipses) or
a Labels layer and a label value.  The section turns it into a mask on a map grid and
hands the maps to :func:`napari_hrtem_fft.core.strain.relative_to_region`: strain and
phase relative to the median lattice inside the region, in each frame of a movie.  What
was chosen is recorded in ``maps.parameters["reference"]``, which every result layer
carries in its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from magicgui.widgets import ComboBox, Container, SpinBox

from .._napari.regions import labels_mask, region_choices, shapes_mask, watch_edits

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
        self._label_value = SpinBox(
            label="reference label",
            value=0,
            min=0,
            max=2**31 - 1,
            tooltip="Label value of the reference in the Labels layer; 0 = every label.",
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
            Map shape; the last two entries ``(my, mx)`` are used.
        map_scale, map_translate : sequence of float
            World size of a map pixel and world centre of map pixel ``(0, 0)``; the
            last two entries ``(y, x)`` are used.

        Returns
        -------
        numpy.ndarray or None
            Boolean ``(my, mx)``: map pixels whose centres lie in a closed shape, or on
            the label (nearest label pixel); None without a reference layer.

        Raises
        ------
        ValueError
            If the Labels layer is not 2D, or the region holds no map pixel.
        """
        from napari.layers import Labels

        layer = self._layer.value
        if layer is None:
            return None
        grid = {
            "map_shape": tuple(map_shape)[-2:],
            "map_scale": tuple(map_scale)[-2:],
            "map_translate": tuple(map_translate)[-2:],
        }
        if isinstance(layer, Labels):
            if layer.ndim != 2:
                raise ValueError(
                    f"the reference Labels layer {layer.name!r} must be 2D (y, x); it has "
                    f"{layer.ndim} axes"
                )
            mask = labels_mask(layer, label=self.label_value, **grid)
        else:
            mask = shapes_mask(layer, **grid)
        if not mask.any():
            labels = isinstance(layer, Labels) and self.label_value
            what = f"label {self.label_value} of " if labels else ""
            raise ValueError(
                f"the reference region ({what}{layer.name!r}) holds no map pixel centre: "
                "draw it over the analysed crystal"
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
            return {"layer": layer.name, "kind": "labels", "label": self.label_value}
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
            Maps of an image or a movie (the region applies to every frame).
        map_scale, map_translate : sequence of float
            World placement of the map grid (see :meth:`mask`).
        origin : sequence of float, optional
            World ``(y, x)`` of the image origin (default ``map_translate``: map pixel
            ``(0, 0)`` is centred on image pixel ``(0, 0)``).

        Raises
        ------
        ValueError
            As :meth:`mask` and :func:`~napari_hrtem_fft.core.strain.relative_to_region`.
        """
        from ..core.strain import relative_to_region

        mask = self.mask(np.shape(maps.d_spacing), map_scale, map_translate)
        if mask is None:
            return maps
        origin = tuple(map_translate)[-2:] if origin is None else origin
        return relative_to_region(maps, mask, record=self.record(origin))
