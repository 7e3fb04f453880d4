"""Reflection picker: the FFT of a region of the image, and reflections clicked on it.

The user chooses an image layer and a square window (placed with the 'FFT region'
point, or at the centre of the view), sees its spectrum in reciprocal space (nm⁻¹) in
a second canvas embedded in this dock, and picks reflections there: "Suggest" fills in
the strongest ones, clicks snap to the nearest spectrum peak.  The picks ``(gy, gx)``
in nm⁻¹ are stored with the image layer (:mod:`napari_hrtem_fft.core.picked`), where
the lattice-map dock reads them.

This module builds the dock and forwards: the sections are in :mod:`._picker_parts`,
the FFT canvas in :mod:`._fft_view`, the napari layer work (window on the image,
reflection points, calibration) in :mod:`napari_hrtem_fft._napari.picking` and the
spectrum in :mod:`napari_hrtem_fft.core.fft_display`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, Label
from napari.utils.notifications import show_error, show_info, show_warning

from .._napari.calibration import camera_of, current_plane
from .._napari.picking import ReflectionPoints, WindowOnImage, calibrate_image
from ..core.calibration import ScaleCorrection
from ..core.fft_display import blank_spectrum, display_spectrum
from ..core.picked import PICKED_KEY, PickedReflections
from ..core.pipeline import check_option
from ..core.reciprocal import g_angle, g_spacing
from ._common import (
    debounce_timer,
    disconnect_on_close,
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
    from napari.layers import Image, Points

__all__ = ["ReflectionPickerWidget", "reflection_rows"]


def reflection_rows(g: np.ndarray) -> list[list]:
    """Table rows: number, g (nm⁻¹, 0.001), d (nm, 4 significant digits), angle (0.1°)."""
    d, angle = (g_spacing(g), g_angle(g)) if len(g) else ((), ())
    # Rounded first, and + 0.0, so that a component of -0.0004 prints as 0.000.
    g = np.round(g, 3) + 0.0
    return [
        [k + 1, f"{g[k, 0]:.3f}", f"{g[k, 1]:.3f}", f"{d[k]:#.4g}", f"{angle[k]:.1f}"]
        for k in range(len(g))
    ]


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
        # The spectrum shown: its key (what it was computed from) and what snapping
        # and Suggest work on (plane, window, centre, pixel size).
        self._fft_context: dict | None = None
        self._framed = False
        self._init_widgets()
        self._init_layout()
        fit_dock(self)
        self._connect_events()
        self._on_image_changed()

    # ------------------------------------------------------------------ set-up

    def _init_widgets(self) -> None:
        region, pick, calibrate = RegionSection(), PickSection(), CalibrateSection()
        self._sections = (region, pick, calibrate)
        # The controls by name (the callbacks, tests and scripts use these).
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
        self._points = ReflectionPoints(
            self._fft_view.viewer, on_change=self._on_points_changed, spectrum=self._spectrum
        )
        self._on_image_window = WindowOnImage(self._viewer, on_moved=self._on_region_moved)

    def _init_layout(self) -> None:
        region, pick, calibrate = self._sections
        self.extend([region, pick, self._table, calibrate, self._status])
        # The FFT canvas (a Qt widget, not a magicgui one) goes above the table.
        layout = self.native.layout()
        layout.insertWidget(layout.indexOf(self._table.native), self._fft_view, 1)
        self.native.setMinimumWidth(380)

    def _connect_events(self) -> None:
        self._image.changed.connect(self._on_image_changed)
        for control in (self._pixel_size, self._window, self._region):
            control.changed.connect(self._on_geometry_changed)
        self._snap.changed.connect(self._on_snap_changed)
        self._show_fft.clicked.connect(self._on_show_fft)
        self._suggest.clicked.connect(self._on_suggest)
        self._mode_add.clicked.connect(self._on_mode_add)
        self._mode_select.clicked.connect(self._on_mode_select)
        self._delete.clicked.connect(self._on_delete)
        self._clear.clicked.connect(self._on_clear)
        self._calibrate.clicked.connect(self._on_calibrate)
        camera_of(self._viewer).events.center.connect(self._on_view_moved)
        self._viewer.dims.events.current_step.connect(self._on_frame_changed)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        disconnect_on_close(self, self._viewer)
        # Coalesce bursts (a dragged region point moves many times a second).
        self._refresh_timer = debounce_timer(self, 60, self._refresh)

    # -------------------------------------------------------------- properties

    @property
    def fft_viewer(self):
        """The :class:`napari.components.ViewerModel` of the embedded FFT canvas."""
        return self._fft_view.viewer

    @property
    def reflections_layer(self) -> Points:
        """Points layer of the picked reflections on the FFT canvas, ``(gy, gx)`` in nm⁻¹."""
        return self._points.layer

    @property
    def reflections(self) -> np.ndarray:
        """The picked reflections ``(n, 2)`` as ``(gy, gx)`` in nm⁻¹."""
        return self._points.g

    def pixel_size(self) -> float:
        """Pixel size in nm: the layer's calibration, or the override field."""
        return layer_or_override_pixel_size(self._image.value, self._pixel_size)

    def _spectrum(self) -> dict | None:
        """What the spectrum shown was computed from (None before Show FFT)."""
        return self._fft_context

    def _window_size(self) -> int:
        return check_option("window", int(self._window.value))

    def _window_center(self, image: Image) -> tuple[int, int]:
        return self._on_image_window.center(
            image, self._window_size(), at_point=self._region.value == "point"
        )

    # ------------------------------------------------------------------ actions

    def show_fft(self) -> None:
        """Compute and show the FFT of the window; raise on invalid input.

        Nothing is recomputed or redrawn when the window, its place, the frame and the
        pixel size are those of the spectrum already shown.
        """
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
        if self._fft_context is not None and self._fft_context["key"] == key:
            if self._fft_view.has_canvas:
                return
        self._fft_view.ensure_canvas()
        spectrum = display_spectrum(plane, center, window=window, pixel_size=pixel_size)
        self._on_image_window.draw(spectrum.center, window, image)
        self._fft_view.show_spectrum(spectrum, name=f"FFT ({image.name})")
        self._points.fit_to_bins(spectrum.bin)
        if self.fft_viewer.layers.selection.active is not self._points.layer:
            self.fft_viewer.layers.selection.active = self._points.layer
        self._fft_context = {
            "key": key,
            "plane": plane,
            "center": spectrum.center,
            "window": window,
            "pixel_size": pixel_size,
        }
        if not self._framed:
            self._fft_view.frame(spectrum.radius)
            self._framed = True
        self._status.value = (
            f"FFT of {window}×{window} px at ({spectrum.center[0]}, {spectrum.center[1]}) px; "
            f"1 bin = {spectrum.bin:.4f} nm⁻¹"
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
        self._points.set(g)
        if len(g) == 0:
            show_warning("No reflection stands out of the noise in this region.")
        else:
            # Zoom out, never in, so that the outer points and their labels are in view.
            radius = min(0.5 / ctx["pixel_size"], 1.5 * float(np.max(np.hypot(*g.T))))
            self._fft_view.frame(radius, zoom_in=False)
        self._status.value = f"{len(g)} reflection(s) suggested"

    def calibrate(self) -> ScaleCorrection:
        """Correct the image layer's scale from reflections 1 (and 2) of known spacing.

        See :func:`napari_hrtem_fft._napari.picking.calibrate_image`.  The picked
        reflections are cleared (they were measured with the old scale).

        Raises
        ------
        ValueError
            Without an image, a picked reflection, or a true spacing.
        """
        image = self._image.value
        if image is None:
            raise ValueError("choose an image layer first")
        correction = calibrate_image(
            image,
            self.reflections,
            pixel_size=self.pixel_size(),
            known=self._known.value,
            true_d=float(self._true_d.value),
        )
        self._on_clear()
        self._fft_context = None
        self._on_image_changed()
        self._status.value = correction.describe() + "; pick or suggest again"
        return correction

    # ----------------------------------------------------------- picks ⇄ image

    def _load_picks(self, image: Image) -> None:
        """Show the reflections picked earlier on ``image`` (none: an empty table)."""
        try:
            picked = PickedReflections.from_metadata(image.metadata)
        except ValueError as exc:
            show_warning(f"{image.name!r}: {exc}")
            picked = None
        if picked is not None and len(picked.g):
            self._window.value = min(picked.window, self._window.max)
        g = np.empty((0, 2)) if picked is None else picked.g
        self._points.set(g, notify=False)
        fill_table(self._table, reflection_rows(g), TABLE_COLUMNS)

    def _on_points_changed(self, g: np.ndarray) -> None:
        """Table, and the record stored with the image (the hand-off to the maps dock)."""
        fill_table(self._table, reflection_rows(g), TABLE_COLUMNS)
        image = self._image.value
        if image is None:
            return
        ctx = self._fft_context or {}
        picked = PickedReflections(
            g,
            window=int(ctx.get("window", self._window.value)),
            pixel_size=float(ctx.get("pixel_size", self.pixel_size())),
            center=ctx.get("center"),
        )
        image.metadata = {**image.metadata, PICKED_KEY: picked.to_metadata()}

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

    def _on_snap_changed(self, event=None) -> None:
        self._points.snap = bool(self._snap.value)

    def _refresh(self) -> None:
        """Redraw the outline, and the FFT when one is shown.

        The window is drawn (and the 'FFT region' point made) as soon as an image is
        chosen, and the FFT canvas laid out for its spectrum: the user sees where the
        FFT will come from, and the first Show FFT does not build these layers nor
        resize the canvas's world.
        """
        image = self._image.value
        if image is None:
            return
        try:
            if self._fft_context is not None:
                self.show_fft()
            elif (
                self._region.value == "point"
                and self._on_image_window.region_point(image, create=False) is None
            ):
                # The first time: the region point now, the outline at the next turn of
                # the event loop (each builds a layer, ~0.3 s, once).
                self._on_image_window.region_point(image, create=True)
                self._refresh_timer.start()
            else:
                window = self._window_size()
                self._on_image_window.draw(self._window_center(image), window, image)
                blank = blank_spectrum(window, self.pixel_size())
                self._fft_view.expect(blank)
                self._points.fit_to_bins(blank.bin)
        except (ValueError, TypeError) as exc:
            self._status.value = str(exc)

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
        self.fft_viewer.layers.selection.active = self._points.layer
        self._points.layer.mode = "add"

    def _on_mode_select(self, event=None) -> None:
        self.fft_viewer.layers.selection.active = self._points.layer
        self._points.layer.mode = "select"

    def _on_delete(self, event=None) -> None:
        if self._points.layer.selected_data:
            self._points.layer.remove_selected()
        else:
            show_info("Select the points to delete first (Select/move, then click or drag a box).")

    def _on_clear(self, event=None) -> None:
        self._points.set(np.empty((0, 2)))
