"""Maps as a user sees them from the Plugins menu: one at a time, titled colour bar, scale bar.

The docks are opened with ``add_plugin_dock_widget`` so that they get napari's
``PublicOnlyProxy`` viewer, as users' docks do.
"""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest

from napari_hrtem_fft._napari.display import (
    add_map_layers,
    choose_map,
    show_map,
    warm_overlays,
)
from napari_hrtem_fft._napari.shaders import speed_up_comment_stripping, strip_comments
from napari_hrtem_fft._widgets._common import after_next_composition, hold_collections
from napari_hrtem_fft.layers import find_result_layers, result_maps

PICKER = "Reflection picker (FFT)"
MAPS = "Lattice maps (d-spacing, angle, strain)"


def open_docks(viewer, image, *, step: int):
    """Picker and maps docks from the Plugins menu, reflections suggested, inputs chosen."""
    _, picker = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", PICKER)
    _, maps = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", MAPS)
    picker._image.value = image
    picker._window.value = 64
    picker.suggest()
    maps.choose_inputs(image, window=64, step=step)
    return maps


@pytest.fixture
def plugin_maps(viewer_with_sample):
    viewer, image = viewer_with_sample
    open_docks(viewer, image, step=16).run_blocking()
    return viewer, image, find_result_layers(viewer.layers, source=image.name)


def test_selected_map_shows_alone_with_titled_colour_bar(plugin_maps):
    viewer, image, (layer,) = plugin_maps
    choose_map(layer, ("exx", None))
    show_map(viewer, layer)
    assert layer.name == "exx · Pd" and layer.visible and layer.colorbar.visible
    assert image.visible
    overlays = viewer.canvas.overlays
    assert overlays["text"].visible
    assert overlays["text"].text == "exx · Pd [dimensionless]"
    assert overlays["scale_bar"].visible

    # Every map as a layer: selecting one shows it alone, the others hidden.
    singles = add_map_layers(viewer, layer)
    d1 = next(la for la in singles if la.name.startswith("d-spacing 1"))
    viewer.layers.selection.active = d1
    assert d1.visible and d1.colorbar.visible
    assert not layer.visible and not layer.colorbar.visible
    assert not any(la.visible for la in singles if la is not d1)
    assert overlays["text"].text.startswith(d1.name)
    assert overlays["text"].text.endswith("[nm]")


def test_maps_are_opaque(plugin_maps):
    _, _, results = plugin_maps
    assert all(layer.opacity == 1.0 for layer in results)


def _flat_maps(d, reflections):
    """Maps of spacing ``d`` (window 32, step 16, 0.02 nm/px), other fields flat."""
    from napari_hrtem_fft.core.maps import LatticeMaps

    flat = np.zeros_like(d)
    return LatticeMaps(
        d_spacing=d,
        angle=flat,
        amplitude=np.ones_like(d),
        d_sigma=flat,
        angle_sigma=flat,
        reflections=np.array(reflections),
        window=32,
        step=16,
        pixel_size=0.02,
    )


def test_a_mostly_empty_reflection_is_named_with_what_to_try():
    from napari_hrtem_fft._napari.display import empty_map_warnings

    d = np.full((2, 20, 20), 0.2, dtype=np.float32)
    d[1, :, :15] = np.nan  # reflection 2: 75 % empty
    maps = _flat_maps(d, [[0.0, 5.0], [-4.0, 0.0]])
    (message,) = empty_map_warnings(maps)
    assert message.startswith("Reflection 2 (d = 0.2500 nm)")
    assert "amplitude threshold" in message and "Try a larger window" in message
    maps.d_spacing = np.full_like(d, np.nan)
    (message,) = empty_map_warnings(maps)
    assert message.startswith("No window gave a lattice spacing")
    maps.d_spacing = np.full_like(d, 0.2)
    assert empty_map_warnings(maps) == []


def test_maps_emptied_by_the_crystal_mask_share_one_message_naming_the_mask():
    # A particle on an amorphous film: the engine's maps were full enough (no
    # diagnosis), the crystal mask removed the film.  One message for all reflections,
    # naming the mask, not the amplitude threshold.
    from napari_hrtem_fft._napari.display import empty_map_warnings

    d = np.full((3, 20, 20), 0.2, dtype=np.float32)
    d[:2, :, :13] = np.nan  # reflections 1 and 2: 12 of 18 inner columns empty
    maps = _flat_maps(d, [[0.0, 5.0], [-4.0, 0.0], [3.0, 4.0]])
    maps.parameters.update(masks=["crystal mask"], diagnostics={})
    (message,) = empty_map_warnings(maps)
    assert message.startswith("Reflections 1, 2 (d = 0.2000, 0.2500 nm): 67 % of each map")
    assert "outside the crystal mask" in message and "amplitude" not in message
    maps.parameters["diagnostics"] = {"1": "mostly below amplitude threshold"}
    mask, engine = empty_map_warnings(maps)  # in the order of the reflections
    assert engine.startswith("Reflection 2 (d = 0.2500 nm): 67 % of its map")
    assert mask.startswith("Reflection 1 (d = 0.2000 nm): 67 % of its map")
    maps.parameters["diagnostics"] = {
        "0": "mostly below amplitude threshold (60%; median amplitude 2.83): weak",
        "1": "mostly below amplitude threshold (67%; median amplitude 2.95): weak",
    }
    (both,) = empty_map_warnings(maps)
    assert both == (
        "Reflections 1, 2 (d = 0.2000, 0.2500 nm): 67 % of each map is empty inside the "
        "image; mostly below amplitude threshold: weak. Or remove them (strain needs "
        "every reflection)."
    )


def test_closing_the_viewer_during_a_run_leaves_python_running(viewer_with_sample, qtbot):
    # Issue 9 item 4: closing the viewer while a run is in progress used to raise
    # "wrapped C/C++ object ... has been deleted" from the worker's slots.
    viewer, image = viewer_with_sample
    maps = open_docks(viewer, image, step=4)
    maps.start()
    worker = maps.worker
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)
    qtbot.wait(200)  # queued signals delivered (they must reach no deleted widget)


def test_two_images_have_their_own_named_maps_and_a_rerun_replaces_only_its_own(
    viewer_with_sample,
):
    viewer, image = viewer_with_sample
    other = viewer.add_image(image.data, name="PZO", scale=image.scale, units="nm")
    maps = open_docks(viewer, image, step=16)
    maps.run_blocking()
    maps.choose_inputs(other, image, window=64, step=16)  # the reflections picked on Pd
    maps.run_blocking()
    mine = result_maps(viewer.layers, source="Pd")
    theirs = result_maps(viewer.layers, source="PZO")
    assert len(mine) == len(theirs) > 0
    assert all(m.name.endswith(" · Pd") for m in mine)
    assert all(m.name.endswith(" · PZO") for m in theirs)
    assert {m.name for m in mine}.isdisjoint(m.name for m in theirs)
    # One layer each, each named after its image.
    (pd_layer,) = find_result_layers(viewer.layers, source="Pd")
    (pzo_layer,) = find_result_layers(viewer.layers, source="PZO")
    assert pd_layer.name.endswith(" · Pd") and pzo_layer.name.endswith(" · PZO")
    # A re-run of PZO at another step: its maps change, those of Pd stay as they were.
    before = {m.name: np.array(m.data) for m in mine}
    maps._step.value = 32
    maps.run_blocking()
    assert all(m.data.shape == (32, 32) for m in result_maps(viewer.layers, source="PZO"))
    after = result_maps(viewer.layers, source="Pd")
    assert [m.name for m in after] == list(before)
    for m in after:
        np.testing.assert_array_equal(m.data, before[m.name])
    # The status line wraps and holds the whole text as its tooltip.
    assert maps._status.value.startswith("done") and maps._status.tooltip == maps._status.value


def test_a_new_image_gets_one_layer_when_its_maps_arrive(viewer_with_sample, qtbot):
    # The layer is added with the maps, not at the click (napari's work on a new layer
    # beside the analysis made both threads take turns on the GIL).
    viewer, image = viewer_with_sample
    maps = open_docks(viewer, image, step=16)
    n_layers = len(viewer.layers)
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (5.0, 5.0)  # nm: over the particle
    maps.start()
    # Until the maps are drawn, the garbage collector does not start on its own.
    assert not gc.isenabled()
    assert len(viewer.layers) == n_layers
    qtbot.waitUntil(lambda: not maps.running, timeout=30_000)
    (layer,) = find_result_layers(viewer.layers, source="Pd")
    assert len(viewer.layers) == n_layers + 1 and layer.name.startswith("d-spacing 1 (")
    # The status bar names the map under the cursor.
    # (A string or, in some napari versions, a dict of its parts.)
    assert layer.name in str(viewer.status)
    assert layer.opacity == 1 and layer.colorbar.visible and layer.colorbar.opacity == 1
    assert np.isfinite(layer.data).any() and layer.colormap.name == "viridis"
    assert layer.data.shape == (64, 64)  # 1024 / 16
    np.testing.assert_allclose(layer.scale, 16 * np.asarray(image.scale))
    # A re-run updates that layer in place.
    maps.start()
    assert len(viewer.layers) == n_layers + 1
    qtbot.waitUntil(lambda: not maps.running, timeout=30_000)
    assert find_result_layers(viewer.layers, source="Pd") == [layer]
    qtbot.waitUntil(gc.isenabled, timeout=2_000)


def test_holding_collections_pauses_the_collector_until_released(qtbot):
    qtbot.waitUntil(gc.isenabled, timeout=2_000)  # an earlier run's hold is released
    release = hold_collections()
    assert not gc.isenabled()
    # A second hold leaves the first (or the application's own choice) alone.
    hold_collections()()
    assert not gc.isenabled()
    release()
    assert gc.isenabled()
    release()  # again: nothing
    assert gc.isenabled()


def _drawn_window(qtbot):
    """A shown top-level window whose first drawing is done."""
    from qtpy.QtWidgets import QLabel

    window = QLabel("before")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(300)
    return window


def test_after_next_composition_waits_for_a_window_to_be_drawn(qtbot):
    window = _drawn_window(qtbot)
    calls = []
    after_next_composition(0, lambda: calls.append("called"), timeout=5_000)
    qtbot.wait(200)  # nothing drawn: no call
    assert calls == []
    window.setText("after")  # the window is composed again
    qtbot.waitUntil(lambda: calls == ["called"], timeout=2_000)
    window.setText("again")
    qtbot.wait(100)
    assert calls == ["called"]  # once only


def test_after_next_composition_gives_up_after_its_timeout(qtbot):
    window = _drawn_window(qtbot)
    calls = []
    after_next_composition(0, lambda: calls.append("called"), timeout=50)
    qtbot.wait(150)
    window.setText("after")
    qtbot.wait(150)
    assert calls == []  # the caller's own fallback releases instead


def test_opening_the_maps_dock_warms_the_scale_bar_unseen(viewer_with_sample, qtbot):
    # The first map of a calibrated image shows napari's scale bar, whose visual (text
    # program, line) was built inside that Run: the dock builds it when it opens,
    # transparent, and puts the bar back as it was once it is drawn.
    viewer, image = viewer_with_sample
    bar = viewer.canvas.overlays["scale_bar"]
    assert not bar.visible and str(image.units[-1]) == "nanometer"
    viewer.window.add_plugin_dock_widget("napari-hrtem-fft", MAPS)
    qtbot.waitUntil(lambda: bar.visible, timeout=5_000)
    assert bar.opacity == 0
    qtbot.waitUntil(lambda: not bar.visible, timeout=5_000)
    assert bar.opacity == 1


def test_the_warm_scale_bar_stays_when_a_map_is_shown_meanwhile(viewer_with_sample):
    viewer, image = viewer_with_sample
    maps = open_docks(viewer, image, step=16)
    bar, text = viewer.canvas.overlays["scale_bar"], viewer.canvas.overlays["text"]
    bar.visible = text.visible = False
    undo = warm_overlays(viewer, image)
    assert bar.visible and bar.opacity == 0 and text.visible and text.opacity == 0
    maps.run_blocking()  # a Run before the warm-up is undone
    undo()
    assert bar.visible and bar.opacity == 1
    assert text.visible and text.opacity == 1 and text.text.startswith("d-spacing 1")


def test_an_uncalibrated_image_leaves_the_scale_bar_alone(viewer_with_sample):
    viewer, _ = viewer_with_sample
    pixels = viewer.add_image(np.zeros((64, 64), np.float32), name="pixels")
    bar = viewer.canvas.overlays["scale_bar"]
    bar.visible = False
    undo = warm_overlays(viewer, pixels)
    assert not bar.visible
    undo()
    assert not bar.visible and bar.opacity == 1


@pytest.mark.parametrize(
    "code",
    [
        "void main() { // a comment\n  gl_Position = vec4(0.0); }\n",
        "a // b // c\n// whole line\nno comment\n\n//\n  x = 1; //// y",
        "uniform float u_x; // http://example.org/a//b\r\nvarying vec2 v; //",
        "",
    ],
)
def test_vispy_comment_stripping_is_done_linearly_with_the_same_result(code):
    assert strip_comments(code) == re.sub(r"(.*)(//.*)", r"\1", code, flags=re.M)


def test_vispy_shader_programs_parse_the_same_variables_after_the_dock_opens(viewer_with_sample):
    # The dock gives vispy's shader module linear comment stripping; a program parses
    # the same uniforms, attributes and varyings as with the regex, on vispy's own
    # (long, commented) text-visual shaders.
    from vispy.gloo import Program, program
    from vispy.visuals.text import text as vispy_text

    viewer, _ = viewer_with_sample
    viewer.window.add_plugin_dock_widget("napari-hrtem-fft", MAPS)
    assert speed_up_comment_stripping()
    vertex, fragment = vispy_text._VERTEX_SHADER, vispy_text._FRAGMENT_SHADER
    code = f"{vertex}\n\n{fragment}"
    assert "//" in code
    assert program.re.sub(r"(.*)(//.*)", r"\1", code, flags=re.M) == re.sub(
        r"(.*)(//.*)", r"\1", code, flags=re.M
    )
    assert program.re.finditer is re.finditer  # every other use of re is re's
    variables = Program(vertex, fragment).variables
    assert ("uniform", "sampler2D", "u_font_atlas") in variables
    assert ("attribute", "vec2", "a_texcoord") in variables


@pytest.mark.parametrize(
    ("old", "new", "events"),
    [
        ((0.0, 1.0), (0.2, 0.25), 1),  # the new range clips the limits to itself
        ((0.2, 0.25), (-0.01, 0.01), 1),  # disjoint: napari resets them to the range
        ((0.0, 1.0), (0.5, 2.0), 2),  # clipped to (0.5, 1.0) first
    ],
)
def test_a_layer_updated_in_place_gets_the_new_limits_without_repeats(old, new, events):
    # The colour bar redraws its ticks on every contrast-limits event: none is repeated.
    from napari.layers import Image

    from napari_hrtem_fft._napari.display import _update_layer

    layer = Image(np.zeros((4, 4), np.float32), contrast_limits=old)
    layer.contrast_limits_range = old
    emitted = []
    layer.events.contrast_limits.connect(
        lambda event: emitted.append(tuple(layer.contrast_limits))
    )
    kwargs = {
        "scale": (1.0, 1.0),
        "translate": (0.0, 0.0),
        "units": layer.units,
        "colormap": layer.colormap.name,
        "contrast_limits": new,
        "opacity": 1.0,
        "metadata": {},
        "name": layer.name,
    }
    _update_layer(layer, np.ones((4, 4), np.float32), kwargs)
    assert tuple(layer.contrast_limits) == new and tuple(layer.contrast_limits_range) == new
    assert emitted[-1] == new and len(emitted) == events
