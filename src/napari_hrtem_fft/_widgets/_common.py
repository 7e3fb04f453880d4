"""Small building blocks shared by the docks.

Calibration row, button rows, tables, debounce timers, layer choices, and
:func:`disconnect_on_close`, which every dock calls once so that closing it cuts its
viewer and layer connections.  Each dock builds its own form from these; they hold no
state of their own, except :class:`ResultSourceDock`, the base of the docks that read
one analysed image's maps.
"""

from __future__ import annotations

import gc
import weakref

from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    SpinBox,
    Table,
    Widget,
    create_widget,
)
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QApplication, QStyledItemDelegate

from .._napari.calibration import camera_of, layer_pixel_size
from .._napari.layers import find_result_layers, result_info
from ._fit import fit_dock

__all__ = [
    "ResultSourceDock",
    "after_next_composition",
    "button_row",
    "debounce_timer",
    "default_to_last",
    "disconnect_dock",
    "disconnect_on_close",
    "fill_table",
    "hold_collections",
    "label_value_field",
    "layer_combo",
    "layer_or_override_pixel_size",
    "maps_source_combo",
    "max_window",
    "pixel_size_field",
    "read_only_table",
    "result_sources",
    "show_calibration",
    "span_label_column",
    "suggest_count_field",
]


def pixel_size_field(tooltip: str) -> FloatSpinBox:
    """The 'pixel size (nm)' field, used when the image layer has no calibration."""
    return FloatSpinBox(
        label="pixel size (nm)", value=0.02, min=1e-5, max=1e3, step=1e-4, tooltip=tooltip
    )


# Most reflections 'Suggest' (picker) and a live run's automatic choice may place.
_MAX_SUGGESTED = 12


def suggest_count_field(label: str, tooltip: str) -> SpinBox:
    """How many of the strongest reflections to choose (one per ±g pair), 3 by default."""
    return SpinBox(label=label, value=3, min=1, max=_MAX_SUGGESTED, tooltip=tooltip)


def label_value_field(label: str, tooltip: str) -> SpinBox:
    """The label of a Labels layer that a region uses; 0 means every label above 0."""
    return SpinBox(label=label, value=0, min=0, max=2**31 - 1, tooltip=tooltip)


# Largest window offered before an image is chosen (pixels).
_MAX_WINDOW = 1024


def max_window(layer) -> int:
    """Largest FFT window (even, pixels) for an image layer: its smaller side.

    Parameters
    ----------
    layer : napari.layers.Image or None
        The image layer; None gives a generous default.

    Returns
    -------
    int
        At least the engine's smallest window.
    """
    from ..core.pipeline import OPTION_LIMITS

    smallest = OPTION_LIMITS["window"]["min"]
    if layer is None:
        return _MAX_WINDOW
    side = int(min(layer.data.shape[-2:]))
    return max(side - side % 2, smallest)


def show_calibration(layer, label: Label, override: FloatSpinBox) -> None:
    """Show the layer's calibration in ``label``; enable ``override`` only without one."""
    if layer is None:
        label.value = "no image layer"
        override.enabled = False
        return
    calibrated = layer_pixel_size(layer)
    override.enabled = calibrated is None
    if calibrated is None:
        label.value = "none: enter the pixel size below"
    else:
        label.value = f"{calibrated:.5g} nm/pixel (from the layer)"
        # The greyed field showed its default (0.02) beside the true calibration.
        if override.min <= calibrated <= override.max:
            override.value = calibrated


def layer_or_override_pixel_size(layer, override: FloatSpinBox) -> float:
    """Pixel size in nm: the layer's calibration, or the override field's value."""
    calibrated = layer_pixel_size(layer) if layer is not None else None
    return calibrated if calibrated is not None else float(override.value)


def button_row(*buttons) -> Container:
    """Buttons side by side, without a label column or margins."""
    row = Container(widgets=list(buttons), layout="horizontal", labels=False)
    row.margins = (0, 0, 0, 0)
    return row


def read_only_table(
    columns, *, tooltip: str, min_height: int, label: str = "", plain_cells: bool = True
) -> Table:
    """An empty read-only table without row numbers.

    ``plain_cells``: show the cells as the dock formatted them (magicgui's default
    delegate reformats numbers, e.g. a standard deviation of 0.00106 nm as 1.060e-03).
    """
    table = Table(
        value={"data": [], "index": [], "columns": list(columns)}, label=label, tooltip=tooltip
    )
    table.read_only = True
    table.native.verticalHeader().setVisible(False)
    if plain_cells:
        table.native.setItemDelegate(QStyledItemDelegate(table.native))
    table.min_height = min_height
    return table


def span_label_column(widget: Widget) -> None:
    """Give a widget without a label the label column too (a wide table, a status line).

    A labelled magicgui container keeps an empty label cell beside every widget; call
    this after the widget is in its container.
    """
    labeled = widget._labeled_widget()
    if labeled is not None:
        labeled._label_widget.visible = False


def fill_table(table: Table, rows: list, columns) -> None:
    """Replace the table's rows and fit the columns to their contents."""
    table.value = {"data": rows, "index": list(range(len(rows))), "columns": list(columns)}
    table.native.resizeColumnsToContents()


def hold_collections():
    """Keep the garbage collector from starting on its own until released.

    Python starts a collection, unannounced, when enough new objects survived; a full
    one examines every object of the process (~10⁶ in napari: 0.15-0.35 s), and a Run
    that adds a layer makes ~15,000 (napari's controls, visuals, shaders, events), so
    it was often the one to trigger it.  While held (:func:`gc.disable`), collections
    wait; released (:func:`gc.enable`), the collector catches up at its next turn, as
    it would have.  Only the moment changes: nothing is leaked, and explicit
    :func:`gc.collect` calls (napari's on removing a layer) still run.  (Not
    :func:`gc.freeze`, which moves the objects between generations: done while
    napari's collection on closing a viewer ran its finalizers, it crashed Python.)
    Hold it for the second a user waits on a click, not for long work.

    Returns
    -------
    callable
        The release (calling it again does nothing).  A no-op if the collector was off
        already (another hold, or the application's choice): that is left alone.
    """
    if not gc.isenabled():
        return lambda: None
    gc.disable()
    held = [True]

    def release() -> None:
        if held:
            held.clear()
            gc.enable()

    return release


class _CompositionWatch(QObject):
    """Application event filter that starts a timer after the next window composition."""

    def __init__(self, milliseconds: int, slot, timeout: int) -> None:
        app = QApplication.instance()
        super().__init__(app)
        self._milliseconds = milliseconds
        self._slot = slot
        self._watching = True
        app.installEventFilter(self)
        QTimer.singleShot(timeout, self._stop)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.UpdateRequest and obj.isWidgetType() and obj.isWindow():
            milliseconds, slot = self._milliseconds, self._slot
            self._stop()
            # Started while the composition is being handled, a zero timer fires once
            # it is done; the delay counts from there.
            QTimer.singleShot(0, lambda: QTimer.singleShot(milliseconds, slot))
        return False

    def _stop(self) -> None:
        if self._watching:
            self._watching = False
            QApplication.instance().removeEventFilter(self)
            self.deleteLater()


def after_next_composition(milliseconds: int, slot, *, timeout: int = 1000) -> None:
    """Call ``slot`` ``milliseconds`` after the next window composition has been drawn.

    A composition (a top-level window's update request) is when what changed reaches
    the screen: new layers drawn by the canvas, with the docks around it.  How long it
    takes varies (~0.05 s of CPU for a 1920×1080 window under software OpenGL, more
    when new visuals are first drawn), so a timer started beforehand can fire right
    after it, or before it.

    Parameters
    ----------
    milliseconds : int
        Delay after the composition.
    slot : callable
        Called once; not at all if no window is composed within ``timeout``
        milliseconds (the caller keeps its own fallback).
    timeout : int
        Milliseconds to wait for a composition.
    """
    _CompositionWatch(milliseconds, slot, timeout)


def debounce_timer(widget, milliseconds: int, slot) -> QTimer:
    """A single-shot timer: each ``start()`` postpones ``slot`` by ``milliseconds``.

    Bursts of events (a dragged point, painting a region) then cost one update.  The
    timer is a child of ``widget.native``, so it dies with the dock.
    """
    timer = QTimer(widget.native)
    timer.setSingleShot(True)
    timer.setInterval(milliseconds)
    timer.timeout.connect(slot)
    return timer


def _viewer_emitters(viewer):
    """Every event emitter of the viewer, its layer list, dims, camera, cursor and layers."""
    groups = [
        viewer.events,
        viewer.layers.events,
        viewer.layers.selection.events,
        viewer.dims.events,
        camera_of(viewer).events,
        viewer.cursor.events,
        *(layer.events for layer in viewer.layers),
    ]
    for group in groups:
        yield from group.emitters.values()


def _inside(obj, dock) -> bool:
    """Whether ``obj`` is the dock or a widget inside it (e.g. a section of the dock)."""
    if obj is dock:
        return True
    if not isinstance(obj, Widget):  # napari's own Qt objects are never touched
        return False
    try:
        return dock.native.isAncestorOf(obj.native)
    except RuntimeError:  # a deleted Qt widget
        return False


def disconnect_dock(dock, viewer) -> int:
    """Disconnect every callback bound to ``dock`` from the viewer's and layers' events.

    napari keeps a method callback as a weak reference to its object and the method's
    name, so the dock's callbacks are found by their object (the dock or a magicgui
    widget inside it, such as a section of the dock): those the dock connected
    (layer list, dims, camera, selection, watched regions) and the ``reset_choices``
    napari itself connects when it docks a magicgui widget (and leaves connected when
    the dock is removed).

    Returns
    -------
    int
        Number of callbacks disconnected.
    """
    count = 0
    for emitter in _viewer_emitters(viewer):
        for callback in list(emitter.callbacks):
            if (
                isinstance(callback, tuple)
                and isinstance(callback[0], weakref.ref)
                and _inside(callback[0](), dock)
            ):
                emitter.disconnect(callback)
                count += 1
    return count


class _CloseWatcher(QObject):
    """Calls ``on_close`` once, when napari takes the dock's widget out of its dock.

    napari removes a dock (its close button, ``remove_dock_widget``) by setting the inner
    widget's parent to None; closing the viewer destroys the widget instead.
    """

    def __init__(self, native, on_close) -> None:
        super().__init__(native)
        self._on_close = on_close
        native.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        """Watch for the parent change that leaves the widget without a dock."""
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            self._on_close()
        return False


def disconnect_on_close(dock, viewer) -> None:
    """Disconnect ``dock`` from the viewer and its layers when the user closes it.

    The one mechanism of every dock (called once, in ``_connect_events``): when the dock
    is removed from the window or the viewer closes, :func:`disconnect_dock` cuts every
    viewer and layer callback bound to it and the dock's timers are stopped, so that a
    closed dock neither runs nor is kept alive by the viewer.  Connections between the
    dock's own widgets die with it.

    Parameters
    ----------
    dock : magicgui.widgets.Container
        The dock widget; its callbacks must be its own bound methods (not lambdas).
    viewer : napari.Viewer
        The viewer (or napari's proxy of it) the dock was given.
    """
    ref = weakref.ref(dock)

    def close(*_) -> None:
        widget = ref()
        if widget is not None:
            disconnect_dock(widget, viewer)
            # Nor does it run later: a pending debounced update would redraw a plot of
            # a widget being deleted ("FigureCanvasQTAgg has been deleted").
            try:
                timers = widget.native.findChildren(QTimer)
            except RuntimeError:  # being destroyed: its timers go with it
                timers = []
            for timer in timers:
                timer.stop()

    _CloseWatcher(dock.native, close)
    dock.native.destroyed.connect(close)


def result_sources(layers, *, ndim: int | None = None) -> list[str]:
    """Names of the analysed images that have result layers among ``layers``, in order.

    ``ndim``: only result layers of that many dimensions (3 for the maps of a movie).
    """
    sources = []
    for layer in find_result_layers(layers):
        source = result_info(layer).get("source")
        if ndim is not None and layer.ndim != ndim:
            continue
        if source is not None and source not in sources:
            sources.append(source)
    return sources


def maps_source_combo(choices, tooltip: str) -> ComboBox:
    """The 'maps of' chooser: which analysed image's result layers a dock reads.

    ``choices``: a callable returning the names (e.g. from :func:`result_sources`).
    """
    return ComboBox(label="maps of", choices=choices, nullable=True, tooltip=tooltip)


def layer_combo(layer_type, label: str, tooltip: str):
    """A chooser of one layer of ``layer_type`` (napari's list of such layers), or None."""
    return create_widget(annotation=layer_type | None, label=label, options={"tooltip": tooltip})


def default_to_last(combo) -> None:
    """Choose the last entry of a combo box that has no value yet (the newest maps)."""
    if combo.value is None and combo.choices:
        combo.value = combo.choices[-1]


class ResultSourceDock(Container):
    """Base of the docks that recompute from one analysed image's result layers.

    The statistics, time-trace and line-profile docks share the 'maps of' chooser, its
    default (the newest maps) and a debounced recompute when layers come and go.  A
    subclass builds ``self._source`` with :func:`maps_source_combo` on
    ``self._source_choices``, and sets :attr:`source_ndim` to 3 to offer only the maps
    of movies.  Its ``__init__`` calls ``Container.__init__``, sets its own state and
    then :meth:`_build`, which runs its ``_init_widgets``, ``_init_layout`` and
    ``_connect_events`` and the shared wiring; :meth:`_recompute` is its update.
    """

    #: Dimensions of the result layers offered (None: any).
    source_ndim: int | None = None

    def _build(self, viewer) -> None:
        """Build the dock on ``viewer``: the subclass's steps, the shared events, an update.

        Bursts of events (painting a region, dragging a line, layers added one by one)
        are coalesced by a 150 ms timer into one :meth:`_recompute`; the dock
        disconnects from the viewer when it is closed (:func:`disconnect_on_close`).
        """
        self._viewer = viewer
        # The region or line layer whose edits reschedule the update (watch_edits).
        self._watched: list = []
        self._init_widgets()
        self._init_layout()
        fit_dock(self)
        self._timer = debounce_timer(self, 150, self._recompute)
        self._source.changed.connect(self._schedule)
        self._connect_events()
        self._viewer.layers.events.inserted.connect(self._on_layers_changed)
        self._viewer.layers.events.removed.connect(self._on_layers_changed)
        disconnect_on_close(self, self._viewer)
        self.reset_choices()
        self._recompute()

    def _recompute(self) -> None:
        """Update the dock from the chosen maps (each subclass's own computation)."""
        raise NotImplementedError

    def _source_choices(self, widget=None) -> list[str]:
        return result_sources(self._viewer.layers, ndim=self.source_ndim)

    def reset_choices(self, *args) -> None:
        """Refresh the lists (napari calls this when layers change)."""
        super().reset_choices(*args)
        default_to_last(self._source)

    def _schedule(self, event=None) -> None:
        self._timer.start()

    def _on_layers_changed(self, event=None) -> None:
        self.reset_choices()
        self._schedule()
