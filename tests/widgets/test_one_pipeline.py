"""One pipeline: the console, the pipeline generator, the command line and the widget give
the same numbers for the same image and settings, to the last bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile
from widget_sample import PIXEL_SIZE

from napari_hrtem_fft import analyze
from napari_hrtem_fft.cli import main
from napari_hrtem_fft.core.export import map_names
from napari_hrtem_fft.core.pipeline import AnalysisOptions, postprocess, run_analysis, run_to_end
from napari_hrtem_fft.core.synthetic import pd_110_reflections
from napari_hrtem_fft.io import write_tiff
from napari_hrtem_fft.layers import find_result_layers, result_info, result_maps

OPTIONS = AnalysisOptions(window=64, step=16, crystal_mask=True, smoothing="block")


@pytest.fixture(scope="module")
def expected(sample):
    """The sample as float32 (as it is stored in a file) and its console result."""
    image = sample[0].astype(np.float32)
    refl = pd_110_reflections()
    maps = analyze(image, refl, pixel_size=PIXEL_SIZE, **OPTIONS.engine_options())
    return image, refl, postprocess(maps, image, OPTIONS)


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def _layer_array(maps, info):
    kind, k = info["kind"], info["reflection"]
    return getattr(maps.strain, kind) if k is None else getattr(maps, kind)[k]


def test_console_pipeline_cli_and_widget_give_identical_maps(
    expected, tmp_path, make_napari_viewer
):
    image, refl, maps = expected
    assert np.isfinite(maps.d_spacing).mean() > 0.2  # a real comparison, not NaN = NaN

    # The pipeline generator the widget runs.
    piped = run_to_end(run_analysis(image, refl, pixel_size=PIXEL_SIZE, options=OPTIONS))
    piped_arrays = piped.arrays()
    assert piped_arrays.keys() == maps.arrays().keys()
    for name, array in maps.arrays().items():
        _same(piped_arrays[name], array)

    # The command line, with the same settings, writes the same maps.
    src = tmp_path / "pd.tif"
    write_tiff(src, image, scale=(PIXEL_SIZE, PIXEL_SIZE), units=("nm", "nm"))
    args = ["analyze", str(src), "--window", "64", "--step", "16", "--crystal-mask"]
    args += ["--smooth", "3", "--pixel-size", repr(PIXEL_SIZE), "-q"]
    args += [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in refl]
    assert main([*args, "--out", str(tmp_path / "cli" / "pd.tif")]) == 0
    # Phase maps are written with --phase only (the widget's "Phase & dislocations").
    assert maps.phase is not None and not (tmp_path / "cli" / "pd_phase_g1.tif").exists()
    arrays = maps.arrays()
    for label in map_names(dataclasses.replace(maps, phase=None)):
        quantity, sep, k = label.rpartition("_g")
        data = arrays[quantity][int(k) - 1] if sep else arrays[label]
        _same(tifffile.imread(tmp_path / "cli" / f"pd_{label}.tif"), data)

    # The widget, opened as a user does, adds layers holding the same maps ...
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="pd", scale=(PIXEL_SIZE, PIXEL_SIZE), units="nm")
    points = viewer.add_points(refl, name="g")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-hrtem-fft", "Lattice maps (d-spacing, angle, strain)"
    )
    widget.choose_inputs(layer, points, window=64, step=16)
    widget._smoothing.value = "block"
    widget._smoothing_size.value = 3
    added = widget.run_blocking()
    assert find_result_layers(viewer.layers, source="pd") == added
    every = result_maps(viewer.layers, source="pd")
    assert {result_info(m)["kind"] for m in every} >= {"d_spacing", "angle", "exx"}
    for la in every:
        _same(la.data, _layer_array(maps, result_info(la)))

    # ... and its Export writes the command line's layout with the same content.
    written = widget.export(tmp_path / "gui")
    names = {p.name.removeprefix("pd") for p in written}
    cli_names = {p.name.removeprefix("pd") for p in (tmp_path / "cli").iterdir()}
    assert names <= cli_names and "_statistics.csv" in names and ".json" in names
    # (the JSON records differ where they should: the program and the input's name)
    for name in names:
        if name.endswith(".tif"):
            _same(
                tifffile.imread(tmp_path / "gui" / f"pd{name}"),
                tifffile.imread(tmp_path / "cli" / f"pd{name}"),
            )
        elif name.endswith(".csv"):
            gui = (tmp_path / "gui" / f"pd{name}").read_text(encoding="utf-8")
            assert gui == (tmp_path / "cli" / f"pd{name}").read_text(encoding="utf-8")
