"""Live analysis: latency, sustained rate and memory while frames are being written.

A writer process (as the acquisition software is) writes synthetic 2048² frames
(:func:`synthetic_movie`: a drifting, expanding Pd particle) as uncompressed TIFF files
into a temporary folder at a set rate (``--renamed``: each under a temporary name
renamed into place when complete); ``iter_live`` follows the folder.  Printed:

- baseline: ``analyze()`` of one frame and the live run's drift registration of one
  frame, measured in the same run (the machine is shared, so latencies are to be read
  against them);
- latency: from the file being complete (the writer's ``imwrite`` returned) to the
  frame's maps and time-trace row being available to the caller, median / 95th
  percentile / max;
- work: what the run spent on each analysed frame (the latency without waiting for
  the frame analysed before it), against ``analyze()``: the live run's overhead;
- rate: frames written, analysed and skipped (the live run skips to the newest frame
  when it is behind, so its latency must not grow through the run);
- memory: peak resident memory of the process over the run, plus that of the live
  analysis process when the run is in one (the dock's, ``--gui``; ``--process``).

The dock runs the analysis in a child process
(:func:`napari_hrtem_fft.core.live_process.live_in_process`); ``--gui --in-thread``
runs the same session in the dock's worker thread instead, for comparison in the same
window; ``--process`` measures the dock's child-process run without the GUI.

Only a few distinct frames are rendered (rendering costs more than analysing); the
writer cycles through them and deletes files 200 frames old, so a
1,000-frame run does not fill the disk.

    python benchmarks/bench_live.py                 # 1,000 frames at 5 frames/s
    python benchmarks/bench_live.py --frames 30     # a short run
    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_live.py \
        --gui --frames 50                            # latency to the dock's layers and plot
    python benchmarks/bench_live.py --process       # the dock's child process, no GUI
    python benchmarks/bench_live.py --ship          # shared-memory copies of a frame only
    python benchmarks/bench_live.py --store         # the store's write of a frame's maps only
    python benchmarks/bench_live.py --steps         # CPU of each step of a frame, by thread
    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_live.py \
        --frames 20 --size 1024 --rate 0.5 --distinct 20 \
        --screenshot docs/images/live.png            # the Live section during a run
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import queue
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_hrtem_fft.core.engine import analyze
from napari_hrtem_fft.core.live import LiveControl, iter_live
from napari_hrtem_fft.core.live_process import PROCESS_NAME, LiveGrid, live_in_process
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie
from napari_hrtem_fft.io._watch import FolderFrames

PIXEL = 0.02  # nm
REFL = pd_110_reflections(10.0)


def acquisition_frames(n_distinct: int, size: int) -> np.ndarray:
    """Distinct frames of the benchmark's synthetic acquisition, uint16 like a camera."""
    stack, _ = synthetic_movie(
        n_distinct, (size, size), pixel_size=PIXEL, reflections=REFL, noise=0.05,
        amorphous=0.1, expansion_total=0.02, drift=1.0, radius=size * PIXEL * 0.3,
        lazy=False,
    )  # fmt: skip
    return np.clip(stack * 10000, 0, 65535).astype(np.uint16)


def _write_frames(folder: Path, frames: np.ndarray, n: int, rate: float, renamed: bool,
                  queue) -> None:  # fmt: skip
    """Write ``n`` frames at ``rate`` frames/s; put ``(name, time.monotonic())`` on
    ``queue`` as each file is complete, then ``("late", count)``."""
    late = 0
    start = time.monotonic()
    for k in range(n):
        due = start + k / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.5 / rate:
            late += 1
        name = f"frame_{k:05d}.tif"
        target = folder / (name + ".part" if renamed else name)
        tifffile.imwrite(target, frames[k % len(frames)])
        if renamed:
            target.rename(folder / name)
        queue.put((name, time.monotonic()))
        # Keep the last 200 files (1.6 GB): a frame deleted before the live run listed
        # it would be neither analysed nor skipped.
        if k >= 200:
            (folder / f"frame_{k - 200:05d}.tif").unlink(missing_ok=True)
    queue.put(("late", late))


class Writer:
    """Writes ``n`` frames at ``rate`` frames/s from another process, as the acquisition
    software does (a writer thread of this process would take the GIL from the live
    run, which a camera's software does not); records when each file was complete.

    ``time.monotonic()`` is the system's monotonic clock on Linux: the writer's times
    compare with this process's.
    """

    def __init__(self, folder: Path, frames: np.ndarray, n: int, rate: float, renamed=False):
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._process = context.Process(
            target=_write_frames, args=(folder, frames, n, rate, renamed, self._queue),
            daemon=True,
        )  # fmt: skip
        self._complete: dict[str, float] = {}
        self._late = 0  # frames the writer itself wrote late (the machine was busy)

    def start(self) -> None:
        """Start writing."""
        self._process.start()

    def join(self) -> None:
        """Wait for the last frame."""
        while self._process.is_alive() or not self._queue.empty():
            self._drain(timeout=0.1)
        self._process.join()
        self._drain()

    def _drain(self, timeout: float | None = None) -> None:
        try:
            while True:
                name, value = self._queue.get(timeout=timeout) if timeout else (
                    self._queue.get_nowait()
                )  # fmt: skip
                if name == "late":
                    self._late = value
                else:
                    self._complete[name] = value
                timeout = None
        except queue.Empty:
            pass

    def completed(self, name: str) -> float:
        """``time.monotonic()`` when file ``name`` was complete (waits for the writer's
        message, which follows the file by a few microseconds)."""
        deadline = time.monotonic() + 10.0
        while name not in self._complete and time.monotonic() < deadline:
            self._drain(timeout=0.01)
        return self._complete[name]

    @property
    def late(self) -> int:
        """Frames written late (known once the writer ended)."""
        return self._late


def baselines(frames: np.ndarray, options: dict) -> tuple[float, float]:
    """Seconds for ``analyze()`` of one frame and for the live registration of one frame."""
    from napari_hrtem_fft.core.drift import PreviousFrameRegistration

    analyze(frames[0], REFL, pixel_size=PIXEL, **options)  # warm-up (FFT plans, imports)
    t0 = time.perf_counter()
    analyze(frames[1], REFL, pixel_size=PIXEL, **options)
    analysis = time.perf_counter() - t0
    register = PreviousFrameRegistration(max_frequency=1.1 * PIXEL * np.hypot(*REFL.T).max())
    register(frames[0])
    register(frames[1])
    t0 = time.perf_counter()
    register(frames[2])
    return analysis, time.perf_counter() - t0


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildMemory:
    """Peak resident memory of the live analysis process (the dock runs the analysis in
    a child process): its ``VmHWM``, read while it runs (call :meth:`look` often)."""

    def __init__(self, cpus=None) -> None:
        self.peak_mb = 0.0
        #: CPU seconds (user + system) the child had used when last looked at.
        self.cpu_s = 0.0
        #: CPUs the child is confined to when first seen (``--child-cpus``), or None.
        self.cpus = cpus
        self._confined: set[int] = set()

    def look(self) -> None:
        """Read the child's peak memory and CPU time so far."""
        import os

        for child in multiprocessing.active_children():
            if child.name != PROCESS_NAME:
                continue
            if self.cpus is not None and child.pid not in self._confined:
                # Before its first frame: the threads it starts later inherit it.
                os.sched_setaffinity(child.pid, self.cpus)
                self._confined.add(child.pid)
            try:
                text = Path(f"/proc/{child.pid}/status").read_text()
                stat = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks = os.sysconf("SC_CLK_TCK")
            self.cpu_s = max(self.cpu_s, (int(stat[11]) + int(stat[12])) / ticks)
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)


def timing_of(update):
    """``update`` without its pixels (frame, maps, traces): what the figures read.

    Keeping every update whole, the bench itself held each frame (16 MB at 2048²):
    14 GB over 1,000 frames, in the memory figure.
    """
    return dataclasses.replace(update, image=None, maps=None, traces={})


def child_cpu_per_frame(updates) -> float:
    """CPU seconds the analysing process used per frame analysed between the first and
    the last of ``updates`` (each says the process's CPU time when it was made)."""
    if len(updates) < 2:
        return float("nan")
    first, last = updates[0], updates[-1]
    return (last.cpu - first.cpu) / max(last.analysed - first.analysed, 1)


def stage_table(updates, writer: Writer) -> list[str]:
    """Median wall and CPU ms of each stage of the analysed frames (after the first).

    ``found``: from the writer's file complete to the run finding it (the poll's
    wait); then the stages the run records (``LiveUpdate.stages``), in order.  CPU is
    the process's over the stage (every thread), ``register (beside)`` its own thread's
    (it runs beside ``analyse``, whose CPU excludes it), ``store write (behind)`` the
    store thread's for the frame before.
    """
    # In the order of the run (a frame found in the same poll as another has no poll).
    order = max((list(u.stages) for u in updates[1:]), key=len, default=[])
    rows: dict[str, list[tuple[float, float]]] = {"found": [], **{k: [] for k in order}}
    for update in updates[1:]:
        found = update.complete - writer.completed(update.name)
        rows["found"].append((found, float("nan")))
        for name, value in update.stages.items():
            rows.setdefault(name, []).append(value)
    lines = [f"{'stage':<22}{'wall ms':>9}{'CPU ms':>9}   (median over {len(updates) - 1} "
             f"frames)"]  # fmt: skip
    for name, values in rows.items():
        wall, cpu = np.median(np.array(values), axis=0) * 1e3
        lines.append(f"{name:<22}{wall:9.1f}{cpu:9.1f}")
    return lines


def in_thread(path, *, control, **options):
    """The dock's live run in its worker thread, as before it ran in a child process
    (``--in-thread``: the same run for comparison)."""
    from napari_hrtem_fft.core.live_process import live_session

    return live_session(path, control=control, **options)


def screenshot(
    path: Path | None, *, n: int, size: int, rate: float, distinct: int, thread: bool = False,
    child_cpus=None,
) -> None:  # fmt: skip
    """The viewer (1920×1080) with the time-trace dock's Live section during a run.

    Frames of the synthetic acquisition are written at ``rate``; the run follows them
    with a trace region drawn over the particle.  Prints the latency from each file
    being complete to its layers and plot updated in the dock (the GUI thread's part
    included), against ``analyze()`` of one frame in the same run; saves the
    screenshot after ``n`` frames when ``path`` is given.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_hrtem_fft._widgets.demo import compact_png

    if thread:
        import napari_hrtem_fft.core.live_process as live_process

        live_process.live_in_process = in_thread

    frames = acquisition_frames(min(n, distinct), size)
    baseline, _ = baselines(frames, dict(window=128, step=8, search=0.1))
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1080)
    # The particle's centre part, drawn on the first frame (nm); it follows the drift.
    half = size * PIXEL / 2
    box = np.array([[half - 4, half - 4], [half - 4, half + 4], [half + 4, half + 4],
                    [half + 4, half - 4]])  # fmt: skip
    regions = viewer.add_shapes(
        [box], shape_type="rectangle", name="trace regions", edge_color="white",
        face_color="transparent", edge_width=0.3, units=("nm", "nm"),
    )  # fmt: skip
    _, dock = viewer.window.add_plugin_dock_widget(
        "napari-hrtem-fft", "Time traces (d, strain vs time)"
    )
    live = dock._live
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "acquisition"
        folder.mkdir()
        live._source.value = folder
        live._pixel.value = PIXEL
        live._store.value = Path(tmp) / "live.zarr"
        live._regions.value = regions
        writer = Writer(folder, frames, n, rate)
        # The worker's own latency of each frame the dock draws (file complete -> maps
        # and trace row in the worker): the rest of the dock's latency is the GUI's.
        worker_latency = []
        hand_on = live._on_update_cb

        drawn = []

        def on_update(update):
            worker_latency.append(update.latency)
            drawn.append(timing_of(update))
            hand_on(update)
            if len(worker_latency) == 1:  # the first frame also makes the layers: apart
                after_first.append(time.thread_time())
                after_first.append(time.process_time())

        after_first = []

        live._on_update_cb = on_update
        child = ChildMemory(child_cpus)
        live._start.clicked.emit()
        writer.start()
        cpu, wall, process = time.thread_time(), time.monotonic(), time.process_time()
        last = f"frame_{n - 1:05d}.tif"
        deadline = time.monotonic() + 60 * n
        named = False
        while (not live.shown or live.shown[-1][0] != last) and time.monotonic() < deadline:
            QApplication.processEvents()
            child.look()
            if not named and "region 1" in dock._live_trace.choices:
                dock._live_trace.value = "region 1"
                named = True
            time.sleep(0.005)
        steady = time.thread_time() - after_first[0]
        steady_process = time.process_time()
        child.look()
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        process = time.process_time() - process
        for _ in range(20):
            QApplication.processEvents()
            time.sleep(0.05)
        writer.join()
        if path is not None:
            from qtpy.QtWidgets import QScrollArea

            # The dock's form scrolls when it does not fit: show its Live part and plot.
            for area in dock.native.findChildren(QScrollArea):
                area.verticalScrollBar().setValue(area.verticalScrollBar().maximum())
            QApplication.processEvents()
            viewer.screenshot(str(path), canvas_only=False, flash=False)
            compact_png(path)
        status = live._status.value
        stages = stage_table(drawn, writer)
        live._stop.clicked.emit()
        while not live._start.enabled:
            QApplication.processEvents()
            time.sleep(0.02)
    viewer.close()
    # The first frame also creates the layers and picks the reflections: apart.
    first = live.shown[0][1] - writer.completed(live.shown[0][0])
    lat = np.array([t - writer.completed(name) for name, t in live.shown[1:]])
    print(f"bench_live --gui: {n} frames of {size}² written at {rate:g}/s into the "
          f"time-trace dock's Live section, window 128, step 8, 3 reflections")  # fmt: skip
    print(f"baseline  analyze() of one frame in this run: {baseline:.3f} s")
    print(
        f"latency   file complete -> layers and plot updated: median {np.median(lat):.3f} s, "
        f"p95 {np.percentile(lat, 95):.3f} s over {lat.size} frames shown after the first "
        f"(median {np.median(lat) / baseline:.2f}x the baseline); first frame {first:.2f} s"
    )
    shown = len(live.shown)
    print(
        f"where     the worker's own latency (file complete -> maps and trace row) of the "
        f"frames drawn: median {np.median(worker_latency[1:]):.3f} s; GUI thread CPU "
        f"{cpu:.1f} s in {wall:.1f} s of run ({100 * cpu / wall:.0f} % of a core), "
        f"{steady / (shown - 1):.3f} s per frame drawn after the first ({shown} drawn); "
        f"the whole process (worker, its helpers, software OpenGL's threads) "
        f"{process / wall:.2f} cores; the live analysis process {child.cpu_s / wall:.2f} "
        f"cores (over the whole run, start included)"
    )
    later = (drawn[-1].analysed - drawn[0].analysed) if drawn else 0
    print(
        f"CPU       per frame after the first: the live analysis process "
        f"{child_cpu_per_frame(drawn):.3f} s per frame analysed (its own clock, between "
        f"the first and last updates drawn: {later} frames); napari's process "
        f"{(steady_process - after_first[1]) / max(shown - 1, 1):.3f} s per frame drawn"
    )
    print("stages    of the frames drawn, in the live analysis process then the relay:")
    print("\n".join("          " + line for line in stages))
    where = "in the dock's worker thread" if thread else "in a child process"
    print(f"memory    peak RSS {peak_rss_mb():.0f} MB (napari) + {child.peak_mb:.0f} MB (the "
          f"live analysis process); analysis {where}")  # fmt: skip
    print(f"status    {status}")
    if path is not None:
        print(f"screenshot of the time-trace dock's Live section after {n} frames: {path}")


def shipping(size: int, step: int, n: int = 30) -> None:
    """CPU and wall time of carrying one frame and its maps through shared memory.

    The child's copy in (``_Blocks.ship``) and the parent's copy out
    (``_Attached.copy``), both in this process, ``n`` frames: with the blocks used again
    (the live run) against a new block per frame (before), alternating.
    """
    from napari_hrtem_fft.core.live_process import _Attached, _Blocks

    frame = acquisition_frames(1, size)[0]
    maps = analyze(frame, REFL, pixel_size=PIXEL, window=128, step=step, search=0.1)
    arrays = {"image": frame, **{k: np.asarray(a, np.float32) for k, a in maps.arrays().items()}}
    megabytes = sum(a.nbytes for a in arrays.values()) / 2**20
    reused, attached = _Blocks(), _Attached()
    times: dict[str, list] = {"new block per frame": [], "blocks used again": []}
    for _ in range(n):
        for mode, record in times.items():
            blocks, parent = (_Blocks(), _Attached()) if mode.startswith("new") else (
                reused, attached)  # fmt: skip
            wall, cpu = time.perf_counter(), time.process_time()
            shared = blocks.ship(arrays)
            shipped = (time.perf_counter() - wall, time.process_time() - cpu)
            parent.copy(shared)
            blocks.returned(shared[0])
            record.append((*shipped, time.perf_counter() - wall, time.process_time() - cpu))
            if mode.startswith("new"):
                blocks.close()
                parent.close()
    reused.close()
    attached.close()
    print(f"bench_live --ship: a {size}² frame and its maps at step {step} ({megabytes:.1f} "
          f"MB) through shared memory, {n} frames, alternating (medians, ms)")  # fmt: skip
    print(f"{'':<22}{'ship wall':>10}{'ship CPU':>10}{'both wall':>10}{'both CPU':>10}")
    for mode, record in times.items():
        values = np.median(np.array(record[1:]), axis=0) * 1e3
        print(f"{mode:<22}" + "".join(f"{v:10.1f}" for v in values))


def store_writes(size: int, step: int, n: int = 40) -> None:
    """CPU and wall time of the live store's write of one frame's maps.

    :class:`~napari_hrtem_fft.core.live.LiveStore` writing each chunk as its file (the
    live run) against zarr writing it, ``n`` frames, alternating; each frame queued,
    then written while the run is idle, waited for.  CPU is the process's (zarr's event
    loop and I/O threads included).
    """
    import zarr

    from napari_hrtem_fft.core.live import LiveStore

    frame = acquisition_frames(1, size)[0]
    maps = analyze(frame, REFL, pixel_size=PIXEL, window=128, step=step, search=0.1)
    times: dict[str, list] = {"chunk files": [], "zarr's write": []}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for k, mode in enumerate(times):
            stores[mode] = LiveStore(zarr.open_group(f"{tmp}/{k}.zarr", mode="w"))
            if mode.startswith("zarr"):
                stores[mode]._chunk_path = lambda *_: None
        for _ in range(n):
            for mode, store in stores.items():
                wall, cpu = time.perf_counter(), time.process_time()
                store.add(maps)
                store.release()
                while store.written < store.count:
                    time.sleep(0.0005)
                times[mode].append((time.perf_counter() - wall, time.process_time() - cpu))
        for store in stores.values():
            store.close()
    print(f"bench_live --store: the maps of a {size}² frame at step {step} "
          f"({len(maps.arrays())} arrays) written to the live store, {n} frames, "
          f"alternating (medians after the first two, ms)")  # fmt: skip
    print(f"{'':<16}{'wall':>8}{'CPU':>8}")
    for mode, record in times.items():
        values = np.median(np.array(record[2:]), axis=0) * 1e3
        print(f"{mode:<16}" + "".join(f"{v:8.1f}" for v in values))


def thread_cpu() -> dict[int, tuple[str, float]]:
    """Name and CPU seconds (user + system) of each thread of this process (Linux
    ``/proc``), by thread id.
    """
    import os

    ticks, out = os.sysconf("SC_CLK_TCK"), {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (name, (int(stat[11]) + int(stat[12])) / ticks)
    return out


def step_costs(size: int, step: int, n: int = 10) -> None:
    """CPU of each step of a live run's frame, one after the other in this process.

    The process's CPU per call, and the part of it taken by threads that were there
    before the first call and are not Python's (OpenBLAS's: compare a run with
    ``OPENBLAS_NUM_THREADS=1``, as the dock's live analysis process has it).
    """
    import os
    import threading

    from napari_hrtem_fft.core.drift import PreviousFrameRegistration
    from napari_hrtem_fft.core.movie import frame_lattice, time_trace

    frames = acquisition_frames(4, size)
    options = dict(pixel_size=PIXEL, window=128, step=step, search=0.1)
    register = PreviousFrameRegistration(max_frequency=1.1 * PIXEL * np.hypot(*REFL.T).max())
    maps = analyze(frames[0], REFL, **options)
    python = {t.native_id for t in threading.enumerate()}
    steps = {
        "analyze": lambda k: analyze(frames[k % 4], REFL, **options),
        "register": lambda k: register(frames[k % 4]),
        "lattice": lambda k: frame_lattice(maps, None, reference=REFL, min_windows=5, frame=k),
        "traces": lambda k: time_trace(maps, region=None, times=np.array([0.0])),
    }
    print(
        f"bench_live --steps: {size}² frames, step {step}, {n} calls each "
        f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})"
    )
    for name, call in steps.items():
        call(0)
        before, cpu = thread_cpu(), time.process_time()
        for k in range(n):
            call(k)
        cpu = (time.process_time() - cpu) / n
        after = thread_cpu()
        other = sum(after[t][1] - before[t][1] for t in after if t in before and t not in python)
        other /= n
        print(
            f"{name:<10} process CPU {cpu * 1e3:6.1f} ms per call, of which threads "
            f"not Python's (BLAS) {other * 1e3:5.1f} ms"
        )


def _dock_run(folder: Path, store: Path, options: dict, child: ChildMemory):
    """The dock's live run in a child process, headless: its frame updates."""
    control = LiveControl()
    live = live_in_process(folder, control=control, pixel_size=PIXEL, auto=len(REFL),
                           store=store, **options)  # fmt: skip
    try:
        for item in live:
            child.look()
            if isinstance(item, LiveGrid):
                control.set_regions(None)
            elif item is not None:
                yield item
    finally:
        live.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames written (1000)")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second (5)")
    parser.add_argument("--size", type=int, default=2048, help="frame size in pixels (2048)")
    parser.add_argument("--step", type=int, default=8, help="map step in pixels (8)")
    parser.add_argument("--window", type=int, default=128, help="FFT window in pixels (128)")
    parser.add_argument("--distinct", type=int, default=8, help="distinct frames rendered (8)")
    parser.add_argument("--renamed", action="store_true", help="write, then rename into place")
    parser.add_argument("--screenshot", type=Path, help="save the viewer during a live run")
    parser.add_argument(
        "--in-thread", action="store_true", help="--gui: run the analysis in the dock's "
        "worker thread instead of a child process (for comparison)",
    )  # fmt: skip
    parser.add_argument(
        "--process", action="store_true", help="headless: the dock's run in a child process "
        "(reflections picked on the first frame) instead of iter_live in this process",
    )  # fmt: skip
    parser.add_argument(
        "--child-cpus", type=lambda text: {int(c) for c in text.split(",")}, default=None,
        help="confine the live analysis process to these CPUs (e.g. 1), as taskset",
    )  # fmt: skip
    parser.add_argument(
        "--gui", action="store_true", help="measure in the napari dock (xvfb-run): latency "
        "to the layers and plot updated",
    )  # fmt: skip
    parser.add_argument(
        "--ship", action="store_true", help="only the shared-memory copies of a frame and "
        "its maps (child's in, parent's out), blocks used again against a new one per frame",
    )  # fmt: skip
    parser.add_argument(
        "--steps", action="store_true", help="only the CPU of each step of a frame, and "
        "of BLAS's threads",
    )  # fmt: skip
    parser.add_argument(
        "--store", action="store_true", help="only the live store's write of a frame's "
        "maps, chunk files against zarr's write",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.ship:
        shipping(args.size, args.step)
        return 0
    if args.store:
        store_writes(args.size, args.step)
        return 0
    if args.steps:
        step_costs(args.size, args.step)
        return 0
    if args.screenshot is not None or args.gui:
        screenshot(
            args.screenshot, n=args.frames, size=args.size, rate=args.rate,
            distinct=args.distinct, thread=args.in_thread, child_cpus=args.child_cpus,
        )  # fmt: skip
        return 0

    frames = acquisition_frames(args.distinct, args.size)
    options = dict(window=args.window, step=args.step, search=0.1)
    baseline, register = baselines(frames, options)
    rss_before = peak_rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "acquisition"
        folder.mkdir()
        writer = Writer(folder, frames, args.frames, args.rate, renamed=args.renamed)
        child = ChildMemory(args.child_cpus)
        if args.process:
            live = _dock_run(folder, Path(tmp) / "live.zarr", options, child)
        else:
            source = FolderFrames(folder, renamed=args.renamed)
            live = iter_live(
                source, REFL, pixel_size=PIXEL, store=Path(tmp) / "live.zarr",
                poll_interval=0.01, **options,
            )  # fmt: skip
        latencies, analysed, skipped, work, updates = [], [], [], [], []
        started = time.monotonic()
        writer.start()
        last = f"frame_{args.frames - 1:05d}.tif"
        # The newest frame is always analysed, so the run ends with the last one.
        for update in live:
            child.look()
            if update.kind == "frame":
                if not updates:  # the start (imports, warm-up): left out of the CPU figure
                    first_cpu = time.process_time()
                latencies.append(time.monotonic() - writer.completed(update.name))
                analysed.append(update.frame)
                work.append(update.work)
                updates.append(timing_of(update))
                skipped += update.skipped
                if update.name == last:
                    break
        child.look()
        cpu = (time.process_time() - first_cpu) / max(len(analysed) - 1, 1)
        live.close()
        elapsed = time.monotonic() - started
        writer.join()
        stages = stage_table(updates, writer)
    # The same baselines after the run: the load of the machine may have changed.
    after, register_after = baselines(frames, options)

    lat = np.array(latencies)
    half = len(lat) // 2
    print(f"bench_live: {args.frames} frames of {args.size}² uint16 TIFF written at "
          f"{args.rate:g}/s (writer late {writer.late}{', renamed' if args.renamed else ''}), "
          f"window {args.window}, step {args.step}, {len(REFL)} reflections")  # fmt: skip
    print(f"baseline  analyze() of one frame in this run: {baseline:.3f} s before the live "
          f"run, {after:.3f} s after")  # fmt: skip
    print(f"baseline  drift registration of one frame: {register * 1e3:.1f} ms before, "
          f"{register_after * 1e3:.1f} ms after")  # fmt: skip
    print(
        f"latency   file complete -> maps + trace row: median {np.median(lat):.3f} s, "
        f"p95 {np.percentile(lat, 95):.3f} s, max {lat.max():.3f} s "
        f"(median {np.median(lat) / baseline:.2f}x the analyze() baseline)"
    )
    work = np.array(work[1:])  # the first frame also warms up the run
    print(
        f"work      per analysed frame (read, register, analyse, trace; no waiting): median "
        f"{np.median(work):.3f} s = {np.median(work) / baseline:.2f}x the analyze() "
        f"baseline before, {np.median(work) / after:.2f}x after"
    )
    print(
        f"latency   first half median {np.median(lat[:half] if half else lat):.3f} s, "
        f"second half {np.median(lat[half:]):.3f} s (skipping, it must not fall further behind)"
    )
    print(
        f"rate      analysed {len(analysed)} of {args.frames} frames in {elapsed:.1f} s "
        f"({len(analysed) / elapsed:.2f}/s), skipped {len(skipped)} (said in each update)"
    )
    who = "the live analysis process" if args.process else "this process (the run)"
    print(
        f"CPU       per frame analysed after the first: {who} "
        f"{child_cpu_per_frame(updates):.3f} s (its own clock); this process {cpu:.3f} s"
    )
    print("stages    of the analysed frames:")
    print("\n".join("          " + line for line in stages))
    mode = "the dock's run in a child process" if args.process else "iter_live in this process"
    print(f"memory    peak RSS {peak_rss_mb():.0f} MB (after the rendered frames: "
          f"{rss_before:.0f} MB) + {child.peak_mb:.0f} MB (the live analysis process): "
          f"{mode}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
