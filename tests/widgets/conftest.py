"""Fixtures for the widget tests: the synthetic Pd core-shell particle in a viewer."""

from __future__ import annotations

import numpy as np
import pytest

PIXEL_SIZE = 0.02  # nm, the sample's calibration
D_111 = 0.389 / np.sqrt(3)  # nm, Pd {111} in the core (0.2246)
D_002 = 0.389 / 2  # nm, Pd {002} (0.1945)
SHELL_EXPANSION = 0.035


@pytest.fixture(scope="session")
def sample():
    """(image, truth) of :func:`pd_core_shell_sample`, made once per session."""
    from napari_hrtem_fft.core.synthetic import pd_core_shell_sample

    return pd_core_shell_sample()


@pytest.fixture
def viewer_with_sample(make_napari_viewer, sample):
    """A viewer with the sample as a calibrated image layer named 'Pd'."""
    viewer = make_napari_viewer()
    image, _ = sample
    layer = viewer.add_image(image, name="Pd", scale=(PIXEL_SIZE, PIXEL_SIZE), units="nm")
    return viewer, layer
