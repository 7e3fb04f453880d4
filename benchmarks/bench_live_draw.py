"""The napari side of the Live dock alone: CPU and time per frame drawn, at a set rate.

``bench_live.py --gui`` measures the whole chain (writer, analysis process, dock) and
on a shared 2-core machine mostly measures the load.  This benchmark replays a live
run's updates into the time-trace dock's Live section without the analysis process, so
that what is measured is what the napari process spends on a frame:

- a few distinct 2048² frames of the benchmark's synthetic acquisition
  (:func:`bench_live.acquisition_frames`) are analysed once by
  :func:`~napari_hrtem_fft.core.live_process.live_session` in this process (the same
  updates the dock receives: frame, maps, drift, traces of "everything" and a region);
- the dock's worker is given a generator that yields them again at ``--rate`` frames/s
  as frames 0, 1, 2, … (maps read from the run's store, traces growing by a row per
  frame with the lattice expanding 3.5 % over 1,000 frames, as in the Pd movies);
- printed: frames yielded and drawn, the time from an update leaving the worker to
  its layers and plot set in the GUI thread and to the canvas's next paint (median,
  p95), the GUI thread's CPU seconds per frame drawn, the whole napari process's CPU
  seconds per frame and in cores, and each busy thread's CPU (llvmpipe's renderers,
  napari's slicing pool, the relay worker).

CPU seconds are what load inflates least: compare them, and times against a baseline
measured in the same run (``--repeat`` alternates runs of this and another checkout
given by ``--against``, each in its own process).

    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_live_draw.py
    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_live_draw.py \
        --frames 100 --against /work/main/src --repeat 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# bench_live (its frames, its figures' helpers) from this folder, however this is run.
sys.path.insert(0, str(HERE))
TRACES = "Time traces (d, strain vs time)"
#: Relative expansion of the lattice over 1,000 frames in the replayed traces.
EXPANSION = 0.035


def region(half: float) -> np.ndarray:
    """The trace region of ``bench_live --gui``: the particle's centre part (nm)."""
    return half + 4 * np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])


def recorded_run(folder: Path, store: Path, distinct: int, size: int):
    """The grid and the frame updates of a live run over ``distinct`` frames."""
    import tifffile
    from bench_live import PIXEL, REFL, acquisition_frames

    from napari_hrtem_fft.core.live import LiveControl, regions_on_grid
    from napari_hrtem_fft.core.live_process import LiveGrid, live_session

    frames = acquisition_frames(distinct, size)
    # One at a time: the run skips to the newest frame written.
    tifffile.imwrite(folder / "frame_00000.tif", frames[0])
    control = LiveControl()
    grid, updates = None, []
    run = live_session(folder, pixel_size=PIXEL, auto=len(REFL), store=store,
                       control=control, window=128, step=8)  # fmt: skip
    for item in run:
        if isinstance(item, LiveGrid):
            grid = item
            box = {"region 1": region(size * PIXEL / 2)}
            masks = regions_on_grid(box, grid.frame_shape, pixel_size=PIXEL, step=8)
            control.set_regions({"everything": None, **masks})
        elif item is not None and item.kind == "frame":
            updates.append(item)
            if len(updates) == distinct:
                control.stop()
            else:
                tifffile.imwrite(folder / f"frame_{len(updates):05d}.tif", frames[len(updates)])
    return grid, updates


def _replayed_store(store):
    """A store of any number of frames that cycles through ``store``'s frames."""
    from napari_hrtem_fft.core.live import _StoredFrames

    held = [{name: store.frame(name, p) for name in store.names} for p in range(store.count)]

    class Replayed(_StoredFrames):
        def __init__(self, count: int) -> None:
            self.path, self.count, self._shapes = store.path, count, store._shapes

        def _held(self, position: int):
            return held[position % len(held)]

    return Replayed


def _grown(trace, n: int, rate: float):
    """``trace``'s rows cycled to ``n`` frames, its lattice expanding with time."""
    growth = 1 + EXPANSION * np.arange(n) / 1000
    stats = {}
    for key, values in trace.stats.items():
        cycled = np.resize(values, (n, *values.shape[1:]))
        if key.startswith("d_") and not key.startswith("d_count"):
            cycled = cycled * growth.reshape(-1, *[1] * (cycled.ndim - 1))
        elif key in ("exx_median", "eyy_median"):
            cycled = cycled + (growth - 1)
        stats[key] = cycled
    times = np.arange(n) / rate
    return dataclasses.replace(trace, frames=np.arange(n), times=times, stats=stats)


def replay(grid, updates, *, n: int, rate: float, sent: dict, ready: threading.Event):
    """A stand-in for the dock's ``live_steps``: the recorded run, frame after frame.

    Frame 0 (which makes the layers and the figure) is yielded at once, the others at
    ``rate`` from when ``ready`` is set.
    """
    Replayed = _replayed_store(updates[-1].store)

    def steps(path, *, control, **options):
        yield grid
        while not control.regions_given:
            time.sleep(0.01)
            yield None
        start = time.monotonic()
        for i in range(n):
            if i == 1:
                ready.wait(60)
                start = time.monotonic() - 1 / rate
            wait = start + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if control.stopped:
                break
            base = updates[i % len(updates)]
            name = f"frame_{i:05d}.tif"
            traces = {k: _grown(t, i + 1, rate) for k, t in updates[-1].traces.items()}
            update = dataclasses.replace(
                base, frame=i, time=i / rate, name=name, analysed=i + 1, skipped=[],
                latency=0.0, traces=traces, store=Replayed(i + 1),
            )  # fmt: skip
            sent[name] = time.monotonic()
            yield update
        while not control.stopped:
            time.sleep(0.02)
            yield None
        return None

    return steps


def paint_counter():
    """An event filter counting the plot's paints and the window's update requests."""
    from qtpy.QtCore import QEvent, QObject

    class Counter(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.counts: dict[str, int] = {}

        def eventFilter(self, watched, event) -> bool:
            kind = event.type()
            if kind == QEvent.Type.Paint and not watched.isWindow():
                self.counts["plot"] = self.counts.get("plot", 0) + 1
            elif kind == QEvent.Type.UpdateRequest and watched.isWindow():
                self.counts["window"] = self.counts.get("window", 0) + 1
            return False

    return Counter()


def run_once(n: int, rate: float, distinct: int, size: int, profile: str | None = None) -> dict:
    """Replay ``n`` frames into the dock; the figures of this run."""
    import napari
    from bench_live import thread_cpu
    from qtpy.QtWidgets import QApplication

    from napari_hrtem_fft._widgets import live as live_module

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "acquisition"
        folder.mkdir()
        grid, updates = recorded_run(folder, Path(tmp) / "live.zarr", distinct, size)
        sent: dict[str, float] = {}
        ready = threading.Event()
        live_module.live_steps = replay(grid, updates, n=n, rate=rate, sent=sent, ready=ready)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1920, 1080)
        box = region(size * updates[0].maps.pixel_size / 2)
        style = {"edge_color": "white", "face_color": "transparent", "edge_width": 0.3}
        regions = viewer.add_shapes([box], shape_type="rectangle", name="trace regions",
                                    units=("nm", "nm"), **style)  # fmt: skip
        _, dock = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", TRACES)
        live = dock._live
        live._source.value = folder
        live._store.value = Path(tmp) / "unused.zarr"
        live._regions.value = regions
        painted: list[float] = []
        canvas = viewer.window._qt_viewer.canvas._scene_canvas
        canvas.events.draw.connect(lambda event: painted.append(time.monotonic()),
                                   position="last")  # fmt: skip
        # Paints of the plot and compositions of the whole window (a QOpenGLWidget's
        # window is composed again, with software OpenGL, whenever any widget of it
        # is repainted).
        paints = paint_counter()
        dock._canvas.installEventFilter(paints)
        viewer.window._qt_window.installEventFilter(paints)
        live._start.clicked.emit()
        # The first frame makes the layers and the figure: measured from the second.
        while len(live.shown) < 1:
            QApplication.processEvents()
            time.sleep(0.002)
        dock._live_trace.value = "region 1"
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            QApplication.processEvents()
            time.sleep(0.002)
        ready.set()
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        threads0, gui0 = thread_cpu(), time.thread_time()
        paints.counts.clear()
        vispy0 = len(painted)
        process0, wall0 = time.process_time(), time.monotonic()
        first = len(live.shown)
        last = f"frame_{n - 1:05d}.tif"
        deadline = time.monotonic() + 30 + 3 * n / rate
        while live.shown[-1][0] != last and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.002)
        # Until the last frame's paint.
        end = time.monotonic() + 1.0
        while (not painted or painted[-1] < live.shown[-1][1]) and time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.002)
        gui = time.thread_time() - gui0
        process, wall = time.process_time() - process0, time.monotonic() - wall0
        threads1 = thread_cpu()
        counts = dict(paints.counts, vispy=len(painted) - vispy0)
        if profile:
            profiler.disable()
            profiler.dump_stats(profile)
        live._stop.clicked.emit()
        while not live._start.enabled:
            QApplication.processEvents()
            time.sleep(0.01)
        viewer.close()
    shown = live.shown[first:]
    paints = np.array(painted)
    drawn = np.array([t - sent[name] for name, t in shown])
    on_screen = []
    for name, t in shown:
        later = paints[paints >= t]
        if later.size:
            on_screen.append(later[0] - sent[name])
    busy = {}
    for tid, (name, cpu) in threads1.items():
        if tid == os.getpid():
            name = "GUI thread"
        before = threads0.get(tid, (name, 0.0))[1]
        busy[name] = busy.get(name, 0.0) + cpu - before
    return {
        "yielded": n - first,
        "drawn": len(shown),
        "wall": wall,
        "gui": gui,
        "process": process,
        "drawn_s": drawn,
        "on_screen_s": np.array(on_screen),
        "threads": busy,
        "paints": counts,
    }


def report(label: str, r: dict) -> None:
    """Print one run's figures."""
    k = max(r["drawn"], 1)
    print(f"{label}: {r['drawn']} of {r['yielded']} frames drawn in {r['wall']:.1f} s")
    times = (("worker -> drawn", r["drawn_s"]), ("worker -> painted", r["on_screen_s"]))
    for name, values in times:
        if values.size:
            print(f"  {name:18s} median {np.median(values):.3f} s, p95 "
                  f"{np.percentile(values, 95):.3f} s")  # fmt: skip
    print(f"  CPU per frame drawn: GUI thread {r['gui'] / k:.3f} s, napari process "
          f"{r['process'] / k:.3f} s ({r['process'] / r['wall']:.2f} cores)")  # fmt: skip
    paints = r["paints"]
    print(
        f"  paints per frame drawn: napari canvas {paints.get('vispy', 0) / k:.2f}, plot "
        f"{paints.get('plot', 0) / k:.2f}, window updates {paints.get('window', 0) / k:.2f}"
    )
    busy = sorted(r["threads"].items(), key=lambda item: -item[1])
    print("  threads (CPU s per frame drawn): " + ", ".join(
        f"{name} {cpu / k:.3f}" for name, cpu in busy if cpu / k >= 0.002
    ))  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames replayed (60)")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second (5)")
    parser.add_argument("--size", type=int, default=2048, help="frame size in pixels (2048)")
    parser.add_argument("--distinct", type=int, default=3, help="distinct frames analysed (3)")
    parser.add_argument("--against", help="src folder of another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs of each (1)")
    parser.add_argument(
        "--profile",
        help="cProfile of the GUI thread after frame 0 to this file (this checkout only)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        import pickle

        result = run_once(args.frames, args.rate, args.distinct, args.size, args.profile)
        with os.fdopen(args.child, "wb") as out:
            pickle.dump(result, out)
        return 0
    sources = {"this": str(HERE.parent / "src")}
    if args.against:
        sources["against"] = args.against
    print(f"bench_live_draw: {args.frames} frames of {args.size}² replayed at {args.rate:g}/s "
          f"into the Live section (step 8, 3 reflections)")  # fmt: skip
    for r in range(args.repeat):
        for label, src in sources.items():
            result = _child_run(src, args)
            report(f"{label} (run {r + 1}, load {os.getloadavg()[0]:.2f})", result)
    return 0


def _child_run(src: str, args) -> dict:
    """``run_once`` in a new process with ``src`` first on the path."""
    import pickle

    read, write = os.pipe()
    env = dict(os.environ, PYTHONPATH=src)
    command = [sys.executable, __file__, "--child", str(write), "--frames", str(args.frames),
               "--rate", str(args.rate), "--size", str(args.size),
               "--distinct", str(args.distinct)]  # fmt: skip
    if args.profile and src == str(HERE.parent / "src"):
        command += ["--profile", args.profile]
    process = subprocess.Popen(command, env=env, pass_fds=(write,),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 20):
        data += chunk
    os.close(read)
    if process.wait() != 0 or not data:
        raise RuntimeError(f"the run with {src} failed (code {process.returncode})")
    return pickle.loads(data)


if __name__ == "__main__":
    sys.exit(main())
