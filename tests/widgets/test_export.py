"""The one export layout (core.export): strict JSON record, sidecars, nothing overwritten."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_hrtem_fft.core.export import analysis_record, write_results
from napari_hrtem_fft.core.maps import LatticeMaps
from napari_hrtem_fft.core.pipeline import AnalysisOptions
from napari_hrtem_fft.io import sidecar_path


def _reject(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def _maps():
    d = np.array([[[0.2, np.nan], [0.21, 0.22]]], dtype=np.float32)
    return LatticeMaps(
        d_spacing=d,
        angle=np.zeros_like(d),
        amplitude=np.full_like(d, np.inf),
        d_sigma=None,  # not computed: no file
        angle_sigma=np.zeros_like(d),
        reflections=np.array([[0.0, 5.0]]),
        window=64,
        step=8,
        pixel_size=0.02,
        parameters={"found": [[np.nan, 2.5]]},
    )


def test_record_is_strict_json_with_nan_as_strings_and_nothing_is_overwritten(tmp_path):
    maps = _maps()
    geometry = {"scale": (0.16, 0.16), "translate": (0.0, 0.0), "units": ("nm", "nm")}
    record = analysis_record(
        maps,
        AnalysisOptions(window=64),
        program="test",
        source={"layer": "Pd", "dose": float("nan")},
        geometry=geometry,
        reflections_source="picked",
    )
    out = tmp_path / "Pd.tif"
    written = write_results(out, maps, geometry=geometry, record=record)
    maps_files = [f"Pd_{q}_g1" for q in ("d_spacing", "angle", "amplitude", "angle_sigma")]
    assert [p.name for p in written] == [
        *(f"{stem}{suffix}" for stem in maps_files for suffix in (".tif", ".json")),
        "Pd_statistics.csv",
        "Pd.json",
    ]
    # Every file written is listed (the export's notification counts them).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    params = json.loads((tmp_path / "Pd.json").read_text(encoding="utf-8"), parse_constant=_reject)
    assert params["input"] == {"layer": "Pd", "dose": "nan"}
    assert params["analysis"]["engine_parameters"]["found"] == [["nan", 2.5]]
    assert params["analysis"]["window"] == 64
    assert params["reflections"][0]["d_nm"] == pytest.approx(0.2)
    assert params["outputs"][-1] == str(tmp_path / "Pd.json")

    # The TIFF sidecars write the same analysis record the same way.
    sidecar = sidecar_path(tmp_path / "Pd_amplitude_g1.tif").read_text(encoding="utf-8")
    metadata = json.loads(sidecar, parse_constant=_reject)["metadata"]
    assert metadata["analysis"] == params["analysis"] and metadata["value_unit"] == "1"

    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="output exists"):
        write_results(out, maps, geometry=geometry, record=record)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before

    with pytest.raises(ValueError, match="not strict JSON"):
        json.loads('{"x": NaN}', parse_constant=_reject)
