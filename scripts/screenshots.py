"""Screenshots of the widgets for the documentation (docs/images/*.png).

Run under a (virtual) display from the repository root::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py

Writes picker.png (FFT and picked reflections), maps.png (d-spacing map over the image
with its colour bar), statistics.png (per-region statistics and histogram) and
grid-mode.png (why the FFT is not shown with napari's grid mode).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_hrtem_fft._sample_data import make_core_shell_sample
from napari_hrtem_fft._widgets import (
    ReflectionPickerWidget,
)
from napari_hrtem_fft._widgets.demo import build_demo
from napari_hrtem_fft.core.fft import region_fft

SIZE = (1600, 1000)


def settle(seconds: float = 0.6) -> None:
    """Let Qt lay out and paint (docks, OpenGL canvases)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def new_viewer() -> napari.Viewer:
    viewer = napari.Viewer(title="napari-hrtem-fft")
    viewer.window.resize(*SIZE)
    settle()
    return viewer


def add_sample(viewer):
    ((data, kwargs, _),) = make_core_shell_sample()
    return viewer.add_image(data, **kwargs)


def picker_shot(path: Path) -> None:
    viewer = new_viewer()
    image = add_sample(viewer)
    picker = ReflectionPickerWidget(viewer)
    viewer.window.add_dock_widget(picker, name="Reflection picker (FFT)", area="right")
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
    settle()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    viewer.close()


def maps_shot(path: Path, statistics_path: Path) -> None:
    viewer = new_viewer()
    widgets = build_demo(viewer)
    # build_demo puts the three docks in tabs, the maps tab in front.
    d_layer = next(layer for layer in viewer.layers if layer.name.startswith("d-spacing 2"))
    viewer.layers.selection.active = d_layer
    for layer in viewer.layers:
        if layer.name.startswith("d-spacing 1") or layer.name.startswith("FFT"):
            layer.visible = False
    viewer.reset_view()
    settle(1.0)
    viewer.screenshot(str(path), canvas_only=False, flash=False)

    viewer.window.dock_widgets["Lattice statistics"].native.parent().raise_()
    regions = next(layer for layer in viewer.layers if layer.name.startswith("regions"))
    regions.visible = True
    d_layer.visible = False
    viewer.layers.selection.active = regions
    widgets["statistics"].update_statistics()
    settle(1.0)
    viewer.screenshot(str(statistics_path), canvas_only=False, flash=False)
    viewer.close()


def grid_shot(path: Path) -> None:
    """The image and its FFT in napari's grid mode: one camera for both."""
    viewer = new_viewer()
    image = add_sample(viewer)
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
    settle(1.0)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/images", help="output folder")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    picker_shot(out / "picker.png")
    maps_shot(out / "maps.png", out / "statistics.png")
    grid_shot(out / "grid-mode.png")
    for name in ("picker.png", "maps.png", "statistics.png", "grid-mode.png"):
        print(out / name)


if __name__ == "__main__":
    main()
