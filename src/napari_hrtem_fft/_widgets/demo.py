"""A ready-made session: the sample particle, the three docks and a finished analysis.

Used by ``scripts/demo.py`` and ``scripts/screenshots.py``::

    viewer = napari.Viewer()
    build_demo(viewer)
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QApplication

__all__ = ["build_demo", "core_shell_regions"]


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


def build_demo(viewer, *, window: int = 128, step: int = 8) -> dict:
    """Load the Pd core-shell sample, dock the widgets, pick reflections and map them.

    The analysis runs synchronously (the widgets' Run button runs the same generator
    in a worker thread).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        An empty viewer.
    window, step : int
        FFT window and map step in pixels.

    Returns
    -------
    dict
        The widgets (``picker``, ``maps``, ``statistics``) and the ``image`` layer.
    """
    from .._sample_data import make_core_shell_sample
    from . import LatticeMapWidget, LatticeStatisticsWidget, ReflectionPickerWidget

    ((data, kwargs, _),) = make_core_shell_sample()
    image = viewer.add_image(data, **kwargs)
    pixel_size = float(image.scale[-1])
    regions = viewer.add_labels(
        core_shell_regions(data.shape, pixel_size=pixel_size, core=3.0, shell=(5.0, 6.3)),
        name="regions (core, shell)",
        features={"index": [0, 1, 2], "name": ["", "core", "shell"]},
        scale=image.scale,
        translate=image.translate,
        units=tuple(str(u) for u in image.units),
        opacity=0.35,
        visible=False,
    )

    picker = ReflectionPickerWidget(viewer)
    maps_widget = LatticeMapWidget(viewer)
    statistics = LatticeStatisticsWidget(viewer)
    # Tabs in one dock area: each widget gets the full height.
    viewer.window.add_dock_widget(picker, name="Reflection picker (FFT)", area="right")
    viewer.window.add_dock_widget(maps_widget, name="Lattice maps", area="right", tabify=True)
    viewer.window.add_dock_widget(statistics, name="Lattice statistics", area="right", tabify=True)

    picker._image.value = image
    picker._window.value = window
    picker.suggest()

    maps_widget.reset_choices()
    maps_widget._image.value = image
    maps_widget._reflections.value = picker.reflections_layer
    maps_widget._window.value = window
    maps_widget._step.value = step
    maps_widget.run_blocking()
    statistics.reset_choices()
    statistics._regions.value = regions
    statistics.update_statistics()
    for layer in viewer.layers:
        if layer.name.startswith("FFT"):
            layer.visible = False  # the maps are the point now
    # Bring the maps tab to the front and let Qt lay the docks out before any screenshot.
    maps_widget.native.parent().raise_()
    QApplication.processEvents()
    return {"picker": picker, "maps": maps_widget, "statistics": statistics, "image": image}
