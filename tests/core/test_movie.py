"""Movie analysis: tracking, time traces, regions, CSV, zarr and dask.distributed."""

from __future__ import annotations

import csv
import logging
from dataclasses import replace

import dask.array as da
import numpy as np
import pytest

from napari_hrtem_fft.core.drift import shift_region
from napari_hrtem_fft.core.engine import analyze
from napari_hrtem_fft.core.maps import LatticeMaps, StrainMaps
from napari_hrtem_fft.core.movie import (
    MovieMapsCollector,
    MovieResult,
    analyze_movie,
    compute_maps,
    iter_analyze_movie,
    movie_parameters,
    read_zarr_maps,
    region_from_polygon,
    time_trace,
    to_zarr,
    trace_text,
    trace_to_csv,
)
from napari_hrtem_fft.core.reciprocal import g_spacing
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

PIXEL = 0.02  # nm
REFL = pd_110_reflections(10.0)


def _movie(n, size, **kw):
    options = dict(pixel_size=PIXEL, reflections=REFL, noise=0.1, amorphous=0.05)
    options.update(kw)
    return synthetic_movie(n, (size, size), **options)


# ------------------------------------------------------------------ tracking


def test_tracking_follows_5_percent_expansion_and_3_degrees():
    # 20 frames, +5 % spacing and 3° rotation, search ±10 %: the time trace of the
    # tracked analysis matches the truth to 0.05 % in d and 0.05° in angle, every frame.
    stack, truth = _movie(20, 512, expansion_total=0.05, rotation_total=3.0, lazy=False)
    result = analyze_movie(stack, REFL, pixel_size=PIXEL, window=128, step=16, search=0.1)
    assert isinstance(result, MovieResult) and result.tracked
    assert result.maps.d_spacing.shape == (3, 20, 32, 32)
    assert result.maps.strain.exx.shape == (20, 32, 32)
    trace = time_trace(result)
    err = trace["d_median"] / truth.d_spacing - 1
    assert np.all(np.isfinite(err)) and np.abs(err).max() < 5e-4, np.abs(err).max()
    assert np.abs(trace["angle_median"] - truth.angle).max() < 0.05
    # the reflections used in the last frame are those found in the one before
    np.testing.assert_allclose(result.reflections[-1], result.found[-2])
    np.testing.assert_allclose(result.found[-1], truth.g[-1], rtol=5e-4, atol=2e-3)
    # strain is relative to the first frame's lattice: +5 % at the end (±0.1 %)
    np.testing.assert_allclose(trace["exx_median"][[0, -1]], [0.0, 0.05], atol=1e-3)
    np.testing.assert_allclose(trace["rotation_median"][-1], 3.0, atol=0.05)


def test_tracking_is_needed_beyond_the_search_region():
    # 8° of rotation with search 0.05 (±2.9°): fixed reflections lose the lattice in
    # the last frames (no estimate at all), tracked ones keep it to 0.05 %.
    stack, truth = _movie(12, 384, expansion_total=0.05, rotation_total=8.0, lazy=False)
    options = dict(pixel_size=PIXEL, window=128, step=16, search=0.05)
    fixed = time_trace(analyze_movie(stack, REFL, track=False, **options))
    assert np.all(fixed["d_count"][-1] == 0)
    tracked = time_trace(analyze_movie(stack, REFL, track=True, **options))
    err = tracked["d_median"] / truth.d_spacing - 1
    assert np.abs(err).max() < 5e-4, np.abs(err).max()


def test_untracked_dask_movie_is_lazy_and_equals_frame_by_frame():
    stack, _ = _movie(4, 256, expansion_total=0.02)
    result = analyze_movie(stack, REFL, pixel_size=PIXEL, window=64, step=8, track=False)
    assert isinstance(result.maps.d_spacing, da.Array) and result.found is None
    assert result.reflections.shape == (4, 3, 2)
    lazy = compute_maps(result).maps
    eager = np.asarray(stack)
    for k in (0, 3):
        one = analyze(eager[k], REFL, pixel_size=PIXEL, window=64, step=8)
        np.testing.assert_allclose(lazy.d_spacing[:, k], one.d_spacing, rtol=1e-6)
        np.testing.assert_allclose(lazy.strain.exx[k], one.strain.exx, rtol=1e-5, atol=1e-7)


def test_iter_analyze_movie_frames_progress_and_cancel():
    stack, _ = _movie(6, 192, expansion_total=0.01, lazy=False)
    computed = []

    def frame(block, block_info=None):
        computed.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(stack, chunks=(1, 192, 192)).map_blocks(frame, dtype=stack.dtype)
    stream = iter_analyze_movie(lazy, REFL, pixel_size=PIXEL, window=64, step=16, frames=[5, 1, 3])
    start = next(stream)
    assert (start.done, start.total, start.message) == (0, 3, "starting") and computed == []
    first = next(stream)
    assert first.frame == 5 and first.maps.d_spacing.shape == (3, 12, 12)
    assert (first.done, first.total) == (1, 3)
    stream.close()  # cancel between frames: nothing more is read
    assert computed == [5]
    calls = []
    result = analyze_movie(
        stack,
        REFL,
        pixel_size=PIXEL,
        window=64,
        step=16,
        frames=slice(1, 6, 2),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(result.frames, [1, 3, 5])
    assert result.maps.d_spacing.shape == (3, 3, 12, 12)


def test_measured_drift_corrected_or_followed_and_post_processed():
    # The lattice drifts 6 px per frame: measured against the first analysed frame, then
    # either the corrected copy is analysed or the region follows; the hook runs on
    # every frame's maps and a frame it blanks is listed.
    n, size, step = 4, 256, 16
    drift = np.stack([np.zeros(n), 6.0 * np.arange(n)], axis=1)
    stack, truth = _movie(n, size, drift=drift, expansion_total=0.02, lazy=False)
    seen = []

    def post(maps, frame):
        seen.append(frame.shape)
        if len(seen) == 2:
            return maps.with_arrays({"d_spacing": np.full_like(maps.d_spacing, np.nan)})
        return maps

    options = dict(pixel_size=PIXEL, window=64, step=step, frames=range(1, 4))
    steps = list(_steps(iter_analyze_movie(stack, REFL, drift="measure", **options)))
    assert [s.done for s in steps] == [0, 1, 3, 4, 5, 6] and steps[0].total == 6
    corrected = analyze_movie(
        stack, REFL, drift="measure", correct_drift=True, postprocess=post, **options
    )
    # Drift relative to frame 1, in pixels: (0, 0), (0, 6), (0, 12); registration of
    # these small expanding frames is good to a few tenths of a pixel.
    np.testing.assert_allclose(corrected.drift, drift[1:] - drift[1], atol=0.3)
    assert corrected.drift_mode == "correct" and corrected.corrected.shape == (3, size, size)
    assert seen == [(size, size)] * 3 and corrected.blank_frames == [2]
    np.testing.assert_array_equal(corrected.frames, [1, 2, 3])
    assert corrected.maps.parameters["movie"]["drift_mode"] == "correct"
    followed = analyze_movie(stack, REFL, drift="measure", **options)
    assert followed.drift_mode == "follow" and followed.corrected is None
    np.testing.assert_array_equal(followed.drift, corrected.drift)
    np.testing.assert_allclose(g_spacing(followed.found[-1]), truth.d_spacing[-1], rtol=2e-3)
    with pytest.raises(ValueError, match="correct_drift needs a drift"):
        iter_analyze_movie(stack, REFL, correct_drift=True, **options)
    with pytest.raises(ValueError, match="drift must be None"):
        iter_analyze_movie(stack, REFL, drift="guess", **options)


def _steps(generator):
    """Every step a generator yields (its result dropped)."""
    yield from generator


def test_region_follows_the_drift(caplog):
    # A small particle moves 48 px per frame; the region drawn around it in frame 0
    # only keeps finding the lattice when it moves with the drift.
    n, size, step = 5, 512, 16
    drift = np.stack([np.zeros(n), 48.0 * np.arange(n)], axis=1)
    stack, truth = _movie(
        n, size, radius=2.0, drift=drift, amorphous=0.0, noise=0.05, expansion_total=0.02,
        lazy=False,
    )  # fmt: skip
    centre = np.array(truth.center) / PIXEL / step  # map pixels
    yy, xx = np.mgrid[: size // step, : size // step]
    region = np.hypot(yy - centre[0], xx - centre[1]) <= 2.5
    options = dict(pixel_size=PIXEL, window=64, step=step, region=region)
    followed = analyze_movie(stack, REFL, drift=drift, **options)
    assert np.all(np.isfinite(followed.found))
    np.testing.assert_allclose(followed.found[-1], truth.g[-1], atol=5e-3)  # 0.1 % of |g|
    with caplog.at_level(logging.WARNING, logger="napari_hrtem_fft.core.movie"):
        stale = analyze_movie(stack, REFL, **options)
    assert np.all(np.isnan(stale.found[-1])) and "not found" in caplog.text
    # per-frame regions are used as given (not moved a second time)
    per_frame = shift_region(region, drift, step=step)
    options["region"] = per_frame
    np.testing.assert_array_equal(analyze_movie(stack, REFL, drift=drift, **options).found,
                                  followed.found)  # fmt: skip
    # the time trace of the drifting result moves the region too
    trace = time_trace(followed, region)
    assert np.all(trace["d_count"] >= 10)
    np.testing.assert_allclose(trace["d_median"][-1], truth.d_spacing[-1], rtol=2e-3)
    assert np.all(time_trace(stale, region)["d_count"][-1] < 3)
    # the region moved exactly as shift_region moves it
    moved = shift_region(region, drift[-1:], step=step)[0]
    assert moved.sum() == region.sum() and np.array_equal(np.roll(region, 12, axis=1), moved)


def test_analyze_movie_bad_input():
    stack = np.zeros((3, 128, 128), dtype=np.float32)
    options = dict(pixel_size=PIXEL, window=64, step=16)
    with pytest.raises(ValueError, match="3 dimensions"):
        analyze_movie(stack[0], REFL, **options)
    with pytest.raises(ValueError, match="out of range"):
        analyze_movie(stack, REFL, frames=[0, 3], **options)
    with pytest.raises(ValueError, match="selects no frame"):
        analyze_movie(stack, REFL, frames=slice(2, 2), **options)
    with pytest.raises(ValueError, match="drift must have shape"):
        analyze_movie(stack, REFL, drift=np.zeros((2, 2)), **options)
    with pytest.raises(ValueError, match="does not match the map grid"):
        iter_analyze_movie(stack, REFL, region=np.ones((5, 5), bool), **options)
    with pytest.raises(TypeError, match="boolean"):
        iter_analyze_movie(stack, REFL, region=np.ones((8, 8)), **options)
    with pytest.raises(TypeError, match="progress"):
        analyze_movie(stack, REFL, progress=3, **options)
    with pytest.raises(ValueError, match="strain_reference"):
        iter_analyze_movie(stack, REFL, strain_reference=REFL[:2], **options)
    # the same checks for an untracked (lazy) analysis
    with pytest.raises(ValueError, match="does not match the map grid"):
        analyze_movie(stack, REFL, track=False, region=np.ones((5, 5), bool), **options)
    with pytest.raises(ValueError, match="step must be a positive integer"):
        analyze_movie(stack, REFL, track=False, **{**options, "step": 0})
    with pytest.raises(TypeError, match="track must be True or False"):
        iter_analyze_movie(stack, REFL, track="yes", **options)


def _frame_of(maps: LatticeMaps, k: int, **parameters) -> LatticeMaps:
    """Frame ``k`` of movie maps ``(n, t, my, mx)`` as single-frame maps ``(n, my, mx)``."""
    names = ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma")
    comps = {c: a[k] for c, a in maps.strain.components().items()}
    return LatticeMaps(
        **{name: getattr(maps, name)[:, k] for name in names},
        reflections=maps.reflections,
        window=maps.window,
        step=maps.step,
        pixel_size=maps.pixel_size,
        strain=StrainMaps(**comps, reference=maps.strain.reference),
        parameters=dict(parameters),
    )


@pytest.mark.parametrize("in_zarr", [False, True])
def test_movie_maps_collector_fills_frames_in_any_order(in_zarr, tmp_path):
    import zarr

    movie = _known_maps(t=3)
    group = zarr.open_group(str(tmp_path / "m.zarr"), mode="w") if in_zarr else None
    collector = MovieMapsCollector(3, group=group)
    per_frame = {"found": [[1.0, 2.0]], "demodulation": [[0.5]], "window": 64}
    for k in (2, 0, 1):
        collector.add(k, _frame_of(movie, k, **per_frame))
    maps = collector.maps(parameters={"movie": {"frames": [0, 1, 2]}})
    # zarr arrays are float32; numpy ones keep the frames' float64 exactly
    dtype = np.float32 if in_zarr else np.float64
    for name in ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma"):
        assert getattr(maps, name).shape == (2, 3, 4, 5)
        np.testing.assert_array_equal(
            np.asarray(getattr(maps, name)), getattr(movie, name).astype(dtype)
        )
    for c, a in maps.strain.components().items():
        np.testing.assert_array_equal(np.asarray(a), getattr(movie.strain, c).astype(dtype))
    np.testing.assert_array_equal(maps.strain.reference, movie.strain.reference)
    assert maps.parameters == {"window": 64, "movie": {"frames": [0, 1, 2]}}
    assert (maps.window, maps.step, maps.pixel_size) == (64, 8, 0.02)
    np.testing.assert_array_equal(maps.reflections, movie.reflections)
    other = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(collector.maps(reflections=other).reflections, other)


def test_movie_maps_collector_bad_input():
    movie = _known_maps(t=2)
    with pytest.raises(ValueError, match="no frame"):
        MovieMapsCollector(2).maps()
    with pytest.raises(ValueError, match="positive integer"):
        MovieMapsCollector(0)
    collector = MovieMapsCollector(2)
    with pytest.raises(ValueError, match="position"):
        collector.add(2, _frame_of(movie, 0))
    with pytest.raises(TypeError, match="LatticeMaps"):
        collector.add(0, {"d_spacing": 1})
    collector.add(0, _frame_of(movie, 0))
    with pytest.raises(ValueError, match="first frame"):
        collector.add(1, replace(_frame_of(movie, 1), strain=None))
    assert movie_parameters({"found": 1, "demodulation": 2, "search": 0.1}) == {"search": 0.1}


# ------------------------------------------------------------------ time traces


def _known_maps(t=3, n=2, shape=(4, 5)):
    rng = np.random.default_rng(0)
    d = 0.2 + 0.01 * rng.random((n, t, *shape))
    d[0, 1, 0, 0] = np.nan
    angle = rng.uniform(-2, 2, (n, t, *shape)) + np.array([179.0, 30.0])[:, None, None, None]
    angle = 180.0 - np.mod(180.0 - angle, 360.0)  # values on both sides of ±180°
    comps = {c: rng.normal(size=(t, *shape)) * 1e-3 for c in ("exx", "eyy", "exy", "rotation")}
    return LatticeMaps(
        d_spacing=d,
        angle=angle,
        amplitude=np.full_like(d, 50.0),
        d_sigma=np.full_like(d, 1e-4),
        angle_sigma=np.full_like(d, 0.1),
        reflections=np.array([[1.0, -5.0], [2.5, 4.0]]),
        window=64,
        step=8,
        pixel_size=0.02,
        strain=StrainMaps(**comps, reference=np.array([[1.0, -5.0], [2.5, 4.0]])),
    )


def test_time_trace_known_statistics_and_circular_angles():
    maps = _known_maps()
    region = np.zeros((4, 5), dtype=bool)
    region[1:3, 1:4] = True
    region[0, 0] = True
    trace = time_trace(maps, region, times=0.5)
    np.testing.assert_allclose(trace.times, [0.0, 0.5, 1.0])
    for k in range(3):
        for r in range(2):
            v = maps.d_spacing[r, k][region]
            v = v[np.isfinite(v)]
            assert trace["d_count"][k, r] == v.size
            np.testing.assert_allclose(trace["d_mean"][k, r], v.mean(), rtol=1e-12)
            np.testing.assert_allclose(trace["d_median"][k, r], np.median(v), rtol=1e-12)
            np.testing.assert_allclose(trace["d_std"][k, r], v.std(), rtol=1e-12)
        ex = maps.strain.exx[k][region]
        np.testing.assert_allclose(trace["exx_mean"][k], ex.mean(), rtol=1e-12)
    assert trace["d_count"][1, 0] == 6  # the NaN pixel is left out
    # reflection 1 straddles ±180°: unwrapped about 179°, not averaged to ~0°
    a = maps.angle[0, 0][region]
    unwrapped = np.where(a < 0, a + 360, a)
    expected = 180.0 - np.mod(180.0 - unwrapped.mean(), 360.0)
    np.testing.assert_allclose(trace["angle_mean"][0, 0], expected, atol=1e-9)
    np.testing.assert_allclose(trace["angle_std"][0, 0], unwrapped.std(), rtol=1e-9)


def test_time_trace_region_shapes_everything_and_dask():
    maps = _known_maps()
    everything = time_trace(maps)
    assert np.all(everything["d_count"][:, 1] == 20) and everything["d_count"][1, 0] == 19
    per_frame = np.zeros((3, 4, 5), dtype=bool)
    per_frame[2] = True
    trace = time_trace(maps, per_frame)
    assert np.all(trace["d_count"][:2] == 0) and np.all(np.isnan(trace["d_mean"][:2]))
    assert np.all(trace["d_count"][2] == 20)
    per_reflection = np.zeros((2, 3, 4, 5), dtype=bool)
    per_reflection[1] = True
    trace = time_trace(maps, per_reflection)
    assert np.all(trace["d_count"][:, 0] == 0) and np.all(trace["d_count"][:, 1] == 20)
    assert np.all(trace["exx_count"] == 0)  # strain needs every reflection in the region
    lazy = _known_maps()
    lazy.d_spacing = da.from_array(lazy.d_spacing, chunks=(2, 1, 4, 5))
    np.testing.assert_array_equal(time_trace(lazy)["d_median"], everything["d_median"])
    with pytest.raises(ValueError, match="does not match maps"):
        time_trace(maps, np.ones((3, 3), bool))
    with pytest.raises(TypeError, match="boolean"):
        time_trace(maps, np.ones((4, 5)))
    with pytest.raises(ValueError, match="one value per frame"):
        time_trace(maps, times=[0.0, 1.0])
    with pytest.raises(ValueError, match="'crystal'"):
        time_trace(maps, "particle")


def test_time_trace_crystal_region_leaves_out_the_film():
    rng = np.random.default_rng(1)
    maps = _known_maps(t=3, shape=(30, 30))
    maps.window = 32  # crystal_mask erodes by window/2 = 2 map pixels
    maps.amplitude = rng.uniform(40, 60, maps.d_spacing.shape)
    maps.amplitude[..., :10] = rng.uniform(0.5, 2.0, maps.amplitude[..., :10].shape)
    maps.d_spacing[..., :10] = 0.5  # film: weak peaks and wrong values the mask drops
    trace = time_trace(maps, "crystal")
    assert np.all(trace["d_median"] < 0.21)
    # the 20 crystal columns less the 2-column margin at the film edge
    assert np.all(trace["d_count"] <= 30 * 20) and np.all(trace["d_count"] >= 30 * 16)


def test_trace_to_csv_header_units_and_no_silent_overwrite(tmp_path):
    trace = time_trace(_known_maps(), times=[0.0, 2.0, 4.0])
    path = trace_to_csv(trace, tmp_path / "trace.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#") and "nm" in lines[1] and lines[2].startswith("# g1 = ")
    rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["frame", "time_s"] and "d_median_g2_nm" in header
    assert "angle_mean_g1_deg" in header and "exx_median" in header
    assert "rotation_std_deg" in header and "d_count_g1" in header
    col = header.index("d_median_g2_nm")
    np.testing.assert_allclose([float(r[col]) for r in body], trace["d_median"][:, 1])
    with pytest.raises(FileExistsError):
        trace_to_csv(trace, path)
    trace_to_csv(trace, path, overwrite=True)
    with pytest.raises(TypeError):
        trace_to_csv({"d": 1}, tmp_path / "x.csv")


def test_trace_text_is_the_csv_body_with_exact_numbers():
    maps = _known_maps()
    trace = time_trace(maps, times=[0.0, 2.0, 4.0])
    region = np.zeros((4, 5), dtype=bool)
    region[0, 0] = True  # d of g1 in frame 1 is NaN there: no pixel, NaN statistics
    empty = time_trace(maps, region)
    assert np.isnan(empty["d_median"][1, 0]) and empty["d_count"][1, 0] == 0
    for tr in (trace, empty):
        text = trace_text(tr, delimiter="\t")
        assert text.endswith("\n") and "\r" not in text
        rows = list(csv.reader(text.splitlines(), delimiter="\t"))
        assert rows[0] == list(tr.columns())
        assert len(rows) == 1 + 3
        for k, (name, values) in enumerate(tr.columns().items()):
            parsed = np.array([float(r[k]) for r in rows[1:]])
            # written exactly (round trip), NaN as "nan", counts as integers
            np.testing.assert_array_equal(parsed, values.astype(np.float64))
            if name.startswith(("frame", "d_count")):
                assert all(r[k].isdigit() for r in rows[1:])
        assert trace_text(tr) == text.replace("\t", ",")
    assert "nan" in trace_text(empty).splitlines()[2].split(",")
    with pytest.raises(ValueError, match="one character"):
        trace_text(trace, delimiter=", ")
    with pytest.raises(TypeError, match="TimeTrace"):
        trace_text({"d": 1})


def test_trace_to_csv_body_is_trace_text(tmp_path):
    trace = time_trace(_known_maps(), times=0.5)
    path = trace_to_csv(trace, tmp_path / "trace.csv")
    text = path.read_text(encoding="utf-8")
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    assert body == trace_text(trace)
    assert "\r" not in text


def test_region_from_polygon_world_coordinates():
    # map pixels of 0.5 nm starting at (1, 2) nm; a square from (2, 3) to (3.2, 4.6) nm
    # holds centres y in {2, 2.5, 3}, x in {3, 3.5, 4, 4.5}
    square = np.array([[2.0 - 1e-9, 3.0 - 1e-9], [2.0 - 1e-9, 4.6], [3.2, 4.6], [3.2, 3.0 - 1e-9]])
    mask = region_from_polygon(square, (3, 6, 8), 0.5, (1.0, 2.0))
    expected = np.zeros((6, 8), dtype=bool)
    expected[2:5, 2:6] = True
    np.testing.assert_array_equal(mask, expected)
    # napari Shapes in a 3-D layer carry a leading time coordinate
    with_t = np.column_stack([np.full(4, 7.0), square])
    np.testing.assert_array_equal(region_from_polygon(with_t, (6, 8), (0.5, 0.5), (1, 2)), mask)
    with pytest.raises(ValueError, match="v >= 3"):
        region_from_polygon(square[:2], (6, 8), 0.5)
    with pytest.raises(ValueError, match="map_scale"):
        region_from_polygon(square, (6, 8), 0.0)


# ------------------------------------------------------------------ scale-out


def test_to_zarr_round_trip_and_no_overwrite(tmp_path):
    stack, _ = _movie(3, 192, expansion_total=0.02)
    result = analyze_movie(stack, REFL, pixel_size=PIXEL, window=64, step=8, track=False)
    store = tmp_path / "maps.zarr"
    group = to_zarr(result, store)
    assert group["d_spacing"].attrs["units"] == ["", "", "nm", "nm"]
    assert group["d_spacing"].attrs["scale"][-1] == pytest.approx(8 * PIXEL)
    assert group["exx"].shape == (3, 24, 24)
    back = read_zarr_maps(store)
    assert isinstance(back.d_spacing, da.Array)
    computed = compute_maps(result.maps, scheduler="synchronous")
    np.testing.assert_array_equal(np.asarray(back.d_spacing), computed.d_spacing)
    np.testing.assert_array_equal(np.asarray(back.strain.rotation), computed.strain.rotation)
    assert back.step == 8 and back.pixel_size == PIXEL
    np.testing.assert_allclose(back.reflections, REFL)
    with pytest.raises(FileExistsError):
        to_zarr(result, store)
    with pytest.raises(ValueError, match="frames_per_batch"):
        to_zarr(result, tmp_path / "other.zarr", frames_per_batch=0)
    to_zarr(computed, store, overwrite=True)  # numpy maps too
    batched = to_zarr(result, tmp_path / "batched.zarr", frames_per_batch=1)
    np.testing.assert_array_equal(batched["angle"][...], computed.angle)
    np.testing.assert_array_equal(batched["exy"][...], computed.strain.exy)
    with pytest.raises(TypeError, match="scheduler"):
        compute_maps(result, scheduler=3.5)


def test_localcluster_matches_threaded(tmp_path):
    distributed = pytest.importorskip("distributed")
    stack, _ = _movie(3, 256, expansion_total=0.03)
    maps = analyze(stack, REFL, pixel_size=PIXEL, window=64, step=8)
    threaded = compute_maps(maps, scheduler="threads")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_cluster = compute_maps(maps, scheduler=client)
        # by address, as a remote cluster would be given; blocks written by the workers
        to_zarr(maps, tmp_path / "m.zarr", scheduler=cluster.scheduler_address)
    stored = read_zarr_maps(tmp_path / "m.zarr")
    for name in ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma"):
        ref = getattr(threaded, name)
        for other in (getattr(on_cluster, name), np.asarray(getattr(stored, name))):
            np.testing.assert_array_equal(np.isnan(other), np.isnan(ref))
            np.testing.assert_allclose(other, ref, rtol=1e-9)
    np.testing.assert_allclose(on_cluster.strain.exy, threaded.strain.exy, rtol=1e-9)


def test_tracked_movie_streamed_to_a_store_equals_in_memory(tmp_path):
    stack, _ = _movie(4, 192, expansion_total=0.03, lazy=False)
    options = dict(pixel_size=PIXEL, window=64, step=16, search=0.1)
    in_memory = analyze_movie(stack, REFL, **options)
    store = tmp_path / "movie.zarr"
    streamed = analyze_movie(stack, REFL, store=store, **options)
    assert isinstance(streamed.maps.d_spacing, da.Array)
    for name in ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma"):
        np.testing.assert_array_equal(
            np.asarray(getattr(streamed.maps, name)), getattr(in_memory.maps, name)
        )
    np.testing.assert_array_equal(np.asarray(streamed.maps.strain.exx), in_memory.maps.strain.exx)
    np.testing.assert_array_equal(streamed.found, in_memory.found)
    stored = read_zarr_maps(store)
    assert stored.parameters["movie"]["frames"] == [0, 1, 2, 3]
    with pytest.raises(FileExistsError):
        analyze_movie(stack, REFL, store=store, **options)
    untracked = analyze_movie(stack, REFL, track=False, store=store, overwrite=True, **options)
    assert untracked.maps.d_spacing.shape == (3, 4, 12, 12)


def _failing_after_first_frame(block, block_id=None):
    if block_id[1] > 0:
        raise OSError("disk full (injected)")
    return block


def test_interrupted_store_is_refused_by_name(tmp_path):
    stack, _ = _movie(3, 192, expansion_total=0.02, lazy=False)
    maps = analyze(stack, REFL, pixel_size=PIXEL, window=64, step=16)
    # A write that fails after the first frame, as a full disk or a killed run would.
    lazy = da.from_array(maps.d_spacing, chunks=(2, 1, 12, 12))
    broken = maps.with_arrays(
        {"d_spacing": lazy.map_blocks(_failing_after_first_frame, dtype=lazy.dtype)}
    )
    store = tmp_path / "interrupted.zarr"
    with pytest.raises(OSError, match="injected"):
        to_zarr(broken, store, scheduler="synchronous")
    assert store.exists()  # the arrays were created, frame 0 written...
    with pytest.raises(ValueError, match=r"interrupted\.zarr.* is incomplete"):
        read_zarr_maps(store)  # ...but nothing reads it as finished maps

    # The same for a tracked movie streamed frame by frame: the frame read fails.
    frames = da.from_array(stack, chunks=(1, 192, 192)).map_blocks(
        lambda b, block_id=None: _failing_after_first_frame(b[None], (0, block_id[0]))[0],
        dtype=stack.dtype,
    )
    streamed = tmp_path / "streamed.zarr"
    with pytest.raises(OSError, match="injected"):
        analyze_movie(frames, REFL, pixel_size=PIXEL, window=64, step=16, store=streamed)
    with pytest.raises(ValueError, match=r"streamed\.zarr.* is incomplete"):
        read_zarr_maps(streamed)
    # A finished store carries the marker.
    to_zarr(maps, tmp_path / "whole.zarr")
    assert read_zarr_maps(tmp_path / "whole.zarr").d_spacing.shape == maps.d_spacing.shape
