"""The sections of the lattice-map dock, each a small magicgui Container.

:class:`~._widgets.lattice_maps.LatticeMapWidget` stacks them: what to analyse
(image, calibration, reflections, in the dock itself), :class:`AnalysisSection` (window,
step, search, method, strain), :class:`CleaningSection` (masks, smoothing),
:class:`PhaseSection` (strain reference, phase and dislocations), :class:`MovieSection`
(frames, tracking, drift), :class:`RunSection` (Run, Cancel, progress, status),
:class:`MapSection` (the map shown, all maps as layers) and :class:`ExportSection`.
A section builds its widgets in ``_init_widgets``, lays them out in
``_init_layout``, connects its own widgets in
``_connect_events`` (``_on_*`` callbacks) and gives its part of the options; none of
them knows the viewer.

Numeric fields take their default and limits from
:class:`~napari_hrtem_fft.core.pipeline.AnalysisOptions` and
:data:`~napari_hrtem_fft.core.pipeline.OPTION_LIMITS` (:func:`option_field`), so the
dock offers exactly what the pipeline accepts.
"""

from __future__ import annotations

import time

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)

from ..core.pipeline import OPTION_LIMITS, SMOOTHING_METHODS, AnalysisOptions, Progress
from ._common import button_row, debounce_timer, max_window

__all__ = [
    "FRAME_MODES",
    "AnalysisSection",
    "CleaningSection",
    "ExportSection",
    "MapSection",
    "MovieSection",
    "PhaseSection",
    "RunSection",
    "align_labels",
    "option_field",
]

#: Which frames of a movie are analysed.
FRAME_MODES = ("current frame", "all frames", "range")

_DRIFT_CHOICES = [
    ("none", "none"),
    ("correct: analyse a drift-corrected copy", "correct"),
    ("measure: tracking region follows", "follow"),
]

# A repaint of any widget of a window holding napari's GL canvas composes the whole
# window (Xvfb's software GL, 1920×1080: ~0.05 s of CPU on both cores, taken from the
# analysis): progress is shown at most this often (seconds), ...
_PROGRESS_INTERVAL = 0.4
# ... and first this long after the click: a run shorter than a second shows "running…"
# from the click to its result (a bar moving in its last few hundred milliseconds tells
# the user nothing), and is not slowed down by its own progress reports.
_PROGRESS_FIRST = 1.0


def option_field(name: str, label: str, tooltip: str, **overrides) -> SpinBox | FloatSpinBox:
    """A spin box for the numeric option ``name`` of :class:`AnalysisOptions`.

    The default value, the type, the limits and the step come from the options record;
    ``overrides`` set what it leaves open (the upper end of an unbounded option, the
    step of a float, 0 for "automatic" where the option may be None).
    """
    limits = OPTION_LIMITS[name]
    default = getattr(AnalysisOptions, name)
    kwargs = {
        "label": label,
        "tooltip": tooltip,
        "value": 0 if default is None else default,
        "min": limits.get("min", 0),
    }
    if "max" in limits:
        kwargs["max"] = limits["max"]
    if "multiple" in limits:
        kwargs["step"] = limits["multiple"]
    kwargs.update(overrides)
    return (SpinBox if limits["type"] is int else FloatSpinBox)(**kwargs)


def align_labels(sections) -> None:
    """Give labelled containers stacked in one dock one label column.

    magicgui aligns the labels within one container only; the dock's sections would
    otherwise each start their fields at another place.
    """
    from magicgui.application import use_app
    from magicgui.widgets.bases import ButtonWidget

    measure = use_app().get_obj("get_text_width")
    containers = [section for section in sections if isinstance(section, Container)]
    fields = [w for c in containers for w in c if not isinstance(w, ButtonWidget)]
    # The measure is the font's advance; QLabel adds a few pixels of its own.
    width = max(measure(w.label) for w in fields) + 12
    for widget in fields:
        labelled = widget._labeled_widget()
        if labelled is not None:
            labelled.label_width = width


class _Section(Container):
    """A group of the dock's fields, built in named steps; no margins of its own."""

    def __init__(self) -> None:
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)
        self._init_widgets()
        self._init_layout()
        self._connect_events()

    def _init_widgets(self) -> None:
        raise NotImplementedError

    def _init_layout(self) -> None:
        raise NotImplementedError

    def _connect_events(self) -> None:
        """Connect the section's own widgets (none by default)."""


class AnalysisSection(_Section):
    """Window, step, search, refinement, method, GPA resolution and strain."""

    def _init_widgets(self) -> None:
        self.window = option_field(
            "window",
            "window (px)",
            "Side of each FFT window in pixels (even). Larger: more precise, less local.",
            max=max_window(None),
        )
        self.step = option_field(
            "step",
            "step (px)",
            "Distance between window centres in pixels = size of one map pixel "
            "(at most the window).",
            max=AnalysisOptions.window,
        )
        self.search = option_field(
            "search",
            "search",
            "How far from each reflection a local peak is searched, relative to |g| "
            "(0.1 = ±10 %).",
            min=0.005,
            step=0.005,
        )
        tip = "Refine every peak position below the FFT bin size (slower, precise)."
        self.refine = CheckBox(text="sub-bin peak refinement", tooltip=tip)
        self.refine.value = AnalysisOptions.refine
        tip = "Strain relative to the picked reflections; needs 2 non-collinear ones."
        self.strain = CheckBox(text="compute strain (exx, eyy, exy, rotation)", tooltip=tip)
        self.strain.value = AnalysisOptions.compute_strain
        self.method = ComboBox(
            label="method",
            choices=[
                ("local FFT (rolling window)", "local_fft"),
                ("GPA (geometric phase)", "gpa"),
            ],
            value=AnalysisOptions.method,
            tooltip="GPA: a Gaussian mask around each reflection in the FFT of the whole image.",
        )
        self.resolution = option_field(
            "resolution_nm",
            "GPA resolution (nm)",
            "FWHM of GPA's point-spread function in nm; 0 = matched to the window.",
            min=0.0,
            max=1000.0,
            step=0.1,
        )

    def _init_layout(self) -> None:
        self.extend([self.window, self.step, self.search, self.refine, self.strain])
        self.extend([self.method, self.resolution])

    def _connect_events(self) -> None:
        self.window.changed.connect(self._on_window_changed)
        self.method.changed.connect(self._on_method_changed)
        self._on_method_changed()

    def _on_window_changed(self, event=None) -> None:
        self.step.max = int(self.window.value)

    def _on_method_changed(self, event=None) -> None:
        self.resolution.enabled = self.method.value == "gpa"

    def set_image(self, layer) -> None:
        """Offer windows up to the smaller side of ``layer`` (an image layer or None)."""
        self.window.max = max_window(layer)

    def values(self) -> dict:
        """The options of :class:`AnalysisOptions` set in this section."""
        resolution = float(self.resolution.value)
        gpa = self.method.value == "gpa"
        return {
            "window": int(self.window.value),
            "step": int(self.step.value),
            "search": float(self.search.value),
            "refine": bool(self.refine.value),
            "compute_strain": bool(self.strain.value),
            "method": str(self.method.value),
            "resolution_nm": resolution if gpa and resolution > 0 else None,
        }


class CleaningSection(_Section):
    """Crystal and intensity masks and smoothing."""

    def _init_widgets(self) -> None:
        self.crystal_mask = CheckBox(
            text="crystal mask (peak strength)",
            value=AnalysisOptions.crystal_mask,
            tooltip="Blank map pixels where the reflections do not stand out of the noise.",
        )
        self.crystal_threshold = option_field(
            "crystal_threshold",
            "peak threshold",
            "Minimum peak strength over background; 0 = automatic.",
            min=0.0,
            max=1e6,
            step=0.5,
        )
        self.intensity_mask = CheckBox(
            text="intensity mask",
            value=AnalysisOptions.intensity_mask,
            tooltip=(
                "Blank map pixels outside the particle as seen in the smoothed image "
                "intensity (e.g. vacuum or a thick support)."
            ),
        )
        self.intensity_threshold = option_field(
            "intensity_threshold",
            "intensity threshold",
            "Threshold on the smoothed intensity normalised to 0–1 (1st–99th percentile "
            "of the image).",
            step=0.05,
        )
        self.intensity_dark = CheckBox(
            text="particle darker than background",
            value=AnalysisOptions.intensity_dark,
            tooltip="Keep pixels below the threshold instead of above it.",
        )
        self.smoothing = ComboBox(
            label="smoothing",
            choices=list(SMOOTHING_METHODS),
            value=AnalysisOptions.smoothing,
            tooltip="Smooth the maps after masking (NaN-aware).",
        )
        self.smoothing_size = option_field(
            "smoothing_size", "smoothing size", "Smoothing size in map pixels.", max=51
        )

    def _init_layout(self) -> None:
        self.extend([self.crystal_mask, self.crystal_threshold, self.intensity_mask])
        self.extend([self.intensity_threshold, self.intensity_dark, self.smoothing])
        self.append(self.smoothing_size)

    def _connect_events(self) -> None:
        for widget in (self.crystal_mask, self.intensity_mask, self.smoothing):
            widget.changed.connect(self._on_changed)
        self._on_changed()

    def _on_changed(self, event=None) -> None:
        self.crystal_threshold.enabled = bool(self.crystal_mask.value)
        self.intensity_threshold.enabled = bool(self.intensity_mask.value)
        self.intensity_dark.enabled = bool(self.intensity_mask.value)
        self.smoothing_size.enabled = self.smoothing.value != "none"

    def values(self) -> dict:
        """The options of :class:`AnalysisOptions` set in this section."""
        threshold = float(self.crystal_threshold.value)
        return {
            "crystal_mask": bool(self.crystal_mask.value),
            "crystal_threshold": threshold if threshold > 0 else None,
            "intensity_mask": bool(self.intensity_mask.value),
            "intensity_threshold": float(self.intensity_threshold.value),
            "intensity_dark": bool(self.intensity_dark.value),
            "smoothing": str(self.smoothing.value),
            "smoothing_size": int(self.smoothing_size.value),
        }

    @staticmethod
    def layer_kinds(*, phase: bool) -> tuple[str, ...]:
        """Kinds of :func:`napari_hrtem_fft.layers.maps_to_layers` a run keeps.

        All are in the run's record (one layer shows them, :class:`MapSection`), so
        the peak-strength (amplitude) maps cost no layer.
        """
        return ("d_spacing", "angle", "amplitude", "strain", *(("phase",) if phase else ()))


class PhaseSection(_Section):
    """'Phase & dislocations' (the strain reference is :class:`._reference.ReferenceSection`)."""

    def _init_widgets(self) -> None:
        self.phase = CheckBox(
            text="Phase && dislocations",  # "&&": a plain "&", not a keyboard mnemonic
            value=False,
            tooltip=(
                "Add the phase maps, the displacement (nm) and the dislocation cores "
                "(points with their Burgers vectors)."
            ),
        )

    def _init_layout(self) -> None:
        self.append(self.phase)


class MovieSection(_Section):
    """Movies: which frames, tracking the lattice and the drift (hidden for an image)."""

    def __init__(self, region_choices) -> None:
        self._region_choices = region_choices
        super().__init__()

    def _init_widgets(self) -> None:
        self.frames = ComboBox(
            label="frames",
            choices=list(FRAME_MODES),
            value="all frames",
            tooltip=(
                "Movies: the frame under the time slider, every frame, or a range. "
                "Frames are analysed one after the other; Cancel stops after the "
                "current frame."
            ),
        )
        self.first = SpinBox(label="first frame", max=0, tooltip="First frame of the range.")
        self.last = SpinBox(label="last frame", max=0, tooltip="Last frame of the range (kept).")
        self.track = CheckBox(
            text="track reflections from frame to frame",
            value=False,
            tooltip=(
                "Each frame is demodulated at the lattice found in the previous one, so "
                "that an expansion or rotation larger than the search range over the "
                "movie is followed. Strain stays relative to the picked reflections."
            ),
        )
        tip = (
            "Optional Shapes or Labels layer: the lattice is followed inside this region "
            "(drawn on the first analysed frame). None: every window with a lattice."
        )
        self.track_region = ComboBox(label="track in", nullable=True, tooltip=tip)
        self.track_region.choices = self._region_choices
        self.drift = ComboBox(
            label="drift",
            choices=_DRIFT_CHOICES,
            value="none",
            tooltip=(
                "Measure the specimen drift (phase correlation against the first analysed "
                "frame). 'correct' adds a drift-corrected copy of the frames (lazy) and "
                "maps it, so the particle stands still; 'measure' keeps the frames and "
                "moves the tracking region and the time-trace region with the drift."
            ),
        )

    def _init_layout(self) -> None:
        self.extend(
            [self.frames, self.first, self.last, self.track, self.track_region, self.drift]
        )

    def _connect_events(self) -> None:
        self.frames.changed.connect(self._on_frames_changed)
        self._on_frames_changed()

    def _on_frames_changed(self, event=None) -> None:
        mode = self.frames.value
        self.first.enabled = self.last.enabled = mode == "range"
        several = mode != "current frame"
        self.track.enabled = self.drift.enabled = self.track_region.enabled = several

    def set_image(self, layer) -> None:
        """Show the section for a movie layer ``(t, y, x)`` and offer its frames."""
        movie = layer is not None and layer.ndim == 3 and not layer.rgb
        for widget in (self, *self):
            widget.visible = movie
        if movie:
            last = int(layer.data.shape[0]) - 1
            self.first.max = self.last.max = last
            self.last.value = last
            self.first.value = 0

    def frame_range(self, n_frames: int, current: int) -> range:
        """Frame numbers a run analyses, of ``n_frames``; ``current``: the slider's frame.

        Raises
        ------
        ValueError
            If the range ends before it starts.
        """
        mode = self.frames.value
        if mode == "current frame":
            return range(current, current + 1)
        if mode == "all frames":
            return range(n_frames)
        first, last = int(self.first.value), int(self.last.value)
        if last < first:
            raise ValueError(f"the last frame ({last}) is before the first ({first})")
        return range(first, last + 1)


class RunSection(_Section):
    """Run and Cancel, the progress bar and the status line."""

    def _init_widgets(self) -> None:
        self.run = PushButton(text="Run", tooltip="Start the analysis in the background.")
        self.cancel = PushButton(text="Cancel", tooltip="Stop the running analysis.")
        blocks = "Image blocks done (an image) or frames done (a movie)."
        self.progress = ProgressBar(label="progress", max=1, tooltip=blocks)
        self.status = Label(value="", tooltip="Outcome of the last run.")
        # Warnings after a run are sentences: wrap them rather than widen the dock.
        self.status.native.setWordWrap(True)
        self._shown = 0.0  # when progress was last shown (perf_counter seconds)
        self._latest: Progress | None = None  # a report waiting to be shown
        self._timer = debounce_timer(self, int(1000 * _PROGRESS_INTERVAL), self._show_latest)

    def _init_layout(self) -> None:
        # The status line is not in this section: the dock puts it below, unlabelled and
        # full width, where a wrapped label gets the height its lines need (in a nested
        # labelled row it kept one row's height and cut the text).
        self.extend([button_row(self.run, self.cancel), self.progress])

    def say(self, text: str) -> None:
        """Show ``text`` in the status line (wrapped) and in full as its tooltip."""
        self.status.value = text
        self.status.tooltip = text

    def started(self) -> None:
        """A run starts: progress at zero, 'running…', Run disabled."""
        self._timer.stop()
        self._latest = None
        self._set_progress(0, 1)
        # The status line keeps its height while the run goes: "running…" in place of a
        # wrapped sentence would shrink it, and the dock's layout would change and
        # compose the window a second time at the click.
        label = self.status.native
        label.setMinimumHeight(label.height())
        self.say("running…")
        # As if progress had been shown just before: the first report waits until
        # _PROGRESS_FIRST seconds after the click.
        self._shown = time.perf_counter() + _PROGRESS_FIRST - _PROGRESS_INTERVAL
        self.set_running(True)

    def show_progress(self, progress: Progress) -> None:
        """Show a progress report: from 1 s after the start on, at most every 0.4 s."""
        self._latest = progress
        wait = _PROGRESS_INTERVAL - (time.perf_counter() - self._shown)
        if wait <= 0:
            self._show_latest()
        elif not self._timer.isActive():
            self._timer.start(max(1, int(1000 * wait)))

    def _show_latest(self) -> None:
        progress, self._latest = self._latest, None
        if progress is None:
            return
        self._shown = time.perf_counter()
        self._set_progress(progress.done, max(progress.total, 1))
        self.say(progress.message)

    def finished(self, *, complete: bool) -> None:
        """The run is over: no waiting report is shown; a ``complete`` run fills the bar."""
        self._timer.stop()
        self._latest = None
        if complete:
            self._set_progress(self.progress.max)

    def _set_progress(self, value: int, maximum: int | None = None) -> None:
        """Set the bar, to be painted with the next paint of the window.

        ``QProgressBar.setValue`` repaints at once, and a repaint of a window holding
        napari's GL canvas composes the whole window (0.1-0.7 s under load): with
        updates off while it is set, the bar is painted in the next turn of the event
        loop, together with the layers a run adds.
        """
        bar = self.progress.native
        bar.setUpdatesEnabled(False)
        try:
            if maximum is not None:
                self.progress.max = maximum
            self.progress.value = value
        finally:
            bar.setUpdatesEnabled(True)

    def set_running(self, running: bool) -> None:
        """Enable Cancel while a run is going, Run otherwise.

        After a run the status line's height is free again (see :meth:`started`).
        """
        self.run.enabled = not running
        self.cancel.enabled = running
        if not running:
            self.status.native.setMinimumHeight(0)


class MapSection(_Section):
    """Which map of the run the image's result layer shows, and all maps as layers."""

    def __init__(self, choices) -> None:
        self._choices = choices
        super().__init__()

    def _init_widgets(self) -> None:
        self.map = ComboBox(
            label="map",
            nullable=True,
            tooltip=(
                "The map the image's result layer shows (d-spacing and angle per "
                "reflection, peak strength, strain, phase); switching is instant."
            ),
        )
        self.map.choices = self._choices
        self.add_all = PushButton(
            text="Add all maps as layers",
            tooltip=(
                "Every other map of the run as a layer of its own (hidden), to blend, "
                "compare or view side by side. A Run does not need them."
            ),
        )

    def _init_layout(self) -> None:
        self.extend([self.map, self.add_all])


class ExportSection(_Section):
    """The folder and the button of 'Export maps and statistics'."""

    def _init_widgets(self) -> None:
        where = "Folder for the maps (TIFF), statistics (CSV) and parameters (JSON)."
        self.directory = FileEdit(label="export to", mode="d", tooltip=where)
        what = "Save every result layer of the image, its statistics and parameters."
        self.export = PushButton(text="Export maps and statistics", tooltip=what)

    def _init_layout(self) -> None:
        self.extend([self.directory, self.export])

    def chosen_directory(self, parent):
        """The folder typed in, or one asked for in a dialog (None if cancelled)."""
        from pathlib import Path

        directory = self.directory.value
        if directory is not None and str(directory) not in ("", "."):
            return directory
        from qtpy.QtWidgets import QFileDialog

        chosen = QFileDialog.getExistingDirectory(parent, "Export lattice maps to")
        if not chosen:
            return None
        self.directory.value = Path(chosen)
        return self.directory.value
