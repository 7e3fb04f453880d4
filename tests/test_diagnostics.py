"""Nothing silent (issue 9 item 2): a reflection the image does not show is named, with
why and what to try, by the CLI on stderr and by the maps dock's status line, from the
engine's diagnosis recorded once by the pipeline."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_hrtem_fft.cli import main
from napari_hrtem_fft.core.pipeline import AnalysisOptions, record_diagnostics, run_analysis
from napari_hrtem_fft.core.synthetic import synthetic_lattice

PIXEL = 0.02  # nm
PRESENT = [[0.0, 4.0], [4.0, 0.0]]  # 1/nm: the lattice's two reflections
ABSENT = [3.0, 3.0]  # 1/nm: no fringe there


def _image():
    image, _ = synthetic_lattice((256, 256), pixel_size=PIXEL, reflections=PRESENT, noise=0.2)
    return image.astype(np.float32)


def test_pipeline_records_why_a_map_is_empty():
    image = _image()
    options = AnalysisOptions(window=64, step=8, crystal_mask=False)
    run = run_analysis(image, [*PRESENT, ABSENT], pixel_size=PIXEL, options=options)
    try:
        while True:
            next(run)
    except StopIteration as finished:
        maps = finished.value
    diagnostics = maps.parameters["diagnostics"]
    assert set(diagnostics) == {"2"}, diagnostics
    assert diagnostics["2"].startswith("mostly below amplitude threshold")
    assert "larger window" in diagnostics["2"]

    from napari_hrtem_fft._napari.display import empty_map_warnings

    (warning,) = empty_map_warnings(maps)
    assert warning.startswith("Reflection 3 (d = ")
    assert "mostly below amplitude threshold" in warning
    assert warning.count("larger window") == 1  # the diagnosis's advice, said once


def test_record_diagnostics_is_quiet_when_the_maps_are_full():
    from napari_hrtem_fft.core.engine import analyze

    maps = analyze(_image(), PRESENT, pixel_size=PIXEL, window=64, step=8)
    assert record_diagnostics(maps) == []
    assert maps.parameters["diagnostics"] == {}


def test_cli_warns_on_stderr(tmp_path, capsys):
    path = tmp_path / "lattice.tif"
    tifffile.imwrite(path, _image())
    argv = [
        "analyze",
        str(path),
        "--pixel-size",
        str(PIXEL),
        "--window",
        "64",
        "--step",
        "8",
        "-r=0,4",
        "-r=4,0",
        "-r=3,3",
        "--out",
        str(tmp_path / "maps.tif"),
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    (line,) = [s for s in err.splitlines() if s.startswith("warning: reflection")]
    assert line.startswith("warning: reflection 3 (3, 3) 1/nm: ")
    assert "mostly below amplitude threshold" in line
