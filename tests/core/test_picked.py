"""The record of picked reflections that travels with an image layer."""

import numpy as np
import pytest

from napari_hrtem_fft.core.picked import PICKED_KEY, PickedReflections


def test_round_trip_through_metadata_keeps_every_value():
    g = np.array([[-2.423, 2.561], [0.0, 2.561]])
    picked = PickedReflections(g, window=128, pixel_size=0.016, center=(129, 122))
    metadata = {"other": 1, PICKED_KEY: picked.to_metadata()}
    back = PickedReflections.from_metadata(metadata)
    np.testing.assert_array_equal(back.g, g)
    assert (back.window, back.pixel_size, back.center) == (128, 0.016, (129, 122))


def test_no_record_is_none_and_an_empty_one_has_no_reflections():
    assert PickedReflections.from_metadata({}) is None
    empty = PickedReflections(np.empty((0, 2)), window=64, pixel_size=0.02).to_metadata()
    assert PickedReflections.from_metadata({PICKED_KEY: empty}).g.shape == (0, 2)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"g_per_nm": [[1.0, 2.0, 3.0]], "window": 64, "pixel_size_nm": 0.02}, "malformed"),
        ({"g_per_nm": [[1.0, 2.0]], "pixel_size_nm": 0.02}, "malformed"),
        ({"g_per_nm": [[1.0, 2.0]], "window": 0, "pixel_size_nm": 0.02}, "positive window"),
    ],
)
def test_malformed_records_are_refused_clearly(record, message):
    with pytest.raises(ValueError, match=message):
        PickedReflections.from_metadata({PICKED_KEY: record})
