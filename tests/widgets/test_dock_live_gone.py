"""The Live section's run when its dock is gone or its child process dies.

A run whose dock was destroyed ends quietly (no error handed to a worker whose Qt
signals may be deleted: that aborts Python) and still completes its store; a killed
analysis process is reported in the dock, not swallowed by the worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import numpy as np
import pytest
import tifffile

from napari_hrtem_fft._widgets.live import live_steps
from napari_hrtem_fft.core.live import LiveControl
from napari_hrtem_fft.core.live_process import PROCESS_NAME, LiveGrid
from napari_hrtem_fft.core.movie import read_zarr_maps
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

TRACES = "Time traces (d, strain vs time)"
PIXEL = 0.02  # nm


def _children() -> list:
    return [p for p in multiprocessing.active_children() if p.name == PROCESS_NAME]


def _frames(n=2):
    stack, _ = synthetic_movie(
        n, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, lazy=False,
    )  # fmt: skip
    return stack


def _steps(folder, store, *, pixel_size, gone):
    control = LiveControl()
    steps = live_steps(folder, pixel_size=pixel_size, auto=3, store=store, control=control,
                       window=64, step=8, gone=gone)  # fmt: skip
    return steps, control


def test_a_run_whose_dock_is_gone_stops_quietly_with_a_complete_store(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    tifffile.imwrite(folder / "frame_000.tif", _frames(1)[0])
    gone = threading.Event()
    steps, control = _steps(folder, tmp_path / "live.zarr", pixel_size=PIXEL, gone=gone)
    next(item for item in steps if isinstance(item, LiveGrid))
    control.set_regions(None)
    first = next(item for item in steps if item is not None and item.kind == "frame")
    assert first.frame == 0
    gone.set()  # the dock was destroyed
    with pytest.raises(StopIteration) as end:
        next(steps)
    assert end.value.value is None
    assert not _children()
    assert read_zarr_maps(tmp_path / "live.zarr").d_spacing.shape[1] == 1


def test_an_error_of_a_run_whose_dock_is_gone_is_not_raised(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    # No pixel-size calibration in the file and none given: the child fails.
    tifffile.imwrite(folder / "frame_000.tif", _frames(1)[0])
    steps, _ = _steps(folder, tmp_path / "a.zarr", pixel_size=None, gone=threading.Event())
    with pytest.raises(ValueError, match=r"frame_000\.tif has no pixel-size calibration"):
        list(steps)  # with the dock there, the dock shows it
    gone = threading.Event()
    steps, _ = _steps(folder, tmp_path / "b.zarr", pixel_size=None, gone=gone)
    assert next(steps) is None  # the child started, waiting
    gone.set()
    assert list(steps) == []  # ended without raising
    assert not _children()


def test_a_killed_analysis_process_is_reported_in_the_dock(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    folder = tmp_path / "acq"
    folder.mkdir()
    tifffile.imwrite(folder / "frame_000.tif", _frames(1)[0])
    _, dock = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", TRACES)
    live = dock._live
    live._source.value = folder
    live._pixel.value = PIXEL
    live._window.value = 64
    live._store.value = tmp_path / "live.zarr"
    live._start.clicked.emit()
    qtbot.waitUntil(lambda: "live frame" in viewer.layers, timeout=60_000)
    (child,) = _children()
    # napari's worker also hands the error to its notifications (raised in tests).
    with qtbot.capture_exceptions() as caught:
        os.kill(child.pid, signal.SIGKILL)
        # A RuntimeError would be taken by the worker for its own deletion, and dropped.
        qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    assert live._status.value == "error: the live analysis process was killed without a result"
    assert [type(error).__name__ for _, error, _ in caught] == ["LiveProcessError"]
    assert np.shape(viewer.layers["live frame"].data)[-1] > 0
