"""Stacks open lazily (dask) with per-axis units: TIFF pages, TIFF folders, MRC, HyperSpy."""

from __future__ import annotations

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile

from napari_hrtem_fft._reader import napari_get_reader
from napari_hrtem_fft.io import MicrographReadError, read_micrographs, write_tiff

RTOL = 1e-9


def _frames(n, shape=(12, 16)):
    return [np.full(shape, i, dtype=np.uint16) for i in range(n)]


def test_tiff_folder_is_a_lazy_stack_in_natural_order(tmp_path):
    movie = tmp_path / "movie"
    movie.mkdir()
    for i, frame in enumerate(_frames(12)):
        # frame_2 must come before frame_10 (natural, not lexical, order)
        write_tiff(movie / f"frame_{i}.tif", frame, scale=(0.05, 0.05), units=("nm", "nm"))
    assert callable(napari_get_reader(str(movie)))
    (mg,) = read_micrographs(movie)
    assert hasattr(mg.data, "dask")
    assert mg.shape == (12, 12, 16)
    assert mg.units == ("frame", "nm", "nm")
    assert mg.scale == pytest.approx((1.0, 0.05, 0.05), rel=RTOL)
    assert mg.metadata["frames"][:3] == ["frame_0.tif", "frame_1.tif", "frame_2.tif"]
    np.testing.assert_array_equal(mg.data[:, 0, 0].compute(), np.arange(12))
    assert mg.name == "movie"
    assert mg.layer_kwargs()["units"] == (None, "nm", "nm")


def test_tiff_folder_reads_frames_only_when_asked(tmp_path):
    movie = tmp_path / "m"
    movie.mkdir()
    for i, frame in enumerate(_frames(4)):
        tifffile.imwrite(movie / f"img{i:03d}.tif", frame)
    (movie / "img003.tif").write_bytes(b"")  # broken, but only frame 3 is
    tifffile.imwrite(movie / "img003.tif", np.zeros((5, 5), np.uint16))
    (mg,) = read_micrographs(movie)  # opening does not touch frame 3
    assert mg.data[1].compute()[0, 0] == 1
    with pytest.raises(MicrographReadError, match=r"img003\.tif"):
        mg.data[3].compute()


def test_other_folders_are_not_ours(tmp_path):
    (tmp_path / "a.dm3").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert napari_get_reader(str(tmp_path)) is None
    single = tmp_path / "single"
    single.mkdir()
    tifffile.imwrite(single / "frame_1.tif", np.zeros((4, 4), np.uint8))
    assert napari_get_reader(str(single)) is None  # one image is not a movie


def test_multipage_tiff_is_lazy_with_a_frame_axis(tmp_path):
    path = tmp_path / "pages.tif"
    # Pages without a shape description, as cameras write them: one "uniform" series.
    tifffile.imwrite(path, np.stack(_frames(6)), metadata=None)
    (mg,) = read_micrographs(path)
    assert hasattr(mg.data, "dask")
    assert mg.shape == (6, 12, 16)
    assert mg.units == ("frame", "px", "px")
    np.testing.assert_array_equal(mg.data[4].compute(), _frames(6)[4])


def test_mrc_stack_is_lazy_and_volume_has_z_in_nm(tmp_path):
    stack = np.arange(4 * 8 * 10, dtype=np.float32).reshape(4, 8, 10)
    path = tmp_path / "movie.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack)
        mrc.set_image_stack()
        mrc.voxel_size = 1.25  # Å
    (mg,) = read_micrographs(path)
    assert hasattr(mg.data, "dask")
    assert mg.units == ("frame", "nm", "nm")
    assert mg.scale == pytest.approx((1.0, 0.125, 0.125), rel=1e-6)
    np.testing.assert_array_equal(mg.data[2].compute(), stack[2])
    assert mg.metadata["mrc_kind"] == "image stack"


def _hspy(path, data, axes, title="img"):
    with h5py.File(path, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.3"
        g = f.create_group(f"Experiments/{title}")
        g.create_dataset("data", data=data, chunks=data.shape)
        for i, (name, scale, units, nav) in enumerate(axes):
            a = g.create_group(f"axis-{i}")
            a.attrs.update(
                name=name, scale=scale, offset=0.0, units=units, size=data.shape[i], navigate=nav
            )
        g.create_group("metadata/General").attrs["title"] = title
        g.create_group("metadata/Signal").attrs["signal_type"] = ""
        g.create_group("original_metadata").attrs["operator"] = "test"


def test_hyperspy_image_stack_and_spectrum(tmp_path):
    data = np.arange(3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    path = tmp_path / "series.hspy"
    _hspy(path, data, [("time", 0.5, "s", True), ("y", 2.0, "Å", False), ("x", 2.0, "Å", False)])
    (mg,) = read_micrographs(path)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.5, 0.2, 0.2), rel=RTOL)
    assert hasattr(mg.data, "dask")
    np.testing.assert_array_equal(mg.data.compute(), data)
    assert mg.metadata["format"] == "HyperSpy"

    spectrum = tmp_path / "eels.hdf5"
    _hspy(
        spectrum,
        np.zeros((4, 100), np.float32),
        [("x", 1.0, "nm", True), ("Energy", 0.1, "eV", False)],
        "eels",
    )
    with pytest.raises(MicrographReadError, match="no image signal"):
        read_micrographs(spectrum)


def test_multipage_tiff_without_zarr_uses_memmap(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zarr", None)  # zarr is an optional extra
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.stack(_frames(5)), metadata=None)
    (mg,) = read_micrographs(path)
    assert hasattr(mg.data, "dask")
    np.testing.assert_array_equal(mg.data[3].compute(), _frames(5)[3])
    compressed = tmp_path / "zlib.tif"
    tifffile.imwrite(compressed, np.stack(_frames(5)), metadata=None, compression="zlib")
    (mg,) = read_micrographs(compressed)
    np.testing.assert_array_equal(mg.data[4].compute(), _frames(5)[4])


def test_generic_hdf5_is_left_to_other_plugins(tmp_path):
    other = tmp_path / "results.hdf5"
    with h5py.File(other, "w") as f:
        f["table"] = np.arange(10)
    assert napari_get_reader(str(other)) is None
    ours = tmp_path / "ours.hdf5"
    _hspy(ours, np.zeros((8, 8), np.float32), [("y", 1.0, "nm", False), ("x", 1.0, "nm", False)])
    assert callable(napari_get_reader(str(ours)))
