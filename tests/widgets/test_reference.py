"""The reference-region section (_widgets/_reference.py) in the lattice-map dock and the
time-trace dock, opened from the Plugins menu: a Shapes rectangle and the same region
painted as a label give the same maps; the region is recorded in the layers' metadata;
a movie is referred to the region frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft.core.synthetic import (
    pd_110_reflections,
    pd_core_shell_sample,
    synthetic_movie,
)
from napari_hrtem_fft.layers import result_info, result_maps

MAPS = "Lattice maps (d-spacing, angle, strain)"
TRACE = "Time traces (d, strain vs time)"
PIXEL = 0.02  # nm
OFFSET = np.array([5.0, -2.0])  # world translate of the image (nm)
# In the shell (r 3-6.5 nm) of the 768² core-shell particle centred at 7.68 nm; map
# pixel i is centred on i * 0.16 nm from the image origin: no centre on the border.
Y0, Y1, X0, X1 = 7.40, 7.95, 2.60, 3.15
CORE_VS_SHELL = 1 / 1.035 - 1  # -3.38 %


@pytest.fixture(scope="module")
def core_shell():
    return pd_core_shell_sample((768, 768), radius=6.5, core_radius=3.0, seed=3)


def _maps_dock(viewer, data, reflections, *, scale=(PIXEL, PIXEL), translate=(0.0, 0.0)):
    image = viewer.add_image(data, name="img", scale=scale, translate=translate, units="nm")
    _, widget = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", MAPS)
    points = viewer.add_points(reflections, name="reflections")
    widget.choose_inputs(image, points, window=64, step=8)
    widget._crystal_mask.value = False
    return image, widget


def _layer(viewer, name):
    # Result layer names carry the analysed image: "exx · <image>".
    return next(m for m in result_maps(viewer.layers) if m.name.split(" · ")[0] == name)


def test_labels_reference_equals_the_rectangle(make_napari_viewer, core_shell):
    viewer = make_napari_viewer()
    data, truth = core_shell
    _, widget = _maps_dock(viewer, data, truth.reflections[:2], translate=OFFSET)
    box = np.array([[Y0, X0], [Y0, X1], [Y1, X1], [Y1, X0]]) + OFFSET
    shapes = viewer.add_shapes([box], shape_type="rectangle", name="shell box", units="nm")
    widget.reset_choices()
    widget._reference.layer = shapes
    widget.run_blocking()
    exx = _layer(viewer, "exx")
    record = result_info(exx)["parameters"]["reference"]
    assert record["region"]["layer"] == "shell box" and record["region"]["kind"] == "shapes"
    assert record["region"]["rectangle_nm"] == pytest.approx([Y0, Y1, X0, X1])
    assert record["map_pixels"] == 9  # 3 × 3 map pixel centres
    by_rectangle = {name: np.array(_layer(viewer, name).data) for name in ("exx", "eyy", "exy")}
    c = np.arange(exx.data.shape[-1]) * 8 * PIXEL
    yy, xx = np.meshgrid(c, c, indexing="ij")
    core = np.hypot(yy - 7.68, xx - 7.68) < 1.5
    # Measured: exx -3.51 %, eyy -2.82 % (the 1.28 nm window in the 3.5 nm shell).
    for name in ("exx", "eyy"):
        assert np.nanmedian(by_rectangle[name][core]) == pytest.approx(CORE_VS_SHELL, abs=0.01)

    # The same image pixels painted as label 2 (another label elsewhere), same scale.
    labels = np.zeros(data.shape, dtype=np.uint8)
    rows = slice(int(np.ceil(Y0 / PIXEL)), int(Y1 / PIXEL) + 1)
    cols = slice(int(np.ceil(X0 / PIXEL)), int(X1 / PIXEL) + 1)
    labels[rows, cols] = 2
    labels[300:400, 300:400] = 1
    painted = viewer.add_labels(labels, name="painted", scale=(PIXEL, PIXEL), translate=OFFSET)
    widget.reset_choices()
    widget._reference.layer = painted
    assert not widget._reference._label_value.native.isHidden()  # the label is offered
    widget._reference.label_value = 2
    widget.run_blocking()
    exx = _layer(viewer, "exx")
    record = result_info(exx)["parameters"]["reference"]
    assert record["region"] == {"layer": "painted", "kind": "labels", "label": 2}
    assert record["map_pixels"] == 9
    for name, expected in by_rectangle.items():
        np.testing.assert_array_equal(np.asarray(_layer(viewer, name).data), expected)
    # A label that is nowhere: a clear error, no layers replaced.
    widget._reference.label_value = 7
    with pytest.raises(ValueError, match=r"reference region .*holds no map pixel"):
        widget.run_blocking()


def test_movie_reference_applies_per_frame(make_napari_viewer):
    """A lattice expanding by 3.5 % over 3 frames, crystal everywhere: relative to a
    region the strain is zero in every frame (each frame's own lattice in the region),
    in the time-trace dock as in the maps dock's layers."""
    viewer = make_napari_viewer()
    refl = pd_110_reflections(0.0)
    stack, _ = synthetic_movie(
        3, (256, 256), pixel_size=PIXEL, reflections=refl, expansion_total=0.035, noise=0.1
    )
    image, widget = _maps_dock(viewer, np.asarray(stack), refl, scale=(1.0, PIXEL, PIXEL))
    image.units = ("s", "nm", "nm")
    widget.run_blocking()
    box = np.array([[1.05, 1.05], [1.05, 3.95], [3.95, 3.95], [3.95, 1.05]])
    shapes = viewer.add_shapes(box, shape_type="rectangle", name="ref", units="nm")
    _, dock = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", TRACE)
    dock.reset_choices()
    dock.update_trace()
    plain = dock.trace["exx_median"]
    np.testing.assert_allclose(plain, [0.0, 0.0175, 0.035], atol=1e-3)
    dock._reference.layer = shapes
    dock.update_trace()
    np.testing.assert_allclose(dock.trace["exx_median"], 0.0, atol=1e-3)
    np.testing.assert_allclose(dock.trace["eyy_median"], 0.0, atol=1e-3)
    # Editing the reference shape recomputes the trace (its events are connected).
    dock.trace = None
    shapes.data = [box + 0.5]
    dock._timer.timeout.emit()
    assert dock.trace is not None


def test_labels_reference_painted_per_frame(make_napari_viewer, core_shell):
    """A (t, y, x) Labels reference: each frame its own region.  Three identical frames
    of the core-shell particle; the label is on the shell in frames 0 and 2 and on the
    core in frame 1.  Relative to it the core reads 1/1.035 - 1 = -3.38 % in frames 0
    and 2 and 0 in frame 1, in the maps dock's layers and in the time-trace dock; a
    range of frames picks the label frames at the same time."""
    viewer = make_napari_viewer()
    data, truth = core_shell
    stack = np.stack([data] * 3)
    _, widget = _maps_dock(viewer, stack, truth.reflections[:2], scale=(1.0, PIXEL, PIXEL))
    labels = np.zeros(stack.shape, dtype=np.uint8)
    shell = (slice(int(np.ceil(Y0 / PIXEL)), int(Y1 / PIXEL) + 1),
             slice(int(np.ceil(X0 / PIXEL)), int(X1 / PIXEL) + 1))  # fmt: skip
    core_px = (slice(350, 420), slice(350, 420))  # 7.0-8.4 nm: inside the 3 nm core
    labels[(0, *shell)] = labels[(2, *shell)] = 1
    labels[(1, *core_px)] = 1
    painted = viewer.add_labels(labels, name="per frame", scale=(1.0, PIXEL, PIXEL))
    widget.reset_choices()
    widget._reference.layer = painted
    widget.run_blocking()
    exx = _layer(viewer, "exx")
    record = result_info(exx)["parameters"]["reference"]
    assert record["region"] == {"layer": "per frame", "kind": "labels", "label": 0,
                                "per_frame": True}  # fmt: skip
    assert record["map_pixels"] == [9, 81, 9]  # 3 × 3 in the shell, 9 × 9 in the core
    c = np.arange(exx.data.shape[-1]) * 8 * PIXEL
    yy, xx = np.meshgrid(c, c, indexing="ij")
    core = np.hypot(yy - 7.68, xx - 7.68) < 1.5
    data_exx = np.asarray(exx.data)
    medians = [np.nanmedian(data_exx[t][core]) for t in range(3)]
    # Measured: -3.47 %, 0.02 %, -3.47 % (median over the core disc).
    np.testing.assert_allclose(medians, [CORE_VS_SHELL, 0.0, CORE_VS_SHELL], atol=0.01)
    assert abs(medians[1]) < 1e-3  # the core against its own median lattice

    # The time-trace dock, traced in the core, with the same reference.
    box = np.array([[7.2, 7.2], [7.2, 8.2], [8.2, 8.2], [8.2, 7.2]])
    core_box = viewer.add_shapes(box, shape_type="rectangle", name="core box", units="nm")
    _, dock = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", TRACE)
    dock.reset_choices()
    dock._region.value = core_box
    dock._reference.layer = painted
    dock.update_trace()
    # Measured: -3.36 %, 0.14 %, -3.36 % (median over the 1 nm core box).
    np.testing.assert_allclose(
        dock.trace["exx_median"], [CORE_VS_SHELL, 0.0, CORE_VS_SHELL], atol=0.01
    )

    # Frames 1-2 only: map frame 0 is image frame 1 (core label), map frame 1 is frame 2.
    widget._movie.frames.value = "range"
    widget._movie.first.value, widget._movie.last.value = 1, 2
    widget.run_blocking()
    data_exx = np.asarray(_layer(viewer, "exx").data)
    assert data_exx.shape[0] == 2
    medians = [np.nanmedian(data_exx[t][core]) for t in range(2)]
    np.testing.assert_allclose(medians, [0.0, CORE_VS_SHELL], atol=0.01)

    # A frame without the label: a clear error naming it; per-frame labels need a movie.
    painted.data[2] = 0
    with pytest.raises(ValueError, match=r"holds no map pixel centre in frame\(s\) 2"):
        widget.run_blocking()
    with pytest.raises(ValueError, match="use a 2D Labels layer"):
        widget._reference.mask((96, 96), (0.16, 0.16), (0.0, 0.0))
