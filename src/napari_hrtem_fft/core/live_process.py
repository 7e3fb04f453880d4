"""The dock's live run, and the same run in a separate process.

:func:`live_session` is the live run of a front end that picks the reflections on the
first frame and draws the regions on its map grid (napari's Live dock): it waits for
the first frame, picks the reflections, yields the map grid (:class:`LiveGrid`),
waits until the regions are set on its :class:`~napari_hrtem_fft.core.live.LiveControl`,
then yields the updates of :func:`~napari_hrtem_fft.core.live.iter_live`.

:func:`live_in_process` runs :func:`live_session` in a child process and yields the
same items.  In napari's process the GUI thread (and software OpenGL's threads) take
the GIL and the cores from a worker thread: a frame the worker analyses in 0.12 s on its
own took it 0.34-0.40 s there.  The child has its own GIL; it is started with the
"spawn" method (forking a process that runs Qt is unsafe) and imports only the core
and io.  Per analysed frame it sends a small message (the trace row of each region,
the drift, the maps' record) and puts the bulky part, the frame and the frame's maps
(float32, as stored), in shared memory, which the parent copies out in one go: a
several-MB message through a pipe would be read in 64 kB pieces, each of which takes
the GIL again from the GUI thread.  The same few shared blocks are used again once the
parent has copied them out (a new block's pages cost both processes page faults).  The
parent's layers read the store where the child has written it
(:class:`LiveStoreReader`), the newest frames from memory.

Pause, resume, stop and new regions set on the parent's ``LiveControl`` are sent to
the child's as they are made (:meth:`~napari_hrtem_fft.core.live.LiveControl.listen`),
so that regions drawn before a frame is written count from that frame.  The child
ends when the parent closes the generator (the store is then completed) or when the
parent process ends (the control pipe closes); an error in the child is raised in the
parent with its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, replace

import numpy as np

from .live import LiveControl, LiveResult, LiveUpdate, Stages, _append, _StoredFrames

logger = logging.getLogger(__name__)

__all__ = [
    "PROCESS_NAME",
    "LiveGrid",
    "LiveProcessError",
    "LiveStoreReader",
    "last_row",
    "live_in_process",
    "live_session",
]

#: Name of the child process (``multiprocessing.active_children()``).
PROCESS_NAME = "napari-hrtem-fft live"
#: Seconds the parent waits for a stopped child to complete the store before killing it.
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LiveGrid:
    """The first frame's map grid, yielded by :func:`live_session` before the analysis.

    The front end answers with the regions on that grid
    (:meth:`~napari_hrtem_fft.core.live.LiveControl.set_regions`).

    Attributes
    ----------
    frame_shape : tuple of int
        Frame shape ``(y, x)`` in pixels.
    pixel_size : float
        Pixel size in nm.
    step : int
        Map step in pixels.
    """

    frame_shape: tuple[int, int]
    pixel_size: float
    step: int

    @property
    def map_shape(self) -> tuple[int, int]:
        """Map grid shape ``(my, mx)``."""
        from .maps import map_shape

        return map_shape(self.frame_shape, self.step)

    def placement(self, offset=(0.0, 0.0)) -> tuple[tuple, tuple]:
        """``(scale, translate)`` of the map grid in nm, the frame moved by ``offset`` nm."""
        from .maps import map_geometry

        geometry = map_geometry((self.pixel_size,) * 2, tuple(offset), self.step)
        return geometry["scale"], geometry["translate"]


class LiveProcessError(Exception):
    """The live analysis process ended without a result (crashed or was killed).

    Not a ``RuntimeError``: a thread worker of napari (superqt) takes one out of its
    generator for a sign that the worker was deleted and does not report it.
    """


def live_session(
    path, *, pixel_size, auto, store, control, window, step, search=0.1, poll_interval=0.02,
    warm_up=False,
):  # fmt: skip
    """The live run of a front end that draws the regions on the first frame.

    Parameters
    ----------
    path : str or pathlib.Path
        Folder of frames or growing stack (:func:`napari_hrtem_fft.io.watch_source`).
    pixel_size : float or None
        Pixel size in nm; None: the first frame's calibration.
    auto : int
        Reflections picked on the first frame
        (:func:`~napari_hrtem_fft.core.fft.find_reflections`).
    store : str or pathlib.Path
        Zarr store of the maps (replaced).
    control : LiveControl
        Pause, resume, stop and the regions; the run starts once they are set.
    window, step : int
        FFT window and map step in pixels.
    search : float
        Relative search radius of the reflections.
    poll_interval : float
        Seconds between looks at the source while nothing is new.
    warm_up : bool
        If no frame is there at the first look, analyse a small synthetic lattice once
        meanwhile (a new process's one-time costs, not paid by the first frame).

    Yields
    ------
    None, LiveGrid or LiveUpdate
        None while waiting for the first frame or the regions, the grid once, then the
        updates of :func:`~napari_hrtem_fft.core.live.iter_live`.

    Returns
    -------
    LiveResult or None
        None if stopped before the run started.

    Raises
    ------
    ValueError
        If the first frame has no calibration and none is given, or shows no reflection.
    """
    from ..io import watch_source
    from .fft import find_reflections
    from .live import Prepended, iter_live

    source = watch_source(path)
    first = []
    while not first:
        if control.stopped:
            return None
        first = source.poll()
        if not first and warm_up:
            warm_up = False
            _warm_up(window, step, search)
            continue
        if not first:
            time.sleep(poll_interval)
            yield None
    size = pixel_size or first[0].pixel_size
    if not size:
        raise ValueError(f"{first[0].name} has no pixel-size calibration: set the pixel size")
    refl = find_reflections(first[0].data, pixel_size=size, window=window, max_count=auto)
    if len(refl) == 0:
        raise ValueError(f"no significant reflection found in {first[0].name}")
    yield LiveGrid(tuple(np.shape(first[0].data)[-2:]), float(size), int(step))
    while not control.regions_given:
        if control.stopped:
            return None
        time.sleep(poll_interval)
        yield None
    live = iter_live(
        Prepended(first, source), refl, pixel_size=size, store=store, overwrite=True,
        control=control, poll_interval=poll_interval, window=window, step=step, search=search,
    )  # fmt: skip
    return (yield from live)


def last_row(trace):
    """The time trace of the newest frame only."""
    last = slice(-1, None)
    return replace(
        trace,
        frames=trace.frames[last],
        times=None if trace.times is None else trace.times[last],
        stats={k: v[last] for k, v in trace.stats.items()},
    )


# ---------------------------------------------------------------------- the child


def _child(updates, controls, options: dict) -> None:
    """The child process: :func:`live_session` with its updates sent to the parent."""
    import signal

    blocks = _Blocks()
    control = _PipeControl(controls, blocks)
    # Ctrl-C in the terminal that started napari reaches the whole process group: the
    # parent decides (it stops the run or ends, which ends this process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # multiprocessing terminates a daemon child when the parent exits normally (and
    # waits for it): complete the store first; a second SIGTERM ends at once.
    signal.signal(signal.SIGTERM, lambda *_: control.end())
    try:
        session = live_session(control=control, warm_up=True, **options)
        while True:
            try:
                item = next(session)
            except StopIteration as end:
                updates.send(("result", _shipped_result(end.value)))
                break
            if isinstance(item, LiveGrid):
                updates.send(("grid", item))
            elif item is not None and item.kind == "frame":
                shipping = Stages()
                message = _shipped(item, blocks)
                shipping.mark("ship")
                message["stages"].update(shipping.times)
                message["sent"] = time.monotonic()
                updates.send(("frame", message))
    except BaseException as exc:  # every failure goes to the parent
        with contextlib.suppress(OSError):
            updates.send(("error", _picklable(exc), traceback.format_exc()))
    finally:
        updates.close()
        blocks.close()


class _PipeControl(LiveControl):
    """The child's control: the parent's changes, read whenever the run looks at it.

    A change the parent made before a frame's file was complete is in the pipe when the
    run takes the regions for that frame: it counts from that frame, as in-process.  A
    closed pipe (the parent is gone) stops the run.  The parent also says here which
    shared blocks it has copied out (``"returned"``).
    """

    def __init__(self, controls, blocks: _Blocks) -> None:
        super().__init__()
        self._controls = controls
        self._blocks = blocks

    def _read(self) -> None:
        try:
            while self._controls.poll(0):
                kind, value = self._controls.recv()
                if kind == "returned":
                    self._blocks.returned(value)
                elif kind == "give_regions":
                    self.give_regions(value)
                else:
                    getattr(self, kind)()
        except (EOFError, OSError):
            self.end()

    def end(self) -> None:
        """Stop (and resume a paused run, so that it ends); the next SIGTERM kills."""
        import signal

        self.stop()
        self.resume()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def take_regions(self) -> dict:
        """The regions set since the last call, the parent's new ones included."""
        self._read()
        return super().take_regions()

    @property
    def regions_given(self) -> bool:
        """Whether the parent set the regions."""
        self._read()
        return super().regions_given

    @property
    def paused(self) -> bool:
        """Whether the parent paused the run."""
        self._read()
        return super().paused

    @property
    def stopped(self) -> bool:
        """Whether the parent stopped the run (or is gone)."""
        self._read()
        return super().stopped


def _warm_up(window: int, step: int, search: float) -> None:
    """Analyse a small synthetic lattice once, while no frame has come yet.

    A new process's first analysis loads the engine's modules and builds its caches
    (0.25 s more than the next ones for a 2048² frame): paid here while the
    acquisition has not started.  Then a full garbage collection of what the imports
    left, rather than during the first frames.
    """
    import gc

    from .engine import analyze
    from .fft import find_reflections
    from .synthetic import pd_110_reflections, synthetic_lattice

    window, step, pixel = int(window), int(step), 0.02
    g = pd_110_reflections(10.0)
    size = window + 4 * min(step, window)  # the caches, not the work
    image, _ = synthetic_lattice((size, size), pixel_size=pixel, reflections=g,
                                 dtype=np.float32)  # fmt: skip
    try:
        refl = find_reflections(image, pixel_size=pixel, window=window, max_count=len(g))
        analyze(image, refl if len(refl) else g, pixel_size=pixel, window=window,
                step=step, search=search)  # fmt: skip
    except (ValueError, TypeError):
        pass  # options this small lattice does not take: the run reports them itself
    gc.collect()


def _picklable(exc: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any that does not survive pickling
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _shipped(update: LiveUpdate, blocks: _Blocks) -> dict:
    """A frame update as a small message; the frame and its maps in a shared block."""
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in update.maps.arrays().items()}
    shared = blocks.ship({"image": np.asarray(update.image), **arrays})
    return {
        "frame": update.frame, "time": update.time, "name": update.name,
        "maps": update.maps.with_arrays(dict.fromkeys(arrays)), "drift": update.drift,
        "skipped": update.skipped, "complete": time.monotonic() - update.latency,
        "analysed": update.analysed, "work": update.work, "shared": shared,
        "stages": dict(update.stages), "cpu": update.cpu,
        "rows": {name: last_row(trace) for name, trace in update.traces.items()},
        "store": str(update.store.path), "written": update.store.written,
    }  # fmt: skip


def _shipped_result(result: LiveResult | None):
    """The result without the maps read from the store (the parent reads them)."""
    if result is None or result.movie is None:
        return result
    return replace(result, movie=replace(result.movie, maps=None))


class _Blocks:
    """The child's shared-memory blocks, each reused once the parent has copied it out.

    A new block's pages are faulted in by both processes at first touch (14 MB a frame:
    more CPU time than the copies themselves, 25-190 ms under load); the same few
    blocks, already mapped on both sides, cost only the copies.  A block is in use from
    :meth:`ship` until the parent says it is copied (:meth:`returned`).  The parent
    removes them (:meth:`_Attached.close`) once the child has ended; if both end
    abruptly, multiprocessing's resource tracker does.
    """

    def __init__(self) -> None:
        self._blocks: dict = {}
        self._free: list[str] = []

    def ship(self, arrays: dict) -> tuple[str, list]:
        """``arrays`` copied into a free block (a new one if none fits): its name and layout."""
        from multiprocessing import shared_memory

        layout, offset = [], 0
        for key, a in arrays.items():
            layout.append((key, offset, a.shape, a.dtype.str))
            offset += -(-a.nbytes // 64) * 64
        fits = [n for n in self._free if self._blocks[n].size >= offset]
        if fits:
            name = fits[0]
            self._free.remove(name)
        else:
            block = shared_memory.SharedMemory(create=True, size=max(offset, 1))
            name = block.name
            self._blocks[name] = block
        buffer = self._blocks[name].buf
        for (_, start, shape, dtype), a in zip(layout, arrays.values(), strict=True):
            np.copyto(np.ndarray(shape, dtype, buffer=buffer, offset=start), a)
        return name, layout

    def returned(self, name: str) -> None:
        """The parent has copied block ``name`` out: it can be written again."""
        if name in self._blocks and name not in self._free:
            self._free.append(name)

    def close(self) -> None:
        """Unmap every block (the parent removes them)."""
        for block in self._blocks.values():
            block.close()
        self._blocks, self._free = {}, []


class _Attached:
    """The parent's mappings of the child's blocks, kept: copying out costs no page faults."""

    def __init__(self) -> None:
        self._blocks: dict = {}
        self._names: set[str] = set()

    def _block(self, name: str):
        from multiprocessing import shared_memory

        block = self._blocks.get(name)
        if block is None:
            block = self._blocks[name] = shared_memory.SharedMemory(name=name)
        return block

    def copy(self, shared: tuple[str, list]) -> dict:
        """The arrays of a block, copied."""
        name, layout = shared
        self._names.add(name)
        block = self._block(name)
        return {
            key: np.ndarray(shape, dtype, buffer=block.buf, offset=start).copy()
            for key, start, shape, dtype in layout
        }

    def seen(self, shared: tuple[str, list]) -> None:
        """A block of a message not read (the run ended): removed by :meth:`close`."""
        self._names.add(shared[0])

    def close(self) -> None:
        """Unmap and remove every block seen (the child has ended)."""
        for name in self._names:
            with contextlib.suppress(FileNotFoundError):
                block = self._block(name)
                block.close()
                block.unlink()
        self._blocks, self._names = {}, set()


# ---------------------------------------------------------------------- the parent


class LiveStoreReader(_StoredFrames):
    """The maps store of a live run written by another process, read where written.

    The same reading interface as :class:`~napari_hrtem_fft.core.live.LiveStore`
    (:meth:`frame`, :meth:`stack`, :attr:`path`, :attr:`count`): the frames the writer
    has not written yet are read from the maps the updates carried, the others from
    the zarr store (its arrays are opened again when they have grown).

    Parameters
    ----------
    path : str
        The zarr store.
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.count = 0
        #: Frames the writer has completely written.
        self.written = 0
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._memory: dict[int, dict[str, np.ndarray]] = {}
        self._arrays: dict = {}

    def add(self, position: int, arrays: dict[str, np.ndarray], written: int) -> None:
        """Maps of frame ``position``; the writer has written the frames before ``written``."""
        if not self._shapes:
            self._shapes = {name: a.shape for name, a in arrays.items()}
        self._memory[position] = arrays
        self.count = max(self.count, position + 1)
        self.written = max(self.written, written)
        self._memory = {p: a for p, a in self._memory.items() if p >= self.written}

    def finish(self) -> None:
        """The writer completed the store: every frame is read from it."""
        self.written = self.count
        self._memory = {}

    def _held(self, position: int) -> dict[str, np.ndarray] | None:
        return self._memory.get(position)

    def _array(self, name: str, position: int):
        """The store's array ``name``, opened again if it has grown past ``position``."""
        from .maps import LatticeMaps

        array = self._arrays.get(name)
        if array is None or array.shape[1 if name in LatticeMaps.FIELDS else 0] <= position:
            array = self._arrays[name] = self._open(name)
        return array

    def _open(self, name: str):
        import zarr

        # The writer may be rewriting the array's metadata (it grows by blocks).
        for attempt in range(20):
            try:
                return zarr.open_array(store=self.path, path=name, mode="r")
            except (ValueError, OSError, KeyError):
                if attempt == 19:
                    raise
                time.sleep(0.01)
        raise AssertionError  # unreachable


@contextlib.contextmanager
def _main_module_hidden():
    """Start a "spawn" child without the parent's ``__main__``.

    The child would run it first (napari's launcher imports napari); it needs nothing
    from it.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


#: The child's BLAS on the thread that calls it (unless the user's environment says
#: otherwise).  The child runs threads of its own (the engine's blocks, the drift
#: registration beside them); OpenBLAS's own thread, started for a product above its
#: small size, spins after each: per 2048² frame the registration took 23-26 ms of CPU
#: with it and 17.5-18 ms without, the lattice step 8.5-9 against 6-6.5 ms, the
#: analysis the same (``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_live.py
#: --steps`` against unset, alternating, 06:41 UTC, load 4.7-5.1).
CHILD_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _child_environment():
    """Start a child with :data:`CHILD_ENVIRONMENT` where the environment leaves it unset.

    A spawned process reads these when it loads numpy, before any code of ours runs.
    """
    added = [name for name in CHILD_ENVIRONMENT if name not in os.environ]
    os.environ.update({name: CHILD_ENVIRONMENT[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def live_in_process(path, *, control: LiveControl, poll: float = 0.02, **options):
    """:func:`live_session` in a separate process; the same items are yielded.

    Parameters
    ----------
    path : str or pathlib.Path
        As for :func:`live_session`.
    control : LiveControl
        Pause, resume, stop and regions set on it are sent to the child as they are made.
    poll : float
        Seconds the parent waits for a message before yielding None.
    **options
        The other arguments of :func:`live_session` (``pixel_size``, ``auto``,
        ``store``, ``window``, ``step``, ``search``).

    Yields
    ------
    None, LiveGrid or LiveUpdate
        As :func:`live_session` (None also while no message came); a frame update's
        ``store`` is a :class:`LiveStoreReader`, its ``traces`` the traces so far.

    Returns
    -------
    LiveResult or None
        As :func:`live_session`; closing the generator stops the run and waits for
        the child to complete the store.

    Raises
    ------
    Exception
        The child's error, its traceback in the message's notes.
    LiveProcessError
        If the child ended without a result.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    updates, child_updates = context.Pipe(duplex=False)
    child_controls, controls = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(child_updates, child_controls, {"path": str(path), **options}),
        name=PROCESS_NAME, daemon=True,
    )  # fmt: skip
    with _main_module_hidden(), _child_environment():
        process.start()
    child_updates.close()
    child_controls.close()
    relay = _Relay(controls)
    # What was set before the child started, then every change as it is made.
    if control.regions_given:
        relay.send("give_regions", control.take_regions())
    if control.paused:
        relay.send("pause")
    unlisten = control.listen(relay.send)
    if control.stopped:
        relay.send("stop")
    try:
        while True:
            if not updates.poll(poll):
                if not process.is_alive() and not updates.poll(0):
                    raise LiveProcessError(_ended(process))
                yield None
                continue
            try:
                kind, *message = updates.recv()
            except EOFError:
                process.join(1.0)
                raise LiveProcessError(_ended(process)) from None
            if kind == "grid":
                yield message[0]
            elif kind == "frame":
                yield relay.update(message[0])
            elif kind == "error":
                error, text = message
                error.add_note(f"in the live analysis process:\n{text}")
                raise error
            else:
                relay.done = True
                return relay.result(message[0])
    finally:
        unlisten()
        _end(process, relay, updates, controls)


def _ended(process) -> str:
    code = process.exitcode
    how = "was killed" if code is not None and code < 0 else f"ended with code {code}"
    return f"the live analysis process {how} without a result"


class _Relay:
    """The parent's side: sends the control's changes, rebuilds the updates."""

    def __init__(self, controls) -> None:
        self.controls = controls
        self._lock = threading.Lock()  # the GUI thread and the relay's thread send
        self.reader: LiveStoreReader | None = None
        self.traces: dict = {}
        self.done = False
        self.attached = _Attached()

    def send(self, kind: str, value=None) -> None:
        """Tell the child's control (nothing if the child is gone)."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.controls.send((kind, value))

    def update(self, message: dict) -> LiveUpdate:
        """The frame update of a message, its maps and frame copied from shared memory."""
        wall, cpu = time.perf_counter(), time.thread_time()
        stages = message["stages"]
        # From the child's send to here: the pipe and this thread waiting for the GIL.
        stages["pipe"] = (time.monotonic() - message["sent"], float("nan"))
        arrays = self.attached.copy(message["shared"])
        self.send("returned", message["shared"][0])
        image = arrays.pop("image")
        if self.reader is None:
            self.reader = LiveStoreReader(message["store"])
        self.reader.add(message["analysed"] - 1, arrays, message["written"])
        self.traces = {
            name: _append(self.traces.get(name), row) for name, row in message["rows"].items()
        }
        maps = message["maps"].with_arrays(arrays)
        stages["unship"] = (time.perf_counter() - wall, time.thread_time() - cpu)
        return LiveUpdate(
            "frame", message["frame"], message["time"], message["name"], maps,
            message["drift"], message["skipped"], time.monotonic() - message["complete"],
            message["analysed"], self.traces, image, self.reader, message["work"],
            message["complete"], stages, message["cpu"],
        )  # fmt: skip

    def result(self, result: LiveResult | None) -> LiveResult | None:
        """The child's result with its maps read from the completed store."""
        from .movie import read_zarr_maps

        if self.reader is not None:
            self.reader.finish()
        if result is None or result.movie is None:
            return result
        result.movie.maps = read_zarr_maps(result.store)
        return result


def _end(process, relay: _Relay, updates, controls) -> None:
    """Stop the child, let it complete the store, free what it sent; kill it if stuck."""
    if not relay.done:
        relay.send("stop")
        relay.send("resume")
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while True:
        try:
            if not updates.poll(0.05):
                if not process.is_alive() or time.monotonic() > deadline:
                    break
                continue
            kind, *message = updates.recv()
        except (EOFError, OSError):
            break
        if kind == "frame":
            relay.attached.seen(message[0]["shared"])
    process.join(max(0.0, deadline - time.monotonic()))
    if process.is_alive():
        logger.warning("the live analysis process did not stop in time: killed")
        process.kill()
        process.join(5.0)
    updates.close()
    relay.attached.close()
    with relay._lock:
        controls.close()
