"""The console recipe of docs/console.md runs as written and gives the widget's layers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from widget_sample import D_111

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"


def _first_python_block(text: str) -> str:
    match = re.search(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "docs/console.md has no python code block"
    return match.group(1)


def test_console_recipe_adds_calibrated_map_layers(make_napari_viewer):
    from napari_hrtem_fft._sample_data import make_core_shell_sample

    viewer = make_napari_viewer()
    ((data, kwargs, _),) = make_core_shell_sample()
    image = viewer.add_image(data, **kwargs)
    code = _first_python_block(DOC.read_text(encoding="utf-8"))
    # Five analysis lines after the two imports (the loop body is the fifth's).
    assert len([line for line in code.splitlines() if line.strip()]) == 7
    exec(code, {"viewer": viewer})

    names = [layer.name for layer in viewer.layers]
    assert "d-spacing 1 (0.225 nm)" in names or "d-spacing 1 (0.195 nm)" in names
    assert {"angle 1", "amplitude 1", "exx", "eyy", "exy", "rotation (°)"} <= set(names)
    d_layers = [layer for layer in viewer.layers if layer.name.startswith("d-spacing")]
    assert len(d_layers) == 3
    for layer in d_layers:
        assert layer.data.shape == (128, 128)
        np.testing.assert_allclose(layer.scale, np.asarray(image.scale) * 8)
        np.testing.assert_allclose(layer.translate, image.translate)
        assert layer.metadata["napari_hrtem_fft"]["source"] == image.name
    # Centre of the particle: the core lattice.
    centre = [np.nanmedian(layer.data[56:72, 56:72]) for layer in d_layers]
    assert sorted(centre)[-1] == pytest.approx(D_111, rel=5e-3)
