"""Calibrated TIFF writer: ImageJ calibration, JSON sidecar, exact round trip, no overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_hrtem_fft._writer import write_calibrated_tiff
from napari_hrtem_fft.io import read_micrographs, sidecar_path, write_tiff

RTOL = 1e-9  # the TIFF rational and the JSON float are both exact to ~1e-15


def _image(shape=(40, 60), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float64)


def test_round_trip_restores_exact_calibration_name_and_metadata(tmp_path):
    data = _image()
    path = tmp_path / "particle.tif"
    written = write_tiff(
        path,
        data,
        scale=(0.0126953125, 0.0163987),
        units=("nm", "nm"),
        translate=(1.5, -2.25),
        name="my particle",
        metadata={
            "source_path": "/data/particle.dm4",
            "exposure_s": 0.5,
            "g": np.array([[1.0, 2.0]]),
            "flag": np.bool_(True),
        },
    )
    assert written == [str(path), str(tmp_path / "particle.json")]
    (mg,) = read_micrographs(path)
    assert mg.data.dtype == np.float32
    np.testing.assert_array_equal(mg.data, data.astype(np.float32))
    assert mg.scale == pytest.approx((0.0126953125, 0.0163987), rel=RTOL)
    assert mg.translate == pytest.approx((1.5, -2.25), rel=RTOL)
    assert mg.units == ("nm", "nm") and mg.calibrated and not mg.reciprocal
    assert mg.name == "my particle"
    assert mg.metadata["exposure_s"] == 0.5
    assert mg.metadata["g"] == [[1.0, 2.0]]
    assert mg.metadata["derived_from"] == "/data/particle.dm4"
    assert "sidecar" in mg.metadata["pixel_size_source"]


def test_imagej_sees_the_calibration_without_the_sidecar(tmp_path):
    path = tmp_path / "a.tif"
    write_tiff(path, _image(), scale=(0.05, 0.05), units=("nm", "nm"), translate=(1.0, 2.0))
    with tifffile.TiffFile(path) as tf:
        ij = tf.imagej_metadata
        xres = tf.pages[0].tags["XResolution"].value
        assert tf.pages[0].dtype == np.float32
    assert ij["unit"] == "nm"
    assert xres[0] / xres[1] == pytest.approx(20.0, rel=RTOL)  # pixels per nm
    assert ij["xorigin"] == pytest.approx(-40.0)  # pixels: -translate / scale
    sidecar_path(path).unlink()
    (mg,) = read_micrographs(path)
    assert mg.scale == pytest.approx((0.05, 0.05), rel=RTOL)
    assert mg.translate == pytest.approx((1.0, 2.0), rel=RTOL)
    assert mg.metadata["format"] == "TIFF (ImageJ)"


def test_micrometre_layer_is_written_as_imagej_micron(tmp_path):
    path = tmp_path / "sem.tif"
    write_tiff(path, _image(), scale=(0.25, 0.25), units=("µm", "µm"))
    with tifffile.TiffFile(path) as tf:
        assert tf.imagej_metadata["unit"] == "micron"
    assert json.loads(sidecar_path(path).read_text())["units"] == ["nm", "nm"]
    (mg,) = read_micrographs(path)
    assert mg.scale == pytest.approx((250.0, 250.0), rel=RTOL)
    sidecar_path(path).unlink()
    (mg,) = read_micrographs(path)
    assert mg.scale == pytest.approx((250.0, 250.0), rel=RTOL)


def test_reciprocal_and_uncalibrated_round_trip(tmp_path):
    write_tiff(tmp_path / "fft.tif", _image(), scale=(0.1, 0.1), units=("1/nm", "1/nm"))
    (fft,) = read_micrographs(tmp_path / "fft.tif")
    assert fft.reciprocal and fft.units == ("1/nm", "1/nm")
    assert fft.scale == pytest.approx((0.1, 0.1), rel=RTOL)
    write_tiff(tmp_path / "raw.tif", _image(), scale=(1, 1), units=("pixel", "pixel"))
    (raw,) = read_micrographs(tmp_path / "raw.tif")
    assert not raw.calibrated and raw.units == ("px", "px")


def test_time_stack_round_trip_with_frame_interval(tmp_path):
    data = _image((5, 16, 24))
    path = tmp_path / "movie.tif"
    write_tiff(path, data, scale=(0.04, 0.02, 0.02), units=("s", "nm", "nm"))
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "TYX"
        assert tf.imagej_metadata["finterval"] == pytest.approx(0.04)
    (mg,) = read_micrographs(path)
    assert mg.shape == (5, 16, 24)
    assert hasattr(mg.data, "dask")
    np.testing.assert_array_equal(mg.data.compute(), data.astype(np.float32))
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.04, 0.02, 0.02), rel=RTOL)
    sidecar_path(path).unlink()
    (mg,) = read_micrographs(path)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.04, 0.02, 0.02), rel=RTOL)


@pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")
def test_lazy_movie_is_written_frame_by_frame_and_read_back(tmp_path):
    data = _image((6, 16, 24))
    data[2, 3, 4] = np.nan
    (mg,) = read_micrographs(_write_mrcs(tmp_path / "in.mrcs", data))

    class FramesOnly:
        """A lazy movie that refuses to be computed whole."""

        shape, dtype = mg.data.shape, mg.data.dtype

        def compute(self):
            raise AssertionError("the whole movie was loaded")

        def __getitem__(self, key):
            return mg.data[key]

    write_tiff(tmp_path / "out.tif", FramesOnly(), scale=(0.5, 0.1, 0.1), units=("s", "nm", "nm"))
    with tifffile.TiffFile(tmp_path / "out.tif") as tf:
        finite = data[np.isfinite(data)]
        assert tf.imagej_metadata["min"] == pytest.approx(float(finite.min()), rel=1e-6)
        assert tf.imagej_metadata["max"] == pytest.approx(float(finite.max()), rel=1e-6)
    (back,) = read_micrographs(tmp_path / "out.tif")
    np.testing.assert_array_equal(back.data.compute(), data.astype(np.float32))
    assert back.scale == pytest.approx((0.5, 0.1, 0.1), rel=RTOL)


def _write_mrcs(path, data):
    import mrcfile

    with mrcfile.new(path) as mrc:
        mrc.set_data(data.astype(np.float32))
        mrc.set_image_stack()
    return path


def test_never_overwrites_silently(tmp_path):
    path = tmp_path / "x.tif"
    write_tiff(path, _image(), scale=(0.1, 0.1), units=("nm", "nm"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"x\.tif"):
        write_tiff(path, _image(seed=1), scale=(0.2, 0.2), units=("nm", "nm"))
    assert path.read_bytes() == before
    # A stray sidecar alone also blocks, and the TIFF is not created.
    other = tmp_path / "y.tif"
    sidecar_path(other).write_text("{}")
    with pytest.raises(FileExistsError, match=r"y\.json"):
        write_tiff(other, _image(), scale=(0.1, 0.1), units=("nm", "nm"))
    assert not other.exists()
    write_tiff(path, _image(seed=1), scale=(0.2, 0.2), units=("nm", "nm"), overwrite=True)
    (mg,) = read_micrographs(path)
    assert mg.scale == pytest.approx((0.2, 0.2), rel=RTOL)


def test_stale_sidecar_loses_to_the_tiff_calibration(tmp_path):
    path = tmp_path / "edited.tif"
    write_tiff(path, _image(), scale=(0.1, 0.1), units=("nm", "nm"))
    info = json.loads(sidecar_path(path).read_text())
    info["scale"] = [0.3, 0.3]
    sidecar_path(path).write_text(json.dumps(info))
    (mg,) = read_micrographs(path)
    assert mg.scale == pytest.approx((0.1, 0.1), rel=RTOL)
    assert any("disagrees" in n for n in mg.metadata["notes"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": (0.1,), "units": ("nm", "nm")}, "scale needs 2 entries"),
        ({"scale": (0.1, -0.1), "units": ("nm", "nm")}, "finite and positive"),
        ({"scale": (0.1, 0.1), "units": ("nm", "1/nm")}, "same kind of unit"),
        ({"scale": (0.1, 0.1), "units": ("eV", "eV")}, "cannot write unit 'eV'"),
    ],
)
def test_bad_writer_input_is_rejected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_tiff(tmp_path / "bad.tif", _image(), **kwargs)
    with pytest.raises(ValueError, match=r"must end in \.tif"):
        write_tiff(tmp_path / "bad.png", _image(), scale=(1, 1), units=("nm", "nm"))


def test_npe2_writer_takes_napari_layer_state(tmp_path):
    pint = pytest.importorskip("pint")
    ureg = pint.get_application_registry()
    meta = {
        "name": "layer",
        "scale": (0.02, 0.02),
        "translate": (0.0, 0.0),
        "units": (ureg.nanometer, ureg.nanometer),
        "metadata": {"k": (1, 2)},
    }
    written = write_calibrated_tiff(str(tmp_path / "out"), _image(), meta)
    assert written == [str(tmp_path / "out.tif"), str(tmp_path / "out.json")]
    (mg,) = read_micrographs(tmp_path / "out.tif")
    assert mg.scale == pytest.approx((0.02, 0.02), rel=RTOL) and mg.name == "layer"
    with pytest.raises(FileExistsError):
        write_calibrated_tiff(str(tmp_path / "out.tif"), _image(), meta)


def test_jsonable_plain_types_limits_and_nan():
    from napari_hrtem_fft.io import jsonable

    tree = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True), b"ab\x00"),
        "g": np.array([[1.0, np.nan]]),
        "big": np.zeros(5),
    }
    out = jsonable(tree, max_items=4)
    assert out == {
        "1": [0.5, 3, True, "ab"],
        "g": [[1.0, "nan"]],
        "big": "<array shape=(5,) dtype=float64>",
    }
    json.dumps(out, allow_nan=False)
    # Layer metadata: nothing cut, NaN kept as a float.
    kept = jsonable(tree, max_items=None, allow_nan=True)
    assert kept["big"] == [0.0] * 5 and kept["g"][0][0] == 1.0 and np.isnan(kept["g"][0][1])
    assert type(kept["1"][1]) is int and type(kept["1"][2]) is bool
