"""Time-trace dock: d-spacing and strain per frame of a movie inside a region.

Reads the result layers of one analysed movie (maps ``(t, my, mx)`` as the lattice-map
widget makes them) and a region — a Shapes layer (rectangles, polygons, ellipses in
world coordinates), a Labels layer, the crystal mask of each frame, or everything — and
shows :func:`napari_hrtem_fft.core.movie.time_trace`: the median d (nm) of every
reflection against time with its spread as a band, the strain when the maps have it, a
table, a tab-separated copy and a CSV export.  Updates itself when the maps are
replaced and when the region is edited; a vertical line follows the time slider.

Its Live section (:class:`~napari_hrtem_fft._widgets.live.LiveSection`) follows an
acquisition while it is recorded: the newest frame and the maps of every frame so far
as layers, and the plot of the trace of a chosen region updated as frames arrive.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    Label,
    PushButton,
)
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox
from napari.layers import Labels, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtGui import QGuiApplication

from .._napari.layers import find_result_layers, movie_maps_from_layers
from .._napari.regions import labels_mask, region_choices, shapes_mask, watch_edits
from ._common import (
    ResultSourceDock,
    button_row,
    fill_table,
    label_value_field,
    maps_source_combo,
    read_only_table,
)
from ._plot import FOREGROUND, dark_canvas, legend_above, style_axes
from ._reference import ReferenceSection
from .live import EVERYTHING, LiveSection

if TYPE_CHECKING:
    import napari

__all__ = ["TimeTraceWidget"]

_EVERYTHING = "everything"
_CRYSTAL = "crystal"
_STRAIN = ("exx", "eyy", "exy", "rotation")

# Band around each median curve: ± this many sample standard deviations.
_BAND_STD = 1.0

# Margin added on each side of the live plot's value axes when a new point falls outside
# them, as a fraction of the data range (the range shown doubles): the limits grow by
# generous steps, so that most frames only redraw the curves over the saved background
# of the axes (blitting) and a full draw (~0.1-0.2 s) is rare.
_HEADROOM = 0.5
# Smallest value range the live plot's axes grow to: d (nm) as a fraction of d, strain
# in %, time in its unit (s or frames).  A first frame's range is nought.
_MIN_SPAN = {"d": 4e-3, "strain": 0.4, "x": 10.0}

# Pixels at most from a point to the edge of its marker or of the line through it.
_REACH_PX = 12

# Markers per curve, so that curves on top of each other (equivalent reflections, or
# exx and eyy of an isotropic expansion) stay distinguishable.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _finite_range(values) -> tuple[float, float]:
    """Smallest and largest finite value (NaN, NaN if none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return (values.min(), values.max()) if values.size else (np.nan, np.nan)


def _curve_style(k: int) -> dict:
    """Marker of curve ``k``; every second one hollow."""
    style = {"marker": _MARKERS[k % len(_MARKERS)], "markersize": 4}
    if k % 2:
        style["markerfacecolor"] = "none"
    return style


class TimeTraceWidget(ResultSourceDock):
    """Median d-spacing (nm) and strain per frame of a movie inside a region, also live.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer holding the movie's result layers and the region layers.
    """

    source_ndim = 3  # the maps of movies only

    #: Seconds at least between full draws of the live plot (axes, ticks and layout;
    #: between them only the curves are drawn, over the saved axes).
    FULL_DRAW_S = 2.0

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.trace = None
        self._x: np.ndarray | None = None
        self._geometry: dict | None = None
        self._cursors: list = []
        self._curves: list[tuple] = []  # (line, band, axes, stat, k, factor, alpha)
        # Per curve, the line that draws the newest rows' piece of it in a live run.
        self._pieces: list = []
        self._animated = False  # curves drawn over a saved background (live run)
        self._background = None  # the axes without curves and cursors (live run)
        # The background with the curves' first _drawn_rows rows drawn, and whose trace
        # they are: a frame draws only its own row's piece of each curve.
        self._curves_background = None
        self._drawn_rows = 0
        self._drawn_name: str | None = None
        self._whole_drawn = -np.inf  # time.monotonic() the curves were last drawn whole
        # Longest tick labels when the plot was last laid out (_tick_label_sizes).
        self._label_sizes: tuple = ()
        self._build(viewer)

    # ------------------------------------------------------------------ set-up

    def _init_widgets(self) -> None:
        self._source = maps_source_combo(
            self._source_choices, "The analysed movie whose result layers (t, y, x) are traced."
        )
        self._region = ComboBox(
            label="region",
            choices=self._region_choices,
            tooltip=(
                "Map pixels used in every frame: every valid pixel, the crystal mask of "
                "each frame (from the peak strength), the closed shapes of a Shapes layer "
                "(rectangles, polygons, ellipses; drawn in world coordinates, they count "
                "in every frame) or a Labels layer."
            ),
        )
        self._label = label_value_field(
            "label", "Labels region: the label to use; 0 = every label above 0."
        )
        self._follow = CheckBox(
            text="region follows the drift",
            value=True,
            tooltip=(
                "For maps analysed with drift 'measure': move the region, drawn on the "
                "first analysed frame, with the measured drift in every frame."
            ),
        )
        self._reference = ReferenceSection(self._viewer)
        self._table = read_only_table(
            [],
            tooltip="Per frame: median and standard deviation of d (nm), pixels used, strain.",
            min_height=110,
        )
        self._copy = PushButton(
            text="Copy", tooltip="Copy the full trace as tab-separated text (for Excel)."
        )
        self._csv_path = FileEdit(
            label="CSV file",
            mode="w",
            filter="*.csv",
            tooltip="Where Export CSV writes; an existing file is never replaced.",
        )
        self._export = PushButton(
            text="Export CSV",
            tooltip="Write the trace (units and reflections in # header lines).",
        )
        self._buttons = button_row(self._copy, self._export)
        self._status = Label(label="", value="")
        self._figure, self._canvas = dark_canvas(
            (4.0, 3.4),
            min_height=260,
            tooltip="Median d (nm) per reflection against time, ± 1 standard deviation.",
        )
        self._live_header = Label(value="<b>Live</b>: maps and trace while the movie is recorded")
        self._live = LiveSection(
            self._viewer, on_update=self._on_live_update, on_finished=self._on_live_finished
        )
        self._canvas.mpl_connect("draw_event", self._on_canvas_draw)
        # A full draw of the live plot put off by FULL_DRAW_S (its limits must grow).
        self._deferred = QTimer(self._canvas)
        self._deferred.setSingleShot(True)
        self._full_drawn = -np.inf  # time.monotonic() of the last full live draw
        # The figure drawn at the next event-loop turn: a timer of the dock, stopped when
        # the dock is closed (matplotlib's draw_idle posts a timer of its own that can
        # fire while the closed dock is being deleted: "FigureCanvasQTAgg has been
        # deleted").
        self._idle_draw = QTimer(self._canvas)
        self._idle_draw.setSingleShot(True)
        self._idle_draw.setInterval(0)
        # The cursor moved during a live run: drawn at the next event-loop turn unless
        # a frame's curves are drawn first.
        self._cursor_blit = QTimer(self._canvas)
        self._cursor_blit.setSingleShot(True)
        self._cursor_blit.setInterval(0)
        self._live_trace = ComboBox(
            label="live trace of",
            choices=[EVERYTHING],
            tooltip="Region of a live run whose trace is plotted (its trace regions).",
        )

    def _init_layout(self) -> None:
        self.extend(
            [
                self._source,
                self._region,
                self._label,
                self._follow,
                self._reference,
                self._table,
                self._csv_path,
                self._buttons,
                self._status,
                self._live_header,
                self._live,
                self._live_trace,
            ]
        )
        self.native.layout().addWidget(self._canvas, 1)
        self.native.setMinimumWidth(480)

    def _connect_events(self) -> None:
        self._region.changed.connect(self._on_region_changed)
        self._label.changed.connect(self._schedule)
        self._follow.changed.connect(self._schedule)
        self._reference.changed.connect(self._schedule)
        self._copy.clicked.connect(self._on_copy)
        self._export.clicked.connect(self._on_export)
        self._viewer.dims.events.current_step.connect(self._draw_cursor)
        self._live_trace.changed.connect(self._on_live_trace_changed)
        self._deferred.timeout.connect(self._on_deferred)
        self._cursor_blit.timeout.connect(self._on_cursor_blit)
        self._idle_draw.timeout.connect(self._canvas.draw)

    # --------------------------------------------------------------- choices

    def _region_choices(self, widget=None) -> list[tuple[str, object]]:
        fixed = [("everything", _EVERYTHING), ("crystal mask (each frame)", _CRYSTAL)]
        return fixed + region_choices(self._viewer.layers)

    # ----------------------------------------------------------------- events

    def _on_layers_changed(self, event=None) -> None:
        self.reset_choices()
        self._on_region_changed()

    def _on_region_changed(self, event=None) -> None:
        region = self._region.value
        self._watched = watch_edits(self._watched, region, self._schedule)
        self._label.enabled = isinstance(region, Labels)
        self._schedule()

    def _on_copy(self, event=None) -> None:
        if self.trace is None:
            show_error("No time trace to copy: analyse a movie first.")
            return
        QGuiApplication.clipboard().setText(self.copy_text())
        show_info(f"Copied the time trace of {self.trace.frames.size} frames.")

    def _on_export(self, event=None) -> None:
        path = self._csv_path.value
        overwrite = False
        if path is None or str(path) in ("", "."):
            from qtpy.QtWidgets import QFileDialog

            # The dialog itself asks before replacing a file.
            chosen, _ = QFileDialog.getSaveFileName(
                self.native, "Export the time trace", "time_trace.csv", "CSV (*.csv)"
            )
            if not chosen:
                return
            path, overwrite = Path(chosen), True
            self._csv_path.value = path
        try:
            written = self.export_csv(path, overwrite=overwrite)
        except FileExistsError:
            show_error(f"{path} already exists: choose another file name (nothing written).")
            return
        except (ValueError, OSError) as exc:
            show_error(f"Export failed: {exc}")
            return
        show_info(f"Wrote the time trace to {written}")
        self._status.value = f"wrote {Path(written).name}"

    # ------------------------------------------------------------------ live

    def _on_live_update(self, update) -> None:
        """Plot the chosen region's trace of a live run (lines updated in place)."""
        names = list(update.traces)
        if list(self._live_trace.choices) != names:
            self._live_trace.choices = names
        name = self._live_trace.value if self._live_trace.value in names else EVERYTHING
        if name != self._drawn_name:
            self._drawn_rows, self._drawn_name = 0, name  # another region's curves
        self.trace = update.traces[name]
        # The live maps' time axis is the index of the analysed frame.
        self._geometry = {"scale": (1.0,), "translate": (0.0,)}
        # The frame count is in the Live section's status line: a label whose text
        # changes every frame lays the dock out again every frame.
        text = f"live: trace of {name}"
        if self._status.value != text:
            self._status.value = text
        # A run after another starts with a new figure (the stopped run's is not blitted).
        if self._curves and self._animated and len(self._curves) == self._curve_count():
            self._update_curves()
        else:
            self._draw()

    def _on_live_finished(self, result) -> None:
        """The whole trace of the stopped run in the table, plot, copy and export."""
        if result is None or not result.traces:
            return
        self._live_result = result
        self._on_live_trace_changed()

    def _on_live_trace_changed(self, event=None) -> None:
        result = getattr(self, "_live_result", None)
        if self._live.running or result is None:
            return
        name = self._live_trace.value if self._live_trace.value in result.traces else EVERYTHING
        self.trace = result.traces[name]
        self._status.value = f"live run: {self.trace.frames.size} frames; trace of {name}"
        self._fill_table()
        self._draw()

    # ---------------------------------------------------------------- compute

    def copy_text(self) -> str:
        """The trace as tab-separated text: the columns of the CSV export."""
        from ..core.movie import trace_text

        return "" if self.trace is None else trace_text(self.trace, delimiter="\t")

    def export_csv(self, path, *, overwrite: bool = False) -> Path:
        """Write the trace with :func:`napari_hrtem_fft.core.movie.trace_to_csv`.

        Raises
        ------
        ValueError
            If there is no trace.
        FileExistsError
            If ``path`` exists and ``overwrite`` is False (nothing is written).
        """
        from ..core.movie import trace_to_csv

        if self.trace is None:
            raise ValueError("there is no time trace: analyse a movie first")
        return trace_to_csv(self.trace, path, overwrite=overwrite)

    def _mask(self, maps, geometry: dict, movie: dict):
        """The region as time_trace takes it, and a note for the status line."""
        region = self._region.value
        grid = {
            "map_shape": geometry["shape"],
            "map_scale": geometry["scale"],
            "map_translate": geometry["translate"],
        }
        if region in (None, _EVERYTHING):
            return None, "every valid pixel"
        if region == _CRYSTAL:
            return _CRYSTAL, "crystal mask of each frame"
        if isinstance(region, Shapes):
            mask = shapes_mask(region, **grid)
        else:
            mask = labels_mask(region, label=int(self._label.value), **grid)
        note = region.name
        drift = movie.get("drift_px")
        follow = drift is not None and movie.get("drift_mode") == "follow"
        self._follow.enabled = follow and mask.ndim == 2
        if follow and mask.ndim == 2 and self._follow.value:
            from ..core.drift import shift_region

            mask = shift_region(mask, np.asarray(drift, dtype=float), step=maps.step)
            note += f", following the drift from frame {movie.get('reference_frame', 0)}"
        if not mask.any():
            note += " (holds no map pixel)"
        return mask, note

    def _recompute(self) -> None:
        self.update_trace()

    def update_trace(self) -> None:
        """Recompute the trace, the table and the plot from the current layers."""
        from ..core.movie import time_trace
        from ..io import axis_times

        if self._live.running:
            return  # the live run draws its own trace
        source = self._source.value
        layers = find_result_layers(self._viewer.layers, source=source) if source else []
        layers = [layer for layer in layers if layer.ndim == 3]
        self.trace = None
        self._follow.enabled = False
        if not layers:
            self._status.value = "no movie maps yet: analyse a movie (t, y, x)"
        else:
            try:
                maps, geometry, movie = movie_maps_from_layers(layers)
                maps = self._reference.apply(
                    maps, map_scale=geometry["scale"], map_translate=geometry["translate"]
                )
                mask, note = self._mask(maps, geometry, movie)
                t = maps.d_spacing.shape[1]
                times = axis_times(
                    t,
                    scale=geometry["scale"][0],
                    translate=geometry["translate"][0],
                    unit=geometry["time_unit"],
                )
                trace = time_trace(maps, mask, times=times)
            except ValueError as exc:
                self._status.value = str(exc)
            else:
                frames = movie.get("frames")
                if frames is None or len(frames) != t:
                    frames = np.arange(t)
                self.trace = dataclasses.replace(trace, frames=np.asarray(frames, dtype=int))
                self._geometry = geometry
                self._status.value = f"{source}: {t} frames; region: {note}"
        self._fill_table()
        self._draw()

    # ----------------------------------------------------------------- display

    def _fill_table(self) -> None:
        trace = self.trace
        if trace is None:
            fill_table(self._table, [], [])
            return
        n = trace.reflections.shape[0]
        columns = ["frame"] + (["t (s)"] if trace.times is not None else [])
        for k in range(n):
            columns += [f"d{k + 1} med. nm", f"d{k + 1} std nm", f"n{k + 1}"]
        strain = "exx_median" in trace.stats
        if strain:
            columns += ["exx %", "eyy %", "exy %", "rot. °"]
        rows = []
        for i, frame in enumerate(trace.frames):
            row = [str(int(frame))]
            if trace.times is not None:
                row.append(f"{trace.times[i]:.4g}")
            for k in range(n):
                row += [
                    f"{trace['d_median'][i, k]:.5f}",
                    f"{trace['d_std'][i, k]:.5f}",
                    str(int(trace["d_count"][i, k])),
                ]
            if strain:
                row += [f"{100 * trace[f'{c}_median'][i]:.3f}" for c in _STRAIN[:3]]
                row.append(f"{trace['rotation_median'][i]:.3f}")
            rows.append(row)
        fill_table(self._table, rows, columns)

    def _x_values(self) -> tuple[np.ndarray, str]:
        trace = self.trace
        if trace.times is not None:
            return trace.times, "time (s)"
        return trace.frames.astype(float), "frame"

    def _curve_count(self) -> int:
        trace = self.trace
        if trace is None:
            return 0
        return trace.reflections.shape[0] + (3 if "exx_median" in trace.stats else 0)

    def _draw(self) -> None:
        from ..core.reciprocal import g_spacing

        self._figure.clear()
        self._cursors, self._curves, self._pieces = [], [], []
        trace = self.trace
        strain = trace is not None and "exx_median" in trace.stats
        axes = self._figure.subplots(2 if strain else 1, 1, sharex=True, squeeze=False)[:, 0]
        x, xlabel = self._x_values() if trace is not None else (None, "time (s) or frame")
        self._x = x
        style_axes(axes[0], xlabel="" if strain else xlabel, ylabel="median d (nm)")
        if trace is not None:
            ref = g_spacing(trace.reflections)
            for k in range(trace.reflections.shape[0]):
                self._add_curve(axes[0], "d", k, 1.0, 0.25, f"{k + 1}: {ref[k]:.4f} nm", k)
            legend_above(axes[0], title="reflection: picked d")
        if strain:
            style_axes(axes[1], xlabel=xlabel, ylabel="strain (%)")
            for i, c in enumerate(_STRAIN[:3]):
                self._add_curve(axes[1], c, None, 100.0, 0.2, c, i)
            axes[1].axhline(0.0, color=FOREGROUND, linewidth=0.5, alpha=0.5)
            legend_above(axes[1])
        if trace is not None:
            self._cursors = [
                ax.axvline(np.nan, color=FOREGROUND, linewidth=0.8, linestyle="--") for ax in axes
            ]
            self._draw_cursor()
        self._animated, self._background = self._live.running, None
        self._curves_background, self._drawn_rows = None, 0
        for artist in self._animated_artists():
            artist.set_animated(self._animated)
        # A live run's plot is laid out when made, and again only when its tick labels
        # change length or the canvas is resized (laying out takes as long as drawing).
        layout = self._figure.get_layout_engine()
        layout.held = self._animated
        layout.invalidate()
        if self._animated and trace is not None:
            self._grow_limits(list(axes), fresh=True)
        self._label_sizes = self._tick_label_sizes(list(axes))
        self._idle_draw.start()

    @staticmethod
    def _tick_label_sizes(axes) -> tuple:
        """Longest tick label and offset text of each axis, in characters."""
        sizes = []
        for axis in (a for ax in axes for a in (ax.xaxis, ax.yaxis)):
            formatter = axis.get_major_formatter()
            labels = formatter.format_ticks(axis.get_majorticklocs())
            sizes.append((max(map(len, labels), default=0), len(formatter.get_offset())))
        return tuple(sizes)

    def _animated_artists(self) -> list:
        bands_and_lines = [a for curve in self._curves for a in (curve[1], curve[0])]
        return bands_and_lines + list(self._cursors)

    def _on_canvas_draw(self, event=None) -> None:
        """After a full draw in a live run: keep the background, draw the curves on it."""
        if not self._animated:
            return
        self._background = self._canvas.copy_from_bbox(self._figure.bbox)
        self._draw_rows(0)
        self._draw_cursors()

    def _draw_rows(self, start: int) -> None:
        """The curves from row ``start`` on over the saved background, kept as the next one.

        Over the background with the first ``start`` rows drawn, only the pixel columns
        from the one of row ``start - 1`` on are drawn again (the band there and the
        segments and markers that reach them): a frame costs the same at the thousandth
        frame as at the tenth (drawing whole curves of 1,000 points takes 0.1 s).  The
        picture is the one of the whole curves but for, at times, the column where the
        pieces meet (antialiased pixels cut by the clip box): the curves are drawn
        whole again at least every :attr:`FULL_DRAW_S`.
        """
        rows = 0 if self._x is None else self._x.size
        start = start if 0 < start <= rows and self._curves_background is not None else 0
        self._update_bands()
        if start:
            self._canvas.restore_region(self._curves_background)
            x1, y1, x2, y2 = self._background.get_extents()
            px = self._curves[0][2].transData.transform(np.c_[self._x, self._x])[:, 0]
            left = float(np.floor(px[start - 1]))
            # The plain axes from that column on (all the figure's height).
            self._canvas.restore_region(self._background, bbox=(left, y1, x2, y2), xy=(x1, y1))
            # Rows whose markers or segments reach the column (markers are ~6 pixels).
            first = max(int(np.searchsorted(px, left - _REACH_PX)) - 1, 0)
        else:
            self._canvas.restore_region(self._background)
            self._whole_drawn = time.monotonic()
        for (line, band, ax, stat, k, factor, _), piece in zip(
            self._curves, self._pieces or [None] * len(self._curves), strict=True
        ):
            if not start:
                ax.draw_artist(band)
                ax.draw_artist(line)
                continue
            clip = Bbox.from_extents(left, ax.bbox.y0, ax.bbox.x1, ax.bbox.y1)
            band.set_clip_box(clip)
            ax.draw_artist(band)
            band.set_clip_box(None)
            piece.set_data(self._x[first:], self._curve_values(stat, k, factor)[0][first:])
            piece.set_clip_box(clip)
            ax.draw_artist(piece)
        self._curves_background = self._canvas.copy_from_bbox(self._figure.bbox)
        self._drawn_rows = rows

    def _update_bands(self) -> None:
        """The bands' polygons from the trace."""
        for _, band, _, stat, k, factor, _ in self._curves:
            _, low, high = self._curve_values(stat, k, factor)
            band.set_data(self._x, low, high)

    def _draw_cursors(self) -> None:
        for cursor in self._cursors:
            cursor.axes.draw_artist(cursor)

    def _grow_limits(self, axes, *, apply: bool = True, fresh: bool = False) -> bool:
        """Widen the axis limits (with headroom) to the curves and bands; whether any changed.

        With ``apply=False``: whether any would change, leaving them; ``fresh``: set
        them from the curves alone (a new figure of a live run).
        """
        changed = False
        for ax in axes:
            curves = [c for c in self._curves if c[2] is ax]
            values = [self._curve_values(c[3], c[4], c[5]) for c in curves]
            y = np.concatenate([np.concatenate(v[1:]) for v in values]) if values else []
            d = any(c[3] == "d" for c in curves)
            limits = (
                (_finite_range(self._x), ax.get_xlim, ax.set_xlim),
                (_finite_range(y), ax.get_ylim, ax.set_ylim),
            )
            for (lo, hi), get, set_ in limits:
                a, b = (np.inf, -np.inf) if fresh else get()
                if not (np.isfinite(lo) and np.isfinite(hi)) or (a <= lo and hi <= b):
                    continue
                changed = True
                if not apply:
                    continue
                if set_ == ax.set_xlim:
                    # Time only grows: room for as many frames again as are plotted.
                    set_(min(a, lo), max(b, lo + 2 * max(hi - lo, _MIN_SPAN["x"])))
                    continue
                span = max(hi - lo, _MIN_SPAN["d"] * abs(hi) if d else _MIN_SPAN["strain"])
                middle = (lo + hi) / 2
                set_(min(a, middle - (0.5 + _HEADROOM) * span),
                     max(b, middle + (0.5 + _HEADROOM) * span))  # fmt: skip
        return changed

    def _curve_values(self, stat: str, k: int | None, factor: float):
        """Median and ± band of statistic ``stat`` (``d`` of reflection ``k``, or strain)."""
        trace = self.trace
        pick = (lambda a: a[:, k]) if k is not None else (lambda a: a)
        median = factor * pick(trace[f"{stat}_median"])
        spread = _BAND_STD * factor * pick(trace[f"{stat}_std"])
        return median, median - spread, median + spread

    def _add_curve(self, ax, stat, k, factor, alpha, label, style) -> None:
        median, low, high = self._curve_values(stat, k, factor)
        (line,) = ax.plot(self._x, median, label=label, **_curve_style(style))
        band = ax.fill_between(self._x, low, high, color=line.get_color(), alpha=alpha)
        self._curves.append((line, band, ax, stat, k, factor, alpha))
        if not self._live.running:
            return  # drawn whole, not frame by frame
        piece = Line2D([], [])
        piece.update_from(line)
        piece.set(label="_piece", animated=True)
        ax.add_artist(piece)
        self._pieces.append(piece)

    def _update_curves(self) -> None:
        """New points on the existing curves (a live run): no new figure, one redraw."""
        self._x, _ = self._x_values()
        curves, self._curves = self._curves, []
        for line, band, ax, stat, k, factor, alpha in curves:
            line.set_data(self._x, self._curve_values(stat, k, factor)[0])
            self._curves.append((line, band, ax, stat, k, factor, alpha))
        self._place_cursor()
        # Drawn now, not when the event loop gets to it: the frame counts as shown once
        # its trace is on the plot.  Within the limits only the curves are redrawn over
        # the saved axes (a few ms); a full draw (axes, ticks, layout: ~0.3 s of the GUI
        # thread under software rendering) at most every FULL_DRAW_S, the points past
        # the old limits clipped until then.
        axes = list(dict.fromkeys(curve[2] for curve in curves))
        wait = self._full_drawn + self.FULL_DRAW_S - time.monotonic()
        if self._background is None or not self._animated:
            self._full_draw()
            return
        outside = self._grow_limits(axes, apply=False)
        if outside and wait <= 0:
            self._full_draw()
        else:
            if outside and not self._deferred.isActive():
                self._deferred.start(int(1000 * wait) + 1)
            whole = time.monotonic() - self._whole_drawn > self.FULL_DRAW_S
            self._blit(0 if whole else self._drawn_rows)

    def _full_draw(self) -> None:
        """The whole figure now, its axis limits grown to the curves.

        Laid out again only if the longest tick label of an axis changed length.
        """
        self._deferred.stop()
        self._idle_draw.stop()  # this draw is the one it would make
        axes = list(dict.fromkeys(curve[2] for curve in self._curves))
        self._grow_limits(axes)
        sizes = self._tick_label_sizes(axes)
        if sizes != self._label_sizes:
            self._figure.get_layout_engine().invalidate()
            self._label_sizes = sizes
        self._update_bands()
        self._full_drawn = time.monotonic()
        self._canvas.draw()

    def _on_deferred(self) -> None:
        if self._animated and self._curves:
            self._full_draw()

    def _on_cursor_blit(self) -> None:
        if self._animated and self._background is not None:
            self._blit(self._drawn_rows)

    def _blit(self, start: int) -> None:
        """The curves (from row ``start`` on) and cursors over the saved background.

        Drawn into the canvas's image now and painted with the viewer's next repaint:
        ``canvas.blit`` repaints at once, and every repaint of a window that holds
        napari's OpenGL canvas composes the whole window again (~0.1 s under software
        OpenGL), so one repaint per frame for the layers and the plot together.
        """
        self._cursor_blit.stop()
        rows = 0 if self._x is None else self._x.size
        if start == rows and self._curves_background is not None:
            self._canvas.restore_region(self._curves_background)  # the cursor moved
        else:
            self._draw_rows(start)
        self._draw_cursors()
        self._canvas.update()

    def _cursor_x(self) -> float | None:
        """The slider's frame on the plot's x axis, or None outside the maps."""
        geometry, x = self._geometry, self._x
        if self.trace is None or geometry is None or x is None:
            return None
        point = np.asarray(self._viewer.dims.point, dtype=float)
        if point.size < 3:
            return None
        world_t = point[-3]
        position = (world_t - geometry["translate"][0]) / geometry["scale"][0]
        if not -0.5 <= position <= x.size - 0.5:
            return None
        i = int(np.clip(np.round(position), 0, x.size - 1))
        return float(x[i])

    def _place_cursor(self) -> None:
        at = self._cursor_x()
        for line in self._cursors:
            line.set_xdata([np.nan, np.nan] if at is None else [at, at])

    def _draw_cursor(self, event=None) -> None:
        if not self._cursors:
            return
        self._place_cursor()
        if self._animated and self._background is not None:
            # A live run moves the slider every frame: the cursor is one of the curves
            # drawn over the saved background, not a reason to draw the whole figure,
            # and drawn with the frame's curves when the slider moved to a new frame.
            self._cursor_blit.start()
        else:
            self._idle_draw.start()
