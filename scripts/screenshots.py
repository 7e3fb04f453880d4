"""Screenshots of the docks for the documentation (docs/images/*.png).

Run under a (virtual) 1920×1080 display from the repository root::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py

Everything is opened as a user opens it, so the pictures show what users get: the
sample through File › Open Sample, the docks through the Plugins menu
(``add_plugin_dock_widget``, which hands them napari's ``PublicOnlyProxy`` viewer).
Each picture is the whole 1920×1080 window.

Writes picker.png (FFT and picked reflections), maps.png (d-spacing map over the image
with its colour bar), statistics.png (per-region statistics and histogram),
grid-mode.png (why the FFT is not shown with napari's grid mode) and time_trace.png (a
synthetic in-situ movie, its tracked maps and the time-trace dock).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari
import numpy as np

from napari_hrtem_fft._widgets.demo import (
    MAPS,
    PICKER,
    SCREEN,
    build_demo,
    focus_dock,
    hide_fft_layers,
    open_dock,
    open_sample,
    screenshot,
    settle,
)
from napari_hrtem_fft.core.fft import region_fft


def new_viewer() -> napari.Viewer:
    viewer = napari.Viewer(title="napari-hrtem-fft")
    viewer.window.resize(*SCREEN)
    settle()
    return viewer


def picker_shot(path: Path) -> None:
    viewer = new_viewer()
    image = open_sample(viewer)
    picker = open_dock(viewer, PICKER)
    picker._image.value = image
    picker._window.value = 256
    settle()
    picker.show_fft()
    # Move the region point a little off the centre, within the core, as a user would.
    region = next(layer for layer in viewer.layers if layer.name == "FFT region")
    region.data = [[10.0, 10.5]]
    settle(1.0)
    picker.suggest()
    settle(1.0)
    viewer.layers.selection.active = region
    screenshot(viewer, path)
    viewer.close()


def maps_shot(path: Path, statistics_path: Path) -> None:
    viewer = new_viewer()
    widgets = build_demo(viewer)
    # The run's one layer, switched to d-spacing 2 with the dock's "map" chooser.
    widgets["maps"]._map.value = ("d_spacing", 1)
    d_layer = viewer.layers.selection.active
    for layer in viewer.layers:
        if layer.name.startswith("FFT"):
            layer.visible = False
    viewer.reset_view()
    focus_dock(viewer, widgets["maps"], show=widgets["maps"]._map)
    screenshot(viewer, path)

    regions = next(layer for layer in viewer.layers if layer.name.startswith("regions"))
    regions.visible = True
    d_layer.visible = False
    viewer.layers.selection.active = regions
    widgets["statistics"].update_statistics()
    focus_dock(viewer, widgets["statistics"], others=150)
    screenshot(viewer, statistics_path)
    viewer.close()


def grid_shot(path: Path) -> None:
    """The image and its FFT in napari's grid mode: one camera for both."""
    viewer = new_viewer()
    image = open_sample(viewer)
    fft = region_fft(image.data, (512, 512), window=256, pixel_size=float(image.scale[-1]))
    viewer.add_image(
        fft.data,
        name="FFT",
        scale=fft.scale,
        translate=fft.translate,
        units="1/nm",
        contrast_limits=tuple(np.percentile(fft.data, (50, 99.95))),
    )
    viewer.canvas.grid.enabled = True
    viewer.reset_view()
    screenshot(viewer, path)
    viewer.close()


def time_trace_shot(path: Path) -> None:
    """A Pd particle loading with hydrogen (synthetic movie, +3.5 % over 12 frames),
    tracked maps over it and the time-trace dock for a region on the particle."""
    from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

    frames, interval = 12, 0.5  # s
    stack, _ = synthetic_movie(
        frames,
        (640, 640),
        pixel_size=0.02,
        reflections=pd_110_reflections(12.0),
        expansion_total=0.035,
        radius=4.6,
        amorphous=0.08,
        noise=0.08,
        drift=np.linspace(0, 1, frames)[:, None] * [[3.0, -2.0]],
    )
    stack = stack.persist()
    viewer = new_viewer()
    image = viewer.add_image(
        stack,
        name="Pd loading (synthetic movie)",
        scale=(interval, 0.02, 0.02),
        units=("s", "nm", "nm"),
        contrast_limits=tuple(np.percentile(np.asarray(stack[0]), (0.5, 99.5))),
    )
    picker = open_dock(viewer, PICKER)
    maps = open_dock(viewer, MAPS)
    traces = open_dock(viewer, "Time traces (d, strain vs time)")
    viewer.dims.set_current_step(0, 0)
    picker._image.value = image
    picker._window.value = 128
    picker._max_count.value = 3
    settle()
    picker.suggest()

    maps.choose_inputs(image, window=128, step=8)
    maps._frames.value = "all frames"
    maps._track.value = True
    maps.run_blocking()
    hide_fft_layers(viewer)
    particle = viewer.add_shapes(
        [[[3.2, 3.4], [3.2, 9.4], [9.2, 9.4], [9.2, 3.4]]],
        shape_type="ellipse",
        name="particle",
        edge_color="yellow",
        edge_width=0.06,
        face_color="transparent",
        units=("nm", "nm"),
    )
    traces.reset_choices()
    traces._region.value = particle
    traces.update_trace()
    maps._map.value = ("d_spacing", 0)
    viewer.layers.selection.active = maps._record_layer()
    viewer.dims.set_current_step(0, 8)
    viewer.reset_view()
    focus_dock(viewer, traces, others=150, show=traces._canvas)
    screenshot(viewer, path)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/images", help="output folder")
    parser.add_argument("--only", choices=("time_trace",), help="make only this screenshot")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only == "time_trace":
        time_trace_shot(out / "time_trace.png")
        print(out / "time_trace.png")
        return
    picker_shot(out / "picker.png")
    maps_shot(out / "maps.png", out / "statistics.png")
    grid_shot(out / "grid-mode.png")
    time_trace_shot(out / "time_trace.png")
    names = ("picker.png", "maps.png", "statistics.png", "grid-mode.png", "time_trace.png")
    for name in names:
        print(out / name)


if __name__ == "__main__":
    main()
