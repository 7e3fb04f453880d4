"""Calibrate from a known lattice in the picker (issue 9 item 5), from the Plugins menu."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft.core.calibration import CALIBRATION_KEY
from napari_hrtem_fft.core.reciprocal import g_spacing
from napari_hrtem_fft.layers import result_maps


def test_mos2_affine_calibration_reaches_the_maps(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    (image,) = viewer.open(
        str(shared_data / "dm3" / "example_Se_implanted_MoS2.dm3"), plugin="napari-hrtem-fft"
    )
    _, picker = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", "Reflection picker (FFT)")
    _, maps = viewer.window.add_plugin_dock_widget(
        "napari-hrtem-fft", "Lattice maps (d-spacing, angle, strain)"
    )
    picker._image.value = image
    picker.suggest()
    assert np.all(np.abs(g_spacing(picker.reflections[:3]) / 0.2737 - 1) > 0.02)
    picker._known.value = ("MoS2", (1, 0, 0))
    correction = picker.calibrate()
    assert correction.kind == "affine" and "MoS2 (100)" in correction.source
    assert image.scale[-1] == pytest.approx(correction.pixel_size)
    assert abs(np.linalg.det(np.asarray(image.affine.linear_matrix))) == pytest.approx(1, rel=1e-9)
    assert image.metadata[CALIBRATION_KEY]["kind"] == "affine"
    assert len(picker.reflections) == 0  # measured with the old scale

    picker.suggest()
    maps.choose_inputs(image, window=128, step=16)
    maps.run_blocking()
    d_layers = [
        layer
        for layer in result_maps(viewer.layers, source=image.name)
        if layer.metadata["napari_hrtem_fft"]["kind"] == "d_spacing"
    ]
    assert len(d_layers) == 3
    for layer in d_layers:
        # All three {100} within 1 % of the true 0.2737 nm (window medians).
        assert np.nanmedian(layer.data) == pytest.approx(0.2737, rel=1e-2), layer.name
        record = layer.metadata["napari_hrtem_fft"]["parameters"]["calibration"]
        assert record["source"] == correction.source
