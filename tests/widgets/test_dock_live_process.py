"""The Live section's analysis runs in a child process: it ends with the run, when the
dock is closed and when the viewer is closed, leaving a complete store."""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import tifffile
from live_dock import PIXEL, live_dock

from napari_hrtem_fft.core.live_process import PROCESS_NAME
from napari_hrtem_fft.core.movie import read_zarr_maps
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie


def _children() -> list:
    return [p for p in multiprocessing.active_children() if p.name == PROCESS_NAME]


def _running_dock(viewer, qtbot, tmp_path):
    """The Live section started on a folder, its first frame shown."""
    stack, _ = synthetic_movie(
        2, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, lazy=False,
    )  # fmt: skip
    widget, dock, folder = live_dock(viewer, tmp_path)
    tifffile.imwrite(folder / "frame_000.tif", stack[0])
    dock._live._start.clicked.emit()
    qtbot.waitUntil(lambda: "live frame" in viewer.layers, timeout=60_000)
    assert len(_children()) == 1  # the analysis, not the dock's thread
    return widget, dock, folder, stack


def test_stop_ends_the_child_with_a_complete_store(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, dock, folder, stack = _running_dock(viewer, qtbot, tmp_path)
    live = dock._live
    tifffile.imwrite(folder / "frame_001.tif", stack[1])
    qtbot.waitUntil(lambda: "frame 1 " in live._status.value, timeout=60_000)
    # The maps layers read the store where the child wrote it, the newest from memory.
    d = viewer.layers["live d g1 (nm)"]
    assert d.data.shape == (2, 32, 32)
    live._stop.clicked.emit()
    qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    qtbot.waitUntil(lambda: not _children(), timeout=30_000)
    assert "stopped: 2 frames analysed, 0 skipped" in live._status.value
    stored = read_zarr_maps(tmp_path / "live.zarr")
    np.testing.assert_array_equal(np.asarray(d.data[:]), np.asarray(stored.d_spacing)[0])


def test_closing_the_dock_during_a_run_ends_the_child(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget, _, _, _ = _running_dock(viewer, qtbot, tmp_path)
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: not _children(), timeout=60_000)
    # Ended by a stop, not killed: the store is complete.
    assert read_zarr_maps(tmp_path / "live.zarr").d_spacing.shape[1] == 1


def test_closing_the_viewer_during_a_run_ends_the_child(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _running_dock(viewer, qtbot, tmp_path)
    viewer.close()
    qtbot.waitUntil(lambda: not _children(), timeout=60_000)
    assert read_zarr_maps(tmp_path / "live.zarr").d_spacing.shape[1] == 1


def test_a_killed_analysis_process_is_reported_in_the_dock(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, dock, _, _ = _running_dock(viewer, qtbot, tmp_path)
    live = dock._live
    (child,) = _children()
    # napari's worker also hands the error to its notifications (raised in tests).
    with qtbot.capture_exceptions() as caught:
        os.kill(child.pid, signal.SIGKILL)
        # A RuntimeError would be taken by the worker for its own deletion, and dropped.
        qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    assert live._status.value == "error: the live analysis process was killed without a result"
    assert [type(error).__name__ for _, error, _ in caught] == ["LiveProcessError"]
