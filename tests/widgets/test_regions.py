"""Region layers as choices, and watching them for edits (no viewer needed)."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels, Points, Shapes

from napari_hrtem_fft._napari.regions import region_choices, watch_edits
from napari_hrtem_fft.layers import PICKER_KEY


def test_region_choices_are_shapes_and_labels_but_not_the_fft_outline():
    labels = Labels(np.zeros((8, 8), dtype=np.uint8), name="cells")
    shapes = Shapes(name="particle")
    outline = Shapes(name="FFT window", metadata={PICKER_KEY: "outline"})
    points = Points(name="points")
    choices = region_choices([labels, points, outline, shapes])
    assert choices == [("cells (labels)", labels), ("particle (shapes)", shapes)]


def test_watch_edits_follows_one_layer_at_a_time():
    calls = []

    def callback(event=None):
        calls.append(event)

    labels = Labels(np.zeros((8, 8), dtype=np.uint8), name="cells")
    shapes = Shapes(name="particle")
    watched = watch_edits([], labels, callback)
    assert watched == [labels]
    labels.paint((4, 4), 1)
    painted = len(calls)
    assert painted >= 1
    # Choosing the same layer again connects nothing twice.
    assert watch_edits(watched, labels, callback) is watched
    labels.data = np.ones((8, 8), dtype=np.uint8)
    assert len(calls) == painted + 1

    watched = watch_edits(watched, shapes, callback)
    assert watched == [shapes]
    before = len(calls)
    labels.data = np.zeros((8, 8), dtype=np.uint8)  # no longer watched
    assert len(calls) == before
    shapes.add_rectangles(np.array([[0.0, 0.0], [2.0, 2.0]]))
    assert len(calls) > before
    # Anything else (None, the 'everything' choice) watches nothing.
    assert watch_edits(watched, None, callback) == []
    before = len(calls)
    shapes.add_rectangles(np.array([[3.0, 3.0], [5.0, 5.0]]))
    assert len(calls) == before
