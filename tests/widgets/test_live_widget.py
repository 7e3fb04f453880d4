"""Live section of the time-trace dock: frames written into a folder become layers and
a time trace as they arrive."""

from __future__ import annotations

import dataclasses

import numpy as np
import tifffile
from live_dock import PIXEL, TRACES, live_dock

from napari_hrtem_fft.core.movie import read_zarr_maps
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

# Trace region over the particle on the first frame (nm): 9 × 9 map pixels of 0.16 nm.
RECT = np.array([[1.8, 1.8], [1.8, 3.3], [3.3, 3.3], [3.3, 1.8]])


def _write(folder, k, frame):
    tifffile.imwrite(folder / f"frame_{k:03d}.tif", frame)


def _live_dock(viewer, tmp_path):
    """The Live section set up on a folder, with a regions layer."""
    shapes = viewer.add_shapes([RECT], shape_type="rectangle", name="regions")
    _, dock, folder = live_dock(viewer, tmp_path, regions=shapes)
    return dock, folder, shapes


def test_live_section_follows_a_folder_with_a_drawn_region(make_napari_viewer, qtbot, tmp_path):
    stack, truth = synthetic_movie(
        4, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, expansion_total=0.03, lazy=False,
    )  # fmt: skip
    viewer = make_napari_viewer()
    dock, folder, _ = _live_dock(viewer, tmp_path)
    live = dock._live
    _write(folder, 0, stack[0])
    live._start.clicked.emit()
    qtbot.waitUntil(lambda: "live frame" in viewer.layers, timeout=60_000)
    first = viewer.layers["live d g1 (nm)"]
    assert dock._live_trace.choices == ("everything", "region 1")
    dock._live_trace.value = "region 1"
    for k in (1, 2):
        _write(folder, k, stack[k])
        qtbot.waitUntil(lambda k=k: f"frame {k} " in live._status.value, timeout=60_000)
    d = viewer.layers["live d g1 (nm)"]
    assert d is first  # updated in place
    assert d.data.shape == (3, 32, 32)  # every frame so far, read from the store
    # Values are read off the shown map's colour bar, lengths off the scale bar.
    assert d.visible and d.colorbar.visible
    assert viewer.scale_bar.visible
    assert viewer.dims.current_step[0] == 2  # on the newest frame
    np.testing.assert_array_equal(viewer.layers["live frame"].data, stack[2])
    # The plot: d (nm) of each reflection in the region, one point per frame.
    d_axes = dock._figure.axes[0]
    assert d_axes.get_ylabel() == "median d (nm)"
    lines = [line for line in d_axes.lines if line.get_label().startswith(("1", "2", "3"))]
    assert len(lines) == 3 and all(len(line.get_xdata()) == 3 for line in lines)
    np.testing.assert_allclose(lines[0].get_ydata(), truth.d_spacing[:3, 0], rtol=2e-3)
    assert "0 skipped" in live._status.value
    # A frame draws again only the pixel columns of its own rows over the plot kept
    # from the frame before: the picture of the whole curves drawn again, to within a
    # few pixels (at most a column where the pieces meet: the whole curves are drawn
    # again every FULL_DRAW_S).
    full = dock.trace
    dock.trace = dataclasses.replace(full, frames=full.frames[:2], times=full.times[:2],
                                     stats={k: v[:2] for k, v in full.stats.items()})  # fmt: skip
    dock._x = dock._x_values()[0]
    dock._blit(0)  # rows 0 and 1 whole
    dock.trace = full
    dock._x = dock._x_values()[0]
    dock._blit(2)  # row 2 as pieces
    pieces = np.asarray(dock._canvas.buffer_rgba()).copy()
    dock._blit(0)
    differ = np.any(pieces != np.asarray(dock._canvas.buffer_rgba()), axis=-1)
    assert differ.mean() < 0.005
    _plot_grows_rarely_and_is_laid_out_once(dock, live)

    live._pause.clicked.emit()
    assert live._pause.text == "Resume"
    live._pause.clicked.emit()
    _write(folder, 3, stack[3])
    qtbot.waitUntil(lambda: "frame 3 " in live._status.value, timeout=60_000)
    live._stop.clicked.emit()
    qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    assert "stopped: 4 frames analysed, 0 skipped" in live._status.value
    maps = read_zarr_maps(tmp_path / "live.zarr")
    assert maps.d_spacing.shape[1] == 4
    # The stopped run's trace of the region: table, copy and export as for a movie.
    trace = dock.trace
    np.testing.assert_array_equal(trace.frames, [0, 1, 2, 3])
    assert np.all((trace["d_count"] > 50) & (trace["d_count"] <= 81))  # the 9 × 9 region
    # (the reflections picked on the first frame, in the order find_reflections gives;
    # 64-pixel windows on a 256² frame, 81 map pixels: within 0.5 %)
    np.testing.assert_allclose(
        np.sort(trace["d_median"], axis=1), np.sort(truth.d_spacing, axis=1), rtol=5e-3
    )
    assert len(dock._table.value["data"]) == 4
    assert dock._table.value["columns"][2] == "d1 med. nm"
    assert dock.copy_text().splitlines()[0].startswith("frame\ttime_s\td_mean_g1_nm")


def _plot_grows_rarely_and_is_laid_out_once(dock, live) -> None:
    """During a run the plot's axes grow by doubling steps and its layout is held.

    200 more frames of a lattice expanding by 3.5 % (with the noise of the frames
    seen) are handed to the plot: every point stays inside the axes, which grew in a
    few full draws; the figure is laid out again only when a tick label got longer,
    and when the canvas is resized.
    """
    layout = dock._figure.get_layout_engine()
    assert layout.held
    laid_out = layout.count
    dock._full_draw()  # nothing grew: the layout is kept
    assert layout.count == laid_out
    from qtpy.QtCore import QSize
    from qtpy.QtGui import QResizeEvent
    from qtpy.QtWidgets import QApplication

    size = dock._canvas.size()
    wider = QResizeEvent(QSize(size.width() + 40, size.height()), size)
    QApplication.sendEvent(dock._canvas, wider)
    dock._canvas.draw()
    assert layout.count == laid_out + 1

    base = dock.trace
    full_draws = []  # blits draw no figure
    watch = dock._canvas.mpl_connect("draw_event", full_draws.append)
    dock.FULL_DRAW_S = 0.0  # every growth drawn at once: counted
    for n in range(4, 204):
        growth = 1 + 0.035 * np.arange(n) / 200
        stats = {k: np.resize(v, (n, *v.shape[1:])) for k, v in base.stats.items()}
        stats["d_median"] = stats["d_median"] * growth[:, None]
        stats["exx_median"] = stats["exx_median"] + growth - 1
        trace = dataclasses.replace(base, frames=np.arange(n), times=np.arange(n) / 5.0,
                                    stats=stats)  # fmt: skip
        dock._on_live_update(dataclasses.replace(live._newest, traces={"region 1": trace}))
    d_axes, strain_axes = dock._figure.axes[:2]
    for ax, values in ((d_axes, stats["d_median"]), (strain_axes, 100 * stats["exx_median"])):
        low, high = ax.get_ylim()
        assert low < np.nanmin(values) and np.nanmax(values) < high
    assert d_axes.get_xlim()[1] >= trace.times[-1]
    # x: 10 s, 20 s, 40 s; d and strain: a few doublings each.
    assert len(full_draws) <= 12
    assert layout.count - laid_out - 1 <= len(full_draws)
    dock._canvas.mpl_disconnect(watch)
    dock.FULL_DRAW_S = type(dock).FULL_DRAW_S


def _slots_of(emitters, docks) -> list[str]:
    """Names of the methods of ``docks`` connected to ``emitters`` (napari's own
    ``reset_choices`` connection, removed by napari with the dock, left out)."""
    names = []
    for emitter in emitters:
        for callback in emitter.callbacks:
            if isinstance(callback, tuple):
                owner, name = callback[0](), callback[1]
            else:
                owner, name = (
                    getattr(callback, "__self__", None),
                    getattr(callback, "__name__", ""),
                )
            if any(owner is d for d in docks) and name != "reset_choices":
                names.append(name)
    return names


def test_closing_the_time_trace_dock_disconnects_it_from_the_viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", TRACES)
    emitters = (
        viewer.layers.events.inserted, viewer.layers.events.removed,
        viewer.dims.events.current_step,
    )  # fmt: skip
    docks = (dock, dock._live)
    assert set(_slots_of(emitters, docks)) == {
        "_on_layers_changed", "_draw_cursor"
    }  # fmt: skip
    destroyed = []
    dock.native.destroyed.connect(lambda *_: destroyed.append(True))
    dock.native.deleteLater()
    qtbot.waitUntil(lambda: bool(destroyed), timeout=10_000)
    assert _slots_of(emitters, docks) == []


def test_live_regions_drawn_during_a_run_and_a_reference(make_napari_viewer, qtbot, tmp_path):
    stack, truth = synthetic_movie(
        4, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, expansion_total=0.03, drift=1.5, radius=256 * PIXEL * 0.3, lazy=False,
    )  # fmt: skip
    viewer = make_napari_viewer()
    centre = np.array([[2.2, 2.2], [2.2, 2.9], [2.9, 2.9], [2.9, 2.2]])  # the particle's
    reference = viewer.add_shapes([centre], shape_type="rectangle", name="reference")
    dock, folder, shapes = _live_dock(viewer, tmp_path)
    live = dock._live
    live._reference.layer = reference
    _write(folder, 0, stack[0])
    _write(folder, 1, stack[1])
    live._start.clicked.emit()
    qtbot.waitUntil(lambda: bool(live.shown) and live.shown[-1][0].endswith("001.tif"),
                    timeout=60_000)  # fmt: skip
    assert dock._live_trace.choices == ("everything", "region 1")
    # Drawn on the newest frame while the run goes on: counts from the next frame.  The
    # region layers moved with the drift of the frame shown, so the new shape is drawn
    # where the particle's centre is now.
    drift_nm = truth.drift[1] - truth.drift[0]  # (dy, dx) px, first frame at 0
    np.testing.assert_allclose(shapes.translate[-2:], drift_nm * PIXEL, atol=0.15 * PIXEL)
    np.testing.assert_allclose(reference.translate[-2:], drift_nm * PIXEL, atol=0.15 * PIXEL)
    shapes.add_rectangles(centre + shapes.translate[-2:])
    for k in (2, 3):
        _write(folder, k, stack[k])
        name = f"frame_{k:03d}.tif"
        qtbot.waitUntil(lambda name=name: bool(live.shown) and live.shown[-1][0] == name,
                        timeout=60_000)  # fmt: skip
    assert dock._live_trace.choices == ("everything", "region 1", "region 2")
    live._stop.clicked.emit()
    qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    result = dock._live_result
    added = result.traces["region 2"]
    np.testing.assert_array_equal(added.frames, [2, 3])
    # The same place on the first frame as the reference: strain 0 there, while the
    # lattice has expanded by 2-3 % since the first frame.
    np.testing.assert_allclose(added["exx_median"], 0, atol=3e-3)
    assert truth.expansion[3] > 0.02
    # Where it was drawn: the particle's centre on the first frame, moved with the drift.
    from napari_hrtem_fft.core.live import regions_on_grid
    from napari_hrtem_fft.core.movie import time_trace

    mask = regions_on_grid({"c": centre}, (256, 256), pixel_size=PIXEL, step=8)["c"]
    offline = time_trace(result.movie, mask)
    np.testing.assert_allclose(added["d_median"], offline["d_median"][2:], rtol=1e-6)
    np.testing.assert_array_equal(added["d_count"], offline["d_count"][2:])
    recorded = read_zarr_maps(tmp_path / "live.zarr").parameters["reference"]
    assert recorded["region"]["layer"] == "reference"
    np.testing.assert_allclose(recorded["region"]["rectangle_nm"], [2.2, 2.9, 2.2, 2.9],
                               atol=1e-9)  # fmt: skip


def test_live_layers_bounded_per_frame_hidden_binned_and_slider(make_napari_viewer, qtbot,
                                                               tmp_path):  # fmt: skip
    """Per frame the dock updates only what is shown: a hidden map layer gets the newest
    maps when it is shown, the frame is 2×2-binned while the run goes on (full size when
    paused or stopped), and the time slider follows the newest frame only if it was on
    the frame shown before."""
    stack, _ = synthetic_movie(
        4, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, lazy=False,
    )  # fmt: skip
    viewer = make_napari_viewer()
    dock, folder, _ = _live_dock(viewer, tmp_path)
    live = dock._live
    live.LIVE_FRAME_PX = 128  # 256² frames count as large here
    _write(folder, 0, stack[0])
    live._start.clicked.emit()
    qtbot.waitUntil(lambda: "live frame" in viewer.layers, timeout=60_000)
    frame = viewer.layers["live frame"]
    binned = stack[0].reshape(128, 2, 128, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(frame.data, binned, rtol=1e-6)
    np.testing.assert_allclose(frame.scale, [2 * PIXEL, 2 * PIXEL])
    # The binned pixel (0, 0) is centred between image pixels 0 and 1.
    np.testing.assert_allclose(frame.translate, [PIXEL / 2, PIXEL / 2])

    shown, hidden = viewer.layers["live d g1 (nm)"], viewer.layers["live d g2 (nm)"]
    assert shown.visible and not hidden.visible
    buffer, redrawn, replaced = frame.data, [], []
    frame.events.set_data.connect(redrawn.append)
    frame.events.data.connect(replaced.append)
    _write(folder, 1, stack[1])
    qtbot.waitUntil(lambda: "frame 1 " in live._status.value, timeout=60_000)
    assert shown.data.shape[0] == 2 and hidden.data.shape[0] == 1  # not given while hidden
    # The next binned frame is written into the array the layer shows and redrawn,
    # without new data (which would make napari recompute the viewer's dimensions).
    assert frame.data is buffer and redrawn and not replaced
    binned = stack[1].reshape(128, 2, 128, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(frame.data, binned, rtol=1e-6)
    frame.events.set_data.disconnect(redrawn.append)
    frame.events.data.disconnect(replaced.append)
    hidden.visible = True
    assert hidden.data.shape[0] == 2  # the newest maps once shown
    np.testing.assert_array_equal(hidden.data[1], live._newest.store.frame("d_spacing", 1)[1])

    # The user looks at frame 0: the slider stays there while frames arrive.
    viewer.dims.set_current_step(0, 0)
    _write(folder, 2, stack[2])
    qtbot.waitUntil(lambda: "frame 2 " in live._status.value, timeout=60_000)
    assert shown.data.shape[0] == 3 and viewer.dims.current_step[0] == 0
    # Back on the newest frame: the slider follows again.
    viewer.dims.set_current_step(0, 2)
    _write(folder, 3, stack[3])
    qtbot.waitUntil(lambda: "frame 3 " in live._status.value, timeout=60_000)
    assert viewer.dims.current_step[0] == 3

    # The status line never gets shorter during a run (the plot below it would move
    # and be drawn again from scratch), and is free again once the run stops.
    label = live._status.native
    held = []
    for text in ("a long status line " * 20, "short"):
        live._status_at = -np.inf  # the last change long ago: shown at once
        live._say(text)
        assert live._status.value == text
        held.append(label.minimumHeight())
    # (380 characters wrap to several lines in the dock)
    assert held[0] >= 3 * label.fontMetrics().height() and held[1] == held[0]

    live._pause.clicked.emit()  # paused: the newest frame at full size
    np.testing.assert_array_equal(frame.data, stack[3])
    np.testing.assert_allclose(frame.scale, [PIXEL, PIXEL])
    np.testing.assert_allclose(frame.translate, [0.0, 0.0])
    live._stop.clicked.emit()
    qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    np.testing.assert_array_equal(frame.data, stack[3])
