"""The "Phase & dislocations" option of the lattice-map dock by both methods on the same sample,
opened from the Plugins menu (the dock's own tests use GPA)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft.core.synthetic import dislocation_sample

NAME = "Lattice maps (d-spacing, angle, strain)"
PIXEL = 0.02  # nm


@pytest.mark.parametrize("method", ["local_fft", "gpa"])
def test_phase_and_dislocations_by_either_method(make_napari_viewer, method):
    viewer = make_napari_viewer()
    data, truth = dislocation_sample(seed=3)
    image = viewer.add_image(data, name="disl", scale=(PIXEL, PIXEL), units="nm")
    _, widget = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", NAME)
    points = viewer.add_points(truth.reflections, name="reflections")
    widget.choose_inputs(image, points, window=128, step=8)
    widget._method.value = method
    widget._crystal_mask.value = False
    assert widget._phase.enabled
    widget._phase.value = True
    widget.run_blocking()
    cores = viewer.layers["disl: dislocations"]
    inside = np.hypot(*(cores.data - 10.24).T) < 9.0 - 128 * PIXEL / 2
    assert inside.sum() == len(truth.cores)  # no false core inside the crystal
    for core, b in zip(truth.cores, truth.burgers, strict=True):
        k = int(np.argmin(np.hypot(*(cores.data - core).T)))
        assert np.hypot(*(cores.data[k] - core)) < 0.5  # nm
        assert cores.features["b_length_nm"][k] == pytest.approx(np.hypot(*b), rel=1e-9)
