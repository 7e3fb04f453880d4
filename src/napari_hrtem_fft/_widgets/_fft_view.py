"""A second napari canvas for the FFT, embedded in the picker dock.

The FFT lives in reciprocal space (nm⁻¹, zero frequency at the origin) and the image
in real space (nm): one shared camera cannot frame both, which is what napari's grid
mode does (one camera for every grid cell).  A second :class:`ViewerModel` with its
own :class:`QtViewer` canvas gives the FFT its own camera, its own zoom and the usual
napari Points interaction (add, select, drag, Delete), next to the image.  The dock can
be floated out of the main window to make the FFT as large as wanted.
"""

from __future__ import annotations

import time

import numpy as np
from napari.components import ViewerModel
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from .._napari.calibration import camera_of
from .._napari.display import canvas_overlay
from ..core.reciprocal import g_angle, g_spacing

__all__ = ["FFTView"]

# Warm-up steps after the dock is shown: this far apart (ms); a step that fires later
# than this (s) waits for the next turn, at most this many times in a row.
_STEP_MS = 30
_BUSY_S = 0.05
_MAX_WAITS = 10
# The zero-frequency cross is this many FFT bins across.
_ZERO_MARK_BINS = 3.0
_ZERO_MARK_OPACITY = 0.8


class _CloseWatcher(QObject):
    """Calls ``callback`` when the top-level window of a widget closes.

    An OpenGL canvas must be released before its window goes away; napari closes its
    own canvas then, but not the canvases of dock widgets.
    """

    def __init__(self, window: QWidget, callback) -> None:
        super().__init__(window)
        self._callback = callback
        window.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close:
            self._callback()
        return False


class FFTView(QWidget):
    """An embedded napari canvas with its own layers and camera, for the FFT.

    The model (:attr:`viewer`) exists from the start, so layers can be added at once;
    the OpenGL canvas is made by :meth:`ensure_canvas` when there is something to show
    and released when the window closes.

    Attributes
    ----------
    viewer : napari.components.ViewerModel
        The model holding the FFT image and the reflections Points layer.
    """

    def __init__(self, parent: QWidget | None = None, *, title: str = "FFT") -> None:
        super().__init__(parent)
        self.viewer = ViewerModel(title=title)
        self._qt_viewer = None
        self._spectrum_layer = None
        self._zero_mark = None
        # The blank spectrum the canvas is laid out for (:meth:`expect`), and whether
        # a real one has been shown.
        self._expected = None
        self._shown = False
        self._watcher: _CloseWatcher | None = None
        # Radius (1/nm) to frame once the canvas has its real size: right after it is
        # made, the canvas is not laid out yet and its size means nothing.
        self._pending_radius: float | None = None
        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.setInterval(0)
        self._frame_timer.timeout.connect(self._apply_pending_frame)
        # A child timer: it dies with this widget, never calling into a deleted one.
        # Its steps are 30 ms apart, and wait while the event loop is busy (other work
        # the dock scheduled): the GUI answers between the steps.
        self._canvas_timer = QTimer(self)
        self._canvas_timer.setSingleShot(True)
        self._canvas_timer.setInterval(_STEP_MS)
        self._canvas_timer.timeout.connect(self._make_canvas_if_shown)
        self._step_started = 0.0
        self._waited = 0
        self._readout = QLabel("Show the FFT, then click reflections on it.")
        self._readout.setToolTip(
            "Reciprocal vector g = (gy, gx) under the mouse, its lattice spacing d = 1/|g| "
            "and its angle, counter-clockwise from +x on screen."
        )
        self._readout.setWordWrap(True)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self._readout)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(240)
        self.viewer.cursor.events.position.connect(self._on_cursor)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # The canvas and its layers are made right after the dock is first shown
        # (~1 s, once, in steps), so that the first Show FFT only computes and draws
        # the spectrum.  Shown again, the steps left (if any) are done.
        self._next_step()

    def _next_step(self) -> None:
        self._step_started = time.perf_counter()
        self._canvas_timer.start()

    def _make_canvas_if_shown(self) -> None:
        """One step of the warm-up per turn of the event loop, while the dock is shown.

        The canvas, then the transparent layers, then the transparent scale bar: the
        GUI answers between the steps instead of freezing for all three at once.
        """
        if not self.isVisible():
            return
        late = time.perf_counter() - self._step_started - _STEP_MS / 1000.0
        if late > _BUSY_S and self._waited < _MAX_WAITS:
            # The event loop was busy: let it answer first.
            self._waited += 1
            self._next_step()
            return
        self._waited = 0
        if self._qt_viewer is None:
            self.ensure_canvas()
        elif self._spectrum_layer is None:
            self._prepare_layers()
        else:
            if not self._shown:
                self._show_scale_bar(opacity=0.0)
            return
        self._next_step()

    @property
    def has_canvas(self) -> bool:
        """True while the OpenGL canvas exists."""
        return self._qt_viewer is not None

    def ensure_canvas(self) -> None:
        """Create the canvas (once) and release it when the top-level window closes."""
        from napari._qt.qt_viewer import QtViewer

        if self._qt_viewer is None:
            self._qt_viewer = QtViewer(self.viewer, show_welcome_screen=False)
            self._qt_viewer.setMinimumSize(260, 260)
            self._layout.insertWidget(0, self._qt_viewer, 1)
            self._readout.setText("Move the mouse over the FFT to read g, d and angle.")
        window = self.window()
        if self._watcher is None or self._watcher.parent() is not window:
            self._watcher = _CloseWatcher(window, self.close_canvas)

    def show_spectrum(self, spectrum, *, name: str) -> None:
        """Show a :class:`~napari_hrtem_fft.core.fft_display.SpectrumImage`.

        The spectrum layer, the zero-frequency mark and the nm⁻¹ scale bar are made
        transparent with the canvas (:meth:`_prepare_layers`) and laid out for the
        spectrum to come (:meth:`expect`); the first call makes them opaque.  Every
        call updates the layer's data, calibration and contrast in place, which
        redraws without rebuilding it.
        """
        if self._spectrum_layer is None:
            self._add_layers(spectrum, name=name, opacity=1.0)
        else:
            self._update_layers(spectrum, name=name)
        layer = self._spectrum_layer
        if layer.opacity != 1.0:
            layer.opacity = 1.0
            self._zero_mark.opacity = _ZERO_MARK_OPACITY
        self._show_scale_bar(opacity=1.0)
        self._shown = True

    def expect(self, spectrum) -> None:
        """Lay the canvas out for a spectrum like ``spectrum`` until one is shown.

        ``spectrum`` is a :func:`~napari_hrtem_fft.core.fft_display.blank_spectrum`
        of the window and pixel size that Show FFT will use.  Changing a layer's shape
        or calibration makes napari recompute the canvas's extent and sliders
        (~0.1 s); done here, when the image or window is chosen, the first Show FFT
        only replaces the data.  Nothing changes once a spectrum is shown.
        """
        if self._shown:
            return
        self._expected = spectrum
        if self._spectrum_layer is not None:
            self._update_layers(spectrum, name=self._spectrum_layer.name)

    def _update_layers(self, spectrum, *, name: str) -> None:
        """The spectrum layer and zero mark moved to ``spectrum``, changing only what differs."""
        layer = self._spectrum_layer
        if tuple(layer.scale) != tuple(spectrum.scale):
            layer.scale = spectrum.scale
            layer.translate = spectrum.translate
        layer.data = spectrum.data
        layer.contrast_limits = spectrum.contrast_limits
        if layer.name != name:
            layer.name = name
        size = _ZERO_MARK_BINS * spectrum.bin
        if self._zero_mark.current_size != size:
            self._zero_mark.size = size
            self._zero_mark.current_size = size

    def _show_scale_bar(self, *, opacity: float) -> None:
        """The nm⁻¹ scale bar, with a box; transparent until the first spectrum.

        napari builds a scale bar's visual (and renders its text) when it is first
        made visible: a transparent one made with the canvas keeps that off the first
        Show FFT.
        """
        scale_bar = canvas_overlay(self.viewer, "scale_bar")
        if not scale_bar.visible:
            scale_bar.box = True
            scale_bar.visible = True
        if scale_bar.opacity != opacity:
            scale_bar.opacity = opacity

    def _prepare_layers(self) -> None:
        """The spectrum layer and the zero mark, transparent.

        Made after the canvas, so that the first Show FFT does not build their
        visuals and shaders (~0.5 s); laid out as :meth:`expect` was last told (a
        128-px window of 1-nm pixels before that).  The selection stays as it was.
        """
        if self._spectrum_layer is not None:
            return
        from ..core.fft_display import blank_spectrum

        active = self.viewer.layers.selection.active
        spectrum = self._expected or blank_spectrum(128, 1.0)
        self._add_layers(spectrum, name="FFT", opacity=0.0)
        if active is not None:
            self.viewer.layers.selection.active = active

    def _add_layers(self, spectrum, *, name: str, opacity: float) -> None:
        """Add the spectrum layer (at the bottom) and the zero mark above it."""
        layer = self.viewer.add_image(
            spectrum.data,
            name=name,
            scale=spectrum.scale,
            translate=spectrum.translate,
            units="1/nm",
            colormap="gray",
            contrast_limits=spectrum.contrast_limits,
            interpolation2d="linear",
            opacity=opacity,
        )
        self.viewer.layers.move(self.viewer.layers.index(layer), 0)
        self._spectrum_layer = layer
        self._add_zero_mark(spectrum.bin, opacity=_ZERO_MARK_OPACITY * opacity)

    def _add_zero_mark(self, bin_size: float, *, opacity: float) -> None:
        """A cross at g = 0, drawn over the spectrum and under the reflections."""
        layer = self.viewer.add_points(
            np.zeros((1, 2)),
            name="g = 0",
            ndim=2,
            symbol="cross",
            size=_ZERO_MARK_BINS * bin_size,
            face_color="cyan",
            border_width=0,
            opacity=opacity,
            units="1/nm",
        )
        layer.editable = False
        self.viewer.layers.move(self.viewer.layers.index(layer), 1)
        self._zero_mark = layer

    def _on_cursor(self, event=None) -> None:
        if self._qt_viewer is None or not self.viewer.layers:
            return
        g = np.asarray(self.viewer.cursor.position[-2:], dtype=float)
        if not np.any(g):
            self._readout.setText("g = 0 (zero frequency)")
            return
        d = float(g_spacing(g))
        self._readout.setText(
            f"g = ({g[0]:+.3f}, {g[1]:+.3f}) nm⁻¹   d = {d:.4f} nm   "
            f"angle = {float(g_angle(g)):.1f}°"
        )

    def frame(self, radius: float, *, zoom_in: bool = True) -> None:
        """Centre the camera on the zero frequency and show ``|g| ≤ radius`` (nm⁻¹).

        With ``zoom_in=False`` a view that already shows that disc is left alone.
        """
        if self._qt_viewer is None or not radius > 0:
            return
        camera = camera_of(self.viewer)
        height, width = self._qt_viewer.canvas.size
        if min(height, width) < 150 or not self._qt_viewer.isVisible():
            self._pending_radius = radius
            side = 300
        else:
            self._pending_radius = None
            side = min(height, width)
        zoom = 0.95 * side / (2.0 * radius)
        if not zoom_in and zoom >= camera.zoom and self._pending_radius is None:
            return
        camera.center = (0.0, 0.0)
        camera.zoom = zoom

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._pending_radius is not None and self._qt_viewer is not None:
            # The canvas is resized after this widget; frame once it has settled.
            self._frame_timer.start()

    def _apply_pending_frame(self) -> None:
        if self._pending_radius is not None:
            self.frame(self._pending_radius)

    def close_canvas(self) -> None:
        """Release the OpenGL canvas (the layers stay in :attr:`viewer`)."""
        if self._qt_viewer is None:
            return
        qt_viewer, self._qt_viewer = self._qt_viewer, None
        qt_viewer.close()
        # Hand the widget back to Python so that it is freed with its last reference,
        # not at some later turn of the event loop.
        qt_viewer.setParent(None)
        self._readout.setText("The FFT canvas was closed.")

    def closeEvent(self, event) -> None:
        self.close_canvas()
        super().closeEvent(event)
