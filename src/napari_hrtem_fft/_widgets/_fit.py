"""Docks that fit the screen: the form scrolls, and text wraps instead of being cut.

napari stacks the docks opened from the Plugins menu in one column and never lets a
dock be shorter than its contents, so three docks made the main window taller than
a 1920×1080 screen (issue 9).  :func:`fit_dock`, called once at the end of a dock's
``__init__``, puts the dock's form in a vertical scroll area: the dock asks for its
full height when there is room and shrinks to a scrolled view when there is not.
Its text labels wrap, so a long status line makes the dock taller, never wider,
and no text is cut.

napari embeds a magicgui widget's ``.native`` (the widget holding the layout), so
magicgui's own ``Container(scrollable=True)``, whose scroll area sits above
``.native``, never reaches the dock; the scroll area here is inside ``.native``.
"""

from __future__ import annotations

from magicgui.widgets import Container, Label
from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QStyle, QVBoxLayout, QWidget

__all__ = ["MIN_DOCK_HEIGHT", "fit_dock"]

# Smallest height (screen pixels) a scrolled dock shrinks to: a few rows stay visible.
MIN_DOCK_HEIGHT = 100


class _FitScrollArea(QScrollArea):
    """A vertical scroll area whose size hints follow its form.

    Preferred size: the whole form.  Minimum: the form's width (no horizontal
    scrolling, nothing cut) and at most :data:`MIN_DOCK_HEIGHT` of its height.
    """

    def __init__(self, form: QWidget, parent: QWidget) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setWidget(form)
        # The form's size hints change with its contents (new rows, longer text).
        form.installEventFilter(self)

    def _bar_width(self) -> int:
        return self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)

    def sizeHint(self) -> QSize:
        form = self.widget().sizeHint()
        return QSize(form.width() + self._bar_width(), form.height())

    def minimumSizeHint(self) -> QSize:
        form = self.widget().minimumSizeHint()
        return QSize(form.width() + self._bar_width(), min(form.height(), MIN_DOCK_HEIGHT))

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)


def _labels(container: Container):
    """The magicgui Labels of ``container`` and of its nested containers."""
    for widget in container:
        if isinstance(widget, Label):
            yield widget
        elif isinstance(widget, Container):
            yield from _labels(widget)


def fit_dock(dock: Container) -> None:
    """Make ``dock`` fit any screen: a scrolled form whose text labels wrap.

    Call once, at the end of the dock's ``__init__``.  Widgets appended later still
    land in the form (magicgui keeps the same layout object).

    Parameters
    ----------
    dock : magicgui.widgets.Container
        The dock widget napari embeds (through its ``.native``).
    """
    for label in _labels(dock):
        # magicgui fixes a Label's size to its text; a wrapped label must be free to
        # narrow (Preferred) and to grow to the height its lines need (Minimum).
        label.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        label.native.setWordWrap(True)
    outer = dock.native
    form = QWidget()
    # A widget may take another widget's layout: the form's rows move with it.
    form.setLayout(outer.layout())
    scroll = _FitScrollArea(form, outer)
    layout = QVBoxLayout(outer)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(scroll)
