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


def test_viewer_keeps_movies_lazy_and_reads_only_the_frames_shown(
    make_napari_viewer, tmp_path, velox_series, monkeypatch
):
    import dask.array as da
    import mrcfile
    import numpy as np
    import tifffile

    from napari_hrtem_fft.io import _arrays, _emd

    reads = []
    original_raw = _arrays.read_exact
    original_h5 = _emd.H5FrameRows.__call__

    def raw(path, offset, out):
        reads.append(("raw", int(offset)))
        return original_raw(path, offset, out)

    def h5(self, frame, r0, r1):
        reads.append(("h5", frame))
        return original_h5(self, frame, r0, r1)

    monkeypatch.setattr(_arrays, "read_exact", raw)
    monkeypatch.setattr(_emd.H5FrameRows, "__call__", h5)

    frames = (np.arange(9)[:, None, None] * 10.0 + np.arange(24 * 20).reshape(24, 20) % 7).astype(
        np.float32
    )
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(
        tif,
        frames,
        imagej=True,
        resolution=(20.0, 20.0),
        metadata={"axes": "TYX", "unit": "nm", "finterval": 0.5},
    )
    mrc_path = tmp_path / "movie.mrcs"
    with mrcfile.new(mrc_path) as mrc:
        mrc.set_data(frames)
        mrc.set_image_stack()
        mrc.voxel_size = 0.5
    emd, emd_frames = velox_series(6)

    viewer = make_napari_viewer()
    movies = ((tif, 0.5, frames), (mrc_path, 1.0, frames), (emd, 0.25, emd_frames))
    for path, scale0, ref in movies:
        reads.clear()
        (layer,) = viewer.open(str(path), plugin="napari-hrtem-fft")
        assert isinstance(layer.data, da.Array), path.name
        assert not layer.multiscale
        assert layer.scale[0] == pytest.approx(scale0, rel=RTOL)
        middle = len(ref) // 2  # napari shows the middle frame first
        assert tuple(layer.contrast_limits) == pytest.approx(
            (float(ref[middle].min()), float(ref[middle].max())), rel=RTOL
        )
        shown = [middle]
        for k in (0, 2, len(ref) - 1):  # step the time slider
            viewer.dims.set_point(0, k * layer.scale[0])
            np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), ref[k])
            shown.append(k)
        if path == emd:
            frames_read = [k for _, k in reads]
        else:
            offsets = [off for _, off in reads]
            data_start = min(offsets)  # frame 0 was shown
            frames_read = [(off - data_start) // ref[0].nbytes for off in offsets]
        print(path.name, frames_read)
        # Only the frames shown were read (napari may read a shown frame twice).
        assert set(frames_read) == set(shown), (path.name, frames_read)
        viewer.layers.clear()
