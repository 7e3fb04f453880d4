"""Live dock: frames written into a folder become layers and a time trace as they arrive."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_hrtem_fft.core.movie import read_zarr_maps
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

LIVE = "Live acquisition (maps, time trace)"
PIXEL = 0.02  # nm


def _write(folder, k, frame):
    part = folder / f"frame_{k:03d}.tif.part"
    tifffile.imwrite(part, frame)
    part.rename(folder / f"frame_{k:03d}.tif")


def test_live_dock_follows_a_folder_pause_resume_stop(make_napari_viewer, qtbot, tmp_path):
    stack, _ = synthetic_movie(
        4, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0), noise=0.05,
        amorphous=0.1, expansion_total=0.03, lazy=False,
    )  # fmt: skip
    folder = tmp_path / "acq"
    folder.mkdir()
    viewer = make_napari_viewer()
    _, live = viewer.window.add_plugin_dock_widget("napari-hrtem-fft", LIVE)
    live._source.value = folder
    live._pixel.value = PIXEL
    live._window.value = 64
    live._store.value = tmp_path / "live.zarr"
    _write(folder, 0, stack[0])
    live._start.clicked.emit()
    qtbot.waitUntil(lambda: "live frame" in viewer.layers, timeout=60_000)
    for k in (1, 2):
        _write(folder, k, stack[k])
        qtbot.waitUntil(lambda k=k: f"frame {k} " in live._status.value, timeout=60_000)
    d = viewer.layers["live d g1 (nm)"]
    assert d.data.shape == (3, 32, 32)  # every frame so far, read from the store
    assert viewer.dims.current_step[0] == 2  # on the newest frame
    np.testing.assert_array_equal(viewer.layers["live frame"].data, stack[2])
    lines = live._axes.get_lines()
    assert len(lines) == 3 and all(len(line.get_xdata()) == 3 for line in lines)

    live._pause.clicked.emit()
    assert live._pause.text == "Resume"
    live._pause.clicked.emit()
    _write(folder, 3, stack[3])
    qtbot.waitUntil(lambda: "frame 3 " in live._status.value, timeout=60_000)
    live._stop.clicked.emit()
    qtbot.waitUntil(lambda: live._start.enabled, timeout=60_000)
    assert "stopped: 4 frames analysed, 0 skipped" in live._status.value
    maps = read_zarr_maps(tmp_path / "live.zarr")
    assert maps.d_spacing.shape[1] == 4
    # d of the strongest reflection follows the 3 % expansion of the movie
    growth = lines[0].get_ydata()[-1] / lines[0].get_ydata()[0] - 1
    assert 0.015 < growth < 0.025  # frame 2 of 4: two thirds of 3 %
