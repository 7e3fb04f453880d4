"""``--reference`` on the command line for movies: ``analyze`` and ``trace`` refer the
strain to the lattice inside a rectangle in each frame."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_hrtem_fft.cli import main
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")

PIXEL = 0.02  # nm
REFL = pd_110_reflections(0.0)
# Map pixels are centred on multiples of 0.16 nm: none on this rectangle's border.
BOX = "1.05:3.95,1.05:3.95"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A lattice expanding by 3.5 % over 3 frames (0, 1.75, 3.5 %), crystal everywhere,
    analysed into a zarr store (strain relative to the reflections)."""
    stack, _ = synthetic_movie(
        3, (256, 256), pixel_size=PIXEL, reflections=REFL, expansion_total=0.035, noise=0.1,
        lazy=False,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "movie.tif"
    tifffile.imwrite(
        path,
        stack.astype(np.float32),
        imagej=True,
        resolution=(1 / PIXEL, 1 / PIXEL),
        metadata={"unit": "nm", "axes": "TYX", "finterval": 1.0},
    )
    refl = [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in REFL]
    base = ["analyze", str(path), *refl, "--window", "64", "--step", "8", "-q"]
    assert main([*base, "--out", str(folder / "maps.zarr")]) == 0
    assert main([*base, "--reference", BOX, "--out", str(folder / "ref.zarr")]) == 0
    return folder


def _exx(path) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return np.array([float(r["exx_median"]) for r in rows])


def test_trace_reference_per_frame(store, capsys):
    out = store / "plain.csv"
    assert main(["trace", str(store / "maps.zarr"), "--region", BOX, "--out", str(out), "-q"]) == 0
    np.testing.assert_allclose(_exx(out), [0.0, 0.0175, 0.035], atol=1e-3)
    ref = store / "ref.csv"
    argv = ["trace", str(store / "maps.zarr"), "--reference", BOX, "--out", str(ref)]
    assert main(argv) == 0
    # Each frame against its own lattice in the rectangle: no strain in any frame.
    np.testing.assert_allclose(_exx(ref), 0.0, atol=1e-3)
    assert "strain relative to y 1.05 to 3.95 nm" in capsys.readouterr().err
    # analyze --reference on the movie: the same, per frame, and recorded.
    same = store / "same.csv"
    assert main(["trace", str(store / "ref.zarr"), "--out", str(same), "-q"]) == 0
    np.testing.assert_allclose(_exx(same), 0.0, atol=1e-3)
    record = json.loads((store / "ref.json").read_text())
    assert record["analysis"]["reference"] == [1.05, 3.95, 1.05, 3.95]
    reference = np.asarray(record["strain_reference_inv_nm"])
    assert reference.shape == (3, 3, 2)  # one g_ref per frame
    np.testing.assert_allclose(reference[2], reference[0] / 1.035, atol=0.01)  # 1/nm, |g| ~ 5


def test_trace_reference_errors(store, capsys):
    argv = ["trace", str(store / "maps.zarr"), "--out", str(store / "bad.csv")]
    assert main([*argv, "--reference", "20:30,20:30"]) == 2
    assert "--reference holds no map pixel centre" in capsys.readouterr().err
    assert main([*argv, "--reference", "3:1,0:1"]) == 2
