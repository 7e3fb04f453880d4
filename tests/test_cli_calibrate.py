"""``analyze --calibrate``: the scale from a known lattice on the command line (issue 9 item 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_hrtem_fft.cli import main


def test_mos2_affine_calibration_on_the_command_line(shared_data, tmp_path):
    path = shared_data / "dm3" / "example_Se_implanted_MoS2.dm3"
    out = tmp_path / "mos2.tif"
    args = ["analyze", str(path), "--auto", "3", "--step", "16", "--calibrate", "MoS2:100"]
    assert main([*args, "--out", str(out), "-q"]) == 0
    record = json.loads((tmp_path / "mos2.json").read_text())
    calibration = record["analysis"]["engine_parameters"]["calibration"]
    assert calibration["kind"] == "affine" and calibration["source"].startswith("MoS2 (100)")
    for k in (1, 2, 3):
        d = tifffile.imread(tmp_path / f"mos2_d_spacing_g{k}.tif")
        assert np.nanmedian(d) == pytest.approx(0.2737, rel=1e-2), k


def test_calibrate_names_a_bad_material(shared_data, tmp_path, capsys):
    path = shared_data / "dm3" / "PZO.dm3"
    args = ["analyze", str(path), "--auto", "2", "--calibrate", "Kryptonite:111"]
    assert main([*args, "--out", str(tmp_path / "p.tif")]) == 2
    assert "unknown material 'Kryptonite'" in capsys.readouterr().err
