"""A second napari canvas for the FFT, embedded in the picker dock.

The FFT lives in reciprocal space (nm⁻¹, zero frequency at the origin) and the image
in real space (nm): one shared camera cannot frame both, which is what napari's grid
mode does (one camera for every grid cell).  A second :class:`ViewerModel` with its
own :class:`QtViewer` canvas gives the FFT its own camera, its own zoom and the usual
napari Points interaction (add, select, drag, Delete), next to the image.  The dock can
be floated out of the main window to make the FFT as large as wanted.
"""

from __future__ import annotations

import numpy as np
from napari._qt.qt_viewer import QtViewer
from napari.components import ViewerModel
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..core.reciprocal import g_angle, g_spacing

__all__ = ["FFTView"]


class FFTView(QWidget):
    """An embedded napari canvas with its own layers and camera, for the FFT.

    Attributes
    ----------
    viewer : napari.components.ViewerModel
        The model holding the FFT image and the reflections Points layer.
    """

    def __init__(self, parent: QWidget | None = None, *, title: str = "FFT") -> None:
        super().__init__(parent)
        self.viewer = ViewerModel(title=title)
        self._qt_viewer: QtViewer | None = QtViewer(self.viewer, show_welcome_screen=False)
        self._readout = QLabel("Move the mouse over the FFT to read g, d and angle.")
        self._readout.setToolTip(
            "Reciprocal vector g = (gy, gx) under the mouse, its lattice spacing d = 1/|g| "
            "and its angle, counter-clockwise from +x on screen."
        )
        self._readout.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._qt_viewer, stretch=1)
        layout.addWidget(self._readout)
        self._qt_viewer.setMinimumSize(280, 280)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.viewer.cursor.events.position.connect(self._on_cursor)

    def _on_cursor(self, event=None) -> None:
        if not self.viewer.layers:
            return
        g = np.asarray(self.viewer.cursor.position[-2:], dtype=float)
        if not np.any(g):
            self._readout.setText("g = 0 (zero frequency)")
            return
        d_a = 10.0 * float(g_spacing(g))
        self._readout.setText(
            f"g = ({g[0]:+.3f}, {g[1]:+.3f}) nm⁻¹   d = {d_a:.3f} Å   "
            f"angle = {float(g_angle(g)):.1f}°"
        )

    def frame(self, radius: float) -> None:
        """Centre the camera on the zero frequency and show ``|g| ≤ radius`` (nm⁻¹)."""
        if self._qt_viewer is None or radius <= 0:
            return
        self.viewer.camera.center = (0.0, 0.0)
        size = self._qt_viewer.canvas.size  # (height, width) in screen pixels
        side = max(min(size), 100)
        self.viewer.camera.zoom = 0.95 * side / (2.0 * radius)

    def close_canvas(self) -> None:
        """Release the OpenGL canvas; the widget shows nothing afterwards."""
        if self._qt_viewer is not None:
            self.viewer.cursor.events.position.disconnect(self._on_cursor)
            self.viewer.layers.clear()
            # QtViewer deletes itself on close (WA_DeleteOnClose) and frees its canvas.
            self._qt_viewer.close()
            self._qt_viewer = None

    def closeEvent(self, event) -> None:
        self.close_canvas()
        super().closeEvent(event)
