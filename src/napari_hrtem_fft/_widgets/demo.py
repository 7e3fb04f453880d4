"""A ready-made session: the sample particle, the three docks and a finished analysis.

Used by ``scripts/demo.py`` and ``scripts/screenshots.py``::

    viewer = napari.Viewer()
    build_demo(viewer)
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QApplication

__all__ = ["add_sample", "build_demo", "core_shell_regions", "dock_tabs", "hide_fft_layers"]


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


def add_sample(viewer):
    """Add the plugin's sample (the calibrated Pd core-shell particle); return its layer."""
    from .._sample_data import make_core_shell_sample

    ((data, kwargs, _),) = make_core_shell_sample()
    return viewer.add_image(data, **kwargs)


def dock_tabs(viewer, docks: dict) -> None:
    """Dock widgets as tabs of the right dock area (each gets the full height).

    ``docks`` maps the dock titles to the widgets, first tab first.
    """
    for k, (name, widget) in enumerate(docks.items()):
        viewer.window.add_dock_widget(widget, name=name, area="right", tabify=k > 0)


def hide_fft_layers(viewer) -> None:
    """Hide the picker's FFT window and region layers: the maps are the point now."""
    for layer in viewer.layers:
        if layer.name.startswith("FFT"):
            layer.visible = False


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
    from . import LatticeMapWidget, LatticeStatisticsWidget, ReflectionPickerWidget

    image = add_sample(viewer)
    pixel_size = float(image.scale[-1])
    regions = viewer.add_labels(
        core_shell_regions(image.data.shape, pixel_size=pixel_size, core=3.0, shell=(5.0, 6.3)),
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
    dock_tabs(
        viewer,
        {
            "Reflection picker (FFT)": picker,
            "Lattice maps": maps_widget,
            "Lattice statistics": statistics,
        },
    )

    picker._image.value = image
    picker._window.value = window
    picker.suggest()

    maps_widget.choose_inputs(image, picker.reflections_layer, window=window, step=step)
    maps_widget.run_blocking()
    statistics.reset_choices()
    statistics._regions.value = regions
    statistics.update_statistics()
    hide_fft_layers(viewer)
    # Bring the maps tab to the front and let Qt lay the docks out before any screenshot.
    maps_widget.native.parent().raise_()
    QApplication.processEvents()
    return {"picker": picker, "maps": maps_widget, "statistics": statistics, "image": image}
