"""The statistics dock on the sample, opened from the Plugins menu at 1920×1080: the
table's columns fit the dock's width (no sideways scrolling), each row names its
reflection and region."""

from __future__ import annotations

import time

import pytest
from qtpy.QtWidgets import QApplication

from napari_hrtem_fft._widgets.demo import build_demo

SCREEN = (1920, 1080)


def _settle(seconds: float = 0.5) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def test_statistics_table_fits_the_dock_width(make_napari_viewer):
    screen = QApplication.primaryScreen().availableGeometry()
    if (screen.width(), screen.height()) < SCREEN:
        pytest.skip(f"needs a {SCREEN[0]}×{SCREEN[1]} screen")
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*SCREEN)
    widgets = build_demo(viewer)  # sample, picker, maps and statistics docks, one run
    stats = widgets["statistics"]
    stats.update_statistics()
    _settle()
    table = stats._table.native
    # 3 reflections × (core, shell), each row "k region".
    cells = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert cells == ["1 core", "1 shell", "2 core", "2 shell", "3 core", "3 shell"]
    header = table.horizontalHeader()
    # Every column at least as wide as its contents, all of them inside the view.
    widths = [header.sectionSize(c) for c in range(header.count())]
    assert all(w >= table.sizeHintForColumn(c) for c, w in enumerate(widths))
    assert header.length() <= table.viewport().width()
    assert not table.horizontalScrollBar().isVisible()
