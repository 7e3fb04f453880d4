"""Reflection picker: the FFT of a region of the image, and reflections clicked on it.

The user chooses an image layer and a square window (placed with the 'FFT region'
point, or at the centre of the view), sees its FFT in reciprocal space (nm⁻¹) in a
second canvas embedded in this dock, and picks reflections there: "Suggest" fills in
the strongest ones, clicks snap to the nearest spectrum peak.  The reflections Points
layer holds ``(gy, gx)`` in nm⁻¹, which is what the lattice-map widget analyses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from magicgui.widgets import Container, Label
from napari.layers import Image, Points
from napari.layers.base import ActionType
from napari.utils.notifications import show_error, show_info, show_warning

from .._napari.calibration import camera_of, current_plane, world_to_pixel
from .._napari.layers import PICKER_KEY
from ..core.calibration import (
    CALIBRATION_KEY,
    ScaleCorrection,
    affine_correction,
    correction_from_planes,
    isotropic_correction,
    layer_geometry,
)
from ..core.picked import PICKED_KEY, PickedReflections
from ..core.pipeline import check_option
from ..core.reciprocal import g_angle, g_spacing
from ._common import (
    debounce_timer,
    fill_table,
    layer_or_override_pixel_size,
    max_window,
    show_calibration,
)
from ._fft_view import FFTView
from ._fit import fit_dock
from ._picker_parts import (
    TABLE_COLUMNS,
    CalibrateSection,
    PickSection,
    RegionSection,
    reflection_table,
)

if TYPE_CHECKING:
    import napari

__all__ = ["ReflectionPickerWidget"]

REGION_LAYER = "FFT region"
OUTLINE_LAYER = "FFT window"
REFLECTIONS_LAYER = "reflections"

# Points are rings this many FFT bins across: around the peak's top, inside its
# Hann main lobe (4 bins), so that rings of reflections 3 bins apart stay apart.
_POINT_BINS = 2.5


def _square_outline(center, window: int, layer: Image) -> np.ndarray:
    """World (y, x) corners of the window's pixel edges, for a Shapes rectangle."""
    half = window // 2
    lo = np.asarray(center, float) - half - 0.5
    hi = lo + window
    scale = np.asarray(layer.scale[-2:], float)
    translate = np.asarray(layer.translate[-2:], float)
    return np.array([lo, [lo[0], hi[1]], hi, [hi[0], lo[1]]]) * scale + translate


def _clamp_center(center, window: int, shape) -> tuple[int, int]:
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


class ReflectionPickerWidget(Container):
    """Show the FFT of an image region and pick reflections on it.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer holding the image; the window outline and the 'FFT region' point
        are added to it.  The FFT and the reflections are shown in a second canvas in
        this widget (:attr:`fft_viewer`).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        # Set while this widget itself rewrites point positions, so that the data
        # event it triggers does not snap (and rewrite) again.
        self._updating_points = False
        self._fft_context: dict | None = None
        self._framed = False
        self._init_widgets()
        self._init_layout()
        fit_dock(self)
        self._connect_events()
        self._on_image_changed()

    # ------------------------------------------------------------------ set-up

    def _init_widgets(self) -> None:
        self._region_section = RegionSection()
        self._pick_section = PickSection()
        self._calibrate_section = CalibrateSection()
        # The controls by name (the callbacks, tests and scripts use these).
        region, pick, calibrate = self._region_section, self._pick_section, self._calibrate_section
        self._image, self._calibration = region.image, region.calibration
        self._pixel_size, self._window = region.pixel_size, region.window
        self._region, self._show_fft = region.region, region.show
        self._max_count, self._suggest, self._snap = pick.max_count, pick.suggest, pick.snap
        self._mode_add, self._mode_select = pick.add, pick.select
        self._delete, self._clear = pick.delete, pick.clear
        self._known, self._true_d = calibrate.known, calibrate.true_d
        self._calibrate = calibrate.calibrate
        self._table = reflection_table()
        self._status = Label(value="", tooltip="What the picker did last.")
        self._status.native.setWordWrap(True)
        self._fft_view = FFTView(title="FFT")
        self._reflections = self._make_reflections_layer()

    def _init_layout(self) -> None:
        self.extend(
            [
                self._region_section,
                self._pick_section,
                self._table,
                self._calibrate_section,
                self._status,
            ]
        )
        # The FFT canvas (a Qt widget, not a magicgui one) goes above the table.
        layout = self.native.layout()
        layout.insertWidget(layout.indexOf(self._table.native), self._fft_view, 1)
        self.native.setMinimumWidth(380)

    def _connect_events(self) -> None:
        self._image.changed.connect(self._on_image_changed)
        for control in (self._pixel_size, self._window, self._region):
            control.changed.connect(self._on_geometry_changed)
        self._show_fft.clicked.connect(self._on_show_fft)
        self._suggest.clicked.connect(self._on_suggest)
        self._mode_add.clicked.connect(self._on_mode_add)
        self._mode_select.clicked.connect(self._on_mode_select)
        self._delete.clicked.connect(self._on_delete)
        self._clear.clicked.connect(self._on_clear)
        self._calibrate.clicked.connect(self._on_calibrate)
        self._reflections.events.data.connect(self._on_reflections_data)
        self._reflections.mouse_drag_callbacks.append(self._snap_after_drag)
        camera_of(self._viewer).events.center.connect(self._on_view_moved)
        self._viewer.dims.events.current_step.connect(self._on_frame_changed)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        # Coalesce bursts (a dragged region point moves many times a second).
        self._refresh_timer = debounce_timer(self, 60, self._refresh)

    def _make_reflections_layer(self) -> Points:
        layer = self._fft_view.viewer.add_points(
            np.empty((0, 2)),
            name=REFLECTIONS_LAYER,
            ndim=2,
            symbol="ring",
            size=0.5,
            face_color="transparent",
            border_color="yellow",
            border_width=0.15,
            units="1/nm",
            features=pd.DataFrame(
                {
                    "number": pd.Series(dtype=int),
                    "d_nm": pd.Series(dtype=float),
                    "angle_deg": pd.Series(dtype=float),
                    "label": pd.Series(dtype=str),
                }
            ),
            text={
                "string": "{label}",
                "color": "yellow",
                "size": 11,
                "anchor": "center",
            },
            metadata={PICKER_KEY: "reflections"},
        )
        layer.mode = "add"
        return layer

    # -------------------------------------------------------------- properties

    @property
    def fft_viewer(self):
        """The :class:`napari.components.ViewerModel` of the embedded FFT canvas."""
        return self._fft_view.viewer

    @property
    def reflections_layer(self) -> Points:
        """Points layer of the picked reflections, ``(gy, gx)`` in nm⁻¹."""
        return self._reflections

    @property
    def reflections(self) -> np.ndarray:
        """The picked reflections ``(n, 2)`` as ``(gy, gx)`` in nm⁻¹."""
        return np.asarray(self._reflections.data, dtype=float).reshape(-1, 2)

    def pixel_size(self) -> float:
        """Pixel size in nm: the layer's calibration, or the override field."""
        return layer_or_override_pixel_size(self._image.value, self._pixel_size)

    # ---------------------------------------------------------------- geometry

    def _region_layer(self, *, create: bool) -> Points | None:
        for layer in self._viewer.layers:
            if isinstance(layer, Points) and layer.metadata.get(PICKER_KEY) == "region":
                return layer
        if not create:
            return None
        image = self._image.value
        center_world = camera_of(self._viewer).center[-2:]
        layer = self._viewer.add_points(
            [center_world],
            name=REGION_LAYER,
            ndim=2,
            # About 2 % of the image across: easy to grab at full view.
            size=0.02 * float(np.max(np.asarray(image.data.shape[-2:]) * image.scale[-2:])),
            symbol="cross",
            face_color="yellow",
            border_color="black",
            units=tuple(str(u) for u in image.units[-2:]),
            metadata={PICKER_KEY: "region"},
        )
        layer.events.data.connect(self._on_region_moved)
        layer.mode = "select"
        return layer

    def _outline_layer(self):
        for layer in self._viewer.layers:
            if layer.metadata.get(PICKER_KEY) == "outline":
                return layer
        image = self._image.value
        layer = self._viewer.add_shapes(
            name=OUTLINE_LAYER,
            ndim=2,
            edge_color="yellow",
            face_color="transparent",
            units=tuple(str(u) for u in image.units[-2:]),
            metadata={PICKER_KEY: "outline"},
        )
        # The outline only shows where the window is; it is moved with the point.
        layer.editable = False
        return layer

    def _window_center(self, image: Image) -> tuple[int, int]:
        """Window centre in image pixels (y, x), clamped inside the current plane."""
        if self._region.value == "point":
            region = self._region_layer(create=True)
            if len(region.data) == 0:
                region.data = [camera_of(self._viewer).center[-2:]]
            world_yx = np.asarray(region.data[-1], float)
        else:
            world_yx = np.asarray(camera_of(self._viewer).center[-2:], float)
        point = np.asarray(self._viewer.dims.point, float).copy()
        point[-2:] = world_yx
        pixel = world_to_pixel(image, point)[-2:]
        return _clamp_center(pixel, self._window_size(), image.data.shape)

    def _window_size(self) -> int:
        return check_option("window", int(self._window.value))

    # ------------------------------------------------------------------ events

    def _on_image_changed(self, event=None) -> None:
        layer = self._image.value
        show_calibration(layer, self._calibration, self._pixel_size)
        self._window.max = max_window(layer)
        # A new image is framed anew on its own low-order reflections.
        self._framed = False
        if layer is not None:
            self._load_picks(layer)
            self._on_geometry_changed()

    def _on_geometry_changed(self, event=None) -> None:
        self._refresh_timer.start()

    def _on_region_moved(self, event=None) -> None:
        if self._region.value == "point":
            self._refresh_timer.start()

    def _on_view_moved(self, event=None) -> None:
        if self._region.value == "view":
            self._refresh_timer.start()

    def _on_frame_changed(self, event=None) -> None:
        image = self._image.value
        if image is not None and image.ndim > 2 and self._fft_context is not None:
            self._refresh_timer.start()

    def _on_layer_removed(self, event) -> None:
        if event.value is self._image.value:
            self._fft_context = None

    def _refresh(self) -> None:
        """Redraw the outline, and the FFT when one is shown."""
        image = self._image.value
        if image is None:
            return
        try:
            if self._fft_context is not None:
                self.show_fft()
            elif self._region_layer(create=False) is not None or self._region.value == "view":
                center = self._window_center(image)
                self._draw_outline(center, image)
        except (ValueError, TypeError) as exc:
            self._status.value = str(exc)

    def _draw_outline(self, center, image: Image) -> None:
        outline = self._outline_layer()
        corners = _square_outline(center, self._window_size(), image)
        if outline.nshapes == 1:
            # Moving the one rectangle keeps its style and costs one redraw.
            outline.data = [corners]
            return
        # About 1/250 of the image: visible at full view, thin when zoomed in.
        extent = float(np.max(np.asarray(image.data.shape[-2:]) * np.abs(image.scale[-2:])))
        with outline.events.data.blocker():
            outline.selected_data = set(range(outline.nshapes))
            outline.remove_selected()
        outline.add_rectangles(
            [corners], edge_width=extent / 250.0, edge_color="yellow", face_color="transparent"
        )

    # ------------------------------------------------------------------ actions

    def show_fft(self) -> None:
        """Compute and show the FFT of the window; raise on invalid input.

        Nothing is recomputed or redrawn when the window, its place, the frame and the
        pixel size are those of the spectrum already shown.
        """
        from ..core.fft_display import display_spectrum

        image = self._image.value
        if image is None:
            raise ValueError("choose an image layer first")
        plane = current_plane(image, self._viewer.dims.point)
        window = self._window_size()
        if min(plane.shape) < window:
            raise ValueError(
                f"window ({window} px) is larger than the image ({plane.shape[0]}×"
                f"{plane.shape[1]} px); choose a smaller window"
            )
        pixel_size = self.pixel_size()
        center = self._window_center(image)
        frame = tuple(self._viewer.dims.current_step[: max(image.ndim - 2, 0)])
        key = (id(image.data), frame, center, window, pixel_size)
        ctx = self._fft_context
        if ctx is not None and ctx["key"] == key and self._fft_view.has_canvas:
            return
        self._fft_view.ensure_canvas()
        spectrum = display_spectrum(plane, center, window=window, pixel_size=pixel_size)
        if ctx is None or (ctx["center"], ctx["window"]) != (spectrum.center, window):
            self._draw_outline(spectrum.center, image)
        self._fft_view.show_spectrum(spectrum, name=f"FFT ({image.name})")
        self._size_points(spectrum.bin)
        if self.fft_viewer.layers.selection.active is not self._reflections:
            self.fft_viewer.layers.selection.active = self._reflections
        self._fft_context = {
            "key": key,
            "plane": plane,
            "center": spectrum.center,
            "window": window,
            "pixel_size": pixel_size,
            "image": image.name,
        }
        if not self._framed:
            self._fft_view.frame(spectrum.radius)
            self._framed = True
        self._status.value = (
            f"FFT of {window}×{window} px at ({spectrum.center[0]}, {spectrum.center[1]}) px; "
            f"1 bin = {spectrum.bin:.4f} nm⁻¹"
        )

    def _size_points(self, bin_size: float) -> None:
        """Rings 2.5 FFT bins across, numbered at their upper right.

        One offset for every label: two labels then overlap only where their rings do.
        """
        size = _POINT_BINS * bin_size
        if self._reflections.current_size == size:
            return
        self._reflections.size = size
        self._reflections.current_size = size
        self._reflections.text.translation = np.array([-0.75 * size, 0.75 * size])

    def suggest(self) -> None:
        """Replace the reflections by the strongest ones of the region."""
        from ..core.fft import find_reflections

        if self._fft_context is None:
            self.show_fft()
        ctx = self._fft_context
        g = find_reflections(
            ctx["plane"],
            pixel_size=ctx["pixel_size"],
            window=ctx["window"],
            center=ctx["center"],
            max_count=int(self._max_count.value),
        )
        self._set_points(np.asarray(g, float).reshape(-1, 2))
        if len(g) == 0:
            show_warning("No reflection stands out of the noise in this region.")
        else:
            # Zoom out, never in, so that the outer points and their labels are in view.
            radius = min(0.5 / ctx["pixel_size"], 1.5 * float(np.max(np.hypot(*g.T))))
            self._fft_view.frame(radius, zoom_in=False)
        self._status.value = f"{len(g)} reflection(s) suggested"

    def calibrate(self) -> ScaleCorrection:
        """Correct the image layer's scale from reflections 1 (and 2) of known spacing.

        The layer's scale becomes the corrected mean pixel size, its ``affine`` the
        remaining stretch (two reflections), and its metadata the correction record
        (:data:`~napari_hrtem_fft.core.calibration.CALIBRATION_KEY`), which the maps
        dock applies to and records in every map.  The picked reflections are cleared
        (they were measured with the old scale).

        Raises
        ------
        ValueError
            Without an image, a picked reflection, or a true spacing.
        """
        image = self._image.value
        if image is None:
            raise ValueError("choose an image layer first")
        if image.ndim != 2:
            raise ValueError("calibration from the picker works on 2-D images")
        g = self.reflections[:2]
        if len(g) == 0:
            raise ValueError("pick or suggest the reflection(s) of known spacing first")
        if CALIBRATION_KEY in image.metadata:
            raise ValueError(f"{image.name!r} is already calibrated from a lattice")
        nominal = self.pixel_size()
        known = self._known.value
        if known is not None:
            material, hkl = known
            correction = correction_from_planes(g, material, [hkl] * len(g), pixel_size=nominal)
        else:
            d = float(self._true_d.value)
            if d <= 0:
                raise ValueError("choose a known lattice or type the true d (nm)")
            source = f"user: d = {d:g} nm"
            correction = (
                isotropic_correction(g, d, pixel_size=nominal, source=source)
                if len(g) == 1
                else affine_correction(g, [d, d], pixel_size=nominal, source=source)
            )
        geometry = layer_geometry(correction)
        pixel = geometry["pixel_size"]
        image.scale = (pixel, pixel)
        # napari reads a 2×2 affine as homogeneous (1-D); give the 3×3 form.
        affine = np.eye(3)
        affine[:2, :2] = geometry["affine"]
        image.affine = affine
        image.metadata = {**image.metadata, CALIBRATION_KEY: correction.to_metadata()}
        self._on_clear()
        self._fft_context = None
        self._on_image_changed()
        self._status.value = correction.describe() + "; pick or suggest again"
        return correction

    def _on_calibrate(self, event=None) -> None:
        try:
            correction = self.calibrate()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot calibrate: {exc}")
            return
        show_info(correction.describe())

    def _on_show_fft(self, event=None) -> None:
        try:
            self.show_fft()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot show the FFT: {exc}")

    def _on_suggest(self, event=None) -> None:
        try:
            self.suggest()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot suggest reflections: {exc}")

    def _on_mode_add(self, event=None) -> None:
        self.fft_viewer.layers.selection.active = self._reflections
        self._reflections.mode = "add"

    def _on_mode_select(self, event=None) -> None:
        self.fft_viewer.layers.selection.active = self._reflections
        self._reflections.mode = "select"

    def _on_delete(self, event=None) -> None:
        if self._reflections.selected_data:
            self._reflections.remove_selected()
        else:
            show_info("Select the points to delete first (Select/move, then click or drag a box).")

    def _on_clear(self, event=None) -> None:
        self._set_points(np.empty((0, 2)))

    # ------------------------------------------------------------- reflections

    def _load_picks(self, image: Image) -> None:
        """Show the reflections picked earlier on ``image`` (none: an empty table)."""
        try:
            picked = PickedReflections.from_metadata(image.metadata)
        except ValueError as exc:
            show_warning(f"{image.name!r}: {exc}")
            picked = None
        if picked is not None and len(picked.g):
            self._window.value = min(picked.window, self._window.max)
        self._set_points(np.empty((0, 2)) if picked is None else picked.g, store=False)

    def _store_picks(self) -> None:
        """Record the reflections with the image they were picked on (its metadata).

        This is the hand-off: the lattice-map dock reads them from the image layer.
        """
        image = self._image.value
        if image is None:
            return
        ctx = self._fft_context or {}
        picked = PickedReflections(
            self.reflections,
            window=int(ctx.get("window", self._window.value)),
            pixel_size=float(ctx.get("pixel_size", self.pixel_size())),
            center=ctx.get("center"),
        )
        image.metadata = {**image.metadata, PICKED_KEY: picked.to_metadata()}

    def _set_points(self, g: np.ndarray, *, store: bool = True) -> None:
        """Replace every point: data, selection and labels, drawn once."""
        layer = self._reflections
        # One redraw for the three changes (each alone rebuilds the points' visual).
        with layer.events.blocker_all():
            layer.data = g
            layer.selected_data = set()
            self._update_features(store=store)
        layer.refresh()
        self._updating_points = True
        try:
            # What the blocker held back, for anyone else listening to the layer.
            layer.events.data(
                value=layer.data, action=ActionType.CHANGED, data_indices=(), vertex_indices=()
            )
        finally:
            self._updating_points = False

    def _snap_indices(self, indices) -> None:
        """Move the given points onto the nearest peak of the shown FFT."""
        from ..core.fft import refine_reflection

        if self._fft_context is None or not self._snap.value or len(indices) == 0:
            return
        ctx = self._fft_context
        data = np.array(self._reflections.data, dtype=float)
        indices = np.asarray(indices, dtype=int) % len(data)
        try:
            refined = refine_reflection(
                ctx["plane"],
                data[indices],
                pixel_size=ctx["pixel_size"],
                window=ctx["window"],
                center=ctx["center"],
            )
        except ValueError as exc:
            show_warning(f"Point not snapped: {exc}")
            return
        data[indices] = refined
        selected = set(self._reflections.selected_data)
        self._updating_points = True
        try:
            self._reflections.data = data
            self._reflections.selected_data = selected
        finally:
            self._updating_points = False

    def _on_reflections_data(self, event) -> None:
        if self._updating_points:
            return
        action = getattr(event, "action", None)
        if action == ActionType.ADDED:
            self._snap_indices(list(getattr(event, "data_indices", ())))
        if action in (ActionType.ADDED, ActionType.REMOVED, ActionType.CHANGED):
            self._update_features()

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
            self._snap_indices(sorted(layer.selected_data))
            self._update_features()

    def _update_features(self, *, store: bool = True) -> None:
        g = self.reflections
        n = len(g)
        d = g_spacing(g) if n else np.empty(0)
        angle = g_angle(g) if n else np.empty(0)
        # On the canvas only the number: the labels of a dense lattice's reflections,
        # a few bins apart, would cover each other; d and angle are in the table.
        self._reflections.features = pd.DataFrame(
            {
                "number": np.arange(1, n + 1),
                "d_nm": d,
                "angle_deg": angle,
                "label": [str(k + 1) for k in range(n)],
            }
        )
        self._reflections.refresh_text()
        fill_table(self._table, reflection_rows(g, d, angle), TABLE_COLUMNS)
        if store:
            self._store_picks()


def reflection_rows(g: np.ndarray, d: np.ndarray, angle: np.ndarray) -> list[list]:
    """Table rows: number, g (nm⁻¹, 0.001), d (nm, 4 significant digits), angle (0.1°)."""
    # Rounded first, and + 0.0, so that a component of -0.0004 prints as 0.000.
    g = np.round(g, 3) + 0.0
    return [
        [k + 1, f"{g[k, 0]:.3f}", f"{g[k, 1]:.3f}", f"{d[k]:#.4g}", f"{angle[k]:.1f}"]
        for k in range(len(g))
    ]
