"""Open real files in a napari viewer through the plugin (run under xvfb-run)."""

from __future__ import annotations

import pytest

RTOL = 1e-6


def test_viewer_opens_dm3_velox_and_8bit_tiff_with_calibration(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    layers = viewer.open(
        str(shared_data / "dm3/example_Se_implanted_MoS2.dm3"), plugin="napari-hrtem-fft"
    )
    assert len(layers) == 1
    layer = layers[0]
    assert layer._type_string == "image"
    assert tuple(layer.scale) == pytest.approx((0.0126953125,) * 2, rel=RTOL)
    assert [str(u) for u in layer.units] == ["nanometer", "nanometer"]

    layers = viewer.open(
        str(shared_data / "velox_emd/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"),
        plugin="napari-hrtem-fft",
    )
    assert len(layers) == 4
    for layer in layers:
        assert tuple(layer.scale) == pytest.approx((87.370796142255832,) * 2, rel=RTOL)
        assert tuple(layer.translate) == pytest.approx((-5591.7309531043732,) * 2, rel=RTOL)
        assert [str(u) for u in layer.units] == ["nanometer", "nanometer"]

    (diff,) = viewer.open(
        str(shared_data / "velox_emd/Camera Ceta Diffraction Micro.emd"), plugin="napari-hrtem-fft"
    )
    assert [str(u) for u in diff.units] == ["1 / nanometer", "1 / nanometer"]
    assert diff.metadata["reciprocal"] is True

    # 8-bit data must be an Image, never Labels.
    (tvips,) = viewer.open(str(shared_data / "tiff/TVIPS_bin4.tif"), plugin="napari-hrtem-fft")
    assert tvips._type_string == "image"
    assert tvips.data.dtype.name == "uint8"
    assert len(viewer.layers) == 7


def test_viewer_survives_a_broken_file(make_napari_viewer, shared_data, tmp_path):
    from napari_hrtem_fft.io import MicrographReadError

    viewer = make_napari_viewer()
    data = (shared_data / "dm3/PZO.dm3").read_bytes()
    bad = tmp_path / "PZO.dm3"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MicrographReadError, match=r"PZO\.dm3"):
        viewer.open(str(bad), plugin="napari-hrtem-fft")
    (layer,) = viewer.open(str(shared_data / "dm3/PZO.dm3"), plugin="napari-hrtem-fft")
    assert tuple(layer.scale) == pytest.approx((0.015994541347026825,) * 2, rel=RTOL)


def test_viewer_opens_a_folder_of_tiff_frames_lazily(make_napari_viewer, tmp_path):
    import numpy as np

    from napari_hrtem_fft.io import write_tiff

    movie = tmp_path / "movie"
    movie.mkdir()
    for i in range(3):
        write_tiff(
            movie / f"f{i + 1}.tif",
            np.full((32, 48), i, np.float32),
            scale=(0.02, 0.02),
            units=("nm", "nm"),
        )
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(movie), plugin="napari-hrtem-fft")
    assert layer.data.shape == (3, 32, 48)
    assert hasattr(layer.data, "dask")
    assert tuple(layer.scale) == pytest.approx((1.0, 0.02, 0.02), rel=RTOL)
    assert [str(u) for u in layer.units][1:] == ["nanometer", "nanometer"]
    assert layer.metadata["axis_units"] == ["frame", "nm", "nm"]


def test_viewer_saves_an_image_layer_with_the_plugin_writer(make_napari_viewer, tmp_path):
    import numpy as np

    from napari_hrtem_fft.io import read_micrographs

    viewer = make_napari_viewer()
    data = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    viewer.add_image(
        data,
        scale=(0.02, 0.03),
        translate=(1.0, 2.0),
        units=("nm", "nm"),
        name="img",
        metadata={"g": np.arange(3)},
    )
    target = tmp_path / "saved.tif"
    written = viewer.layers.save(str(target), selected=False, plugin="napari-hrtem-fft")
    assert written == [str(target), str(tmp_path / "saved.json")]
    (mg,) = read_micrographs(target)
    np.testing.assert_array_equal(mg.data, data)
    assert mg.scale == pytest.approx((0.02, 0.03), rel=1e-9)
    assert mg.translate == pytest.approx((1.0, 2.0), rel=1e-9)
    assert mg.name == "img" and mg.metadata["g"] == [0, 1, 2]
    with pytest.raises(FileExistsError, match=r"saved\.tif"):
        viewer.layers.save(str(target), selected=False, plugin="napari-hrtem-fft")
