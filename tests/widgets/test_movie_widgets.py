"""Movies in the GUI: frame choices, tracking, drift, alignment on the time axis, cancel,
and the time-trace dock against the known lattice of a synthetic expanding movie."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_hrtem_fft._widgets import LatticeMapWidget, TimeTraceWidget
from napari_hrtem_fft.core.movie import region_from_polygon, trace_text
from napari_hrtem_fft.core.pipeline import AnalysisOptions, run_movie_analysis
from napari_hrtem_fft.core.reciprocal import g_spacing
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie
from napari_hrtem_fft.layers import find_result_layers, result_maps

PIXEL = 0.02  # nm
FRAMES = 6
SHAPE = (256, 256)
EXPANSION = 0.035  # reached in the last frame
REFL = pd_110_reflections(0.0)  # Pd {111}, {111}, {002} of frame 0
WINDOW, STEP = 64, 8
MAP_SHAPE = (32, 32)  # ceil(256 / 8)
# A rectangle well inside the frame (nm); map pixel i is centred on i * 0.16 nm, so
# no centre lies on its border.
RECT = np.array([[1.05, 1.05], [1.05, 3.95], [3.95, 3.95], [3.95, 1.05]])


def true_d(frames) -> np.ndarray:
    """True spacing (nm) of every reflection in the given frames, ``(t, n)``."""
    expansion = EXPANSION * np.asarray(frames, dtype=float) / (FRAMES - 1)
    return g_spacing(REFL)[None, :] * (1.0 + expansion[:, None])


@pytest.fixture(scope="module")
def movie():
    """A 6-frame 256² lattice expanding by 3.5 %, crystal everywhere, noisy (lazy)."""
    stack, truth = synthetic_movie(
        FRAMES, SHAPE, pixel_size=PIXEL, reflections=REFL, expansion_total=EXPANSION, noise=0.1
    )
    return stack.persist(), truth


@pytest.fixture
def session(make_napari_viewer, movie):
    """Viewer with the movie (1 s per frame), the reflections and the map widget."""
    viewer = make_napari_viewer()
    stack, _ = movie
    image = viewer.add_image(
        stack, name="movie", scale=(1.0, PIXEL, PIXEL), units=("s", "nm", "nm")
    )
    # The reflections (1/nm) as points; units as the image's only so that napari does
    # not warn about mixed units (the widget reads the values).
    viewer.add_points(REFL, name="g", units="nm")
    widget = LatticeMapWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.choose_inputs(image, viewer.layers["g"], window=WINDOW, step=STEP)
    return viewer, image, widget


def _run(qtbot, widget, timeout=30_000):
    widget._run.clicked.emit()
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
    assert widget._status.value.startswith("done"), widget._status.value


def _d_layers(viewer, source="movie"):
    layers = result_maps(viewer.layers, source=source)
    return [la for la in layers if la.metadata["napari_hrtem_fft"]["kind"] == "d_spacing"]


def _medians(layer) -> np.ndarray:
    """Median d (nm) per frame of a d-spacing layer inside RECT."""
    mask = region_from_polygon(RECT, MAP_SHAPE, STEP * PIXEL)
    return np.array([np.nanmedian(frame[mask]) for frame in np.asarray(layer.data)])


def _shown(widget) -> bool:
    """Not hidden by the widget (the test viewer's window itself is never shown)."""
    return not widget.native.isHidden()


def test_movie_options_only_for_stacks(session):
    viewer, _, widget = session
    assert _shown(widget._frames) and widget._frames.value == "all frames"
    assert widget._last.max == FRAMES - 1 and widget._last.value == FRAMES - 1
    # A tracking region drawn as a rectangle becomes a mask on the map grid.
    shapes = viewer.add_shapes(RECT, shape_type="rectangle", name="particle", units="nm")
    widget.reset_choices()
    widget._track.value = True
    widget._track_region.value = shapes
    movie = widget._inputs()["movie"]
    assert movie["frames"] == range(FRAMES) and movie["track"]
    expected = region_from_polygon(RECT, MAP_SHAPE, STEP * PIXEL)
    np.testing.assert_array_equal(movie["region"], expected)
    assert movie["region_layer"] == "particle"
    widget._frames.value = "current frame"
    assert not widget._track.enabled and not widget._drift.enabled
    still = viewer.add_image(np.zeros((128, 128)), name="still", scale=(PIXEL, PIXEL))
    widget._image.value = still
    assert not _shown(widget._frames) and not _shown(widget._track)


def test_current_frame_and_range_sit_on_their_frames(session, qtbot, movie):
    viewer, image, widget = session
    viewer.dims.set_current_step(0, 3)
    widget._frames.value = "current frame"
    assert widget.frames(image) == range(3, 4)
    _run(qtbot, widget)
    assert len(find_result_layers(viewer.layers, source="movie")) == 1
    layers = result_maps(viewer.layers, source="movie")
    assert len(layers) == 3 * 3 + 4  # d, angle and amplitude per reflection; strain
    for layer in layers:
        assert layer.data.shape == (1, *MAP_SHAPE)
        np.testing.assert_allclose(layer.scale, [1.0, STEP * PIXEL, STEP * PIXEL])
        np.testing.assert_allclose(layer.translate, [3.0, 0.0, 0.0])
    # The estimator reads this noisy lattice to better than 0.05 %; 0.1 % is the bound.
    for k, layer in enumerate(_d_layers(viewer)):
        assert _medians(layer)[0] == pytest.approx(true_d([3])[0, k], rel=1e-3)
    assert "frame 3" in widget._status.value

    widget._frames.value = "range"
    widget._first.value, widget._last.value = 2, 4
    _run(qtbot, widget)
    assert len(find_result_layers(viewer.layers, source="movie")) == 1  # replaced
    assert len(result_maps(viewer.layers, source="movie")) == 13
    d1 = _d_layers(viewer)[0]
    assert d1.data.shape == (3, *MAP_SHAPE)
    np.testing.assert_allclose(d1.translate, [2.0, 0.0, 0.0])
    # Frame k of the image and map frame k - 2 are at the same world time, and the map
    # frame there has the spacing of image frame k.
    for k in (2, 3, 4):
        assert image.world_to_data((k, 1.0, 1.0))[0] == pytest.approx(k)
        assert d1.layer.world_to_data((k, 1.0, 1.0))[0] == pytest.approx(k - 2)
    np.testing.assert_allclose(_medians(d1), true_d([2, 3, 4])[:, 0], rtol=1e-3)
    movie_info = d1.metadata["napari_hrtem_fft"]["options"]["movie"]
    assert movie_info["frames"] == [2, 3, 4] and movie_info["track"] is False


def test_all_frames_tracked_follow_the_lattice_beyond_the_search_range(session, qtbot):
    viewer, _, widget = session
    # ±2 % search: fixed reflections lose the lattice after 2 % of the 3.5 % expansion.
    widget._search.value = 0.02
    widget._frames.value = "all frames"
    _run(qtbot, widget)
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        lost = _medians(_d_layers(viewer)[0])
    assert np.all(np.isfinite(lost[:2])) and np.all(np.isnan(lost[-2:]))

    widget._track.value = True
    _run(qtbot, widget)
    d_layers = _d_layers(viewer)
    for k, layer in enumerate(d_layers):
        assert layer.data.shape == (FRAMES, *MAP_SHAPE)
        np.testing.assert_allclose(layer.translate, [0.0, 0.0, 0.0])
        np.testing.assert_allclose(_medians(layer), true_d(range(FRAMES))[:, k], rtol=1e-3)
    info = d_layers[0].metadata["napari_hrtem_fft"]["options"]["movie"]
    assert info["track"] is True
    found = np.asarray(info["found_per_frame"])  # (t, n, 2) lattice found per frame
    np.testing.assert_allclose(g_spacing(found[-1]), true_d([FRAMES - 1])[0], rtol=1e-3)
    # exx of the last frame is the expansion (relative to the picked reflections).
    exx = next(m for m in result_maps(viewer.layers) if m.name == "exx · movie")
    mask = region_from_polygon(RECT, MAP_SHAPE, STEP * PIXEL)
    assert np.nanmedian(np.asarray(exx.data)[-1][mask]) == pytest.approx(EXPANSION, abs=1e-3)


def test_generator_stops_between_frames():
    """Cancel after the first frame: no further frame is read, nothing is returned."""
    import dask.array as da

    stack, _ = synthetic_movie(4, (128, 128), pixel_size=PIXEL, reflections=REFL, lazy=False)
    read = []

    def counted(block, block_info=None):
        read.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(stack, chunks=(1, 128, 128)).map_blocks(counted, dtype=stack.dtype)
    cancel = threading.Event()
    gen = run_movie_analysis(
        lazy,
        REFL,
        pixel_size=PIXEL,
        frames=range(4),
        options=AnalysisOptions(window=WINDOW, step=STEP),
        cancel=cancel,
    )
    assert next(gen).message == "starting"
    first = next(gen)
    assert (first.done, first.total) == (1, 4) and read == [0]
    cancel.set()
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value is None
    assert read == [0]


def test_cancel_in_the_gui_stops_after_the_current_frame(session, qtbot):
    import dask.array as da

    viewer, image, widget = session
    read = []
    cancel_pressed = threading.Event()

    def slow(block, block_info=None):
        frame = block_info[0]["chunk-location"][0]
        read.append(frame)
        if frame >= 1:  # the second frame is still being read when Cancel is pressed
            cancel_pressed.wait(timeout=10)
        return block

    data = np.asarray(image.data)
    slow_movie = viewer.add_image(
        da.from_array(data, chunks=(1, *SHAPE)).map_blocks(slow, dtype=data.dtype),
        name="slow",
        scale=image.scale,
        units=("s", "nm", "nm"),
    )
    widget._image.value = slow_movie
    n_layers = len(viewer.layers)
    read.clear()  # napari read the frame on display
    widget._run.clicked.emit()
    qtbot.waitUntil(lambda: widget._progress.value >= 1, timeout=10_000)
    widget._cancel.clicked.emit()
    cancel_pressed.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=5_000)  # a hang guard
    # The frame being analysed when Cancel was pressed finishes; no other starts.
    assert read in ([0], [0, 1])
    assert len(viewer.layers) == n_layers
    assert "cancelled" in widget._status.value and widget._run.enabled


def test_time_trace_in_a_rectangle_matches_the_lattice(session, qtbot, tmp_path, monkeypatch):
    viewer, _, widget = session
    _run(qtbot, widget)
    shapes = viewer.add_shapes(RECT, shape_type="rectangle", name="particle", units="nm")
    dock = TimeTraceWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.reset_choices()
    assert dock._source.value == "movie"
    dock._region.value = shapes
    dock.update_trace()
    trace = dock.trace
    np.testing.assert_array_equal(trace.frames, np.arange(FRAMES))
    np.testing.assert_allclose(trace.times, np.arange(FRAMES) * 1.0)  # 1 s per frame
    np.testing.assert_allclose(trace["d_median"], true_d(range(FRAMES)), rtol=1e-3)
    # Exactly the valid map pixels inside the rectangle.
    d1 = np.asarray(_d_layers(viewer)[0].data)
    mask = region_from_polygon(RECT, MAP_SHAPE, STEP * PIXEL)
    np.testing.assert_array_equal(
        trace["d_count"][:, 0], [np.count_nonzero(np.isfinite(f[mask])) for f in d1]
    )
    assert trace["d_count"].min() > 200
    np.testing.assert_allclose(trace["exx_median"], EXPANSION * np.arange(FRAMES) / 5, atol=1e-3)
    # Plot: one curve per reflection with its band, three strain curves.
    d_axes, strain_axes = dock._figure.axes
    curves = [line for line in d_axes.lines if line.get_label().startswith(("1", "2", "3"))]
    assert len(curves) == 3
    assert len(d_axes.collections) == 3 and len(strain_axes.collections) == 3
    assert d_axes.get_ylabel() == "median d (nm)" and strain_axes.get_xlabel() == "time (s)"
    assert len(dock._table.value["data"]) == FRAMES
    text = dock.copy_text().splitlines()
    assert text[0].startswith("frame\ttime_s\td_mean_g1_nm") and len(text) == FRAMES + 1
    # the dock copies what the CSV export writes, tab-separated, numbers exactly
    assert dock.copy_text() == trace_text(dock.trace, delimiter="\t")
    col = text[0].split("\t").index("d_median_g2_nm")
    copied = [float(line.split("\t")[col]) for line in text[1:]]
    np.testing.assert_array_equal(copied, trace["d_median"][:, 1])

    # The same rectangle painted as labels gives the same pixels.
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[53:198, 53:198] = 2
    painted = viewer.add_labels(labels, name="painted", scale=(PIXEL, PIXEL))
    dock.reset_choices()
    dock._region.value = painted
    dock.update_trace()
    np.testing.assert_array_equal(dock.trace["d_count"], trace["d_count"])
    dock._label.value = 1  # no pixel has label 1
    dock.update_trace()
    assert dock.trace["d_count"].sum() == 0 and "no map pixel" in dock._status.value
    dock._region.value = shapes

    # Editing the region updates the trace: a rectangle of 2 x 2 map pixels.
    before = dock.trace["d_count"][0, 0]
    shapes.data = [np.array([[2.0, 2.0], [2.0, 2.3], [2.3, 2.3], [2.3, 2.0]])]
    qtbot.waitUntil(lambda: dock.trace is not None and dock.trace["d_count"][0, 0] != before)
    assert dock.trace["d_count"][0, 0] == 4

    # CSV export writes once and never replaces the file.
    out = tmp_path / "trace.csv"
    dock._csv_path.value = out
    dock._export.clicked.emit()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# napari-hrtem-fft time trace")
    assert sum(not line.startswith("#") for line in lines) == FRAMES + 1
    stamp = out.stat().st_mtime_ns
    shown = []
    monkeypatch.setattr("napari_hrtem_fft._widgets.time_trace.show_error", shown.append)
    dock._export.clicked.emit()
    assert len(shown) == 1 and "already exists" in shown[0]
    assert out.stat().st_mtime_ns == stamp


def test_drift_corrected_copy_and_regions_that_follow(make_napari_viewer, qtbot):
    """A drifting particle: 'correct' maps a lazy corrected copy; 'measure' keeps the
    frames and moves the time-trace region with the drift."""
    drift = np.array([[0, 0], [1.5, -2.0], [3.0, -4.0], [4.5, -6.0]])
    stack, _ = synthetic_movie(
        4,
        SHAPE,
        pixel_size=PIXEL,
        reflections=REFL,
        expansion_total=0.0,
        drift=drift,
        radius=1.6,
        amorphous=0.1,
        noise=0.05,
    )
    viewer = make_napari_viewer()
    image = viewer.add_image(stack, name="drifting", scale=(1.0, PIXEL, PIXEL))
    viewer.add_points(REFL, name="g")
    widget = LatticeMapWidget(viewer)
    widget.choose_inputs(image, viewer.layers["g"], window=WINDOW, step=STEP)
    widget._pixel_size.value = PIXEL  # the time axis has no unit: pixels are not nm
    widget._drift.value = "correct"
    _run(qtbot, widget)
    copy = viewer.layers["drifting (drift-corrected)"]
    assert hasattr(copy.data, "dask") and copy.data.shape == stack.shape
    assert not image.visible
    info = copy.metadata["napari_hrtem_fft_drift"]
    # register_frames is tested in core (it is within 0.06 px here); here: the drift
    # of the analysed frames reached the layer.
    np.testing.assert_allclose(info["drift_px"], drift, atol=0.2)
    assert _d_layers(viewer, source=copy.name) and not _d_layers(viewer, source="drifting")

    widget._drift.value = "follow"
    _run(qtbot, widget)
    d1 = _d_layers(viewer, source="drifting")[0]
    measured = np.asarray(d1.metadata["napari_hrtem_fft"]["options"]["movie"]["drift_px"])
    shapes = viewer.add_shapes(RECT, shape_type="rectangle", name="particle", units="nm")
    dock = TimeTraceWidget(viewer)
    dock.reset_choices()
    dock._source.value = "drifting"
    dock._region.value = shapes
    dock.update_trace()
    assert dock._follow.enabled and dock._follow.value
    from napari_hrtem_fft.core.drift import shift_region

    moved = shift_region(region_from_polygon(RECT, MAP_SHAPE, STEP * PIXEL), measured, step=STEP)
    expected = [np.count_nonzero(np.isfinite(f[m])) for f, m in zip(d1.data, moved, strict=True)]
    np.testing.assert_array_equal(dock.trace["d_count"][:, 0], expected)
    assert "following the drift" in dock._status.value
