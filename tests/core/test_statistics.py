"""Per-reflection statistics and label sampling (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft.core.statistics import (
    COLUMNS,
    labels_on_map,
    reflection_statistics,
    statistics_text,
)


def test_statistics_per_reflection_and_region_in_nm():
    d = np.empty((2, 4, 4))
    d[0] = 0.2246
    d[0, :, 2:] = 0.2325
    d[1] = 0.1945
    d[1, 0, 0] = np.nan  # masked pixel: left out
    angle = np.zeros_like(d)
    angle[1] = 10.0
    regions = np.zeros((4, 4), int)
    regions[:, :2] = 1
    regions[:, 2:] = 2
    rows = reflection_statistics(d, angle, regions=regions, region_names={1: "core", 2: "shell"})
    by = {(r["reflection"], r["region"]): r for r in rows}
    assert by[(1, "core")]["d median (nm)"] == pytest.approx(0.2246, abs=1e-10)
    assert by[(1, "shell")]["d median (nm)"] == pytest.approx(0.2325, abs=1e-10)
    assert by[(2, "core")]["count"] == 7
    assert by[(2, "core")]["angle mean (°)"] == pytest.approx(10.0, abs=1e-9)
    assert by[(1, "core")]["d std (nm)"] == pytest.approx(0.0, abs=1e-12)


def test_angles_across_180_are_averaged_on_the_circle():
    d = np.full((1, 1, 4), 0.2)
    angle = np.array([[[179.0, -179.0, 178.0, -178.0]]])
    (row,) = reflection_statistics(d, angle)
    assert abs(row["angle mean (°)"]) == pytest.approx(180.0, abs=1e-6)
    assert row["angle std (°)"] == pytest.approx(np.std([179, 181, 178, 182]), abs=1e-9)


def test_empty_region_gives_nan_not_an_error():
    d = np.full((1, 2, 2), np.nan)
    (row,) = reflection_statistics(d, d.copy())
    assert row["count"] == 0 and np.isnan(row["d mean (nm)"])


def test_labels_sampled_at_map_pixel_centres():
    labels = np.zeros((100, 100), int)
    labels[40:, :] = 3  # image rows ≥ 40 (world y ≥ 0.8 nm at 0.02 nm/px)
    out = labels_on_map(
        labels,
        labels_scale=(0.02, 0.02),
        labels_translate=(0.0, 0.0),
        map_shape=(13, 13),
        map_scale=(0.16, 0.16),
        map_translate=(0.0, 0.0),
    )
    # Map row i sits on image row 8 i: rows 0-4 (image 0-32) are 0, rows ≥ 5 (image ≥ 40) are 3.
    assert (out[:5] == 0).all() and (out[5:] == 3).all()
    # A movie map takes the 2-D labels in every frame; outside the label image is 0.
    movie = labels_on_map(
        labels,
        labels_scale=(0.02, 0.02),
        labels_translate=(0.0, 0.0),
        map_shape=(2, 20, 13),
        map_scale=(1.0, 0.16, 0.16),
        map_translate=(0.0, 0.0, 0.0),
    )
    assert movie.shape == (2, 20, 13)
    assert (movie[:, 13:] == 0).all() and (movie[1, 5:13] == 3).all()


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="d_spacing and angle"):
        reflection_statistics(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="regions"):
        reflection_statistics(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), regions=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="map_scale"):
        labels_on_map(
            np.zeros((4, 4)),
            labels_scale=(1, 1),
            labels_translate=(0, 0),
            map_shape=(2, 2),
            map_scale=(1,),
            map_translate=(0, 0),
        )


def test_tsv_has_header_and_one_line_per_row():
    rows = reflection_statistics(np.full((2, 2, 2), 0.2), np.zeros((2, 2, 2)))
    text = statistics_text(rows)
    lines = text.strip().split("\n")
    assert lines[0].split("\t") == list(COLUMNS)
    assert len(lines) == 3 and lines[1].split("\t")[3] == "0.2"  # d mean, nm


def test_one_kernel_in_the_units_of_the_values():
    from napari_hrtem_fft.core.statistics import summarize, summarize_angles

    v = np.array([0.2, 0.21, np.nan, 0.25, np.inf])
    assert summarize(v) == pytest.approx((0.22, 0.21, np.std([0.2, 0.21, 0.25]), 3))
    mean, median, std, count = summarize([np.nan])
    assert np.isnan(mean) and np.isnan(median) and np.isnan(std) and count == 0
    # 179, -179, 178, -178 are 4 directions around 180°: mean ±180, spread of 179…182.
    mean, median, std, count = summarize_angles([179.0, -179.0, 178.0, -178.0, np.nan])
    assert abs(mean) == pytest.approx(180.0) and abs(median) == pytest.approx(180.0)
    assert std == pytest.approx(np.std([179, 181, 178, 182])) and count == 4
    # reflection_statistics is that kernel, d in nm as the maps hold it.
    d = np.array([[[0.2, 0.21, 0.25]]])
    (row,) = reflection_statistics(d, np.zeros_like(d))
    assert row["d median (nm)"] == pytest.approx(0.21)
    assert row["d std (nm)"] == pytest.approx(np.std([0.2, 0.21, 0.25]))


def test_weighted_median():
    from napari_hrtem_fft.core.statistics import weighted_median

    # Half the weight on 5.0: it is the median whatever the other values.
    assert weighted_median([1.0, 5.0, 2.0, 9.0], [1.0, 3.0, 1.0, 1.0]) == 5.0
    assert weighted_median([3.0, 1.0, 2.0], [1.0, 1.0, 1.0]) == 2.0
    assert np.isnan(weighted_median([1.0, 2.0], [0.0, 0.0]))
    assert np.isnan(weighted_median([], []))
