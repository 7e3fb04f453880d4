"""Live dock: maps and time trace of an acquisition while it is being recorded.

Follows a folder of frames or a growing multi-frame file
(:func:`napari_hrtem_fft.io._watch.watch_source`) with
:func:`napari_hrtem_fft.core.live.iter_live` in a napari ``thread_worker``.  Shows the
newest frame, the d-spacing and strain maps of every frame analysed so far (read from
the zarr store, so napari's time slider scrolls through them without holding them in
memory) and the median d of each reflection against time, updated as frames arrive.
Pause, Resume and Stop act between frames; Stop completes the store.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error

from ._common import button_row
from ._fit import fit_dock
from ._plot import dark_canvas, style_axes, style_legend

if TYPE_CHECKING:
    import napari

__all__ = ["LiveWidget", "live_steps"]


def live_steps(path, *, pixel_size, auto, store, control, window, step, search=0.1):
    """The live run of the dock, as a generator of updates.

    Waits for the first frame, picks ``auto`` reflections on it
    (:func:`napari_hrtem_fft.find_reflections`), then yields the updates of
    :func:`napari_hrtem_fft.core.live.iter_live` (None while waiting for the first frame).
    """
    from ..core.fft import find_reflections
    from ..core.live import Prepended, iter_live
    from ..io._watch import watch_source

    source = watch_source(path)
    first = []
    while not first:
        if control.stopped:
            return None
        first = source.poll()
        if not first:
            time.sleep(0.05)
            yield None
    size = pixel_size or first[0].pixel_size
    if not size:
        raise ValueError(f"{first[0].name} has no pixel-size calibration: set the pixel size")
    refl = find_reflections(first[-1].data, pixel_size=size, window=window, max_count=auto)
    if len(refl) == 0:
        raise ValueError(f"no significant reflection found in {first[-1].name}")
    return (
        yield from iter_live(
            Prepended(first, source),
            refl,
            pixel_size=size,
            store=store,
            overwrite=True,
            control=control,
            window=window,
            step=step,
            search=search,
        )
    )


class LiveWidget(Container):
    """Maps and time trace of an acquisition while it is being written.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where the newest frame, its maps and the maps of earlier frames are shown.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._worker = None
        self._control = None
        self._init_widgets()
        self._init_layout()
        fit_dock(self)
        self._connect_events()

    def _init_widgets(self) -> None:
        self._source = FileEdit(
            label="source",
            mode="d",
            tooltip="Folder the acquisition writes frames to (TIFF, MRC, DM), or a growing "
            "multi-frame .tif/.mrc file (type its path).",
        )
        self._pixel = FloatSpinBox(
            label="pixel size (nm)",
            value=0.0,
            min=0.0,
            max=100.0,
            step=0.001,
            tooltip="0: from the files' calibration.",
        )
        self._auto = SpinBox(
            label="reflections", value=3, min=1, max=8, tooltip="Strongest reflections of "
            "the first frame's centre, one per lattice-plane direction.",
        )  # fmt: skip
        self._window = SpinBox(label="window (px)", value=128, min=16, max=1024, step=2)
        self._step = SpinBox(label="step (px)", value=8, min=1, max=256)
        self._store = FileEdit(
            label="store", mode="w", filter="*.zarr", value="live.zarr",
            tooltip="Zarr store the maps of every frame are appended to (replaced).",
        )  # fmt: skip
        self._start = PushButton(text="Start")
        self._pause = PushButton(text="Pause", enabled=False)
        self._stop = PushButton(text="Stop", enabled=False)
        self._status = Label(value="idle")
        self._figure, self._canvas = dark_canvas(
            (4, 2.4), min_height=180, tooltip="Median d of each reflection per frame."
        )
        self._axes = self._figure.add_subplot()
        style_axes(self._axes, xlabel="time (s)", ylabel="median d (nm)")

    def _init_layout(self) -> None:
        self.extend([
            self._source, self._pixel, self._auto, self._window, self._step, self._store,
            button_row(self._start, self._pause, self._stop), self._status,
        ])  # fmt: skip
        self.native.layout().addWidget(self._canvas)

    def _connect_events(self) -> None:
        self._start.changed.connect(self._on_start)
        self._pause.changed.connect(self._on_pause)
        self._stop.changed.connect(self._on_stop)

    def _disconnect_events(self) -> None:
        self._start.changed.disconnect(self._on_start)
        self._pause.changed.disconnect(self._on_pause)
        self._stop.changed.disconnect(self._on_stop)

    # ------------------------------------------------------------------ callbacks

    def _on_start(self) -> None:
        from ..core.live import LiveControl

        self._control = LiveControl()
        worker = thread_worker(live_steps)(
            str(self._source.value), pixel_size=float(self._pixel.value) or None,
            auto=int(self._auto.value), store=str(self._store.value),
            control=self._control, window=int(self._window.value), step=int(self._step.value),
        )  # fmt: skip
        worker.yielded.connect(self._on_update)
        worker.returned.connect(self._on_finished)
        worker.errored.connect(self._on_error)
        self._worker = worker
        self._start.enabled = False
        self._pause.enabled = self._stop.enabled = True
        self._status.value = f"waiting for frames in {self._source.value}"
        worker.start()

    def _on_pause(self) -> None:
        if self._control is None:
            return
        if self._control.paused:
            self._control.resume()
            self._pause.text = "Pause"
        else:
            self._control.pause()
            self._pause.text = "Resume"
            self._status.value = "paused: frames written meanwhile will be skipped"

    def _on_stop(self) -> None:
        if self._control is not None:
            self._control.stop()
            self._control.resume()

    def _on_error(self, error: Exception) -> None:
        show_error(f"Live: {error}")
        self._on_finished(None)

    def _on_finished(self, result) -> None:
        self._start.enabled = True
        self._pause.enabled = self._stop.enabled = False
        self._pause.text = "Pause"
        if result is not None and result.movie is not None:
            self._status.value = (
                f"stopped: {result.movie.n_frames} frames analysed, {len(result.skipped)} "
                f"skipped; store {result.store} complete"
            )
        self._worker = None

    def _on_update(self, update) -> None:
        if update is None or update.kind != "frame":
            return
        self._status.value = f"{update.message}; latency {update.latency:.2f} s"
        self._show_frame(update)
        self._show_trace(update.traces["all"])

    # ------------------------------------------------------------------ display

    def _layer(self, name: str, data, **kwargs):
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = data
            for key, value in kwargs.items():
                setattr(layer, key, value)
            return layer
        return self._viewer.add_image(data, name=name, **kwargs)

    def _show_frame(self, update) -> None:
        """The newest frame and the maps of every frame so far, on the newest frame."""
        maps = update.maps
        px = maps.pixel_size
        frame_meta = {"live": True, "frame": update.frame, "time_s": update.time}
        # The maps of all analysed frames (time axis first), read frame by frame from the
        # store as the slider asks for them.
        geometry = maps.geometry()
        scale = (1.0, *geometry["scale"])
        translate = (0.0, *geometry["translate"])
        units = ("", "nm", "nm")
        for k in range(maps.n_reflections):
            self._layer(
                f"live d g{k + 1} (nm)", update.store.stack("d_spacing", k), scale=scale,
                translate=translate, units=units, colormap="turbo",
                metadata={"kind": "d_spacing", **frame_meta},
                contrast_limits=_limits(np.asarray(maps.d_spacing[k])), opacity=0.6,
            )  # fmt: skip
        if maps.strain is not None:
            self._layer(
                "live exx", update.store.stack("exx"), scale=scale, translate=translate,
                units=units, colormap="RdBu_r", contrast_limits=(-0.05, 0.05), opacity=0.6,
                metadata={"kind": "exx", **frame_meta},
            )  # fmt: skip
        frame = np.asarray(update.image)
        layer = self._layer(
            "live frame", frame, scale=(px, px), units=("nm", "nm"), metadata=frame_meta
        )
        self._viewer.layers.move(self._viewer.layers.index(layer), 0)
        self._viewer.dims.set_current_step(0, update.analysed - 1)

    def _show_trace(self, trace) -> None:
        ax = self._axes
        style_axes(ax, xlabel="time (s)", ylabel="median d (nm)")
        x = trace.times if trace.times is not None else trace.frames
        for k in range(trace["d_median"].shape[1]):
            ax.plot(x, trace["d_median"][:, k], marker="o", markersize=3, label=f"g{k + 1}")
        style_legend(ax)
        self._canvas.draw_idle()

    def close(self) -> None:
        """Stop a run and disconnect the buttons."""
        if self._control is not None:
            self._control.stop()
            self._control.resume()
        self._disconnect_events()
        super().close()


def _limits(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(finite, [2, 98])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1e-3)
