"""Export of result layers to a folder: strict JSON parameters, as the TIFF sidecars."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari.layers import Image

from napari_hrtem_fft._widgets._export import PARAMETERS_FILE, export_results
from napari_hrtem_fft.io import sidecar_path
from napari_hrtem_fft.layers import RESULT_KEY


def _reject(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_parameters_json_is_strict_json_with_nan_as_strings(tmp_path):
    info = {
        "kind": "d_spacing",
        "reflection": 0,
        "found": [[np.nan, 2.5]],
        "reference": np.array([np.inf, -np.inf]),
        "window": 64,
    }
    data = np.array([[0.2, np.nan], [0.21, 0.22]], dtype=np.float32)
    layer = Image(data, name="d-spacing 1", scale=(0.5, 0.5), metadata={RESULT_KEY: info})
    written = export_results(
        tmp_path, [layer], statistics=[], source={"layer": "Pd", "dose": float("nan")}
    )
    assert [p.name for p in written] == [
        "d_spacing_1.tif",
        "d_spacing_1.json",
        "statistics.csv",
        PARAMETERS_FILE,
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)

    text = (tmp_path / PARAMETERS_FILE).read_text(encoding="utf-8")
    params = json.loads(text, parse_constant=_reject)
    layer_params = params["layers"]["d_spacing_1.tif"]
    assert layer_params["found"] == [["nan", 2.5]]
    assert layer_params["reference"] == ["inf", "-inf"]
    assert layer_params["window"] == 64 and layer_params["layer"] == "d-spacing 1"
    assert params["source"] == {"layer": "Pd", "dose": "nan"}

    # The TIFF sidecar writes the same metadata the same way.
    sidecar = sidecar_path(tmp_path / "d_spacing_1.tif").read_text(encoding="utf-8")
    metadata = json.loads(sidecar, parse_constant=_reject)["metadata"]
    assert {k: metadata[k] for k in layer_params} == layer_params

    with pytest.raises(ValueError, match="not strict JSON"):
        json.loads('{"x": NaN}', parse_constant=_reject)
