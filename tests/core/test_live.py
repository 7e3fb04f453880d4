"""Live analysis: a stopped live run equals the offline movie analysis of its frames."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest

from napari_hrtem_fft.core.live import LiveControl, iter_live
from napari_hrtem_fft.core.movie import analyze_movie, read_zarr_maps, time_trace
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

PIXEL = 0.02  # nm
REFL = pd_110_reflections(10.0)
OPTIONS = dict(window=64, step=8, search=0.1)


@dataclass(frozen=True)
class Frame:
    index: int
    data: np.ndarray
    time: float
    name: str
    complete: float


class ListSource:
    """Frames handed out a few at a time, as an acquisition writes them."""

    def __init__(self, stack, per_poll=(1,)):
        self.stack, self.per_poll, self.next, self.polls = stack, list(per_poll), 0, 0

    def poll(self):
        n = self.per_poll[min(self.polls, len(self.per_poll) - 1)]
        self.polls += 1
        ks = range(self.next, min(self.next + n, len(self.stack)))
        self.next = ks.stop
        return [Frame(k, self.stack[k], 0.5 * k, f"f{k}.tif", time.monotonic()) for k in ks]


def _movie(n=6, size=256):
    stack, truth = synthetic_movie(
        n, (size, size), pixel_size=PIXEL, reflections=REFL, noise=0.05, amorphous=0.1,
        expansion_total=0.03, drift=1.5, radius=size * PIXEL * 0.3, lazy=False,
    )  # fmt: skip
    return stack, truth


def _run_to_end(gen, stop_after):
    """Drive a live run until ``stop_after`` frames are analysed, then close it."""
    updates = []
    for update in gen:
        if update.kind == "frame":
            updates.append(update)
            if len(updates) == stop_after:
                break
    try:
        gen.close()
    except StopIteration:
        pass
    return updates


def test_stopped_live_run_equals_offline_analysis_of_its_frames(tmp_path):
    stack, truth = _movie()
    my = -(-stack.shape[1] // 8)
    region = np.zeros((my, my), bool)
    region[10:22, 10:22] = True  # the particle on the first frame; it moves with the drift
    store = tmp_path / "live.zarr"
    gen = iter_live(
        ListSource(stack), REFL, pixel_size=PIXEL, store=store, region=region,
        trace_regions={"particle": region}, skip=False, poll_interval=0.001, **OPTIONS,
    )  # fmt: skip
    updates = _run_to_end(gen, len(stack))
    assert [u.frame for u in updates] == list(range(len(stack)))
    live = read_zarr_maps(store)  # complete: the completion marker was written at close
    assert live.d_spacing.shape == (3, len(stack), my, my)
    drift = np.stack([u.drift for u in updates])
    # Registered frame to frame (errors add up), the drift follows the true random walk.
    np.testing.assert_allclose(drift, truth.drift - truth.drift[0], atol=0.15)

    offline = analyze_movie(
        stack, REFL, pixel_size=PIXEL, track=True, region=region, drift=drift, **OPTIONS
    )
    for name, ref in offline.maps.arrays().items():
        got = np.asarray(live.arrays()[name])
        np.testing.assert_array_equal(got, np.asarray(ref, dtype=np.float32), err_msg=name)
    np.testing.assert_array_equal(live.reflections, REFL)
    # The trace of the live run is the offline trace of the moving region.
    trace = updates[-1].traces["particle"]
    offline_trace = time_trace(offline, region)
    for key in ("d_median", "d_count", "exx_mean"):
        np.testing.assert_allclose(trace[key], offline_trace[key], rtol=1e-6, err_msg=key)
    # The lattice expands by 3 % through the movie; the trace (64-px windows) sees it.
    growth = trace["d_median"][-1] / trace["d_median"][0] - 1
    np.testing.assert_allclose(growth, 0.03, atol=3e-3)


def test_behind_the_acquisition_it_skips_to_the_newest_frame_and_says_so(tmp_path):
    stack, _ = _movie(n=7, size=128)
    # The acquisition delivers 1 frame, then 3 at once (analysis was slow), then 3.
    source = ListSource(stack, per_poll=(1, 3, 3))
    gen = iter_live(source, REFL, pixel_size=PIXEL, store=tmp_path / "s.zarr",
                    poll_interval=0.001, **OPTIONS)  # fmt: skip
    updates = _run_to_end(gen, 3)
    assert [u.frame for u in updates] == [0, 3, 6]
    assert [u.skipped for u in updates] == [[], [1, 2], [4, 5]]
    assert "skipped 1-2" in updates[1].message
    live = read_zarr_maps(tmp_path / "s.zarr")
    assert live.parameters["movie"]["frames"] == [0, 3, 6]
    assert live.parameters["live"]["skipped"] == [1, 2, 4, 5]
    np.testing.assert_array_equal(live.parameters["live"]["times_s"], [0.0, 1.5, 3.0])


def test_pause_resume_stop(tmp_path):
    stack, _ = _movie(n=5, size=128)
    control = LiveControl()
    gen = iter_live(ListSource(stack), REFL, pixel_size=PIXEL, store=tmp_path / "p.zarr",
                    control=control, poll_interval=0.001, **OPTIONS)  # fmt: skip
    first = next(u for u in gen if u.kind == "frame")
    assert first.frame == 0
    control.pause()
    assert {next(gen).kind for _ in range(3)} == {"paused"}
    control.resume()
    assert next(u for u in gen if u.kind == "frame").frame == 1
    control.stop()
    with pytest.raises(StopIteration) as end:
        while True:
            next(gen)
    result = end.value.value
    assert result.movie.frames.tolist() == [0, 1]
    assert read_zarr_maps(tmp_path / "p.zarr").d_spacing.shape[1] == 2


def test_the_first_frame_is_analysed_even_when_others_wait(tmp_path):
    # The acquisition was ahead before the run started: frames 0-3 wait at once.  The
    # first frame is the reference (drift, regions, strain), the newest is next.
    stack, _ = _movie(n=6, size=128)
    source = ListSource(stack, per_poll=(4, 2))
    gen = iter_live(source, REFL, pixel_size=PIXEL, store=tmp_path / "f.zarr",
                    poll_interval=0.001, **OPTIONS)  # fmt: skip
    updates = _run_to_end(gen, 3)
    assert [u.frame for u in updates] == [0, 3, 5]
    assert [u.skipped for u in updates] == [[], [1, 2], [4]]


def test_bad_input(tmp_path):
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(FileExistsError):
        iter_live(ListSource([]), REFL, pixel_size=PIXEL, store=tmp_path / "x.zarr")
    with pytest.raises(TypeError, match="poll"):
        iter_live(object(), REFL, pixel_size=PIXEL, store=tmp_path / "y.zarr")
    with pytest.raises(ValueError, match="poll_interval"):
        iter_live(ListSource([]), REFL, pixel_size=PIXEL, store=tmp_path / "z.zarr",
                  poll_interval=0)  # fmt: skip
    with pytest.raises(TypeError, match="boolean"):
        iter_live(ListSource([]), REFL, pixel_size=PIXEL, store=tmp_path / "w.zarr",
                  trace_regions={"a": np.ones((3, 3))})  # fmt: skip
    with pytest.raises(TypeError, match="boolean"):
        iter_live(ListSource([]), REFL, pixel_size=PIXEL, store=tmp_path / "v.zarr",
                  reference=np.ones((3, 3)))  # fmt: skip


def _region(my, rows, cols):
    mask = np.zeros((my, my), bool)
    mask[rows, cols] = True
    return mask


def test_with_a_reference_region_strain_is_zero_there_in_every_frame(tmp_path):
    from napari_hrtem_fft.core.drift import shift_region
    from napari_hrtem_fft.core.strain import relative_to_region

    stack, _ = _movie()
    my = -(-stack.shape[1] // 8)
    particle = _region(my, slice(10, 22), slice(10, 22))
    reference = _region(my, slice(13, 19), slice(13, 19))  # the particle's centre
    store = tmp_path / "ref.zarr"
    record = {"rectangle_nm": [2.08, 3.04, 2.08, 3.04]}
    gen = iter_live(
        ListSource(stack), REFL, pixel_size=PIXEL, store=store, region=particle,
        reference=reference, reference_record=record, trace_regions={"ref": reference},
        skip=False, poll_interval=0.001, **OPTIONS,
    )  # fmt: skip
    updates = _run_to_end(gen, len(stack))
    live = read_zarr_maps(store)
    drift = np.stack([u.drift for u in updates])
    moved = shift_region(reference, drift, step=8)  # (t, my, mx): where it is in each frame
    for k in range(len(stack)):
        for name in ("exx", "eyy"):
            values = np.asarray(getattr(live.strain, name))[k][moved[k]]
            # Relative to the median lattice there (componentwise median of g, not the
            # median of the strain: equal within a fraction of the pixels' spread of
            # ~1 %), where without the reference the lattice expands by up to 3 %.
            assert abs(np.nanmedian(values)) < 2e-3, (k, name)
    trace = updates[-1].traces["ref"]
    np.testing.assert_allclose(trace["exx_median"], 0, atol=2e-3)
    # Recorded in the store, with the reference lattice of each frame.
    recorded = live.parameters["reference"]
    assert recorded["region"] == record
    assert np.shape(recorded["reflections"]) == (len(stack), 3, 2)
    # The offline analysis of the same frames, relative to the same moving region.
    offline = analyze_movie(
        stack, REFL, pixel_size=PIXEL, track=True, region=particle, drift=drift, **OPTIONS
    )
    # The region drawn on the first frame follows the recorded drift offline too.
    offline = relative_to_region(offline.maps, reference)
    assert offline.parameters["reference"]["follows_drift"] is True
    # Phase: flat with zero circular mean in the region, in each frame (relative to the
    # lattice each frame was demodulated at, offline as live).
    phase = np.asarray(live.phase)
    for k in range(len(stack)):
        mean = np.angle(np.nanmean(np.exp(1j * phase[:, k][:, moved[k]]), axis=-1))
        np.testing.assert_allclose(mean, 0, atol=1e-5)
    # Equal offline (float64) and live (stored float32), compared modulo 2π.
    other = np.asarray(offline.phase)
    np.testing.assert_array_equal(np.isnan(phase), np.isnan(other))
    finite = np.isfinite(phase)
    assert finite.any()
    np.testing.assert_allclose(np.angle(np.exp(1j * (phase - other)))[finite], 0, atol=1e-5)
    for name in ("exx", "eyy", "exy", "rotation", "d_spacing"):
        ref = offline.arrays()[name]
        got = np.asarray(live.arrays()[name])
        np.testing.assert_allclose(got, np.asarray(ref, np.float32), rtol=1e-5, atol=1e-6,
                                   err_msg=name)  # fmt: skip
    np.testing.assert_allclose(
        recorded["reflections"], offline.parameters["reference"]["reflections"], rtol=1e-7
    )


def test_regions_changed_during_a_run_count_from_the_next_frame(tmp_path):
    stack, _ = _movie()
    my = -(-stack.shape[1] // 8)
    first = _region(my, slice(10, 22), slice(10, 22))
    added = _region(my, slice(4, 12), slice(16, 28))
    reference = _region(my, slice(13, 19), slice(13, 19))
    control = LiveControl()
    gen = iter_live(
        ListSource(stack), REFL, pixel_size=PIXEL, store=tmp_path / "r.zarr",
        trace_regions={"first": first}, control=control, skip=False, poll_interval=0.001,
        **OPTIONS,
    )  # fmt: skip
    updates = []
    for update in gen:
        if update.kind != "frame":
            continue
        updates.append(update)
        if update.frame == 2:
            # Drawn while frame 2 is shown: a new region, one gone, and a reference.
            control.set_regions({"added": added, "all": None}, reference=reference)
        if len(updates) == len(stack):
            break
    gen.close()
    traces = updates[-1].traces
    assert set(traces) == {"added", "all"}
    assert traces["added"].frames.tolist() == [3, 4, 5]
    assert "first" in updates[2].traces and "first" not in updates[3].traces
    drift = np.stack([u.drift for u in updates])
    offline = analyze_movie(stack, REFL, pixel_size=PIXEL, track=True, drift=drift, **OPTIONS)
    offline_trace = time_trace(offline, added)  # moves with the drift
    np.testing.assert_allclose(traces["added"]["d_median"], offline_trace["d_median"][3:],
                               rtol=1e-6)  # fmt: skip
    # Strain relative to the reference from frame 3 on, to the reflections before.
    live = read_zarr_maps(tmp_path / "r.zarr")
    recorded = np.asarray(live.parameters["reference"]["reflections"], dtype=float)  # NaN: null
    assert np.isnan(recorded[:3]).all() and np.isfinite(recorded[3:]).all()
    np.testing.assert_array_equal(
        np.asarray(live.strain.exx)[:3], np.asarray(offline.maps.strain.exx, np.float32)[:3]
    )


@pytest.mark.parametrize("where", ["files", "memory"])
def test_live_store_chunks_read_back_exactly_by_zarr(tmp_path, monkeypatch, where):
    """The store's chunks written as files (local store) or by zarr (any other store)
    read back bit for bit, NaN where a map is missing, across a growth of the arrays."""
    import zarr
    from zarr.storage import MemoryStore

    import napari_hrtem_fft.core.live as live
    from napari_hrtem_fft.core.engine import analyze
    from napari_hrtem_fft.core.live import LiveStore

    files = []
    write_file = live._write_file
    monkeypatch.setattr(live, "_write_file", lambda *a: (files.append(a[0]), write_file(*a)))

    stack, _ = _movie(n=1, size=128)
    maps = analyze(stack[0], REFL, pixel_size=PIXEL, **OPTIONS)
    group = zarr.open_group(tmp_path / "s.zarr" if where == "files" else MemoryStore(), mode="w")
    store = LiveStore(group)
    rng = np.random.default_rng(0)
    sent = []
    for _ in range(LiveStore.BLOCK + 3):  # grows once
        arrays = {k: rng.normal(size=np.shape(a)).astype(np.float32)
                  for k, a in maps.arrays().items()}  # fmt: skip
        arrays["d_spacing"][0, 2, 3] = np.nan
        sent.append(arrays)
        store.add(maps.with_arrays(arrays))
        store.release()
    store.close()
    root = zarr.open_group(tmp_path / "s.zarr", mode="r") if where == "files" else group
    for name in sent[0]:
        stored = np.asarray(root[name])
        axis = 1 if name in maps.FIELDS else 0
        assert stored.shape[axis] == len(sent)
        expected = np.stack([a[name] for a in sent], axis=axis)
        np.testing.assert_array_equal(stored, expected)
    assert len(files) == (len(sent) * len(sent[0]) if where == "files" else 0)
    if where == "files":  # no temporary file left beside a chunk
        assert not list((tmp_path / "s.zarr").rglob("*.part"))
