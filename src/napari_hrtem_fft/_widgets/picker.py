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
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Points
from napari.layers.base import ActionType
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QAbstractItemView

from .._napari.calibration import camera_of, current_plane, world_to_pixel
from .._napari.layers import PICKER_KEY
from ..core.calibration import (
    CALIBRATION_KEY,
    MATERIALS,
    ScaleCorrection,
    affine_correction,
    correction_from_planes,
    isotropic_correction,
    layer_geometry,
    material_planes,
)
from ..core.pipeline import OPTION_LIMITS, AnalysisOptions, check_option
from ..core.reciprocal import g_angle, g_spacing
from ._common import (
    button_row,
    debounce_timer,
    fill_table,
    layer_or_override_pixel_size,
    max_window,
    pixel_size_field,
    read_only_table,
    show_calibration,
)
from ._fft_view import FFTView
from ._fit import fit_dock

if TYPE_CHECKING:
    import napari

__all__ = ["ReflectionPickerWidget"]

REGION_LAYER = "FFT region"
OUTLINE_LAYER = "FFT window"
REFLECTIONS_LAYER = "reflections"

_TABLE_COLUMNS = ["#", "gy (1/nm)", "gx (1/nm)", "d (nm)", "angle (°)"]

# Default view of the FFT: out to |g| = 10 nm⁻¹ (d = 1 Å), beyond any HRTEM fringe of
# interest, unless Nyquist is lower.
_DEFAULT_FFT_RADIUS = 10.0

# Points are drawn this many FFT bins across.
_POINT_BINS = 5.0


def _known_lattice_choices() -> list[tuple[str, tuple]]:
    """(label, (material, hkl)) of every listed plane of the built-in materials."""
    return [
        (f"{name} {plane['label']}  d = {plane['d']:.4f} nm", (name, plane["hkl"]))
        for name in MATERIALS
        for plane in material_planes(name)
    ]


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
        super().__init__(labels=True)
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
        self._image = create_widget(
            annotation=Image,
            label="image",
            options={"tooltip": "Image layer whose region FFT is shown (one frame of a movie)."},
        )
        self._calibration = Label(
            label="calibration",
            tooltip="Pixel size read from the layer's scale and units.",
        )
        self._pixel_size = pixel_size_field(
            "nm per pixel, used only when the image layer has no calibration "
            "(units px/pixel, or scale 1)."
        )
        self._window = SpinBox(
            label="window (px)",
            value=AnalysisOptions.window,
            min=OPTION_LIMITS["window"]["min"],
            max=max_window(None),
            step=OPTION_LIMITS["window"]["multiple"],
            tooltip=(
                "Side of the square FFT window in pixels (even). Larger windows resolve "
                "reflections more finely but average over a larger area."
            ),
        )
        self._region = ComboBox(
            label="region",
            choices=[("'FFT region' point", "point"), ("centre of view", "view")],
            value="point",
            tooltip=(
                "Where the window is: at the point of the 'FFT region' layer (drag it on "
                "the image), or at the centre of the current view."
            ),
        )
        self._show_fft = PushButton(
            text="Show FFT",
            tooltip="Compute the FFT of the window and show it below, calibrated in 1/nm.",
        )
        self._max_count = SpinBox(
            label="suggest up to",
            value=3,
            min=1,
            max=12,
            tooltip="How many reflections 'Suggest' places (strongest first, one per ±g pair).",
        )
        self._suggest = PushButton(
            text="Suggest reflections",
            tooltip="Replace the points with the strongest reflections of the region.",
        )
        self._snap = CheckBox(
            text="snap clicks to the nearest peak",
            value=True,
            tooltip=(
                "Move a clicked or dragged point onto the spectrum peak within ±2 bins, "
                "with sub-bin precision."
            ),
        )
        self._mode_add = PushButton(
            text="Add", tooltip="Click on the FFT to add reflections (napari 'add' mode)."
        )
        self._mode_select = PushButton(
            text="Select/move",
            tooltip="Select points to drag them or delete them (Delete key).",
        )
        self._delete = PushButton(text="Delete selected", tooltip="Remove the selected points.")
        self._clear = PushButton(text="Clear", tooltip="Remove all reflections.")
        self._point_buttons = button_row(
            self._mode_add, self._mode_select, self._delete, self._clear
        )
        self._table = read_only_table(
            _TABLE_COLUMNS,
            label="reflections",
            tooltip="The picked reflections: reciprocal vector, spacing and angle.",
            min_height=120,
        )
        self._table.native.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._known = ComboBox(
            label="known lattice",
            choices=_known_lattice_choices(),
            value=None,
            nullable=True,
            tooltip=(
                "Material and plane of reflections 1 (and 2): their true spacing "
                "calibrates the image. Empty: type the true d below."
            ),
        )
        self._true_d = FloatSpinBox(
            label="true d (nm)",
            value=0.0,
            min=0.0,
            max=10.0,
            step=0.0001,
            tooltip="True spacing of reflections 1 (and 2) in nm, when no lattice is chosen.",
        )
        self._calibrate = PushButton(
            text="Calibrate scale from reflections 1–2",
            tooltip=(
                "Correct the image's scale so that the picked reflections have their true "
                "spacing: isotropic from one reflection, affine (scan distortion) from two."
            ),
        )
        self._status = Label(value="", tooltip="What the picker did last.")
        self._status.native.setWordWrap(True)
        self._fft_view = FFTView(title="FFT")
        self._reflections = self._make_reflections_layer()

    def _init_layout(self) -> None:
        self.extend(
            [
                self._image,
                self._calibration,
                self._pixel_size,
                self._window,
                self._region,
                self._show_fft,
                self._max_count,
                self._suggest,
                self._snap,
                self._point_buttons,
                self._table,
                self._known,
                self._true_d,
                self._calibrate,
                self._status,
            ]
        )
        layout = self.native.layout()
        # The FFT canvas goes between the point controls and the table (a label row
        # may wrap the table: find its direct child of this container).
        row = self._table.native
        while row.parentWidget() is not self.native:
            row = row.parentWidget()
        layout.insertWidget(layout.indexOf(row), self._fft_view, 1)
        self.native.setMinimumWidth(380)

    def _connect_events(self) -> None:
        self._image.changed.connect(self._on_image_changed)
        self._pixel_size.changed.connect(self._on_geometry_changed)
        self._window.changed.connect(self._on_geometry_changed)
        self._region.changed.connect(self._on_geometry_changed)
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
            border_width=0.12,
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
                "size": 10,
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
        if layer is not None:
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
        """Compute and show the FFT of the window; raise on invalid input."""
        from ..core.fft import region_fft

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
        self._fft_view.ensure_canvas()
        fft = region_fft(plane, center, window=window, pixel_size=pixel_size)
        self._draw_outline(fft.center, image)
        name = f"FFT ({image.name})"
        layers = self.fft_viewer.layers
        fft_layer = next((lyr for lyr in layers if lyr.metadata.get(PICKER_KEY) == "fft"), None)
        finite = fft.data[np.isfinite(fft.data)]
        limits = tuple(float(v) for v in np.percentile(finite, (50.0, 99.95)))
        if limits[1] <= limits[0]:
            limits = (limits[0], limits[0] + 1.0)
        if fft_layer is None:
            fft_layer = self.fft_viewer.add_image(
                fft.data,
                name=name,
                scale=fft.scale,
                translate=fft.translate,
                units="1/nm",
                colormap="gray",
                contrast_limits=limits,
                metadata={PICKER_KEY: "fft"},
            )
            # Keep the reflections above the spectrum.
            layers.move(layers.index(fft_layer), 0)
        else:
            fft_layer.data = fft.data
            fft_layer.scale = fft.scale
            fft_layer.translate = fft.translate
            fft_layer.contrast_limits = limits
            fft_layer.name = name
        size = _POINT_BINS * fft.scale[-1]
        self._reflections.size = size
        self._reflections.current_size = size
        # Labels centred just below the ring, not on the peak.
        self._reflections.text.translation = np.array([0.9 * size, 0.0])
        self.fft_viewer.layers.selection.active = self._reflections
        self._fft_context = {
            "plane": plane,
            "center": fft.center,
            "window": window,
            "pixel_size": pixel_size,
            "image": image.name,
        }
        self._reflections.metadata = {
            **self._reflections.metadata,
            "pixel_size_nm": pixel_size,
            "window": window,
            "center_px": list(fft.center),
            "image": image.name,
        }
        if not self._framed:
            nyquist = 0.5 / pixel_size
            self._fft_view.frame(min(nyquist, _DEFAULT_FFT_RADIUS))
            self._framed = True
        self._status.value = (
            f"FFT of {window}×{window} px at ({fft.center[0]}, {fft.center[1]}) px; "
            f"1 bin = {fft.scale[-1]:.4f} nm⁻¹"
        )

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
            # Twice the largest |g|: the labels of the outer points stay in view.
            radius = min(0.5 / ctx["pixel_size"], 2.0 * float(np.max(np.hypot(*g.T))))
            self._fft_view.frame(radius)
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

    def _set_points(self, g: np.ndarray) -> None:
        self._updating_points = True
        try:
            self._reflections.data = g
            self._reflections.selected_data = set()
        finally:
            self._updating_points = False
        self._update_features()

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

    def _update_features(self) -> None:
        g = self.reflections
        n = len(g)
        d = g_spacing(g) if n else np.empty(0)
        angle = g_angle(g) if n else np.empty(0)
        # d in nm, as in the layer names, colour bar and status line of the maps.
        labels = [f"{k + 1}: {d[k]:.4f} nm, {angle[k]:.1f}°" for k in range(n)]
        self._reflections.features = pd.DataFrame(
            {
                "number": np.arange(1, n + 1),
                "d_nm": d,
                "angle_deg": angle,
                "label": labels,
            }
        )
        self._reflections.refresh_text()
        rows = [
            [
                k + 1,
                f"{g[k, 0]:.3f}",
                f"{g[k, 1]:.3f}",
                f"{d[k]:.4f}",
                f"{angle[k]:.2f}",
            ]
            for k in range(n)
        ]
        fill_table(self._table, rows, _TABLE_COLUMNS)
