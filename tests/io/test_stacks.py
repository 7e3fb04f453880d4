"""Movies open lazily: dask arrays of single frames that read only the frames asked for.

Every stack source (DM, Velox EMD, MRC, HyperSpy, multi-page TIFF, folder of TIFF
frames) must give a dask array with one frame per chunk, the right calibration and time
axis, and reading frame k must touch only frame k's bytes.
"""

from __future__ import annotations

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
from io_builders import VELOX_T0_US, movie_frames

from napari_hrtem_fft._reader import napari_get_reader
from napari_hrtem_fft.io import (
    MicrographReadError,
    _arrays,
    _emd,
    _folder,
    _tiff,
    read_micrographs,
    write_tiff,
)
from napari_hrtem_fft.io._arrays import FrameStack, has_frame_chunks, lazy_frames
from napari_hrtem_fft.io._calibration import calibration_changes, frame_times
from napari_hrtem_fft.io._emd import velox_frame_info

RTOL = 1e-9


def _is_lazy_movie(mg, n_frames):
    import dask.array as da

    assert isinstance(mg.data, da.Array)
    assert has_frame_chunks(mg.data), mg.data.chunks
    assert mg.data.numblocks[0] == n_frames


@pytest.fixture
def raw_reads(monkeypatch):
    """Record (offset, nbytes) of every plain file read of raw_frames."""
    calls = []
    original = _arrays.read_exact

    def counting(path, offset, out):
        calls.append((int(offset), out.nbytes))
        return original(path, offset, out)

    monkeypatch.setattr(_arrays, "read_exact", counting)
    return calls


# -- the frame-stack machinery -------------------------------------------------------


def test_frame_stack_indexing_matches_numpy_and_reads_only_the_frames_asked():
    ref = np.random.default_rng(0).random((3, 4, 5, 6)).astype(np.float32)
    reads = []

    def read_rows(k, r0, r1):
        reads.append((k, r0, r1))
        return ref.reshape(-1, 5, 6)[k, r0:r1]

    stack = FrameStack(ref.shape, ref.dtype, read_rows, token=("test",))
    for key in [
        (1,),
        (slice(None),),
        (1, 2, 3),
        (1, slice(1, 3), slice(None, None, -1), 2),
        (Ellipsis, 2),
        (slice(0, 0),),
        (2, 3, slice(4, 0, -2), slice(1, 5, 2)),
        (-1, -2, -1, -1),
        (slice(None), 0, slice(None), slice(2, 3)),
    ]:
        np.testing.assert_array_equal(stack[key], ref[key], err_msg=str(key))
    reads.clear()
    np.testing.assert_array_equal(stack[2, 1, 1:3], ref[2, 1, 1:3])
    assert reads == [(9, 1, 3)]  # frame (2, 1) = flat 9, rows 1..3 only
    with pytest.raises(TypeError, match="integers and slices"):
        stack[[0, 1]]
    with pytest.raises(IndexError, match="out of range"):
        stack[3]

    lazy = lazy_frames(stack)
    assert lazy.chunks == ((1,) * 3, (1,) * 4, (5,), (6,))
    reads.clear()
    np.testing.assert_array_equal(lazy[1, 2].compute(), ref[1, 2])
    assert [k for k, _, _ in reads] == [6]


def test_raw_frames_big_endian_and_truncation(tmp_path):
    ref = np.arange(4 * 3 * 5, dtype=">u2").reshape(4, 3, 5)
    path = tmp_path / "raw.bin"
    path.write_bytes(b"H" * 100 + ref.tobytes())
    data = _arrays.raw_frames(path, offset=100, shape=ref.shape, dtype=ref.dtype)
    assert data.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(data.compute(), ref)
    path.write_bytes(b"H" * 100 + ref.tobytes()[:-10])  # the file shrank after opening
    with pytest.raises(MicrographReadError, match=r"raw\.bin.*truncated"):
        data[3].compute()


def test_frame_times_and_calibration_changes():
    axis, extra, notes = frame_times([10.0, 10.5, 11.0, 11.5], source="test")
    assert axis.scale == pytest.approx(0.5, rel=RTOL) and axis.unit == "s"
    assert extra["frame_times_s"] == pytest.approx([0, 0.5, 1.0, 1.5], abs=1e-12)
    assert notes == []
    axis, extra, notes = frame_times([0, 1, 2, 4], source="test")  # one frame dropped
    assert axis.scale == 1.0 and extra["frame_times_s"] == [0, 1, 2, 4]
    assert "vary from 1 to 2 s" in notes[0]
    axis, extra, notes = frame_times([0, 2, 1], source="test")
    assert axis is None and extra == {} and "not increasing" in notes[0]
    assert frame_times([5.0, 5.0], source="test")[0] is None

    changes = calibration_changes(
        [
            {"scale": [0.1, 0.1], "units": "nm"},
            {"scale": [0.1 * (1 + 1e-9), 0.1], "units": "nm"},  # rounding, not a change
            {"scale": [0.05, 0.05], "units": "nm", "file": "f2.tif"},
        ]
    )
    assert changes == [
        {
            "frame": 2,
            "scale": [0.05, 0.05],
            "units": "nm",
            "file": "f2.tif",
            "relative_to_frame_0": 0.5,
        }
    ]


# -- folder of numbered TIFF frames ---------------------------------------------------


def test_tiff_folder_is_a_lazy_stack_in_natural_order(tmp_path):
    movie = tmp_path / "movie"
    movie.mkdir()
    for i, frame in enumerate(movie_frames(12, (12, 16), np.uint16)):
        # frame_2 must come before frame_10 (natural, not lexical, order)
        write_tiff(movie / f"frame_{i}.tif", frame, scale=(0.05, 0.05), units=("nm", "nm"))
    assert callable(napari_get_reader(str(movie)))
    (mg,) = read_micrographs(movie)
    _is_lazy_movie(mg, 12)
    assert mg.shape == (12, 12, 16)
    assert mg.units == ("frame", "nm", "nm")
    assert mg.scale == pytest.approx((1.0, 0.05, 0.05), rel=RTOL)
    assert mg.metadata["frames"][:3] == ["frame_0.tif", "frame_1.tif", "frame_2.tif"]
    np.testing.assert_array_equal(mg.data[:, 0, 0].compute(), np.arange(12) * 100)
    assert mg.name == "movie"
    assert "calibration_changes" not in mg.metadata
    kwargs = mg.layer_kwargs()
    assert kwargs["units"] == (None, "nm", "nm")
    assert kwargs["contrast_limits"] == [600.0, 696.0]  # middle frame 6: 600 + (0..96)


def test_tiff_folder_reads_one_file_per_frame_and_flags_calibration_changes(tmp_path, monkeypatch):
    movie = tmp_path / "m"
    movie.mkdir()
    for i, frame in enumerate(movie_frames(8, (12, 16), np.uint16)):
        pixel = 0.1 if i == 5 else 0.05  # magnification changed for frame 5
        write_tiff(movie / f"img{i:03d}.tif", frame, scale=(pixel, pixel), units=("nm", "nm"))
    (mg,) = read_micrographs(movie)
    assert mg.scale == pytest.approx((1.0, 0.05, 0.05), rel=RTOL)  # the first frame's
    assert mg.metadata["calibration_changes"] == [
        {
            "frame": 5,
            "scale": pytest.approx([0.1, 0.1], rel=RTOL),
            "units": "nm",
            "file": "img005.tif",
            "relative_to_frame_0": pytest.approx(2.0, rel=RTOL),
        }
    ]
    assert any("img005.tif" in n for n in mg.metadata["notes"])

    pixel_reads = []
    original = _folder.read_tiff

    def counting(path, *, crop_databar=True, lazy=False):
        if not lazy:
            pixel_reads.append(path.name)
        return original(path, crop_databar=crop_databar, lazy=lazy)

    monkeypatch.setattr(_folder, "read_tiff", counting)
    np.testing.assert_array_equal(mg.data[3].compute(), movie_frames(8, (12, 16), np.uint16)[3])
    assert pixel_reads == ["img003.tif"]


def test_tiff_folder_frame_of_another_shape_is_named_when_opening(tmp_path):
    movie = tmp_path / "m"
    movie.mkdir()
    for i in range(4):
        tifffile.imwrite(movie / f"img{i:03d}.tif", np.zeros((12, 16), np.uint16))
    tifffile.imwrite(movie / "img002.tif", np.zeros((5, 5), np.uint16))
    with pytest.raises(MicrographReadError, match=r"img002\.tif.*5 × 5 uint16.*12 × 16 uint16"):
        read_micrographs(movie)
    tifffile.imwrite(movie / "img002.tif", np.zeros((12, 16), np.float32))
    with pytest.raises(MicrographReadError, match=r"img002\.tif.*float32.*uint16"):
        read_micrographs(movie)


def test_tiff_folder_frame_replaced_after_opening_is_named(tmp_path):
    movie = tmp_path / "m"
    movie.mkdir()
    for i in range(3):
        tifffile.imwrite(movie / f"f{i}.tif", np.zeros((12, 16), np.uint16))
    (mg,) = read_micrographs(movie)
    tifffile.imwrite(movie / "f1.tif", np.zeros((5, 5), np.uint16))
    assert mg.data[0].compute().shape == (12, 16)
    with pytest.raises(MicrographReadError, match=r"f1\.tif.*now 5 × 5"):
        mg.data[1].compute()


def test_other_folders_are_not_ours(tmp_path):
    (tmp_path / "a.dm3").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert napari_get_reader(str(tmp_path)) is None
    single = tmp_path / "single"
    single.mkdir()
    tifffile.imwrite(single / "frame_1.tif", np.zeros((4, 4), np.uint8))
    assert napari_get_reader(str(single)) is None  # one image is not a movie


# -- multi-page TIFF ------------------------------------------------------------------


def test_imagej_hyperstack_has_a_time_axis_in_s_and_reads_one_frame(tmp_path, raw_reads):
    frames = movie_frames(7, (24, 20)).astype(np.float32)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path,
        frames,
        imagej=True,
        resolution=(1 / 0.05, 1 / 0.05),
        metadata={"axes": "TYX", "unit": "nm", "finterval": 0.25},
    )
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 7)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.25, 0.05, 0.05), rel=1e-6)
    assert raw_reads == []  # opening reads no pixels
    np.testing.assert_array_equal(mg.data[4].compute(), frames[4])
    assert len(raw_reads) == 1 and raw_reads[0][1] == frames[4].nbytes
    # ImageJ keeps the frame interval without a spatial calibration too.
    tifffile.imwrite(
        tmp_path / "nounit.tif", frames, imagej=True, metadata={"axes": "TYX", "finterval": 2}
    )
    (mg,) = read_micrographs(tmp_path / "nounit.tif")
    assert mg.units == ("s", "px", "px") and mg.scale == (2.0, 1.0, 1.0)


def test_camera_multipage_tiff_is_a_frame_stack(tmp_path, raw_reads):
    path = tmp_path / "pages.tif"
    frames = movie_frames(6, (12, 16), np.uint16)
    # Pages without a shape description, as cameras write them: one "uniform" series,
    # big-endian to check the byte order.
    tifffile.imwrite(path, frames, metadata=None, byteorder=">")
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 6)
    assert mg.units == ("frame", "px", "px")
    np.testing.assert_array_equal(mg.data[4].compute(), frames[4])
    assert len(raw_reads) == 1


def test_compressed_and_colour_multipage_tiff_read_page_by_page(tmp_path, monkeypatch):
    frames = movie_frames(5, (12, 16), np.uint16)
    compressed = tmp_path / "zlib.tif"
    tifffile.imwrite(compressed, frames, metadata=None, compression="zlib")
    pages = []
    original = _tiff._TiffPageRows.__call__

    def counting(self, frame, r0, r1):
        pages.append(frame)
        return original(self, frame, r0, r1)

    monkeypatch.setattr(_tiff._TiffPageRows, "__call__", counting)
    (mg,) = read_micrographs(compressed)
    _is_lazy_movie(mg, 5)
    np.testing.assert_array_equal(mg.data[3].compute(), frames[3])
    assert pages == [3]

    rgb = np.random.default_rng(1).integers(0, 255, (4, 8, 10, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", compression="zlib")
    (mg,) = read_micrographs(tmp_path / "rgb.tif")
    _is_lazy_movie(mg, 4)
    lum = rgb[2] @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(mg.data[2].compute(), lum, rtol=1e-6)
    assert mg.data.dtype == np.float32
    assert any("luminance" in n for n in mg.metadata["notes"])


def test_ome_tiff_plane_times_give_frame_times(tmp_path):
    path = tmp_path / "ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((4, 8, 10), np.uint16),
        ome=True,
        metadata={
            "axes": "TYX",
            "PhysicalSizeX": 0.002,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.002,
            "PhysicalSizeYUnit": "µm",
            "Plane": {"DeltaT": [0.0, 100.0, 200.0, 350.0], "DeltaTUnit": ["ms"] * 4},
        },
    )
    (mg,) = read_micrographs(path)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.1, 2.0, 2.0), rel=1e-9)  # median interval
    assert mg.metadata["frame_times_s"] == pytest.approx([0, 0.1, 0.2, 0.35], abs=1e-12)
    assert any("vary" in n for n in mg.metadata["notes"])


# -- MRC --------------------------------------------------------------------------------


def test_mrc_stack_is_lazy_with_voxel_size_in_nm(tmp_path, raw_reads):
    stack = np.arange(4 * 8 * 10, dtype=np.float32).reshape(4, 8, 10)
    path = tmp_path / "movie.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack)
        mrc.set_image_stack()
        mrc.voxel_size = 1.25  # Å
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 4)
    assert mg.units == ("frame", "nm", "nm")
    assert mg.scale == pytest.approx((1.0, 0.125, 0.125), rel=1e-6)
    assert mg.metadata["mrc_kind"] == "image stack"
    np.testing.assert_array_equal(mg.data[2].compute(), stack[2])
    assert raw_reads == [(1024 + 2 * stack[2].nbytes, stack[2].nbytes)]


def test_mrc_fei_extended_header_gives_times_and_magnification_changes(tmp_path):
    from mrcfile.dtypes import get_ext_header_dtype

    dtype = get_ext_header_dtype(b"FEI1", "<")
    ext = np.zeros(4, dtype)
    ext["Metadata size"] = dtype.itemsize
    ext["Timestamp"] = 45000.0 + np.arange(4) * 0.5 / 86400  # days; 0.5 s apart
    ext["Pixel size X"] = ext["Pixel size Y"] = [1e-10, 1e-10, 1e-10, 2e-10]  # m
    ext["Magnification"] = [1e6, 1e6, 1e6, 5e5]
    path = tmp_path / "fei.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((4, 8, 10), np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = 1.0
        mrc.set_extended_header(np.frombuffer(ext.tobytes(), "V1"))
        mrc.header.exttyp = b"FEI1"
    (mg,) = read_micrographs(path)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.5, 0.1, 0.1), rel=1e-6)
    assert mg.metadata["frame_times_s"] == pytest.approx([0, 0.5, 1.0, 1.5], abs=1e-5)
    (change,) = mg.metadata["calibration_changes"]
    assert change["frame"] == 3 and change["magnification"] == 5e5
    assert change["scale"] == pytest.approx([0.2, 0.2], rel=1e-9)


def test_large_sparse_mrc_movie_opens_and_scrolls_in_little_memory(tmp_path):
    psutil = pytest.importorskip("psutil")
    path = tmp_path / "big.mrcs"
    n, ny, nx = 512, 1024, 1024  # 2 GiB of float32, sparse on disk
    mrc = mrcfile.new_mmap(path, shape=(n, ny, nx), mrc_mode=2)
    mrc.set_image_stack()
    mrc.voxel_size = 0.5
    mrc.close()
    process = psutil.Process()
    before = process.memory_info().rss
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, n)
    limits = mg.layer_kwargs()["contrast_limits"]  # reads the middle frame only
    for k in (0, 100, 511):
        assert float(mg.data[k].max().compute()) == 0.0
    grown = process.memory_info().rss - before
    assert limits == [0.0, 1.0]
    assert grown < 100 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB for a 2 GiB movie"


# -- DigitalMicrograph ------------------------------------------------------------------


def test_dm4_stack_reads_frame_by_frame_like_rosettasciio(shared_data, raw_reads):
    from rsciio.digitalmicrograph import file_reader

    path = shared_data / "dm4/dmTest_3D_int16_64,65,66.dm4"
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 66)
    (eager,) = file_reader(str(path))
    np.testing.assert_array_equal(mg.data[10].compute(), eager["data"][10])
    assert raw_reads == [(153052 + 10 * 65 * 64 * 2, 65 * 64 * 2)]
    np.testing.assert_array_equal(mg.data.compute(), eager["data"])


# -- Velox EMD ----------------------------------------------------------------------------


def test_velox_series_is_lazy_with_time_stamps_and_magnification_change(velox_series):
    path, frames = velox_series(6, dt_us=250_000, mag_change_at=4)
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 6)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.25, 3.138837054449552, 3.138837054449552), rel=1e-9)
    assert mg.metadata["frame_times_s"] == pytest.approx(np.arange(6) * 0.25, abs=1e-9)
    assert "BM-Ceta" in mg.metadata["frame_times_source"]
    changes = mg.metadata["calibration_changes"]
    assert [c["frame"] for c in changes] == [4, 5]
    assert changes[0]["scale"] == pytest.approx([1.569418527224776] * 2, rel=1e-9)
    assert changes[0]["magnification"] == 54000.0
    assert changes[0]["relative_to_frame_0"] == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_array_equal(mg.data.compute(), frames)


def test_velox_series_reads_only_the_frame_asked(velox_series, monkeypatch):
    path, frames = velox_series(5)
    (mg,) = read_micrographs(path)
    reads = []
    original = _emd.H5FrameRows.__call__

    def counting(self, frame, r0, r1):
        reads.append((frame, r0, r1))
        return original(self, frame, r0, r1)

    monkeypatch.setattr(_emd.H5FrameRows, "__call__", counting)
    np.testing.assert_array_equal(mg.data[3].compute(), frames[3])
    assert reads == [(3, 0, 32)]


def test_velox_series_without_time_stamps_uses_rosettasciio_frame_time(velox_series):
    path, _ = velox_series(3, stamps=False)
    (mg,) = read_micrographs(path)
    assert mg.units[0] == "s"
    assert mg.scale[0] == pytest.approx(0.6615155, rel=1e-9)  # Scan/FrameTime
    assert "frame_times_s" not in mg.metadata
    assert any("no per-frame time stamps" in n for n in mg.metadata["notes"])


def test_velox_frame_info_from_metadata_json():
    def frame(stamp_us, pixel_m=1e-10, detector="BM-Ceta", mag="1e6"):
        return {
            "CustomProperties": {
                f"Detectors[{detector}].TimeStamp": {"type": "int64", "value": str(stamp_us)},
                "Detectors[SuperXG21].KMax": {"type": "double", "value": "180"},
            },
            "BinaryResult": {
                "PixelSize": {"width": str(pixel_m), "height": str(pixel_m)},
                "PixelUnitX": "m",
            },
            "Optics": {"NominalMagnification": mag},
        }

    t0 = VELOX_T0_US
    info = velox_frame_info(
        [frame(t0), frame(t0 + 40_000), frame(t0 + 80_000, 2e-10, mag="5e5")], "BM-Ceta"
    )
    assert info["time_axis"].scale == pytest.approx(0.04, rel=1e-9)
    assert info["metadata"]["frame_times_s"] == pytest.approx([0, 0.04, 0.08], abs=1e-9)
    (change,) = info["metadata"]["calibration_changes"]
    assert change == {
        "frame": 2,
        "scale": pytest.approx([0.2, 0.2], rel=1e-12),
        "units": "nm",
        "magnification": 5e5,
        "relative_to_frame_0": pytest.approx(2.0, rel=1e-12),
    }
    # Another detector name: the only TimeStamp property present is used.
    flucam = [frame(t0, detector="Flucam"), frame(t0 + 1_000_000, detector="Flucam")]
    info = velox_frame_info(flucam)
    assert info["time_axis"].scale == pytest.approx(1.0, rel=1e-12)
    # Reciprocal pixels in 1/m stay reciprocal; no stamps -> no time axis.
    diff = [
        {"BinaryResult": {"PixelSize": {"width": "1e8", "height": "1e8"}, "PixelUnitX": "1/m"}}
    ] * 2
    info = velox_frame_info(diff)
    assert info["time_axis"] is None and info["metadata"] == {}


# -- HyperSpy -------------------------------------------------------------------------------


def _hspy(path, data, axes, title="img", chunks=True):
    # HyperSpy always writes chunked datasets (rosettasciio cannot read contiguous ones
    # lazily).
    with h5py.File(path, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.3"
        g = f.create_group(f"Experiments/{title}")
        g.create_dataset("data", data=data, chunks=chunks)
        for i, (name, scale, units, nav) in enumerate(axes):
            a = g.create_group(f"axis-{i}")
            a.attrs.update(
                name=name, scale=scale, offset=0.0, units=units, size=data.shape[i], navigate=nav
            )
        g.create_group("metadata/General").attrs["title"] = title
        g.create_group("metadata/Signal").attrs["signal_type"] = ""
        g.create_group("original_metadata").attrs["operator"] = "test"


@pytest.mark.parametrize("chunks", [(1, 20, 30), (3, 20, 30)], ids=["frame", "whole-stack"])
def test_hyperspy_image_stack_is_read_frame_by_frame(tmp_path, chunks):
    data = np.arange(3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    path = tmp_path / "series.hspy"
    _hspy(
        path,
        data,
        [("time", 0.5, "s", True), ("y", 2.0, "Å", False), ("x", 2.0, "Å", False)],
        chunks=chunks,
    )
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 3)
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.5, 0.2, 0.2), rel=RTOL)
    np.testing.assert_array_equal(mg.data.compute(), data)
    assert mg.metadata["format"] == "HyperSpy"


def test_hyperspy_spectrum_is_rejected(tmp_path):
    spectrum = tmp_path / "eels.hdf5"
    _hspy(
        spectrum,
        np.zeros((4, 100), np.float32),
        [("x", 1.0, "nm", True), ("Energy", 0.1, "eV", False)],
        "eels",
    )
    with pytest.raises(MicrographReadError, match="no image signal"):
        read_micrographs(spectrum)


def test_generic_hdf5_is_left_to_other_plugins(tmp_path):
    other = tmp_path / "results.hdf5"
    with h5py.File(other, "w") as f:
        f["table"] = np.arange(10)
    assert napari_get_reader(str(other)) is None
    ours = tmp_path / "ours.hdf5"
    _hspy(ours, np.zeros((8, 8), np.float32), [("y", 1.0, "nm", False), ("x", 1.0, "nm", False)])
    assert callable(napari_get_reader(str(ours)))


# -- layer keyword arguments ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")
def test_layer_kwargs_of_a_stack_take_contrast_from_the_middle_frame_only(tmp_path, raw_reads):
    frames = movie_frames(9, (16, 16)).astype(np.float32)
    frames[4, 0, 0] = np.nan  # NaN pixels do not spoil the limits
    path = tmp_path / "m.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(frames)
        mrc.set_image_stack()
    (mg,) = read_micrographs(path)
    kwargs = mg.layer_kwargs()
    assert kwargs["multiscale"] is False and kwargs["rgb"] is False
    assert kwargs["cache"] is False  # napari would keep every frame shown in memory
    finite = frames[4][np.isfinite(frames[4])]
    assert kwargs["contrast_limits"] == [float(finite.min()), float(finite.max())]
    assert len(raw_reads) == 1  # one frame read, the middle one
    flat = tmp_path / "flat.mrcs"
    with mrcfile.new(flat) as mrc:
        mrc.set_data(np.full((3, 4, 4), 7, np.float32))
        mrc.set_image_stack()
    (mg,) = read_micrographs(flat)
    assert mg.layer_kwargs()["contrast_limits"] == [7.0, 8.0]


# -- TIA series ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0x210, 0x220])
def test_tia_series_is_read_frame_by_frame_like_rosettasciio(tmp_path, raw_reads, version):
    from io_builders import write_ser
    from rsciio.tia import file_reader

    frames = movie_frames(5, (12, 16), np.float32)
    path = tmp_path / "insitu_1.ser"
    t0 = 1456073429
    times = [t0, t0, t0 + 1, t0 + 1, t0 + 2]
    write_ser(path, frames, deltas_m=[2e-10] * 5, times_s=times, version=version)
    (mg,) = read_micrographs(path)
    _is_lazy_movie(mg, 5)
    assert raw_reads == []
    np.testing.assert_array_equal(mg.data[3].compute(), frames[3])
    assert len(raw_reads) == 1 and raw_reads[0][1] == frames[3].nbytes
    (ref,) = file_reader(str(path))  # rosettasciio, everything in memory
    np.testing.assert_array_equal(mg.data.compute(), ref["data"])
    assert mg.units == ("s", "nm", "nm")
    assert mg.scale == pytest.approx((0.5, 0.2, 0.2), rel=1e-9)  # 2 s over 4 intervals
    assert mg.translate[1:] == pytest.approx((-100.0, -100.0), rel=1e-9)
    assert mg.metadata["frame_times_s"] == [0, 0, 1, 1, 2]
    assert any("1-s resolution" in n for n in mg.metadata["notes"])


def test_tia_series_beside_an_emi_takes_its_mode_and_flags_magnification(tmp_path, shared_data):
    import shutil

    from io_builders import write_ser

    emi = tmp_path / "movie.emi"
    shutil.copy(shared_data / "tia/64x64_TEM_images_acquire.emi", emi)  # Mode: TEM image
    frames = movie_frames(4, (8, 8), np.float32)
    deltas = [6.28e-9, 6.28e-9, 3.14e-9, 3.14e-9]
    write_ser(tmp_path / "movie_1.ser", frames, deltas_m=deltas, times_s=[10, 11, 12, 13])
    for opened in (emi, tmp_path / "movie_1.ser"):
        (mg,) = read_micrographs(opened)
        assert mg.metadata["tia_mode"].strip().startswith("TEM")
        assert mg.metadata["emi_file"] == "movie.emi"
        assert not mg.reciprocal and mg.units == ("s", "nm", "nm")
        assert mg.scale == pytest.approx((1.0, 6.28, 6.28), rel=1e-9)
        assert [c["frame"] for c in mg.metadata["calibration_changes"]] == [2, 3]
        assert mg.metadata["calibration_changes"][0]["relative_to_frame_0"] == pytest.approx(0.5)
    with open(tmp_path / "movie_1.ser", "r+b") as f:
        f.truncate(500)
    with pytest.raises(MicrographReadError, match=r"movie_1\.ser.*truncated"):
        read_micrographs(tmp_path / "movie_1.ser")
