"""The time-trace dock's Live section set up on a folder, as the Live tests use it."""

from __future__ import annotations

TRACES = "Time traces (d, strain vs time)"
PIXEL = 0.02  # nm


def live_dock(viewer, tmp_path, *, regions=None):
    """The dock opened as a user does, its Live section on the empty folder ``acq``.

    64-pixel windows, the store ``live.zarr`` in ``tmp_path``, ``regions`` (a Shapes
    layer) as the trace regions.  Returns ``(widget, dock, folder)``.
    """
    folder = tmp_path / "acq"
    folder.mkdir()
    widget, dock = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", TRACES)
    live = dock._live
    live._source.value = folder
    live._pixel.value = PIXEL
    live._window.value = 64
    live._store.value = tmp_path / "live.zarr"
    if regions is not None:
        live._regions.value = regions
    return widget, dock, folder
