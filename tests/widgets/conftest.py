"""Fixtures for the widget tests: the synthetic Pd core-shell particle in a viewer."""

from __future__ import annotations

import pytest
from widget_sample import PIXEL_SIZE


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
