"""Live section of the time-trace dock: maps and traces of an acquisition being recorded.

Follows a folder of frames or a growing multi-frame file
(:func:`napari_hrtem_fft.io.watch_source`) with
:func:`napari_hrtem_fft.core.live.iter_live` in a napari ``thread_worker``.  Shows the
newest frame and the d-spacing and strain maps of every frame analysed so far (layers
``(t, my, mx)`` read frame by frame from the store, so napari's time slider scrolls
through them without holding them in memory) and hands each frame's time traces to the
dock that holds the section, which plots them.  Trace regions are the closed shapes of
a Shapes layer, the strain reference a Shapes or Labels layer
(:class:`~._reference.ReferenceSection`); both layers move with the drift, so that
they stay on the content, and shapes drawn or edited during the run count from the next
frame on.  Pause, Resume and Stop act between frames; Stop completes the store.

The GUI thread keeps up with the analysis: frames that arrive faster than they are
drawn are drawn once, the newest; the status line changes at most twice a second (a
wrapped label's new text lays the dock out again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Shapes
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QCoreApplication, QEvent, QObject, QTimer
from qtpy.QtWidgets import QAbstractItemView, QDockWidget

from .._napari.calibration import camera_of
from .._napari.display import show_scale_bar
from .._napari.regions import shape_polygons, watch_edits
from ..core.live_process import LiveGrid
from ..core.reciprocal import g_spacing
from ._common import button_row, suggest_count_field
from ._reference import ReferenceSection

if TYPE_CHECKING:
    import napari

__all__ = ["EVERYTHING", "LiveGrid", "LiveSection", "live_steps"]

logger = logging.getLogger(__name__)

#: Name of the trace over every valid map pixel.
EVERYTHING = "everything"


#: Seconds between updates that are not frames (waiting, paused) handed to the GUI.
_IDLE_UPDATES_S = 0.5

#: Widget levels at most between a widget whose size hint changed and its window: a
#: layout request climbs one level per pass of the event loop (see :func:`settle`).
_LAYOUT_DEPTH = 16


def settle(window, views: list | None = None) -> list:
    """Lay ``window`` out now where its widgets asked to be, so it is painted once.

    A widget whose text or range changed (napari's time slider as it grows, its status
    bar, a status line) asks its parent to be laid out again, by an event that the
    parent handles at the next turn of the event loop, and that asks the grandparent,
    and so on up to the window; a layer list whose rows changed lays them out on a
    timer.  Each of those turns repaints part of the window after the frame's own
    repaint, and every repaint of a window holding napari's OpenGL canvas composes the
    whole window again (~25 ms of CPU under software OpenGL).  Sending the layout
    requests now, level after level, and doing the item views' delayed layouts now
    puts all of it into the frame's one repaint.

    Parameters
    ----------
    window : QWidget
        The top-level window.
    views : list of QAbstractItemView, optional
        The window's item views whose delayed layout can be run from Python (napari's
        layer list); None: found in ``window``.

    Returns
    -------
    list of QAbstractItemView
        ``views`` without those that cannot be (a view made by Qt itself, as a combo
        box's popup, does not let Python run its delayed layout) or are gone.
    """
    for _ in range(_LAYOUT_DEPTH):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
    if views is None:
        views = window.findChildren(QAbstractItemView)
    kept = []
    for view in views:
        try:
            view.executeDelayedItemsLayout()
        except RuntimeError:  # made by Qt (protected), or deleted
            continue
        kept.append(view)
    return kept


def live_steps(
    path, *, pixel_size, auto, store, control, window, step, search=0.1, gone=None
):  # fmt: skip
    """The live run of the dock, as a generator of updates.

    :func:`napari_hrtem_fft.core.live_process.live_session` (first frame, ``auto``
    reflections picked on it, a :class:`LiveGrid` answered with the regions on
    ``control``, then the frame updates of
    :func:`napari_hrtem_fft.core.live.iter_live`) runs in a separate process
    (:func:`~napari_hrtem_fft.core.live_process.live_in_process`), so that the GUI
    thread does not take the GIL and a core from the analysis; this generator relays
    its updates and forwards ``control``.  None while waiting, at most every 0.5 s: the
    GUI thread has nothing to do with them.

    ``gone`` (a ``threading.Event``) is set when the dock is gone: the run is then
    stopped (its store completed) and the steps end with None, without an error, which
    the worker could only hand to signals and a window that no longer exist (an error
    emitted on a deleted Qt object aborts Python).  An error of the run that is a
    ``RuntimeError`` is raised as a
    :class:`~napari_hrtem_fft.core.live_process.LiveProcessError`: superqt's worker
    takes a RuntimeError out of its generator for a sign that the worker itself was
    deleted, and only warns.
    """
    from ..core.live_process import LiveProcessError, live_in_process

    live = live_in_process(
        path, control=control, pixel_size=pixel_size, auto=auto, store=store, window=window,
        step=step, search=search,
    )  # fmt: skip
    said = time.monotonic()
    while True:
        if gone is not None and gone.is_set():
            live.close()
            return None
        try:
            update = next(live)
        except StopIteration as end:
            return end.value
        except Exception as exc:
            if gone is not None and gone.is_set():
                logger.warning("the live run ended after its dock was closed: %s", exc)
                live.close()
                return None
            if isinstance(exc, RuntimeError) and not isinstance(exc, LiveProcessError):
                raise LiveProcessError(f"{type(exc).__name__}: {exc}") from exc
            raise
        if update is not None or time.monotonic() - said > _IDLE_UPDATES_S:
            said = time.monotonic()
            yield update


class _Undocked(QObject):
    """Calls ``callback`` when the plugin widget holding ``section`` leaves its dock.

    napari's close button of a dock takes the plugin's widget out of it
    (``setParent(None)``) rather than destroying it: the run must stop then.  Nothing
    is watched when ``section`` is not in a dock.
    """

    def __init__(self, section, callback: Callable[[], None]) -> None:
        super().__init__(section)
        self._callback = callback
        widget = section
        while widget.parentWidget() is not None and not isinstance(
            widget.parentWidget(), QDockWidget
        ):
            widget = widget.parentWidget()
        self._watched = widget if widget.parentWidget() is not None else None
        if self._watched is not None:
            self._watched.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        """A parent change that leaves the plugin widget without one: undocked."""
        if event.type() == QEvent.Type.ParentChange and watched.parentWidget() is None:
            self._callback()
        return False

    def remove(self) -> None:
        """Stop watching."""
        if self._watched is not None:
            self._watched.removeEventFilter(self)
            self._watched = None


class LiveSection(Container):
    """Controls of a live run and the layers of its newest frame and maps.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where the newest frame, its maps and the maps of earlier frames are shown.
    on_update : callable
        Called in the GUI thread with each analysed frame's
        :class:`~napari_hrtem_fft.core.live.LiveUpdate` after its layers are updated
        (at most once per event-loop turn: frames that arrive faster than they are
        drawn are drawn once, the newest).
    on_finished : callable
        Called with the :class:`~napari_hrtem_fft.core.live.LiveResult` (None after an
        error or a stop before the first frame).
    """

    #: Milliseconds at least between changes of the status line during a run; a text
    #: not shown yet is shown with a later frame, or after twice this without frames.
    STATUS_MS = 500
    #: Seconds at least between moves of the region layers with the drift during a run.
    MOVE_S = 0.5
    #: Frames larger than this many pixels a side are shown binned to at most this size
    #: while a run goes on (full size when paused or stopped): uploading and drawing a
    #: 2048² texture every frame takes the GUI thread longer than the analysis under
    #: software OpenGL.
    LIVE_FRAME_PX = 1024

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        *,
        on_update: Callable[[object], None],
        on_finished: Callable[[object], None],
    ) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._on_update_cb, self._on_finished_cb = on_update, on_finished
        self._worker = None
        self._control = None
        self._gone = threading.Event()  # set when the dock is destroyed: the run ends quietly
        self._undocked: _Undocked | None = None
        self._latest = None
        self._skipped = 0
        self._grid: LiveGrid | None = None
        self._offset = np.zeros(2)  # drift of the newest frame shown, nm
        self._moved: dict[int, tuple[object, np.ndarray]] = {}  # layer id -> (layer, base)
        self._watched: list = []
        self._status_text: str | None = None
        self._status_at = -np.inf  # time.monotonic() the status line last changed
        self._views: list | None = None  # item views laid out with each frame (settle)
        self._newest = None  # the newest update shown
        self._moved_at = -np.inf  # time.monotonic() the region layers last moved
        self._frames_shown = 0  # frames on the time axis of the live maps
        self._live_layers: list = []  # layers made by the run, watched for being shown
        self._frame_buffer = None  # the binned frame the "live frame" layer shows
        #: ``(file name, time.monotonic())`` when each shown frame's layers were updated.
        self.shown: list[tuple[str, float]] = []
        self._init_widgets()
        self._init_layout()
        self._connect_events()

    @property
    def running(self) -> bool:
        """Whether a live run is going on (also while paused)."""
        return self._worker is not None

    def _init_widgets(self) -> None:
        self._source = FileEdit(
            label="source",
            mode="d",
            tooltip="Folder the acquisition writes frames to (TIFF, MRC, DM), or a growing "
            "multi-frame .tif/.mrc file (type its path).",
        )
        self._pixel = FloatSpinBox(
            label="pixel size (nm)", value=0.0, min=0.0, max=100.0, step=0.001,
            tooltip="0: from the files' calibration.",
        )  # fmt: skip
        self._auto = suggest_count_field(
            "reflections",
            "Strongest reflections of the first frame's centre, one per lattice-plane direction.",
        )
        self._window = SpinBox(label="window (px)", value=128, min=16, max=1024, step=2)
        self._step = SpinBox(label="step (px)", value=8, min=1, max=256)
        self._regions = ComboBox(
            label="trace regions",
            choices=self._shapes_choices,
            nullable=True,
            tooltip="Shapes layer whose rectangles and polygons (in nm) are traced.  The "
            "layer moves with the drift; shapes drawn or edited during the run count from "
            "the next frame.  Empty: every valid pixel only.",
        )
        self._reference = ReferenceSection(self._viewer)
        self._reference._layer.tooltip = (
            "Optional Shapes or Labels layer: strain and phase of every frame relative to "
            "the median lattice inside it (it moves with the drift; edits count from the "
            "next frame).  None: relative to the reflections of the first frame."
        )
        self._store = FileEdit(
            label="store", mode="w", filter="*.zarr", value="live.zarr",
            tooltip="Zarr store the maps of every frame are appended to (replaced).",
        )  # fmt: skip
        self._start = PushButton(text="Start")
        self._pause = PushButton(text="Pause", enabled=False)
        self._stop = PushButton(text="Stop", enabled=False)
        self._status = Label(value="idle")
        self._status.native.setWordWrap(True)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._status_timer = QTimer(self.native)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(2 * self.STATUS_MS)

    def _init_layout(self) -> None:
        self.extend([
            self._source, self._pixel, self._auto, self._window, self._step, self._regions,
            self._reference, self._store, button_row(self._start, self._pause, self._stop),
            self._status,
        ])  # fmt: skip

    def _connect_events(self) -> None:
        self._start.changed.connect(self._on_start)
        self._pause.changed.connect(self._on_pause)
        self._stop.changed.connect(self._on_stop)
        self._timer.timeout.connect(self._show_latest)
        self._status_timer.timeout.connect(self._flush_status)
        self._regions.changed.connect(self._on_regions_changed)
        self._reference.changed.connect(self._on_regions_changed)
        self._viewer.layers.events.inserted.connect(self._on_layers_changed)
        self._viewer.layers.events.removed.connect(self._on_layers_changed)
        self.native.destroyed.connect(self._on_destroyed)

    def _on_destroyed(self, *args) -> None:
        """Stop a run and disconnect from the viewer and the run when the dock goes."""
        self._gone.set()
        if self._control is not None:
            self._control.stop()
            self._control.resume()
        if self._worker is not None:
            # The run ends after the dock: its last updates and end have nowhere to go.
            self._worker.yielded.disconnect(self._on_yielded)
            self._worker.returned.disconnect(self._on_finished)
            self._worker.errored.disconnect(self._on_error)
        self._watched = watch_edits(self._watched, None, self._on_regions_changed)
        self._viewer.layers.events.inserted.disconnect(self._on_layers_changed)
        self._viewer.layers.events.removed.disconnect(self._on_layers_changed)
        for layer in self._live_layers:
            layer.events.visible.disconnect(self._on_layer_shown)
        self._live_layers = []

    def _shapes_choices(self, widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Shapes)]

    def _on_layers_changed(self, event=None) -> None:
        self._regions.reset_choices()
        self._reference.reset_choices()

    # ------------------------------------------------------------------ callbacks

    def polygons(self) -> dict[str, np.ndarray]:
        """Trace regions of the chosen Shapes layer: ``"region k"`` → vertices (nm).

        Where the shapes are on the first frame: during a run, minus the drift the
        layer was moved by.
        """
        layer = self._regions.value
        if layer is None:
            return {}
        offset = self._offset if self.running else np.zeros(2)
        return {f"region {k + 1}": p - offset for k, p in enumerate(shape_polygons(layer))}

    def _say(self, text: str) -> None:
        """Show ``text`` in the status line, at most every STATUS_MS during a run.

        Called while a frame is drawn: the line changes in the frame's repaint of the
        window (one repaint costs as much as the frame's layers under software OpenGL),
        with a later frame if the line changed less than STATUS_MS ago, or on its own
        after 2 × STATUS_MS without a frame.
        """
        self._status_text = text
        if time.monotonic() - self._status_at >= self.STATUS_MS / 1000:
            self._flush_status()
        elif not self._status_timer.isActive():
            self._status_timer.start()

    def _flush_status(self) -> None:
        self._status_timer.stop()
        text, self._status_text = self._status_text, None
        if text is not None:
            self._status.value = text
            self._status_at = time.monotonic()
            # The line only grows during a run: a wrapped line one row shorter or
            # longer than the one before resizes the trace plot below it, which then
            # draws everything again (a third of a second under software rendering).
            label = self._status.native
            label.setMinimumHeight(max(label.minimumHeight(), label.heightForWidth(label.width())))

    def _on_start(self) -> None:
        from ..core.live import LiveControl

        self._control = LiveControl()
        worker = thread_worker(live_steps)(
            str(self._source.value), pixel_size=float(self._pixel.value) or None,
            auto=int(self._auto.value), store=str(self._store.value),
            control=self._control, window=int(self._window.value), step=int(self._step.value),
            gone=self._gone,
        )  # fmt: skip
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_finished)
        worker.errored.connect(self._on_error)
        self._worker = worker
        self._undocked = _Undocked(self.native, self._on_stop)
        self.shown, self._skipped, self._grid = [], 0, None
        self._offset, self._moved = np.zeros(2), {}
        self._newest, self._frames_shown, self._moved_at = None, 0, -np.inf
        self._status_at, self._views = -np.inf, None
        self._start.enabled = False
        self._pause.enabled = self._stop.enabled = True
        self._status.value = f"waiting for frames in {self._source.value}"
        worker.start()

    def _on_pause(self) -> None:
        if self._control is None:
            return
        if self._control.paused:
            self._control.resume()
            self._pause.text = "Pause"
            self._status.value = "resumed: waiting for the next frame"
        else:
            self._control.pause()
            self._pause.text = "Resume"
            self._status.value = "paused: frames written meanwhile will be skipped"
            self._show_full_frame()

    def _on_stop(self) -> None:
        if self._control is not None:
            self._control.stop()
            self._control.resume()

    def _on_error(self, error: Exception) -> None:
        show_error(f"Live: {error}")
        self._status.value = f"error: {error}"
        self._on_finished(None)

    def _on_finished(self, result) -> None:
        self._show_latest()
        self._status_timer.stop()
        self._status.native.setMinimumHeight(0)
        self._status_text = None
        self._start.enabled = True
        self._pause.enabled = self._stop.enabled = False
        self._pause.text = "Pause"
        if result is not None and result.movie is not None:
            self._status.value = (
                f"stopped: {result.movie.n_frames} frames analysed, {len(result.skipped)} "
                f"skipped; store {result.store} complete"
            )
        elif result is not None:
            self._status.value = "stopped before the first frame: nothing stored"
        self._worker = None
        if self._undocked is not None:
            self._undocked.remove()
            self._undocked = None
        self._show_full_frame()
        self._watched = watch_edits(self._watched, None, self._on_regions_changed)
        self._on_finished_cb(result)

    def _show_full_frame(self) -> None:
        """The newest frame at full size and the regions on it (paused or stopped)."""
        if self._newest is None:
            return
        self._follow_drift(self._newest.drift, self._newest.maps.pixel_size, now=True)
        if "live frame" in self._viewer.layers:
            self._show_frame(self._newest, only="live frame")

    def _on_yielded(self, update) -> None:
        """Keep the newest frame; draw it once the queued updates are taken."""
        if isinstance(update, LiveGrid):
            self._grid = update
            self._send_regions()
            return
        if update is None or update.kind != "frame":
            return
        self._skipped += len(update.skipped)
        # A frame not drawn yet is replaced: its maps are in the store all the same.
        self._latest = update
        self._timer.start()

    # ------------------------------------------------------------------ regions

    def _on_regions_changed(self, *args) -> None:
        """A region layer chosen or edited: its regions count from the next frame."""
        if self.running and self._grid is not None:
            self._send_regions()

    def _region_layers(self) -> list:
        return [layer for layer in (self._regions.value, self._reference.layer) if layer]

    def _send_regions(self) -> None:
        """The regions as masks on the first frame's map grid, to the run (GUI thread)."""
        grid = self._grid
        layers = self._region_layers()
        # A layer no longer chosen stays where it is.
        self._moved = {k: v for k, v in self._moved.items() if any(v[0] is x for x in layers)}
        for layer in layers:
            if id(layer) not in self._moved:
                # First used now: drawn on the newest frame shown, so it moves with the
                # drift from there.
                base = np.asarray(layer.translate, dtype=float)[-2:] - self._offset
                self._moved[id(layer)] = (layer, base)
        self._watched = watch_edits(self._watched, self._regions.value, self._on_regions_changed)
        scale, translate = grid.placement(self._offset)
        try:
            from ..core.live import regions_on_grid

            shape, size = grid.frame_shape, grid.pixel_size
            drawn = regions_on_grid(self.polygons(), shape, pixel_size=size, step=grid.step)
            regions = {EVERYTHING: None, **drawn}
            reference = self._reference.mask(grid.map_shape, scale, translate)
            record = self._reference.record(origin=tuple(self._offset))
        except ValueError as exc:
            if not self._control.regions_given:
                # Before the first frame: the run cannot start with these regions.
                show_error(f"Live: {exc}")
                self._on_stop()
                return
            show_error(f"Live: {exc}; the regions are unchanged")
            return
        self._control.set_regions(regions, reference=reference, reference_record=record)

    def _follow_drift(self, drift_px, pixel_size: float, *, now: bool = False) -> None:
        """Move the region layers with the drift of the newest frame shown.

        During a run at most every :attr:`MOVE_S`, and only once they lag by half a
        frame pixel and by a pixel of the screen (at the canvas's zoom) or more
        (``now``: at once): moving a Shapes layer makes napari and vispy build its
        shaders again, ~50 ms of CPU under software OpenGL, and a lag of less than a
        screen pixel is not seen.  The regions sent to the run count from where the
        layers are (:attr:`_offset`), so they are right wherever the layers lag.
        """
        offset = np.asarray(drift_px, dtype=float) * pixel_size
        lag = np.abs(offset - self._offset).max()  # nm
        # The camera's zoom: screen pixels per world unit, here per nm.
        seen = lag >= 0.5 * pixel_size and lag * camera_of(self._viewer).zoom >= 1.0
        if not now and (not seen or time.monotonic() - self._moved_at < self.MOVE_S):
            return
        self._offset, self._moved_at = offset, time.monotonic()
        for layer, base in list(self._moved.values()):
            if layer not in self._viewer.layers:
                continue
            translate = np.asarray(layer.translate, dtype=float).copy()
            target = base + self._offset
            if not np.allclose(translate[-2:], target, rtol=0, atol=1e-6):
                translate[-2:] = target
                layer.translate = translate

    def _show_latest(self) -> None:
        update, self._latest = self._latest, None
        if update is None:
            return
        text = f"{update.message}; latency {update.latency:.2f} s"
        self._say(f"{text}; {update.analysed} analysed, {self._skipped} skipped")
        self._follow_drift(update.drift, update.maps.pixel_size)
        self._show_frame(update)
        self._on_update_cb(update)
        self._views = settle(self.native.window(), self._views)
        self.shown.append((update.name, time.monotonic()))

    # ------------------------------------------------------------------ display

    def _layer(self, name: str, data, **kwargs):
        """The layer ``name`` with new data, or a new image layer.

        Data is set in place; a hidden layer keeps its data until it is shown.
        """
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            if layer.visible:
                layer.data = data
            return layer
        layer = self._viewer.add_image(data, name=name, **kwargs)
        layer.events.visible.connect(self._on_layer_shown)
        self._live_layers.append(layer)
        return layer

    def _on_layer_shown(self, event=None) -> None:
        """A live layer made visible: it gets the newest frame's data it was not given."""
        if self._newest is not None and getattr(event, "source", None) is not None:
            if event.source.visible:
                self._show_frame(self._newest, only=event.source.name)

    def _frame_image(self, update, out=None):
        """The newest frame and its ``(scale, translate)`` in nm.

        Binned while a run goes on (not paused) to at most :attr:`LIVE_FRAME_PX` a side:
        the mean of each ``f × f`` block, ``f`` the smallest integer that fits, written
        into ``out`` when it is a float32 array of the binned shape.
        """
        px = update.maps.pixel_size
        image = np.asarray(update.image)
        f = -(-max(image.shape) // self.LIVE_FRAME_PX)
        if not self.running or self._control.paused or f < 2:
            return image, (px, px), (0.0, 0.0)
        ny, nx = (n // f * f for n in image.shape)
        shape = (ny // f, nx // f)
        fits = isinstance(out, np.ndarray) and out.shape == shape and out.dtype == np.float32
        binned = out if fits else np.empty(shape, dtype=np.float32)
        # Summed from f² strided views (a reshaped mean takes ten times longer).
        np.copyto(binned, image[0:ny:f, 0:nx:f])
        for k in range(1, f * f):
            binned += image[k // f : ny : f, k % f : nx : f]
        binned *= 1.0 / f**2
        # A binned pixel is centred where the f × f pixels it averages are.
        return binned, (f * px, f * px), ((f - 1) * px / 2, (f - 1) * px / 2)

    def _show_frame(self, update, only: str | None = None) -> None:
        """The newest frame and the maps of every frame so far, on the newest frame.

        Only visible layers are given new data (a hidden one when it is shown, or
        ``only``: that layer alone); the time slider follows the newest frame if it
        was on the frame shown before.
        """
        self._newest = update
        maps = update.maps
        geometry = maps.geometry()
        placement = dict(
            scale=(1.0, *geometry["scale"]),
            translate=(0.0, *geometry["translate"]),
            units=("", "nm", "nm"),
            opacity=0.6,
        )
        layers = self._viewer.layers
        new = "live frame" not in layers
        if only in (None, "live frame"):
            frame = layers["live frame"] if not new else None
            # The binned frame is written into the array the layer shows and the layer
            # refreshed: setting new data of the same shape would make napari
            # recompute the viewer's dimensions, layer list and slider every frame.
            buffer = self._frame_buffer if frame is not None and frame.visible else None
            own = buffer is not None and frame.data is buffer
            image, scale, translate = self._frame_image(update, out=buffer if own else None)
            if own and image is buffer and tuple(frame.scale) == scale:
                frame.refresh()
            else:
                frame = self._layer(
                    "live frame", image, scale=scale, translate=translate, units=("nm", "nm"),
                    metadata={"live": True},
                )  # fmt: skip
                if frame.visible and tuple(frame.scale) != scale:
                    frame.scale, frame.translate = scale, translate
                binned = image is not update.image and frame.data is image
                self._frame_buffer = image if binned else None
            where = {"frame": update.frame, "time_s": update.time, "file": update.name}
            frame.metadata.update(where)
        # One map shown at a time over the frame (the others a click away).  d spans
        # ±3 % of the reflection's spacing, strain ±5 %: expansion shows as a colour
        # change rather than being rescaled away.  Fixed limits: none is computed from
        # the data, neither when the layer is made nor when its data grows.
        d_ref = g_spacing(maps.reflections)
        shown = [
            (f"live d g{k + 1} (nm)", "d_spacing", k, "turbo", (0.97 * d, 1.03 * d))
            for k, d in enumerate(d_ref)
        ]
        if maps.strain is not None:
            shown.append(("live exx", "exx", None, "RdBu_r", (-0.05, 0.05)))
        following = self._viewer.dims.current_step[0] >= self._frames_shown - 1
        maps_layers = []
        for i, (name, field, k, colormap, limits) in enumerate(shown):
            if only not in (None, name):
                continue
            # What the layer holds: the map, its reflection and unit, the store it reads.
            record = {
                "live": True,
                "kind": field,
                "reflection": k,
                "store": str(update.store.path),
            }
            record["value_unit"] = "nm" if field == "d_spacing" else "1"
            layer = self._layer(
                name, update.store.stack(field, k), colormap=colormap, contrast_limits=limits,
                visible=i == 0, metadata=record, **placement,
            )  # fmt: skip
            # The value of a pixel is read off the colour bar (napari draws the bars
            # of visible layers only); the layer's name gives the map and its unit.
            if not layer.colorbar.visible:
                layer.colorbar.visible = True
            maps_layers.append(layer)
        if new and only is None:
            show_scale_bar(self._viewer, frame)
            # Frame at the bottom, its maps just above it: the user's regions stay on top.
            for position, layer in enumerate([frame, *maps_layers]):
                layers.move(layers.index(layer), position)
            layers.selection.active = maps_layers[0]
        if only is None:
            self._frames_shown = update.analysed
            if following:
                self._viewer.dims.set_current_step(0, update.analysed - 1)
