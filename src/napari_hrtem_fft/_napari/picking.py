"""The reflection picker's side of the napari layer model, without Qt.

- :class:`WindowOnImage`: the FFT window on the image, placed with the 'FFT region'
  point (or the centre of the view) and drawn as the 'FFT window' outline.
- :class:`ReflectionPoints`: the picked reflections, a Points layer ``(gy, gx)`` in nm⁻¹
  on the FFT canvas whose clicks and drags snap onto the spectrum's peaks.
- :func:`calibrate_image`: an image layer's scale corrected from picked reflections of
  known spacing.

The picker dock (:mod:`napari_hrtem_fft._widgets.picker`) builds its controls and
forwards to these.  No Qt; napari only inside the functions that use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..core.calibration import (
    CALIBRATION_KEY,
    ScaleCorrection,
    affine_correction,
    correction_from_planes,
    isotropic_correction,
    layer_geometry,
)
from ..core.reciprocal import g_angle, g_spacing
from .calibration import camera_of, world_to_pixel
from .layers import PICKER_KEY

__all__ = [
    "OUTLINE_LAYER",
    "REFLECTIONS_LAYER",
    "REGION_LAYER",
    "ReflectionPoints",
    "WindowOnImage",
    "calibrate_image",
    "clamp_center",
    "square_outline",
]

REGION_LAYER = "FFT region"
OUTLINE_LAYER = "FFT window"
REFLECTIONS_LAYER = "reflections"

# Reflections are rings this many FFT bins across: around the peak's top, inside its
# Hann main lobe (4 bins), so that rings of reflections 3 bins apart stay apart.
_POINT_BINS = 2.5


def square_outline(center, window: int, layer) -> np.ndarray:
    """World (y, x) corners of the window's pixel edges, for a Shapes rectangle."""
    half = window // 2
    lo = np.asarray(center, float) - half - 0.5
    hi = lo + window
    scale = np.asarray(layer.scale[-2:], float)
    translate = np.asarray(layer.translate[-2:], float)
    return np.array([lo, [lo[0], hi[1]], hi, [hi[0], lo[1]]]) * scale + translate


def clamp_center(center, window: int, shape) -> tuple[int, int]:
    """Window centre (pixels) moved so that the window lies inside the image.

    The same rule as :func:`napari_hrtem_fft.region_fft`, so that the outline drawn
    is the window transformed.
    """
    out = []
    for c, n in zip(center, shape[-2:], strict=True):
        start = int(np.round(c)) - window // 2
        start = min(max(start, 0), n - window)
        out.append(start + window // 2)
    return out[0], out[1]


def _features(g: np.ndarray) -> pd.DataFrame:
    """Number (the label on the canvas), d (nm) and angle (°) of each reflection."""
    n = len(g)
    return pd.DataFrame(
        {
            "number": np.arange(1, n + 1),
            "d_nm": g_spacing(g) if n else np.empty(0),
            "angle_deg": g_angle(g) if n else np.empty(0),
        }
    )


def _image_extent(image) -> float:
    """Largest side of an image layer in world units."""
    return float(np.max(np.asarray(image.data.shape[-2:]) * np.abs(image.scale[-2:])))


@contextlib.contextmanager
def _selection_kept(viewer):
    """Add a layer without taking the user's selection (napari selects what it adds).

    The picker draws its window when an image is chosen; the user's active layer, and
    with it the mouse's pan and zoom on the image, stay as they were.
    """
    active = viewer.layers.selection.active
    try:
        yield
    finally:
        if active is not None and active in viewer.layers:
            viewer.layers.selection.active = active


class WindowOnImage:
    """The FFT window on the image: the 'FFT region' point and the outline drawn.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding the image (napari's proxy of it is fine).
    on_moved : callable
        Called with the data event when the user drags the region point.
    """

    def __init__(self, viewer, on_moved: Callable) -> None:
        self._viewer = viewer
        self._on_moved = on_moved
        self._drawn: tuple | None = None

    def _find(self, role: str):
        for layer in self._viewer.layers:
            if layer.metadata.get(PICKER_KEY) == role:
                return layer
        return None

    def region_point(self, image, *, create: bool):
        """The 'FFT region' Points layer (made at the centre of the view if asked)."""
        layer = self._find("region")
        if layer is not None or not create:
            return layer
        with _selection_kept(self._viewer):
            layer = self._add_region_point(image)
        layer.events.data.connect(self._on_moved)
        layer.mode = "select"
        return layer

    def _add_region_point(self, image):
        return self._viewer.add_points(
            [camera_of(self._viewer).center[-2:]],
            name=REGION_LAYER,
            ndim=2,
            # About 2 % of the image across: easy to grab at full view.
            size=0.02 * _image_extent(image),
            symbol="cross",
            face_color="yellow",
            border_color="black",
            units=tuple(str(u) for u in image.units[-2:]),
            metadata={PICKER_KEY: "region"},
        )

    def center(self, image, window: int, *, at_point: bool) -> tuple[int, int]:
        """Window centre in image pixels (y, x), clamped inside the current plane.

        ``at_point``: at the region point (made if missing), else at the view's centre.
        """
        if at_point:
            region = self.region_point(image, create=True)
            if len(region.data) == 0:
                region.data = [camera_of(self._viewer).center[-2:]]
            world_yx = np.asarray(region.data[-1], float)
        else:
            world_yx = np.asarray(camera_of(self._viewer).center[-2:], float)
        point = np.asarray(self._viewer.dims.point, float).copy()
        point[-2:] = world_yx
        pixel = world_to_pixel(image, point)[-2:]
        return clamp_center(pixel, window, image.data.shape)

    def draw(self, center, window: int, image) -> None:
        """Draw (or move) the outline of the window; nothing when it is already there."""
        outline = self._find("outline")
        key = (tuple(center), window, id(image))
        if outline is not None and outline.nshapes == 1 and self._drawn == key:
            return
        self._drawn = key
        corners = square_outline(center, window, image)
        if outline is not None and outline.nshapes == 1:
            # Moving the one rectangle keeps its style and costs one redraw.
            outline.data = [corners]
            return
        if outline is None:
            with _selection_kept(self._viewer):
                outline = self._viewer.add_shapes(
                    name=OUTLINE_LAYER,
                    ndim=2,
                    units=tuple(str(u) for u in image.units[-2:]),
                    metadata={PICKER_KEY: "outline"},
                )
            # The outline only shows where the window is; it moves with the point.
            outline.editable = False
        with outline.events.data.blocker():
            outline.selected_data = set(range(outline.nshapes))
            outline.remove_selected()
        # About 1/250 of the image: visible at full view, thin when zoomed in.
        outline.add_rectangles(
            [corners],
            edge_width=_image_extent(image) / 250.0,
            edge_color="yellow",
            face_color="transparent",
        )


class ReflectionPoints:
    """The picked reflections: a Points layer ``(gy, gx)`` in nm⁻¹ on the FFT canvas.

    A point added by a click, or dragged and released, moves onto the nearest peak of
    the spectrum shown (:func:`~napari_hrtem_fft.core.fft.refine_reflection`) while
    :attr:`snap` is true.  Each point is labelled with its number; every change of the
    reflections calls ``on_change(g)``.

    Parameters
    ----------
    viewer : napari.components.ViewerModel
        The FFT canvas's model.
    on_change : callable
        ``on_change(g)`` with the ``(n, 2)`` reflections after every change.
    spectrum : callable
        Returns what the spectrum shown was computed from (``plane``, ``pixel_size``,
        ``window``, ``center``), or None when there is none: snapping refines on it.
    """

    def __init__(self, viewer, on_change: Callable, spectrum: Callable) -> None:
        #: Whether clicked and dragged points snap onto the nearest peak.
        self.snap = True
        self._on_change = on_change
        self._spectrum = spectrum
        # Set while points are rewritten here, so that the data event it triggers
        # does not snap (and rewrite) again.
        self._updating = False
        self.layer = viewer.add_points(
            np.empty((0, 2)),
            name=REFLECTIONS_LAYER,
            ndim=2,
            symbol="ring",
            size=0.5,
            face_color="transparent",
            border_color="yellow",
            border_width=0.15,
            units="1/nm",
            features=_features(np.empty((0, 2))),
            text={"string": "{number}", "color": "yellow", "size": 11, "anchor": "center"},
            metadata={PICKER_KEY: "reflections"},
        )
        self.layer.mode = "add"
        self.layer.events.data.connect(self._on_data)
        self.layer.mouse_drag_callbacks.append(self._snap_after_drag)

    @property
    def g(self) -> np.ndarray:
        """The reflections ``(n, 2)`` as ``(gy, gx)`` in nm⁻¹."""
        return np.asarray(self.layer.data, dtype=float).reshape(-1, 2)

    def set(self, g, *, notify: bool = True) -> None:
        """Replace every point: data, selection and labels, drawn once."""
        layer = self.layer
        g = np.asarray(g, dtype=float).reshape(-1, 2)
        # One redraw for the three changes (each alone rebuilds the points' visual).
        with layer.events.blocker_all():
            layer.data = g
            layer.selected_data = set()
            layer.features = _features(g)
        layer.refresh()
        self._rewritten()
        if notify:
            self._on_change(self.g)

    def fit_to_bins(self, bin_size: float) -> None:
        """Rings 2.5 FFT bins across, numbered at their upper right.

        One offset for every label: two labels then overlap only where their rings do.
        """
        size = _POINT_BINS * bin_size
        if self.layer.current_size == size:
            return
        self.layer.size = size
        self.layer.current_size = size
        self.layer.text.translation = np.array([-0.75 * size, 0.75 * size])

    def _rewritten(self) -> None:
        """Tell other listeners of the layer what a blocked or guarded rewrite did."""
        from napari.layers.base import ActionType

        self._updating = True
        try:
            self.layer.events.data(
                value=self.layer.data,
                action=ActionType.CHANGED,
                data_indices=(),
                vertex_indices=(),
            )
        finally:
            self._updating = False

    def _snap(self, indices) -> None:
        """Move the given points onto the nearest peak of the spectrum shown."""
        from napari.utils.notifications import show_warning

        from ..core.fft import refine_reflection

        spectrum = self._spectrum()
        if spectrum is None or not self.snap or len(indices) == 0:
            return
        data = self.g.copy()
        indices = np.asarray(indices, dtype=int) % len(data)
        try:
            data[indices] = refine_reflection(
                spectrum["plane"],
                data[indices],
                pixel_size=spectrum["pixel_size"],
                window=spectrum["window"],
                center=spectrum["center"],
            )
        except ValueError as exc:
            show_warning(f"Point not snapped: {exc}")
            return
        selected = set(self.layer.selected_data)
        self._updating = True
        try:
            self.layer.data = data
            self.layer.selected_data = selected
        finally:
            self._updating = False

    def _changed(self) -> None:
        """Numbers and listeners after the user's edit."""
        self.layer.features = _features(self.g)
        self.layer.refresh_text()
        self._on_change(self.g)

    def _on_data(self, event) -> None:
        from napari.layers.base import ActionType

        if self._updating:
            return
        action = getattr(event, "action", None)
        if action == ActionType.ADDED:
            self._snap(list(getattr(event, "data_indices", ())))
        if action in (ActionType.ADDED, ActionType.REMOVED, ActionType.CHANGED):
            self._changed()

    def _snap_after_drag(self, layer, event):
        """Snap the moved points once the mouse is released (not while dragging)."""
        if layer.mode != "select":
            return
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if moved and layer.selected_data:
            self._snap(sorted(layer.selected_data))
            self._changed()


def calibrate_image(
    image, g, *, pixel_size: float, known: tuple | None = None, true_d: float = 0.0
) -> ScaleCorrection:
    """Correct an image layer's scale from reflections 1 (and 2) of known spacing.

    The layer's scale becomes the corrected mean pixel size, its ``affine`` the
    remaining stretch (two reflections), and its metadata the correction record
    (:data:`~napari_hrtem_fft.core.calibration.CALIBRATION_KEY`), which the maps dock
    applies to and records in every map.

    Parameters
    ----------
    image : napari.layers.Image
        A 2-D image layer not yet calibrated from a lattice.
    g : array_like
        The picked reflections ``(n, 2)`` in nm⁻¹; the first one or two are used.
    pixel_size : float
        The nominal pixel size (nm) they were measured with.
    known : tuple, optional
        ``(material, hkl)`` of the reflections, from the built-in list.
    true_d : float
        Their true spacing in nm, when ``known`` is None.

    Returns
    -------
    ScaleCorrection
        The correction applied.

    Raises
    ------
    ValueError
        For a movie, no reflection, an image already calibrated, or no true spacing.
    """
    if image.ndim != 2:
        raise ValueError("calibration from the picker works on 2-D images")
    g = np.asarray(g, dtype=float).reshape(-1, 2)[:2]
    if len(g) == 0:
        raise ValueError("pick or suggest the reflection(s) of known spacing first")
    if CALIBRATION_KEY in image.metadata:
        raise ValueError(f"{image.name!r} is already calibrated from a lattice")
    if known is not None:
        material, hkl = known
        correction = correction_from_planes(g, material, [hkl] * len(g), pixel_size=pixel_size)
    else:
        if not true_d > 0:
            raise ValueError("choose a known lattice or type the true d (nm)")
        source = f"user: d = {true_d:g} nm"
        correction = (
            isotropic_correction(g, true_d, pixel_size=pixel_size, source=source)
            if len(g) == 1
            else affine_correction(g, [true_d, true_d], pixel_size=pixel_size, source=source)
        )
    geometry = layer_geometry(correction)
    pixel = geometry["pixel_size"]
    image.scale = (pixel, pixel)
    # napari reads a 2×2 affine as homogeneous (1-D); give the 3×3 form.
    affine = np.eye(3)
    affine[:2, :2] = geometry["affine"]
    image.affine = affine
    image.metadata = {**image.metadata, CALIBRATION_KEY: correction.to_metadata()}
    return correction
