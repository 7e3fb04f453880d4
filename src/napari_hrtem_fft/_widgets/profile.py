"""Line-profile dock: d, strain and phase along a line drawn on the image.

The user draws a line (or path: its ends are used) in a Shapes layer over an analysed
image; the dock reads that image's result layers, averages the maps across a chosen
width with :func:`napari_hrtem_fft.line_profile` and plots d (nm), strain (%) and
phase (rad) against the distance along the line (nm).  The profile is exported as the
core's CSV text (:meth:`~napari_hrtem_fft.core.profile.LineProfile.to_csv`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import FloatSpinBox, Label, PushButton, create_widget
from napari.layers import Shapes
from napari.utils.notifications import show_info

from .._napari.layers import find_result_layers, maps_from_layers
from .._napari.regions import watch_edits
from ..core.profile import line_profile
from ._common import ResultSourceDock, maps_source_combo
from ._plot import dark_canvas, style_axes, style_legend

if TYPE_CHECKING:
    import napari

    from ..core.profile import LineProfile

__all__ = ["LineProfileWidget", "line_ends"]

#: Shape types whose ends make a profile line.
_LINE_SHAPES = ("line", "path")
_STRAIN_COMPONENTS = ("exx", "eyy", "exy")


def line_ends(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """World ``(y, x)`` ends of the last line (or path) of a Shapes layer.

    Parameters
    ----------
    layer : napari.layers.Shapes
        The layer the user draws in; closed shapes are ignored.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) or None
        Start and end ``(y, x)`` in world units (nm), None when there is no line.
    """
    for vertices, kind in zip(reversed(layer.data), reversed(layer.shape_type), strict=True):
        if kind in _LINE_SHAPES and len(vertices) >= 2:
            world = np.asarray(vertices, dtype=np.float64) * np.asarray(layer.scale)
            world = world + np.asarray(layer.translate)
            return world[0, -2:], world[-1, -2:]
    return None


class LineProfileWidget(ResultSourceDock):
    """Profiles of the lattice maps along a line, with a width, plotted and exported.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer holding the result layers and the Shapes layer of the line.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.profile: LineProfile | None = None
        self._build(viewer)

    # ------------------------------------------------------------------ set-up

    def _init_widgets(self) -> None:
        self._source = maps_source_combo(
            self._source_choices, "The analysed image whose result layers are profiled."
        )
        self._line = create_widget(
            annotation=Shapes | None,
            label="line",
            options={
                "tooltip": (
                    "Shapes layer with a line drawn over the image (the last line or path "
                    "is used, from its first to its last vertex)."
                )
            },
        )
        self._width = FloatSpinBox(
            label="width (nm)",
            value=0.5,
            min=0.0,
            max=1000.0,
            step=0.1,
            tooltip="Full width across the line over which the maps are averaged (nm).",
        )
        self._export = PushButton(
            text="Export CSV…", tooltip="Save the profile (every map, every sample) as CSV."
        )
        self._status = Label(label="", value="")
        self._figure, self._canvas = dark_canvas(
            (4.0, 4.6),
            min_height=360,
            tooltip="d (nm), strain (%) and phase (rad) against the distance along the line.",
        )
        self._axes = self._figure.subplots(3, 1, sharex=True)

    def _init_layout(self) -> None:
        self.extend([self._source, self._line, self._width, self._export, self._status])
        self.native.layout().addWidget(self._canvas, 1)
        self.native.setMinimumWidth(420)

    def _connect_events(self) -> None:
        self._line.changed.connect(self._on_line_changed)
        self._width.changed.connect(self._schedule)
        self._export.clicked.connect(self._on_export)
        # Movies: the plot shows the frame under the time slider.
        self._viewer.dims.events.current_step.connect(self._on_frame_changed)

    # ----------------------------------------------------------------- events

    def _on_frame_changed(self, event=None) -> None:
        if self.profile is not None and self.profile.values["d_spacing"].ndim > 2:
            self._draw()

    def _on_line_changed(self, event=None) -> None:
        self._watched = watch_edits(self._watched, self._line.value, self._schedule)
        self._schedule()

    def _on_export(self, event=None) -> None:
        from qtpy.QtWidgets import QFileDialog

        if self.profile is None:
            show_info("No profile to export: draw a line over analysed maps.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Export line profile", "profile.csv", "CSV (*.csv)"
        )
        if path:
            self.export_csv(path)
            show_info(f"Wrote {path}")

    # ---------------------------------------------------------------- compute

    def export_csv(self, path) -> Path:
        """Write the current profile as CSV (the core's text); return the path.

        Raises
        ------
        ValueError
            If there is no profile.
        FileExistsError
            If the file exists (nothing is overwritten).
        """
        if self.profile is None:
            raise ValueError("no profile: draw a line over analysed maps")
        path = Path(path)
        with open(path, "x", encoding="utf-8", newline="") as f:
            f.write(self.profile.to_csv())
        return path

    def _recompute(self) -> None:
        self.update_profile()

    def update_profile(self) -> None:
        """Recompute the profile from the current layers and line, and plot it."""
        self.profile = None
        source, line = self._source.value, self._line.value
        layers = find_result_layers(self._viewer.layers, source=source) if source else []
        ends = line_ends(line) if line is not None else None
        if not layers:
            self._status.value = "no lattice maps yet: run the analysis"
        elif ends is None:
            self._status.value = "draw a line in a Shapes layer and choose it"
        else:
            try:
                maps, geometry, _ = maps_from_layers(layers)
                origin = np.asarray(geometry["translate"][-2:], dtype=np.float64)
                self.profile = line_profile(
                    maps, ends[0] - origin, ends[1] - origin, width=self._width.value
                )
            except ValueError as exc:
                self._status.value = str(exc)
            else:
                length = float(self.profile.distance[-1])
                self._status.value = (
                    f"{source}: {self.profile.distance.size} samples over {length:.2f} nm"
                )
        self._draw()

    def _frame(self, values: np.ndarray) -> np.ndarray:
        """The profile of the frame the viewer shows (movies), else the profile."""
        lead = values.shape[:-1]
        if not lead:
            return values
        step = self._viewer.dims.current_step
        index = tuple(min(int(s), n - 1) for s, n in zip(step[: len(lead)], lead, strict=True))
        return values[index]

    def _draw(self) -> None:
        ax_d, ax_e, ax_p = self._axes
        style_axes(ax_d, ylabel="d (nm)")
        style_axes(ax_e, ylabel="strain (%)")
        style_axes(ax_p, xlabel="distance along the line (nm)", ylabel="phase (rad)")
        prof = self.profile
        if prof is not None:
            x = prof.distance
            for k, values in enumerate(prof.values["d_spacing"]):
                ax_d.plot(x, self._frame(values), label=str(k + 1))
            for name in _STRAIN_COMPONENTS:
                if name in prof.values:
                    ax_e.plot(x, 100.0 * self._frame(prof.values[name]), label=name)
            for k, values in enumerate(prof.values.get("phase", ())):
                ax_p.plot(x, self._frame(values), label=str(k + 1))
            style_legend(ax_d, title="reflection")
            style_legend(ax_e)
            style_legend(ax_p, title="reflection")
        self._canvas.draw_idle()
