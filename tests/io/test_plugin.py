"""The reader, writer and sample go through npe2 exactly as napari calls them."""

from __future__ import annotations

import numpy as np
import pytest

RTOL = 1e-6


@pytest.fixture(autouse=True)
def _plugin_registered():
    """Make npe2's global plugin manager know this plugin (napari does this at start-up)."""
    from npe2 import PluginManager

    pm = PluginManager.instance()
    try:
        pm.get_manifest("napari-hrtem-fft")
    except KeyError:
        pm.discover(include_npe1=False)
    assert pm.get_manifest("napari-hrtem-fft").name == "napari-hrtem-fft"


def _npe2_read(path):
    """Layer data tuples of ``path`` as napari gets them from this plugin's reader."""
    from npe2 import read

    return read([str(path)], stack=False, plugin_name="napari-hrtem-fft")


def test_npe2_read_returns_calibrated_image_layers(shared_data):
    layers = _npe2_read(shared_data / "dm3/test_diffraction_pattern.dm3")
    assert len(layers) == 1
    data, kwargs, layer_type = layers[0]
    assert layer_type == "image"
    assert data.shape == (87, 87)
    assert kwargs["scale"] == pytest.approx((0.17443285882472992,) * 2, rel=RTOL)
    assert kwargs["units"] == ("1/nm", "1/nm")
    assert kwargs["metadata"]["reciprocal"] is True
    assert kwargs["name"] == "test_diffraction_pattern"
    assert kwargs["translate"] == pytest.approx((131.87124127149582, 137.10422703623772), rel=RTOL)


def test_npe2_read_tia_gives_translate_in_nm(shared_data):
    ((_, kwargs, _),) = _npe2_read(shared_data / "tia/16_STOimage_1.ser")
    assert kwargs["translate"] == pytest.approx((-5.126504571086532,) * 2, rel=RTOL)
    assert kwargs["units"] == ("nm", "nm")


def test_npe2_read_velox_four_detectors(shared_data):
    layers = _npe2_read(shared_data / "velox_emd/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd")
    assert len(layers) == 4
    assert all(
        k["scale"] == pytest.approx((87.370796142255832,) * 2, rel=RTOL) for _, k, _ in layers
    )


def test_sample_data_is_the_calibrated_core_shell_particle():
    from napari_hrtem_fft._sample_data import make_core_shell_sample

    ((data, kwargs, layer_type),) = make_core_shell_sample()
    assert layer_type == "image"
    assert data.shape == (1024, 1024) and data.dtype == np.float32
    assert kwargs["scale"] == (0.02, 0.02)
    assert kwargs["units"] == ("nm", "nm")
    assert kwargs["name"] == "Pd core-shell (synthetic)"
    truth = kwargs["metadata"]["ground_truth"]
    assert truth["d_core_nm"] == pytest.approx([0.389 / np.sqrt(3)] * 2 + [0.389 / 2], rel=1e-12)
    assert truth["d_shell_nm"] == pytest.approx(np.array(truth["d_core_nm"]) * 1.035, rel=1e-12)
    assert kwargs["metadata"]["parameters"]["seed"] == 0
    # Seeded: the same image every time.
    ((again, _, _),) = make_core_shell_sample()
    np.testing.assert_array_equal(again, data)
