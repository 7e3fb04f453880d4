"""Every dock disconnects what it connected when the user closes it.

Each manifest dock (the live acquisition is a section of the time-trace dock) is opened
from the Plugins menu path (``add_plugin_dock_widget``) on a viewer holding everything
a dock listens to (an image, a movie, their result layers, reflections, shapes and
labels), then removed as its close button removes it (``remove_dock_widget``).  The
viewer's and the layers' event emitters must then have exactly the callbacks they had
before the dock was opened: a closed dock neither runs nor is kept alive by the viewer.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest
from qtpy.QtCore import QTimer
from widget_sample import PIXEL_SIZE

from napari_hrtem_fft._napari.calibration import camera_of
from napari_hrtem_fft._napari.display import canvas_overlay
from napari_hrtem_fft._napari.layers import maps_to_layers
from napari_hrtem_fft.core.engine import analyze
from napari_hrtem_fft.core.synthetic import pd_110_reflections

DOCKS = [
    "Reflection picker (FFT)",
    "Lattice maps (d-spacing, angle, strain)",
    "Lattice statistics (d, angle per region)",
    "Time traces (d, strain vs time)",
    "Line profile (d, strain, phase along a line)",
]


def _callback_counts(viewer, layers) -> dict[str, int]:
    """Number of callbacks of every event emitter of the viewer and of ``layers``."""
    groups = {
        "viewer": viewer.events,
        "layers": viewer.layers.events,
        "selection": viewer.layers.selection.events,
        "dims": viewer.dims.events,
        "camera": camera_of(viewer).events,
        "cursor": viewer.cursor.events,
        **{f"layer {layer.name!r}": layer.events for layer in layers},
    }
    return {
        f"{group}.{name}": len(emitter.callbacks)
        for group, events in groups.items()
        for name, emitter in events.emitters.items()
    }


def _bound_to(viewer, obj) -> list[str]:
    """Names of the methods of ``obj`` connected to the viewer's or its layers' events."""
    groups = [viewer.layers.events, viewer.layers.selection.events, viewer.dims.events]
    groups += [camera_of(viewer).events, viewer.cursor.events, viewer.events]
    groups += [layer.events for layer in viewer.layers]
    return [
        cb[1]
        for group in groups
        for emitter in group.emitters.values()
        for cb in emitter.callbacks
        if isinstance(cb, tuple) and isinstance(cb[0], weakref.ref) and cb[0]() is obj
    ]


@pytest.fixture
def busy_viewer(make_napari_viewer, sample):
    """A viewer with an image and a 2-frame movie, their maps, reflections and regions."""
    viewer = make_napari_viewer()
    crop = sample[0][384:640, 384:640].astype(np.float32)
    refl = pd_110_reflections()
    scale = (PIXEL_SIZE, PIXEL_SIZE)
    image = viewer.add_image(crop, name="Pd", scale=scale, units="nm")
    movie = viewer.add_image(
        np.stack([crop, crop]), name="movie", scale=(1.0, *scale), units=("s", "nm", "nm")
    )
    for layer in (image, movie):
        maps = analyze(layer.data, refl, pixel_size=PIXEL_SIZE, window=64, step=16)
        for data, kwargs, _ in maps_to_layers(
            maps, image_scale=layer.scale, units=layer.units, source=layer.name
        ):
            viewer.add_image(data, **kwargs)
    viewer.add_points(refl, name="reflections")
    viewer.add_shapes([np.array([[1.0, 1.0], [3.0, 3.0]])], shape_type="rectangle", name="regions")
    viewer.add_labels(np.zeros(crop.shape, dtype=np.uint8), name="labels", scale=scale)
    # Maps are shown with napari's scale bar, whose visual then follows the camera and
    # dims (napari's connections, not a dock's); the maps dock builds it on opening.
    canvas_overlay(viewer, "scale_bar").visible = True
    return viewer


@pytest.mark.parametrize("name", DOCKS)
def test_closing_a_dock_leaves_no_connection_behind(busy_viewer, qtbot, name):
    viewer = busy_viewer
    layers = list(viewer.layers)
    before = _callback_counts(viewer, layers)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", name)
    qtbot.wait(50)  # debounced updates run, as they would for a user
    # The dock listens (napari connects its reset_choices): the check below means something.
    assert "reset_choices" in _bound_to(viewer, widget)
    assert _callback_counts(viewer, layers) != before

    viewer.window.remove_dock_widget(dock)
    assert _bound_to(viewer, widget) == []
    # Nor does it run later: no timer of it is left pending (a debounced update would
    # draw a plot of a dock that is being deleted).
    assert [t for t in widget.native.findChildren(QTimer) if t.isActive()] == []
    after = _callback_counts(viewer, layers)
    left = {k: (before[k], after[k]) for k in before if after.get(k) != before[k]}
    assert not left, f"{name}: callbacks (before, after closing): {left}"
