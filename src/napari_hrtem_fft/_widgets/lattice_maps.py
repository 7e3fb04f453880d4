"""Lattice-map widget: run the rolling-window FFT analysis and show calibrated maps.

The analysis runs in a napari ``thread_worker`` over the module-level generator
:func:`~napari_hrtem_fft.core.pipeline.run_analysis` (an image, computed block by
block) or, for a movie ``(t, y, x)``,
:func:`~napari_hrtem_fft.core.pipeline.run_movie_analysis` (frame by frame: the current
frame, a range or all frames, optionally tracking the lattice and correcting the
drift); the result becomes ONE Image layer per analysed image, made through
:func:`napari_hrtem_fft.layers.maps_to_layers` (the same helper as in the console):
it shows the map chosen under "map" and holds every map of the run in its metadata
(:func:`~napari_hrtem_fft._napari.display.show_result`), because napari spends
0.1-0.2 s on each layer it adds.  "Add all maps as layers" gives each map its own
layer on request.
Maps of a movie keep its time axis, placed on the analysed frames, so that napari's
time slider moves the image and its maps together.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, create_widget
from napari.layers import Image, Points, Shapes
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from .._napari.display import (
    add_map_layers,
    choose_map,
    empty_map_warnings,
    map_choices,
    record_layer,
    run_summary,
    same_layer,
    show_map,
    show_result,
    show_scale_bar,
    source_name,
    warm_overlays,
)
from .._napari.layers import (
    PICKER_KEY,
    find_result_layers,
    map_key,
    maps_to_layers,
    result_info,
)
from .._napari.phase import PHASE_KEY, phase_layer_tuples
from .._napari.regions import labels_mask, region_choices, shapes_mask
from .._napari.shaders import speed_up_comment_stripping
from ..core.calibration import CALIBRATION_KEY, calibrated_maps
from ..core.maps import map_geometry, map_shape
from ..core.movie import MovieResult
from ..core.picked import PICKED_KEY, PickedReflections
from ..core.pipeline import (
    AnalysisFailure,
    AnalysisOptions,
    Progress,
    reporting_errors,
    run_analysis,
    run_movie_analysis,
    run_to_end,
)
from ._common import (
    after_next_composition,
    disconnect_on_close,
    hold_collections,
    layer_or_override_pixel_size,
    pixel_size_field,
    show_calibration,
)
from ._fit import fit_dock
from ._map_sections import (
    FRAME_MODES,
    AnalysisSection,
    CleaningSection,
    ExportSection,
    MapSection,
    MovieSection,
    PhaseSection,
    RunSection,
    align_labels,
)
from ._reference import ReferenceSection

if TYPE_CHECKING:
    import napari

__all__ = ["FRAME_MODES", "LatticeMapWidget"]

#: Metadata key of a drift-corrected copy made by the widget.
DRIFT_KEY = "napari_hrtem_fft_drift"

#: The 'reflections' choice that reads the reflections picked on the chosen image
#: (stored with it by the reflection picker, :mod:`napari_hrtem_fft.core.picked`);
#: the picks of another image are offered as that Image layer.
PICKED = "picked on this image (FFT picker)"

# Milliseconds the overlays stay transparent after the warm-up (a canvas draw or two).
_WARM_UNDO_MS = 200

# Garbage collection is held (hold_collections) from the click on an image's Run until
# this many milliseconds after the window has drawn its layers, so that a full
# collection (0.14-0.35 s) comes once the maps are on screen, not straight after them
# (counted from the end of the run, the delay had passed by the end of a new layer's
# first drawing, 0.12-0.17 s under software OpenGL); and never longer than the second:
# a longer run is not one a user waits on at the button.
_GC_AFTER_MS, _GC_HOLD_MAX_MS = 100, 1000

# The warm-up analysis: a synthetic lattice of this many windows a side, at this window
# and step (pixels) and pixel size (nm): ~0.02 s once the code is loaded.
_WARM_WINDOWS, _WARM_WINDOW, _WARM_STEP, _WARM_PIXEL = 2, 64, 16, 0.02


def _nothing() -> None:
    """Nothing to release."""


def _corrected(name: str) -> str:
    """Name of the drift-corrected copy of the movie layer ``name``."""
    return f"{name} (drift-corrected)"


def _source_description(layer: Image, pixel_size: float) -> dict:
    """What was analysed: the layer, its file and its calibration (for the JSON)."""
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path and isinstance(layer.metadata, dict):
        # The plugin's reader records the file in the layer metadata.
        path = layer.metadata.get("source_path")
    return {
        "layer": layer.name,
        "file": str(path) if path else None,
        "shape": list(layer.data.shape),
        "scale": [float(s) for s in layer.scale],
        "translate": [float(t) for t in layer.translate],
        "units": [str(u) for u in layer.units],
        "pixel_size_nm": float(pixel_size),
    }


def _movie_record(run: MovieResult, movie: str, analysed: str, region: str | None) -> dict:
    """What a movie run did, recorded in its layers' options (``movie``)."""
    return {
        "frames": np.asarray(run.frames).tolist(),
        "track": run.tracked,
        "drift_mode": run.drift_mode,
        "drift_px": None if run.drift is None else run.drift.tolist(),
        "reference_frame": int(run.frames[0]),
        "analysed_layer": analysed,
        "movie_layer": movie,
        "track_region_layer": region,
        "reflections_per_frame": run.reflections.tolist(),
        "found_per_frame": run.found.tolist(),
        "blank_frames": list(run.blank_frames),
    }


def warm_analysis(options: AnalysisOptions) -> None:
    """Run the dock's analysis once on a small synthetic lattice and forget the result.

    The first analysis of a session loads the engine's modules and builds its caches
    (~0.2 s that the first Run paid): done here with the dock's options (masks,
    smoothing, strain), at a small window, so that every step a Run takes is loaded.

    Parameters
    ----------
    options : AnalysisOptions
        The dock's options; the window, step and strain reference are replaced.
    """
    from ..core.synthetic import pd_110_reflections, synthetic_lattice

    g = pd_110_reflections()
    size = _WARM_WINDOWS * _WARM_WINDOW
    image, _ = synthetic_lattice(
        (size, size), pixel_size=_WARM_PIXEL, reflections=g, dtype=np.float32
    )
    try:
        options = dataclasses.replace(
            options, window=_WARM_WINDOW, step=_WARM_STEP, reference=None
        )
        run_to_end(run_analysis(image, g, pixel_size=_WARM_PIXEL, options=options))
    except (ValueError, TypeError):
        pass  # options this small lattice does not take: the Run reports them itself


def _stop_worker(worker, cancel: threading.Event, slots: list, release, *_) -> None:
    """Cancel a running analysis, disconnect the dock's slots from its signals.

    ``release`` ends the run's hold on garbage collection.
    """
    release()
    cancel.set()
    for name, slot in slots:
        try:
            getattr(worker, name).disconnect(slot)
        except (RuntimeError, TypeError):
            pass  # already finished and disconnected, or never connected
    worker.quit()


class LatticeMapWidget(Container):
    """Run the lattice-map analysis on an image with picked reflections.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer with the image; result layers are added to it.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        # The sections hold the labels; the dock only stacks them.
        super().__init__(labels=False)
        self._viewer = viewer
        self.worker = None
        self._cancel_event = threading.Event()
        self._run_started = 0.0
        self._pending: dict | None = None
        # Ends the running analysis' hold on garbage collection.
        self._release_collections = _nothing
        # True while result layers are being added (each insert changes the active
        # layer; the colour bars are set once at the end).
        self._adding = False
        # Every shader program napari builds from now on (a new map layer and its
        # colour bar: ~10) parses its code in linear time (0.05-0.09 s less per Run).
        speed_up_comment_stripping()
        self._init_widgets()
        self._init_layout()
        fit_dock(self)
        self._connect_events()
        self._on_image_changed()
        self._set_running(False)
        # After the dock is shown, in the event loop: never while napari opens it.
        QTimer.singleShot(0, self._warm_up)

    # ------------------------------------------------------------------ set-up

    def _init_widgets(self) -> None:
        self._image = create_widget(
            annotation=Image,
            label="image",
            options={"tooltip": "Image or movie layer to analyse."},
        )
        self._calibration = Label(label="calibration", tooltip="Pixel size used, in nm.")
        self._pixel_size = pixel_size_field(
            "nm per pixel, used only when the image layer has no calibration."
        )
        self._reflections = ComboBox(
            label="reflections",
            choices=self._reflection_choices,
            nullable=True,
            tooltip=(
                "The reflections picked on this image in the Reflection picker, those "
                "picked on another image, or a Points layer of reflections (gy, gx) in 1/nm."
            ),
        )
        self._analysis = AnalysisSection()
        self._cleaning = CleaningSection()
        self._reference = ReferenceSection(self._viewer)
        self._phase_section = PhaseSection()
        self._movie = MovieSection(self._track_region_choices)
        self._runner = RunSection()
        self._shown = MapSection(self._map_choices)
        self._exporter = ExportSection()
        # The fields under the names that scripts, the demo and tests use (same objects).
        a, c, m = self._analysis, self._cleaning, self._movie
        self._window, self._step, self._search, self._method = a.window, a.step, a.search, a.method
        self._crystal_mask, self._smoothing = c.crystal_mask, c.smoothing
        self._smoothing_size = c.smoothing_size
        self._phase = self._phase_section.phase
        self._frames, self._first, self._last = m.frames, m.first, m.last
        self._track, self._track_region, self._drift = m.track, m.track_region, m.drift
        self._run, self._cancel = self._runner.run, self._runner.cancel
        self._progress, self._status = self._runner.progress, self._runner.status
        self._export_dir, self._export = self._exporter.directory, self._exporter.export
        self._map, self._add_all = self._shown.map, self._shown.add_all

    def _init_layout(self) -> None:
        inputs = Container(labels=True)
        inputs.margins = (0, 0, 0, 0)
        inputs.extend([self._image, self._calibration, self._pixel_size, self._reflections])
        sections = [inputs, self._analysis, self._cleaning, self._reference, self._phase_section]
        sections += [self._movie]
        sections += [self._runner, self._status, self._shown, self._exporter]
        self.extend(sections)
        align_labels(sections)

    def _connect_events(self) -> None:
        for signal, slot in (
            (self._image.changed, self._on_image_changed),
            (self._reflections.changed, self._on_reflections_changed),
            (self._run.clicked, self._on_run),
            (self._cancel.clicked, self._on_cancel),
            (self._export.clicked, self._on_export),
            (self._map.changed, self._on_map_chosen),
            (self._add_all.clicked, self._on_add_all),
            (self._viewer.layers.selection.events.active, self._on_active_layer),
            (self.native.destroyed, self._disconnect),
        ):
            signal.connect(slot)
        disconnect_on_close(self, self._viewer)

    def _warm_up(self) -> None:
        """Pay now, after the dock is shown, the one-time costs of the first Run.

        The title overlay, and the scale bar of a calibrated image, are drawn once,
        transparent, and put back ~0.2 s later (a plain function: it runs even if the
        dock is closed meanwhile); the analysis is run once on a small lattice in a
        background thread (:func:`warm_analysis`, pure numpy: it touches no Qt object).
        """
        try:
            options = self.options()
        except RuntimeError:  # the dock was closed before the event loop ran
            return
        except (ValueError, TypeError):  # options the Run will refuse with a message
            options = None
        try:
            undo = warm_overlays(self._viewer, self._image.value)
        except RuntimeError:  # the viewer was closed before the event loop ran
            return
        QTimer.singleShot(_WARM_UNDO_MS, undo)
        if options is None:
            return
        threading.Thread(
            target=warm_analysis, args=(options,), name="hrtem-fft warm-up", daemon=True
        ).start()

    def _disconnect(self, *_) -> None:
        """Cut the dock's connection to the viewer when napari deletes the dock."""
        try:
            self._viewer.layers.selection.events.active.disconnect(self._on_active_layer)
        except (RuntimeError, TypeError, ValueError):
            pass  # the viewer went first

    # --------------------------------------------------------------- choices

    def _reflection_choices(self, widget=None) -> list[tuple[str, object]]:
        """The chosen image's picks, any image's picks, then Points layers of ``(gy, gx)``."""
        layers = self._viewer.layers
        picked = [(f"picked on {lyr.name!r}", lyr) for lyr in layers if PICKED_KEY in lyr.metadata]
        points = [
            (layer.name, layer)
            for layer in layers
            if isinstance(layer, Points) and PICKER_KEY not in layer.metadata
        ]
        return [(PICKED, PICKED), *picked, *points]

    def _picked_name(self) -> str:
        """Where the picked reflections come from, as recorded with the maps."""
        source = self._reflections.value
        image = self._image.value if isinstance(source, str) else source
        return f"picked on {image.name!r}"

    def _picked(self) -> PickedReflections | None:
        """The reflections picked (FFT picker) on the chosen image or the image chosen."""
        source = self._reflections.value
        image = self._image.value if isinstance(source, str) else source
        if not isinstance(image, Image):
            return None
        return PickedReflections.from_metadata(image.metadata)

    def _map_choices(self, widget=None) -> list[tuple[str, tuple]]:
        """The maps of the chosen image's run: ``(label, (kind, reflection))``."""
        return map_choices(self._record_layer())

    def _record_layer(self):
        """The layer showing the chosen image's run (holding its maps), or None."""
        image = self._image.value
        if image is None:
            return None
        # A movie's maps may belong to its drift-corrected copy.
        layers = self._viewer.layers
        return record_layer(layers, image.name) or record_layer(layers, _corrected(image.name))

    def _track_region_choices(self, widget=None) -> list[tuple[str, object]]:
        return region_choices(self._viewer.layers)

    def choose_inputs(
        self,
        image: Image,
        reflections: Points | str = PICKED,
        *,
        window: int | None = None,
        step: int | None = None,
    ) -> None:
        """Choose the inputs as a user would in the dock (scripts, the demo, tests).

        Parameters
        ----------
        image : napari.layers.Image
            The image or movie layer to analyse.
        reflections : napari.layers.Points or str
            A Points layer of reflections ``(gy, gx)`` in nm⁻¹, or (default)
            :data:`PICKED`, the reflections picked on the image in the picker (whose
            FFT window is then taken over, as in the dock).
        window, step : int, optional
            FFT window and map step in pixels (default: as the dock has them).
        """
        self.reset_choices()
        self._image.value = image
        self._reflections.value = reflections
        if window is not None:
            self._window.value = window
        if step is not None:
            self._step.value = step

    # ---------------------------------------------------------------- helpers

    def pixel_size(self) -> float:
        """The pixel size in nm: the image layer's calibration, or the override field."""
        return layer_or_override_pixel_size(self._image.value, self._pixel_size)

    def options(self) -> AnalysisOptions:
        """The options set in the widget (raises ValueError if inconsistent)."""
        return AnalysisOptions(
            **self._analysis.values(),
            **self._cleaning.values(),
        )

    @property
    def running(self) -> bool:
        """True while an analysis runs."""
        return self.worker is not None

    def _set_running(self, running: bool) -> None:
        self._runner.set_running(running)
        self._export.enabled = not running

    # ----------------------------------------------------------------- events

    def _on_image_changed(self, event=None) -> None:
        layer = self._image.value
        self._movie.set_image(layer)
        self._analysis.set_image(layer)
        show_calibration(layer, self._calibration, self._pixel_size)
        self._on_reflections_changed()
        self._show_map_choice()

    def _show_map_choice(self) -> None:
        """Offer the chosen image's maps, with the one its layer shows chosen."""
        layer = self._record_layer()
        with self._map.changed.blocked():
            self._map.reset_choices()
            self._map.value = None if layer is None else map_key(result_info(layer))
        self._add_all.enabled = layer is not None

    def _on_map_chosen(self, event=None) -> None:
        """Show the chosen map in the image's result layer (in place, no new layer)."""
        layer, key = self._record_layer(), self._map.value
        if layer is None or key is None:
            return
        choose_map(layer, key)
        if same_layer(self._viewer.layers.selection.active, layer):
            show_map(self._viewer, layer)
        else:
            self._viewer.layers.selection.active = layer

    def _on_add_all(self, event=None) -> None:
        """Every other map of the chosen image's run as a layer of its own."""
        layer = self._record_layer()
        if layer is None:
            show_error("Run the analysis first: there are no maps of this image.")
            return
        self._adding = True
        try:
            added = add_map_layers(self._viewer, layer)
        finally:
            self._adding = False
        self._viewer.layers.selection.active = layer
        self._runner.say(f"added {len(added)} map layers of {result_info(layer)['source']!r}")

    def _on_reflections_changed(self, event=None) -> None:
        picked = self._picked()
        if picked is None:
            return
        # The window and pixel size of the FFT the reflections were picked on.
        self._window.value = picked.window
        if self._pixel_size.enabled:
            self._pixel_size.value = picked.pixel_size

    def _on_active_layer(self, event=None) -> None:
        """Show the selected result layer alone, with its titled colour bar."""
        if not self._adding:
            show_map(self._viewer, self._viewer.layers.selection.active)
            self._show_map_choice()

    # -------------------------------------------------------------------- run

    def _inputs(self) -> dict:
        """Validated inputs of a run.

        The image layer, reflections, options, pixel size and, for a movie, the frames,
        tracking and drift choices.
        """
        if self.running:
            raise ValueError("an analysis is already running; cancel it first")
        image = self._image.value
        if image is None:
            raise ValueError("choose an image layer")
        if getattr(image, "rgb", False) or getattr(image, "multiscale", False):
            raise ValueError(
                f"layer {image.name!r} is RGB or multiscale; choose a grey-scale image"
            )
        source = self._reflections.value
        if isinstance(source, Points):
            g = np.asarray(source.data, dtype=float)[:, -2:]
        else:
            picked = self._picked()
            g = np.empty((0, 2)) if picked is None else picked.g
        if len(g) == 0:
            raise ValueError(
                f"no reflections picked on {image.name!r} (Reflection picker › Suggest), "
                "or choose those picked on another image"
                if source == PICKED
                else "choose reflections (Reflection picker › Suggest)"
            )
        options = self.options()
        return {
            "image": image,
            "reflections": g,
            "options": options,
            "pixel_size": self.pixel_size(),
            "points": source.name if isinstance(source, Points) else self._picked_name(),
            "movie": self._movie_inputs(image, options) if image.ndim == 3 else None,
        }

    def current_frame(self, image: Image) -> int:
        """The frame of a movie layer under napari's time slider."""
        point = np.asarray(self._viewer.dims.point, dtype=float)[-image.ndim :]
        k = int(np.round(image.world_to_data(point)[0]))
        return min(max(k, 0), int(image.data.shape[0]) - 1)

    def frames(self, image: Image) -> range:
        """Frame numbers of a movie layer that a run analyses, from the frames choice."""
        return self._movie.frame_range(int(image.data.shape[0]), self.current_frame(image))

    def _movie_inputs(self, image: Image, options: AnalysisOptions) -> dict:
        frames = self.frames(image)
        several = len(frames) > 1
        region = None
        layer = self._track_region.value if several else None
        if layer is not None and self._track.value:
            region = self._map_region(layer, image, options.step, frames)
        return {
            "frames": frames,
            "track": bool(self._track.value) and several,
            "drift_mode": str(self._drift.value) if several else "none",
            "region": region,
            "region_layer": None if region is None else layer.name,
        }

    def _map_region(self, layer, image: Image, step: int, frames: range) -> np.ndarray:
        """Tracking region on the map grid of ``image`` (2-D, or per analysed frame)."""
        shape = map_shape(image.data.shape[-2:], step)
        geometry = map_geometry(image.scale, image.translate, step)
        grid = {"map_scale": geometry["scale"], "map_translate": geometry["translate"]}
        if isinstance(layer, Shapes):
            mask = shapes_mask(layer, map_shape=shape, **grid)
        else:
            t = int(image.data.shape[0])
            mask = labels_mask(layer, map_shape=(t, *shape), **grid)
            if mask.ndim == 3:
                mask = mask[frames.start : frames.stop : frames.step]
        if not mask.any():
            raise ValueError(f"the tracking region {layer.name!r} holds no map pixel")
        return mask

    def _generator(self, inputs: dict, cancel: threading.Event | None = None):
        """The analysis generator of these inputs: an image, or a movie frame by frame."""
        common = {
            "pixel_size": inputs["pixel_size"],
            "options": inputs["options"],
            "cancel": cancel,
        }
        movie = inputs["movie"]
        if movie is None:
            return run_analysis(inputs["image"].data, inputs["reflections"], **common)
        return run_movie_analysis(
            inputs["image"].data,
            inputs["reflections"],
            frames=movie["frames"],
            track=movie["track"],
            drift_mode=movie["drift_mode"],
            region=movie["region"],
            **common,
        )

    def start(self) -> None:
        """Validate the inputs and start the analysis in a worker thread.

        Raises
        ------
        ValueError
            On missing or invalid inputs (no image, no reflections, bad options).
        """
        from napari.qt.threading import create_worker

        inputs = self._inputs()
        self._pending = inputs
        self._cancel_event = threading.Event()
        worker = create_worker(
            reporting_errors,
            self._generator(inputs, self._cancel_event),
            _progress=False,
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        # From the click until the maps are drawn (released after _on_finished) of an
        # image: a movie's run is long work.
        release = hold_collections() if inputs["movie"] is None else _nothing
        self._release_collections = release
        QTimer.singleShot(_GC_HOLD_MAX_MS, release)
        # Closing the viewer deletes this dock while the worker runs: stop the worker and
        # cut its signals, so that no slot touches a deleted Qt widget.
        self.native.destroyed.connect(
            functools.partial(
                _stop_worker, worker, self._cancel_event, self._worker_slots(), release
            )
        )
        self.worker = worker
        self._runner.started()
        self._set_running(True)
        self._run_started = time.perf_counter()
        worker.start()
        # The scale bar the maps are shown with is turned on now (its visual was built
        # when the dock opened).  A new image's result layer is not added until its maps
        # arrive: napari's Python work on a new layer, done beside the analysis, made the
        # two threads take turns on the GIL and cost more than it overlapped (a new 1024²
        # image's Run, quiet 2-core machine: 0.70 s with the layer added here, 0.54 s
        # without).
        show_scale_bar(self._viewer, inputs["image"])

    def _worker_slots(self) -> list:
        return [
            ("yielded", self._on_progress),
            ("returned", self._on_returned),
            ("errored", self._on_errored),
            ("aborted", self._on_aborted),
            ("finished", self._on_finished),
        ]

    def run_blocking(self) -> list:
        """Run the analysis in this thread (scripts and the demo); return the new layers.

        Raises
        ------
        ValueError, TypeError
            On invalid inputs or a failed analysis.
        """
        inputs = self._inputs()
        self._run_started = time.perf_counter()
        result = run_to_end(self._generator(inputs), on_step=self._on_progress)
        return self._show_result(result, inputs)

    def cancel(self) -> None:
        """Ask the running analysis to stop.

        An image stops after the block being computed, a movie after the current frame.
        """
        if self.worker is not None:
            # The event stops the dask computation between image blocks, or a movie
            # between frames; quit() stops the worker at its next progress report.
            self._cancel_event.set()
            self.worker.quit()
            self._runner.say("cancelling…")

    def _on_run(self, event=None) -> None:
        try:
            self.start()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot run the lattice-map analysis: {exc}")

    def _on_cancel(self, event=None) -> None:
        self.cancel()

    def _on_progress(self, progress: Progress) -> None:
        self._runner.show_progress(progress)

    def _on_returned(self, result) -> None:
        pending, self._pending = self._pending, None
        if result is None or pending is None:
            self._runner.finished(complete=False)
            self._runner.say("cancelled; no layers added")
            return
        if isinstance(result, AnalysisFailure):
            self._on_errored(result.error)
            return
        image = pending["image"]
        if image not in self._viewer.layers:
            show_error(f"The image {image.name!r} was removed during the analysis.")
            return
        try:
            self._show_result(result, pending)
        except ValueError as exc:  # e.g. a reference region outside the maps
            self._on_errored(exc)

    def _referred(self, maps, image: Image, frames: range | None = None):
        """``maps`` relative to the reference region (its section), if one is chosen.

        ``frames``: the analysed frames of a movie, whose time axis places a per-frame
        (t, y, x) Labels reference.
        """
        if frames is None:
            grid = map_geometry(image.scale[-2:], image.translate[-2:], maps.step)
        else:
            grid = map_geometry(image.scale, image.translate, maps.step, frames=frames)
        return self._reference.apply(
            maps, map_scale=grid["scale"], map_translate=grid["translate"]
        )

    def _show_result(self, result, inputs: dict) -> list:
        """Add the layers of a finished run (maps, or a movie run) and report."""
        image = inputs["image"]
        common = {"options": inputs["options"], "points": inputs["points"]}
        # Strain and phase relative to the reference region, per frame, if one is chosen.
        if isinstance(result, MovieResult):
            region_layer = inputs["movie"]["region_layer"]
            result.maps = self._referred(result.maps, image, result.frames)
            added = self.add_movie_layers(result, image, region_layer=region_layer, **common)
            maps = result.maps
        else:
            # A scale calibrated from a known lattice (picker) corrects every map.
            maps = calibrated_maps(result, image.metadata.get(CALIBRATION_KEY))
            maps = self._referred(maps, image)
            phase = bool(self._phase.value)
            added = self.add_result_layers(maps, image, **common, phase=phase)
        self._runner.finished(complete=True)
        warnings = empty_map_warnings(maps)
        if warnings:
            show_warning(" ".join(warnings))
        seconds = time.perf_counter() - self._run_started
        self._runner.say(run_summary(result, maps, seconds, warnings))
        return added

    def _on_errored(self, exc: Exception) -> None:
        self._pending = None
        self._runner.finished(complete=False)
        self._runner.say(f"failed: {exc}")
        show_error(f"Lattice-map analysis failed: {exc}")

    def _on_aborted(self) -> None:
        self._pending = None
        self._runner.finished(complete=False)
        self._runner.say("cancelled; no layers added")

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)
        release, self._release_collections = self._release_collections, _nothing
        after_next_composition(_GC_AFTER_MS, release, timeout=_GC_HOLD_MAX_MS)

    def add_result_layers(
        self,
        maps,
        image: Image,
        *,
        options=None,
        points=None,
        translate=None,
        scale=None,
        extra: dict | None = None,
        phase: bool = False,
    ) -> list:
        """Show ``maps`` in the image's result layer, replacing its earlier run.

        One layer shows one map (the one shown before, else the first d-spacing) and
        holds every map in its record; the image's layers of single maps ("Add all
        maps as layers") get the new maps too.

        Parameters
        ----------
        maps : LatticeMaps
            The finished analysis.
        image : napari.layers.Image
            The analysed image layer (its scale, translate and units place the maps).
        options : AnalysisOptions, optional
            Recorded in the layers' metadata.
        points : str, optional
            Name of the reflections layer used.
        translate, scale : sequence of float, optional
            World placement of the image grid the maps belong to (default the image
            layer's), e.g. the first analysed frame of a movie on the time axis.
        extra : dict, optional
            Further entries for the layers' recorded options (e.g. ``movie``).
        phase : bool
            Also the phase maps, the displacement and the dislocation cores (maps with
            ``phase``, see :mod:`._phase`).

        Returns
        -------
        list of napari.layers.Image
            The layer showing the run, then the image's layers of single maps.
        """
        recorded = {"reflections_layer": points}
        if options is not None:
            recorded.update(options.as_dict())
        recorded.update(extra or {})
        tuples = maps_to_layers(
            maps,
            image_scale=image.scale if scale is None else scale,
            image_translate=image.translate if translate is None else translate,
            units=tuple(str(u) for u in image.units),
            source=image.name,
            options=recorded,
            kinds=self._cleaning.layer_kinds(phase=phase),
        )
        for _, kwargs, _ in tuples:
            kwargs["name"] = source_name(kwargs["name"], image.name)
        self._adding = True
        try:
            added = show_result(self._viewer, tuples, image.name)
            if CALIBRATION_KEY in image.metadata:
                # The image's residual stretch (scan distortion) places its maps too.
                for layer in added:
                    layer.affine = image.affine
        finally:
            self._adding = False
        self._replace_phase_layers(maps, image, options, phase)
        # Selecting the layer shows it (_on_active_layer); if it is selected already,
        # nothing is emitted and it is shown here.
        selected = same_layer(self._viewer.layers.selection.active, added[0])
        self._viewer.layers.selection.active = added[0]
        if selected:
            self._on_active_layer()
        if same_layer(image, self._image.value):
            self._show_map_choice()
        return added

    def _replace_phase_layers(self, maps, image: Image, options, phase: bool) -> None:
        """Remove the image's earlier displacement and dislocation layers; add new ones."""
        for layer in list(self._viewer.layers):
            if layer.metadata.get(PHASE_KEY, {}).get("source") == image.name:
                self._viewer.layers.remove(layer)
        if not phase or maps.phase is None:
            return
        reference = maps.parameters.get("reference")
        for data, kwargs, kind in phase_layer_tuples(
            maps,
            scale=image.scale,
            translate=image.translate,
            units=tuple(str(u) for u in image.units),
            source=image.name,
            reference=reference,
        ):
            getattr(self._viewer, f"add_{kind}")(data, **kwargs)

    def add_movie_layers(
        self, run: MovieResult, image: Image, *, options=None, points=None, region_layer=None
    ) -> list:
        """Result layers of a movie run, on the time axis of the analysed frames.

        The maps' time axis has the image's time scale (times the frame step) and
        starts at the first analysed frame, so the time slider shows every map with
        its frame.  With drift correction, the drift-corrected copy of the frames is
        added first (a lazy layer replacing an earlier copy) and the maps belong to it.

        Parameters
        ----------
        run : MovieResult
            The finished movie analysis.
        image : napari.layers.Image
            The analysed movie layer.
        options : AnalysisOptions, optional
            Recorded in the layers' metadata.
        points : str, optional
            Name of the reflections layer used.
        region_layer : str, optional
            Name of the layer of the tracking region.

        Returns
        -------
        list of napari.layers.Image
            The new result layers (not the drift-corrected copy).
        """
        frames = run.frames
        # The analysed frames on the image grid (step 1): the maps' time axis.
        placed = map_geometry(image.scale, image.translate, 1, frames=frames)
        scale, translate = placed["scale"], placed["translate"]
        target = image
        if run.corrected is not None:
            target = self._add_corrected(run, image, scale, translate)
            # The maps are placed on the copy, which has this scale and translate.
            scale, translate = None, None
        movie = _movie_record(run, image.name, target.name, region_layer)
        return self.add_result_layers(
            run.maps,
            target,
            options=options,
            points=points,
            scale=scale,
            translate=translate,
            extra={"movie": movie},
        )

    def _add_corrected(self, run: MovieResult, image: Image, scale, translate) -> Image:
        """Add (or replace) the lazy drift-corrected copy of the analysed frames."""
        name = _corrected(image.name)
        for layer in list(self._viewer.layers):
            info = layer.metadata.get(DRIFT_KEY) if isinstance(layer.metadata, dict) else None
            if isinstance(info, dict) and layer.name == name:
                for old in find_result_layers(self._viewer.layers, source=name):
                    self._viewer.layers.remove(old)
                self._viewer.layers.remove(layer)
        corrected = self._viewer.add_image(
            run.corrected,
            name=name,
            scale=scale,
            translate=translate,
            units=tuple(str(u) for u in image.units),
            colormap=image.colormap.name,
            contrast_limits=tuple(image.contrast_limits),
            cache=False,
            metadata={
                DRIFT_KEY: {
                    "source": image.name,
                    "frames": np.asarray(run.frames).tolist(),
                    "drift_px": run.drift.tolist(),
                    "reference_frame": int(run.frames[0]),
                    "convention": "frame_k(r) = reference(r - drift_k)",
                }
            },
        )
        # Right above the original, which is hidden: the copy replaces it on screen.
        self._viewer.layers.move(
            self._viewer.layers.index(corrected), self._viewer.layers.index(image) + 1
        )
        image.visible = False
        return corrected

    # ----------------------------------------------------------------- export

    def export(self, directory) -> list[Path]:
        """Save the result maps of the current image, statistics and the record.

        The layout is the command line's (:mod:`napari_hrtem_fft.core.export`), with the
        image layer's name as the file stem: ``<image>_d_spacing_g1.tif``, …,
        ``<image>_statistics.csv``, ``<image>.json``.

        Raises
        ------
        ValueError
            If there are no result layers for the image.
        FileExistsError
            If ``directory`` already holds files of those names (nothing is written).
        """
        from .._napari.layers import maps_from_layers, run_options
        from ..core.export import analysis_record, write_results

        image = self._image.value
        if image is None:
            raise ValueError("choose the analysed image layer")
        layers = find_result_layers(self._viewer.layers, source=image.name)
        if not layers:
            raise ValueError(
                f"there are no result layers of {image.name!r}; run the analysis first"
            )
        maps, geometry, info = maps_from_layers(layers, missing="none")
        record = analysis_record(
            maps,
            run_options(info),
            program="napari-hrtem-fft lattice-map widget",
            source=_source_description(image, self.pixel_size()),
            geometry=geometry,
            reflections_source=str((info.get("options") or {}).get("reflections_layer")),
            **({"movie": info["options"]["movie"]} if "movie" in info["options"] else {}),
        )
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", image.name).strip("_.") or "maps"
        try:
            return write_results(
                Path(directory) / f"{stem}.tif", maps, geometry=geometry, record=record
            )
        except FileExistsError as err:
            raise FileExistsError(
                f"{err}; choose another folder (nothing was overwritten)"
            ) from None

    def _on_export(self, event=None) -> None:
        directory = self._exporter.chosen_directory(self.native)
        if directory is None:
            return
        try:
            written = self.export(directory)
        except (ValueError, FileExistsError, OSError) as exc:
            show_error(f"Export failed: {exc}")
            return
        show_info(f"Exported {len(written)} files to {directory}")
        self._runner.say(f"exported {len(written)} files")
