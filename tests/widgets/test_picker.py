"""Reflection picker on the sample particle: FFT calibration, suggest, snap, table."""

from __future__ import annotations

import numpy as np
import pytest
from widget_sample import D_002, D_111, PIXEL_SIZE

from napari_hrtem_fft._widgets import ReflectionPickerWidget
from napari_hrtem_fft.core.fft_display import display_spectrum
from napari_hrtem_fft.core.picked import PICKED_KEY, PickedReflections
from napari_hrtem_fft.core.reciprocal import g_spacing


@pytest.fixture
def picker(viewer_with_sample, qtbot):
    viewer, image = viewer_with_sample
    widget = ReflectionPickerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._image.value = image
    widget._window.value = 128
    return viewer, image, widget


def test_show_fft_is_calibrated_in_reciprocal_nm(picker):
    viewer, _, widget = picker
    widget._show_fft.clicked.emit()
    (fft,) = [layer for layer in widget.fft_viewer.layers if layer.name.startswith("FFT")]
    assert fft.name == "FFT (Pd)"
    # The 128-px window is shown zero-padded to 512 display pixels: 4 per FFT bin.
    assert fft.data.shape == (512, 512)
    scale = 1 / (512 * PIXEL_SIZE)
    np.testing.assert_allclose(fft.scale, [scale, scale], rtol=1e-12)
    # Zero frequency (index 256) at the world origin, marked by a cross.
    np.testing.assert_allclose(fft.data_to_world([256, 256]), [0, 0], atol=1e-12)
    assert str(fft.units[-1]) in ("1 / nanometer", "1/nm")
    (zero,) = [layer for layer in widget.fft_viewer.layers if layer.name == "g = 0"]
    np.testing.assert_array_equal(zero.data, [[0.0, 0.0]])
    assert widget.fft_viewer.canvas.overlays["scale_bar"].visible
    # Contrast limits inside the data range, the view framed on the low orders.
    assert fft.data.min() <= fft.contrast_limits[0] < fft.contrast_limits[1] <= fft.data.max()
    # The reflections layer is active, in add mode, above the FFT and the zero mark.
    refl = widget.reflections_layer
    assert widget.fft_viewer.layers.selection.active is refl and refl.mode == "add"
    assert widget.fft_viewer.layers.index(refl) > widget.fft_viewer.layers.index(zero)
    assert widget.fft_viewer.layers.index(zero) > widget.fft_viewer.layers.index(fft)
    # The window outline on the image: a 128 px square around the region point.
    (outline,) = [layer for layer in viewer.layers if layer.name == "FFT window"]
    corners = outline.data[0]
    side = corners.max(axis=0) - corners.min(axis=0)
    np.testing.assert_allclose(side, [128 * PIXEL_SIZE] * 2, rtol=1e-6)  # float32


def test_the_window_is_drawn_when_an_image_is_chosen_without_taking_the_selection(picker, qtbot):
    viewer, image, widget = picker
    viewer.layers.selection.active = image
    widget._window.value = 64  # a change: the outline follows within the debounce
    qtbot.waitUntil(lambda: "FFT window" in viewer.layers, timeout=5_000)
    outline = viewer.layers["FFT window"]
    qtbot.waitUntil(lambda: np.ptp(outline.data[0][:, 0]) < 100 * PIXEL_SIZE, timeout=5_000)
    # A 64 px square around the 'FFT region' point, before any Show FFT.
    side = np.ptp(outline.data[0], axis=0)
    np.testing.assert_allclose(side, [64 * PIXEL_SIZE] * 2, rtol=1e-6)  # float32
    region = viewer.layers["FFT region"]
    centre = outline.data[0].mean(axis=0)
    np.testing.assert_allclose(centre, region.data[0], atol=PIXEL_SIZE)
    # The user's layer stays selected: the mouse still pans and zooms the image.
    assert viewer.layers.selection.active is image
    assert widget._fft_context is None


def test_show_fft_again_on_the_same_window_keeps_the_layer(picker):
    _, _, widget = picker
    widget._show_fft.clicked.emit()
    (fft,) = [layer for layer in widget.fft_viewer.layers if layer.name.startswith("FFT")]
    data = fft.data
    widget._show_fft.clicked.emit()
    assert fft.data is data  # nothing recomputed
    widget._window.value = 64
    widget._show_fft.clicked.emit()
    (again,) = [layer for layer in widget.fft_viewer.layers if layer.name.startswith("FFT")]
    assert again is fft and fft.data is not data  # updated in place
    np.testing.assert_allclose(fft.scale[-1], 1 / (512 * PIXEL_SIZE))


def test_suggest_finds_the_pd_reflections_and_fills_the_table(picker):
    _, _, widget = picker
    widget._suggest.clicked.emit()
    g = widget.reflections
    assert g.shape == (3, 2)
    d = np.sort(g_spacing(g))
    # The window sits on the unstrained core: d within 0.5 % of Pd {002} and {111}.
    np.testing.assert_allclose(d, [D_002, D_111, D_111], rtol=5e-3)
    table = widget._table.value
    assert len(table["data"]) == 3
    assert table["columns"] == ("#", "gy (nm⁻¹)", "gx (nm⁻¹)", "d (nm)", "angle (°)")
    np.testing.assert_allclose(sorted(float(r[3]) for r in table["data"]), d, atol=1e-4)
    # Sensible digits: d in nm to 4 significant digits, angles to 0.1° (not "61.8900").
    assert all(
        len(r[3].split(".")[1]) == 4 and len(r[4].split(".")[1]) == 1 for r in table["data"]
    )
    # On the canvas, the number only: the table has d and angle.
    assert list(widget.reflections_layer.features["number"]) == [1, 2, 3]
    assert widget.reflections_layer.text.string.format == "{number}"


def test_a_click_near_a_peak_snaps_onto_it(picker):
    _, _, widget = picker
    widget._suggest.clicked.emit()
    suggested = widget.reflections.copy()
    widget._on_clear()
    assert len(widget.reflections) == 0 and widget._table.value["data"] == []
    # A click 1.5 FFT bins away from the {111} peak, as a user's click would be.
    bin_size = 1 / (128 * PIXEL_SIZE)
    target = suggested[1]
    widget.reflections_layer.add(target + np.array([1.0, -1.0]) * bin_size)
    (g,) = widget.reflections
    assert np.hypot(*(g - target)) < 0.3 * bin_size
    assert g_spacing(g) == pytest.approx(D_111, rel=5e-3)
    assert len(widget._table.value["data"]) == 1


def test_snapping_can_be_turned_off_and_delete_updates_the_table(picker):
    _, _, widget = picker
    widget._show_fft.clicked.emit()
    widget._snap.value = False
    widget.reflections_layer.add([3.0, 3.0])
    widget.reflections_layer.add([-3.0, 3.0])
    np.testing.assert_allclose(widget.reflections, [[3.0, 3.0], [-3.0, 3.0]])
    widget.reflections_layer.selected_data = {0}
    widget._delete.clicked.emit()
    np.testing.assert_allclose(widget.reflections, [[-3.0, 3.0]])
    assert [row[0] for row in widget._table.value["data"]] == [1]


def test_uncalibrated_image_enables_the_pixel_size_field(make_napari_viewer, sample):
    viewer = make_napari_viewer()
    calibrated = viewer.add_image(sample[0], name="cal", scale=(0.0125, 0.0125), units="nm")
    image = viewer.add_image(sample[0], name="raw")  # no scale: 1 pixel
    widget = ReflectionPickerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._image.value = calibrated
    # The greyed field shows the layer's calibration, not its default of 0.02 nm.
    assert not widget._pixel_size.enabled and widget._pixel_size.value == 0.0125
    widget._image.value = image
    assert widget._pixel_size.enabled
    widget._pixel_size.value = 0.04
    widget._show_fft.clicked.emit()
    fft = next(layer for layer in widget.fft_viewer.layers if layer.name.startswith("FFT"))
    np.testing.assert_allclose(fft.scale[-1], 1 / (512 * 0.04))  # 128 px padded to 512


def test_window_is_limited_to_the_image_and_an_odd_window_is_an_error(
    make_napari_viewer, monkeypatch
):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((100, 90), np.float32), scale=(0.02, 0.02), units="nm")
    widget = ReflectionPickerWidget(viewer)
    widget._image.value = image
    # The spin box offers no window larger than the image's smaller side (even).
    assert widget._window.max == 90 and widget._window.value == 90
    errors = []
    monkeypatch.setattr("napari_hrtem_fft._widgets.picker.show_error", errors.append)
    widget._window.value = 63
    widget._show_fft.clicked.emit()
    assert len(errors) == 1 and "window must be even and >= 16, got 63" in errors[0]


def test_picks_are_stored_with_their_image_and_come_back_with_it(picker, qtbot):
    viewer, image, widget = picker
    widget._suggest.clicked.emit()
    record = PickedReflections.from_metadata(image.metadata)
    np.testing.assert_array_equal(record.g, widget.reflections)
    assert (record.window, record.pixel_size) == (128, pytest.approx(PIXEL_SIZE))
    # A click added on the FFT is in the record at once.
    widget._snap.value = False
    widget.reflections_layer.add([3.0, 3.0])
    assert len(PickedReflections.from_metadata(image.metadata).g) == 4
    # Another image has its own (no) picks; back on the first, its picks return.
    other = viewer.add_image(np.zeros((256, 256), np.float32), scale=(0.02, 0.02), units="nm")
    widget._image.value = other
    assert len(widget.reflections) == 0 and PICKED_KEY not in other.metadata
    widget._image.value = image
    np.testing.assert_array_equal(widget.reflections, [*record.g.tolist(), [3.0, 3.0]])


def test_the_fft_canvas_is_ready_for_the_spectrum_before_the_first_show_fft(
    make_napari_viewer, sample, qtbot
):
    # A shown window (the canvas is made once the dock is shown), the dock opened from
    # the Plugins menu, as a user does.
    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(sample[0], name="Pd", scale=(PIXEL_SIZE, PIXEL_SIZE), units="nm")
    _, widget = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", "Reflection picker (FFT)")
    widget._image.value = image
    widget._window.value = 128
    layers = widget.fft_viewer.layers
    scale = 1 / (512 * PIXEL_SIZE)  # 128 px padded to 512 display pixels
    # Once the dock is shown and the image chosen: the spectrum layer and the zero mark
    # exist, transparent, with the spectrum's shape and calibration; so does the scale bar.
    # (made in steps, one per turn of the event loop).
    scale_bar = widget.fft_viewer.canvas.overlays["scale_bar"]
    qtbot.waitUntil(lambda: scale_bar.visible and len(layers) == 3, timeout=10_000)
    fft, zero = layers[0], layers["g = 0"]
    qtbot.waitUntil(lambda: np.isclose(fft.scale[-1], scale, rtol=1e-12), timeout=5_000)
    assert fft.data.shape == (512, 512) and fft.opacity == 0 and zero.opacity == 0
    assert widget._fft_view.has_canvas and scale_bar.opacity == 0
    # The first Show FFT fills the same layers: opaque, the spectrum of the window.
    widget._show_fft.clicked.emit()
    assert layers[0] is fft and layers["g = 0"] is zero and len(layers) == 3
    assert fft.name == "FFT (Pd)" and fft.opacity == 1 and zero.opacity > 0
    assert scale_bar.opacity == 1
    np.testing.assert_allclose(fft.scale, [scale, scale], rtol=1e-12)
    np.testing.assert_allclose(fft.data_to_world([256, 256]), [0, 0], atol=1e-12)
    ctx = widget._fft_context
    expected = display_spectrum(ctx["plane"], ctx["center"], window=128, pixel_size=PIXEL_SIZE)
    np.testing.assert_array_equal(fft.data, expected.data)
    assert tuple(fft.contrast_limits) == pytest.approx(expected.contrast_limits)
    # The reflection rings are sized for this window's FFT bins (2.5 bins across).
    assert widget.reflections_layer.current_size == pytest.approx(2.5 / (128 * PIXEL_SIZE))
