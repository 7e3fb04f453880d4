"""The lattice-map dock with GPA, a reference rectangle and "Phase & dislocations",
opened from the Plugins menu."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft.core.synthetic import dislocation_sample, pd_core_shell_sample
from napari_hrtem_fft.layers import result_info, result_maps

NAME = "Lattice maps (d-spacing, angle, strain)"
PIXEL = 0.02  # nm


def _dock(viewer, image, reflections):
    _, widget = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", NAME)
    points = viewer.add_points(reflections, name="reflections")
    widget.choose_inputs(image, points, window=128, step=8)
    widget._method.value = "gpa"
    widget._crystal_mask.value = False
    return widget


def test_phase_and_dislocations_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    data, truth = dislocation_sample(seed=3)
    image = viewer.add_image(data, name="disl", scale=(PIXEL, PIXEL), units="nm")
    widget = _dock(viewer, image, truth.reflections)
    assert not widget._phase.enabled or widget._method.value == "gpa"
    widget._phase.value = True
    widget.run_blocking()
    phase = [m for m in result_maps(viewer.layers) if result_info(m)["kind"] == "phase"]
    assert len(phase) == 3 and phase[0].kwargs["colormap"].startswith("twilight")
    names = [la.name for la in viewer.layers]
    assert "disl: displacement ux (nm)" in names and "disl: displacement uy (nm)" in names
    cores = viewer.layers["disl: dislocations"]
    burgers = next(la for la in viewer.layers if la.name.startswith("disl: Burgers vectors"))
    # The three cores of the sample, each within 0.5 nm, with |b| in the features.
    inside = np.hypot(*(cores.data - 10.24).T) < 8.0
    assert inside.sum() == 3
    for core, b in zip(truth.cores, truth.burgers, strict=True):
        k = int(np.argmin(np.hypot(*(cores.data - core).T)))
        assert np.hypot(*(cores.data[k] - core)) < 0.5
        assert cores.features["b_length_nm"][k] == pytest.approx(np.hypot(*b), rel=0.1)
    assert len(burgers.data) == len(cores.data)
    # The statistics dock lists the cores.
    _, stats = viewer.window.add_plugin_dock_widget(
        "napari-hrtem-fft", "Lattice statistics (d, angle per region)"
    )
    stats.update_statistics()
    text = stats._cores.value.splitlines()
    assert text[0] == f"{len(cores.data)} dislocation core(s)" and len(text) == len(cores.data) + 1
    # A re-run without the option removes them.
    widget._phase.value = False
    widget.run_blocking()
    assert "disl: dislocations" not in [la.name for la in viewer.layers]


def test_reference_rectangle_from_a_shapes_layer(make_napari_viewer):
    """Strain relative to a rectangle in the shell: the core reads 1/1.035 - 1."""
    viewer = make_napari_viewer()
    data, truth = pd_core_shell_sample((768, 768), radius=6.5, core_radius=3.0, seed=3)
    image = viewer.add_image(
        data, name="cs", scale=(PIXEL, PIXEL), translate=(5.0, -2.0), units="nm"
    )
    widget = _dock(viewer, image, truth.reflections[:2])
    widget._window.value = 64
    # Rectangle y 7.38-7.98 nm, x 2.6-3.2 nm from the image origin (in the shell).
    box = np.array([[7.38, 2.6], [7.38, 3.2], [7.98, 3.2], [7.98, 2.6]]) + np.array([5.0, -2.0])
    shapes = viewer.add_shapes([box], shape_type="rectangle", name="ref", units=("nm", "nm"))
    widget.reset_choices()
    widget._reference.layer = shapes
    widget.run_blocking()
    exx = next(m for m in result_maps(viewer.layers) if m.name == "exx · cs")
    region = result_info(exx)["parameters"]["reference"]["region"]
    assert region["rectangle_nm"] == pytest.approx([7.38, 7.98, 2.6, 3.2])
    c = np.arange(exx.data.shape[-1]) * 8 * PIXEL
    yy, xx = np.meshgrid(c, c, indexing="ij")
    core = np.hypot(yy - 7.68, xx - 7.68) < 1.5
    # The window-64 shell measurement reads 2.5-3.8 % (tests/test_gpa_front.py).
    assert np.nanmedian(exx.data[core]) == pytest.approx(1 / 1.035 - 1, abs=0.01)
