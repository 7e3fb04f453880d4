"""The dock's live run in a separate process: the same store and traces as in-process,
stopped when the generator closes, errors and crashes raised in the parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
import tifffile

from napari_hrtem_fft.core.live import LiveControl
from napari_hrtem_fft.core.live_process import (
    PROCESS_NAME,
    LiveGrid,
    LiveProcessError,
    live_in_process,
)
from napari_hrtem_fft.core.movie import analyze_movie, read_zarr_maps, time_trace
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

PIXEL = 0.02  # nm
OPTIONS = dict(auto=3, window=64, step=8, search=0.1)


def _movie(n=4, size=256):
    stack, _ = synthetic_movie(
        n, (size, size), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, expansion_total=0.03, drift=1.5, radius=size * PIXEL * 0.3, lazy=False,
    )  # fmt: skip
    return stack


def _write(folder, k, frame):
    tifffile.imwrite(folder / f"frame_{k:03d}.tif", frame)


def _children() -> list:
    return [p for p in multiprocessing.active_children() if p.name == PROCESS_NAME]


def _next_frame(live, timeout=120.0):
    """The next frame update (regions set when the grid comes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = next(live)
        if item is not None and not isinstance(item, LiveGrid):
            return item
    raise AssertionError("no frame update in time")


def test_run_in_a_process_equals_offline_analysis_and_stops_cleanly(tmp_path):
    stack = _movie()
    folder = tmp_path / "acq"
    folder.mkdir()
    my = -(-stack.shape[1] // 8)
    particle = np.zeros((my, my), bool)
    particle[10:22, 10:22] = True
    control = LiveControl()
    blas = os.environ.get("OPENBLAS_NUM_THREADS")
    live = live_in_process(
        folder, control=control, pixel_size=PIXEL, store=tmp_path / "live.zarr", **OPTIONS
    )
    _write(folder, 0, stack[0])
    grid = next(item for item in live if isinstance(item, LiveGrid))
    assert grid.map_shape == (my, my) and grid.pixel_size == PIXEL
    control.set_regions({"all": None, "particle": particle})
    assert len(_children()) == 1
    # The child's BLAS on one thread (its own threads run beside it), this process's
    # environment as it was.
    environ = open(f"/proc/{_children()[0].pid}/environ", "rb").read().split(b"\0")
    assert b"OPENBLAS_NUM_THREADS=1" in environ
    assert os.environ.get("OPENBLAS_NUM_THREADS") == blas
    updates = [_next_frame(live)]
    for k in range(1, len(stack)):
        _write(folder, k, stack[k])
        updates.append(_next_frame(live))
    assert [u.frame for u in updates] == [0, 1, 2, 3]
    assert all(u.skipped == [] for u in updates)
    # Each stage's wall and CPU seconds, from the child's reading to the parent's copy.
    stages = updates[-1].stages
    child = ["poll", "read", "analyse", "register (beside)", "lattice", "store queue", "traces"]
    assert list(stages)[: len(child)] == child
    assert {"store write (behind)", "ship", "pipe", "unship"} <= set(stages)
    assert all(wall >= 0 for wall, _ in stages.values())
    assert 0 < stages["analyse"][0] < updates[-1].latency
    assert updates[-1].complete <= time.monotonic() - updates[-1].latency + 1e-6
    # The child's own CPU clock: it analysed three frames between the first and last.
    assert updates[-1].cpu - updates[0].cpu >= stages["analyse"][1] > 0
    # The frame and its maps came through shared memory.
    np.testing.assert_array_equal(updates[-1].image, stack[3])
    reader = updates[-1].store
    assert reader.count == 4
    newest = np.asarray(updates[-1].maps.d_spacing)
    np.testing.assert_array_equal(reader.frame("d_spacing", 3), newest)
    control.stop()
    with pytest.raises(StopIteration) as end:
        while True:
            next(live)
    result = end.value.value
    assert not _children()  # the child ended with the run
    # Read where the child wrote it: every frame from the completed store.
    stored = read_zarr_maps(tmp_path / "live.zarr")
    assert stored.d_spacing.shape == (3, 4, my, my)
    np.testing.assert_array_equal(reader.stack("d_spacing", 1)[:], np.asarray(stored.d_spacing)[1])
    # The store equals the offline analysis of the frames with the drift the run measured.
    drift = np.stack([u.drift for u in updates])
    offline = analyze_movie(
        stack, stored.reflections, pixel_size=PIXEL, track=True, drift=drift, window=64,
        step=8, search=0.1,
    )  # fmt: skip
    for name, ref in offline.maps.arrays().items():
        got = np.asarray(stored.arrays()[name])
        np.testing.assert_array_equal(got, np.asarray(ref, dtype=np.float32), err_msg=name)
    # The traces the parent built from each frame's row are the child's and the offline's.
    for name in ("all", "particle"):
        relayed, final = updates[-1].traces[name], result.traces[name]
        np.testing.assert_array_equal(relayed.frames, final.frames)
        for key in ("d_median", "d_count", "exx_mean"):
            np.testing.assert_array_equal(relayed[key], final[key], err_msg=key)
    offline_trace = time_trace(offline, particle)
    np.testing.assert_allclose(
        result.traces["particle"]["d_median"], offline_trace["d_median"], rtol=1e-6
    )
    assert result.movie.frames.tolist() == [0, 1, 2, 3]


def _running(tmp_path, first, store: str):
    """A live run in a child process on a new folder, its frame 0 (``first``) analysed.

    Returns ``(live, control, folder)``.
    """
    folder = tmp_path / "acq"
    folder.mkdir()
    control = LiveControl()
    live = live_in_process(
        folder, control=control, pixel_size=PIXEL, store=tmp_path / store, **OPTIONS
    )
    _write(folder, 0, first)
    next(item for item in live if isinstance(item, LiveGrid))
    control.set_regions(None)
    _next_frame(live)
    return live, control, folder


def test_closing_the_generator_stops_the_child_with_a_complete_store(tmp_path):
    live, _, _ = _running(tmp_path, _movie(n=2)[0], "s.zarr")
    (child,) = _children()
    live.close()  # as the dock's worker when the viewer closes
    assert not child.is_alive()
    assert read_zarr_maps(tmp_path / "s.zarr").d_spacing.shape[1] == 1


def test_errors_of_the_child_reach_the_parent(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    _write(folder, 0, _movie(n=1)[0])  # no pixel-size calibration in the file
    live = live_in_process(folder, control=LiveControl(), pixel_size=None,
                           store=tmp_path / "e.zarr", **OPTIONS)  # fmt: skip
    with pytest.raises(ValueError, match=r"frame_000\.tif has no pixel-size calibration") as err:
        list(live)
    assert "in the live analysis process" in "\n".join(err.value.__notes__)
    assert not _children()


def test_a_killed_child_is_a_clear_error(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    live = live_in_process(folder, control=LiveControl(), pixel_size=PIXEL,
                           store=tmp_path / "k.zarr", **OPTIONS)  # fmt: skip
    next(live)
    (child,) = _children()
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(LiveProcessError, match="live analysis process was killed"):
        list(live)


def test_regions_drawn_before_a_frame_count_from_it_and_sigterm_completes_the_store(tmp_path):
    stack = _movie(n=2)
    live, control, folder = _running(tmp_path, stack[0], "t.zarr")
    new = np.zeros((32, 32), bool)
    new[8:24, 8:24] = True
    # Set in this process, then the frame is written at once: the child has it.
    control.set_regions({"all": None, "new": new})
    _write(folder, 1, stack[1])
    assert _next_frame(live).traces["new"].frames.tolist() == [1]
    # multiprocessing terminates a daemon child when this process exits normally.
    (child,) = _children()
    child.terminate()
    with pytest.raises(StopIteration) as end:
        while True:
            next(live)
    assert end.value.value.movie.frames.tolist() == [0, 1]
    assert read_zarr_maps(tmp_path / "t.zarr").d_spacing.shape[1] == 2
