"""A ready-made session: the sample particle, the three docks and a finished analysis.

Everything is opened as a user opens it: the sample through File › Open Sample, a file
through the plugin's reader, the docks through the Plugins menu
(``add_plugin_dock_widget``).  Used by ``scripts/demo.py`` and
``scripts/screenshots.py``::

    viewer = napari.Viewer()
    build_demo(viewer)
"""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage
from qtpy.QtWidgets import QApplication, QDockWidget, QScrollArea

__all__ = [
    "MAPS",
    "PICKER",
    "PLUGIN",
    "SCREEN",
    "STATISTICS",
    "build_demo",
    "core_shell_regions",
    "focus_dock",
    "hide_fft_layers",
    "open_dock",
    "open_sample",
    "screenshot",
    "settle",
]

PLUGIN = "napari-hrtem-fft"
PICKER = "Reflection picker (FFT)"
MAPS = "Lattice maps (d-spacing, angle, strain)"
STATISTICS = "Lattice statistics (d, angle per region)"
# The screen the documentation's screenshots show (pixels, width × height).
SCREEN = (1920, 1080)


def core_shell_regions(shape, *, pixel_size: float, core: float, shell: tuple[float, float]):
    """Labels 1 (core: r < ``core``) and 2 (shell: ``shell[0]`` ≤ r < ``shell[1]``).

    Radii in nm from the image centre, where the sample particle sits.

    Returns
    -------
    numpy.ndarray
        ``uint8`` label image of ``shape``.
    """
    y, x = np.indices(shape, dtype=np.float64)
    r = np.hypot(y - shape[0] / 2, x - shape[1] / 2) * pixel_size
    labels = np.zeros(shape, dtype=np.uint8)
    labels[r < core] = 1
    labels[(r >= shell[0]) & (r < shell[1])] = 2
    return labels


def open_sample(viewer):
    """Open the plugin's sample (the Pd core-shell particle) as File › Open Sample does.

    Returns
    -------
    napari.layers.Image
        The calibrated sample layer.
    """
    (layer,) = viewer.open_sample(PLUGIN, "pd_core_shell")
    return layer


def open_dock(viewer, name: str):
    """Open one of the plugin's docks as Plugins › napari-hrtem-fft does; return the widget.

    napari builds the widget with a ``PublicOnlyProxy`` of the viewer, so what it shows
    is what users get.
    """
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def settle(seconds: float = 0.6) -> None:
    """Let Qt lay out and paint (docks, OpenGL canvases)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def focus_dock(viewer, widget, *, others: int = 200, show=None) -> None:
    """Give the dock of ``widget`` most of its column; the others keep ``others`` px.

    As a user does by dragging the bars between the docks; ``show`` (a widget of the
    dock, e.g. its status line; magicgui or Qt) is then scrolled into view.
    """
    window = viewer.window._qt_window
    right = Qt.DockWidgetArea.RightDockWidgetArea
    column = [
        dock
        for dock in window.findChildren(QDockWidget)
        if dock.isVisible() and window.dockWidgetArea(dock) == right
    ]
    focus = widget.native
    while not isinstance(focus, QDockWidget):
        focus = focus.parentWidget()
    total = sum(dock.height() for dock in column)
    rest = total - others * (len(column) - 1)
    sizes = [rest if dock is focus else others for dock in column]
    window.resizeDocks(column, sizes, Qt.Orientation.Vertical)
    settle()
    if show is not None:
        show = getattr(show, "native", show)  # a magicgui widget or a Qt widget
        scroll = show.parentWidget()
        while not isinstance(scroll, QScrollArea):
            scroll = scroll.parentWidget()
        scroll.ensureWidgetVisible(show)
        settle()


def screenshot(viewer, path) -> None:
    """Save the whole window as ``path`` (PNG); refuse a picture not of the screen size."""
    settle(1.0)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    size = QImage(str(path)).size()
    if (size.width(), size.height()) != SCREEN:
        raise RuntimeError(f"{path}: {size.width()}×{size.height()}, not {SCREEN[0]}×{SCREEN[1]}")
    compact_png(path)


def compact_png(path) -> None:
    """Rewrite the PNG ``path`` with a 256-colour palette of its own colours.

    A full-colour screenshot of noisy micrographs and spectra takes ~2 MB; the palette
    (an octree of the picture's colours, no dithering) keeps text, colour bars and maps
    as seen at a quarter of the size, so that the documentation stays small in the
    repository and on a package index page.  Pillow comes with napari.
    """
    from PIL import Image

    with Image.open(path) as picture:
        rgb = picture.convert("RGB")
    rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def hide_fft_layers(viewer) -> None:
    """Hide the picker's FFT window and region layers: the maps are the point now."""
    for layer in viewer.layers:
        if layer.name.startswith("FFT"):
            layer.visible = False


def build_demo(viewer, *, path=None, window: int = 128, step: int = 8) -> dict:
    """Open the sample (or ``path``) and the three docks, pick reflections and map them.

    The analysis runs synchronously (the widgets' Run button runs the same generator
    in a worker thread).  With the sample, a Labels layer of its core and shell feeds
    the statistics dock.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        An empty viewer.
    path : str or pathlib.Path, optional
        A micrograph to open with the plugin's reader instead of the sample (its first
        image).
    window, step : int
        FFT window and map step in pixels.

    Returns
    -------
    dict
        The widgets (``picker``, ``maps``, ``statistics``) and the ``image`` layer.
    """
    if path is None:
        image = open_sample(viewer)
        pixel_size = float(image.scale[-1])
        regions = viewer.add_labels(
            core_shell_regions(
                image.data.shape, pixel_size=pixel_size, core=3.0, shell=(5.0, 6.3)
            ),
            name="regions (core, shell)",
            features={"index": [0, 1, 2], "name": ["", "core", "shell"]},
            scale=image.scale,
            translate=image.translate,
            units=tuple(str(u) for u in image.units),
            opacity=0.35,
            visible=False,
        )
    else:
        image = viewer.open(str(path), plugin=PLUGIN)[0]
        regions = None

    picker = open_dock(viewer, PICKER)
    maps_widget = open_dock(viewer, MAPS)
    statistics = open_dock(viewer, STATISTICS)

    picker._image.value = image
    picker._window.value = window
    picker.suggest()

    maps_widget.choose_inputs(image, window=window, step=step)
    maps_widget.run_blocking()
    statistics.reset_choices()
    if regions is not None:
        statistics._regions.value = regions
    statistics.update_statistics()
    hide_fft_layers(viewer)
    QApplication.processEvents()
    return {"picker": picker, "maps": maps_widget, "statistics": statistics, "image": image}
