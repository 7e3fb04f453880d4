"""The Live section's run when its dock is gone.

A run whose dock was destroyed ends quietly (no error handed to a worker whose Qt
signals may be deleted: that aborts Python) and still completes its store.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest
import tifffile

from napari_hrtem_fft._widgets.live import live_steps
from napari_hrtem_fft.core import live_process
from napari_hrtem_fft.core.live import LiveControl
from napari_hrtem_fft.core.live_process import PROCESS_NAME, LiveGrid
from napari_hrtem_fft.core.movie import read_zarr_maps
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

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


def test_an_error_of_a_run_whose_dock_is_gone_is_not_raised(tmp_path, monkeypatch):
    folder = tmp_path / "acq"
    folder.mkdir()
    # No pixel-size calibration in the file and none given: the child fails.
    tifffile.imwrite(folder / "frame_000.tif", _frames(1)[0])
    steps, _ = _steps(folder, tmp_path / "a.zarr", pixel_size=None, gone=threading.Event())
    with pytest.raises(ValueError, match=r"frame_000\.tif has no pixel-size calibration"):
        list(steps)  # with the dock there, the dock shows it
    assert not _children()
    gone = threading.Event()

    def failing(path, **options):
        # The run fails just as the dock goes (an error arriving after the viewer closed).
        yield None
        gone.set()
        raise ValueError("a failure after the dock was closed")

    monkeypatch.setattr(live_process, "live_in_process", failing)
    steps, _ = _steps(folder, tmp_path / "b.zarr", pixel_size=PIXEL, gone=gone)
    with pytest.raises(StopIteration) as end:
        next(steps)
    assert end.value.value is None
