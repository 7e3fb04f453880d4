"""Issue 11: corrupt files, header memory bombs, HDF5 indirection, zero-size images.

Each case is the one the issue reports, with the error it must give instead. Cases
that would allocate gigabytes if the guard regressed are read in a capped worker
process (``fuzzing.Sandbox``).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import fuzzing
import h5py
import numpy as np
import pytest
from io_builders import movie_frames, write_ser

from napari_hrtem_fft._reader import napari_get_reader
from napari_hrtem_fft.io import MicrographReadError, read_micrographs


def _flip(src: Path, dst: Path, pos: int, value: int) -> Path:
    data = bytearray(src.read_bytes())
    data[pos] = value
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def sandbox():
    box = fuzzing.Sandbox(hook_limit=fuzzing.HOOK_GUARD_S)
    yield box
    box.close()


@pytest.mark.parametrize(
    "rel, pos, value",
    [
        ("ncem_emd/Acquisition_18.emd", 1405, 177),
        ("velox_emd/STEM HAADF Diffraction Micro.emd", 701, 153),
    ],
)
@pytest.mark.parametrize("ext", [".hdf5", ".emd"])
def test_corrupt_hdf5_never_escapes_the_hook_or_the_reader(
    shared_data, tmp_path, rel, pos, value, ext
):
    bad = _flip(shared_data / rel, tmp_path / f"x{ext}", pos, value)
    reader = napari_get_reader(str(bad))  # used to raise RuntimeError
    assert reader is None or callable(reader)
    with pytest.raises(MicrographReadError, match=re.escape(str(bad))) as info:
        read_micrographs(bad)
    assert "corrupt" in str(info.value)


def test_hook_looks_at_a_bounded_part_of_a_huge_hdf5(tmp_path, monkeypatch):
    from napari_hrtem_fft.io import _hdf5

    path = tmp_path / "groups.hdf5"
    with h5py.File(path, "w") as h5:
        for k in range(3000):
            h5.create_group(f"g{k}")
        h5.create_group(f"g{k}/deep").attrs["emd_group_type"] = 1
    asked = []
    original = _hdf5._first_names
    monkeypatch.setattr(_hdf5, "_first_names", lambda g, n: asked.append(n) or original(g, n))
    assert napari_get_reader(str(path)) is None
    assert max(asked) <= _hdf5.NCEM_SEARCH_LIMIT
    # Reading says what it is, naming the file.
    with pytest.raises(MicrographReadError, match=re.escape(str(path))):
        read_micrographs(path)


def _berkeley(path: Path, make, dims=None) -> Path:
    return fuzzing._ncem(path, make, dims=dims)


def test_hdf5_data_in_other_files_is_refused_unless_allowed(tmp_path):
    cases = fuzzing.hdf5_indirection(tmp_path / "links")
    expected = {
        "external_raw_outside.bin": "keeps its bytes in an external raw file",
        "external_raw_passwd": "keeps its bytes in an external raw file",
        "external_link": "is an external link to",
        "virtual": "is a virtual dataset",
        "hspy_link": "is an external link to",
    }
    for case in cases:
        with pytest.raises(MicrographReadError, match=re.escape(str(case.path))) as info:
            read_micrographs(case.path)
        assert expected[case.path.parent.name] in str(info.value)
        assert "allow_external=True" in str(info.value)
    # Explicit opt-in: the dataset's 64 bytes are the first 64 bytes of outside.bin.
    raw = tmp_path / "links" / "external_raw_outside.bin" / "case.emd"
    (mg,) = read_micrographs(raw, allow_external=True)
    outside = (tmp_path / "links" / "outside.bin").read_bytes()[:64]
    assert np.array_equal(mg.data, np.frombuffer(outside, np.uint8).reshape(8, 8))
    link = tmp_path / "links" / "external_link" / "case.emd"
    (mg,) = read_micrographs(link, allow_external=True)
    assert np.array_equal(mg.data, np.arange(64, dtype=np.uint16).reshape(8, 8))


def test_ser_valid_count_larger_than_total_is_refused(tmp_path):
    path = tmp_path / "movie_1.ser"
    write_ser(path, movie_frames(3, (8, 12)), deltas_m=[1e-9] * 3, times_s=[0, 1, 2])
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 18, 2_000_000_000)  # ValidNumberElements
    path.write_bytes(bytes(raw))
    with pytest.raises(MicrographReadError, match=r"movie_1\.ser.*ValidNumberElements 2000000000"):
        read_micrographs(path)


def test_ser_frames_of_zero_pixels_are_refused(tmp_path):
    path = tmp_path / "movie_1.ser"
    write_ser(path, movie_frames(3, (8, 12)), deltas_m=[1e-9] * 3, times_s=[0, 1, 2])
    raw = bytearray(path.read_bytes())
    first = struct.unpack_from("<I", raw, 30 + 28 + 6 + 4)[0]  # first data offset
    for k in range(3):
        off = struct.unpack_from("<I", raw, 30 + 28 + 6 + 4 + 4 * k)[0]
        struct.pack_into("<i", raw, off + 42, 0)  # ArraySizeX
    assert first > 0
    path.write_bytes(bytes(raw))
    with pytest.raises(MicrographReadError, match=r"movie_1\.ser.*empty"):
        read_micrographs(path)


def _dm_dimensions(data: bytes) -> list[int]:
    """Byte positions of the values of the Dimensions tags (DM3, 4-byte longs)."""
    out = []
    start = 0
    while (k := data.find(b"Dimensions", start)) >= 0:
        start = k + 1
        pos = k
        for _ in range(2):
            pos = data.find(b"%%%%", pos) + 4
            ninfo, etype = struct.unpack_from(">ii", data, pos)
            if ninfo == 1 and etype in (3, 5):
                out.append(pos + 8)
            pos += 12
    return out


@pytest.mark.parametrize("value, message", [(5000, "need"), (0, "empty")])
def test_dm_dimensions_the_file_cannot_hold_are_refused_at_read(
    shared_data, tmp_path, value, message
):
    data = bytearray((shared_data / "dm3/test_STEM_image.dm3").read_bytes())
    positions = _dm_dimensions(bytes(data))
    assert positions, "no Dimensions tag found"
    for pos in positions:
        struct.pack_into("<I", data, pos, value)
    bad = tmp_path / "stem.dm3"
    bad.write_bytes(bytes(data))
    with pytest.raises(MicrographReadError, match=re.escape(str(bad))) as info:
        read_micrographs(bad)
    assert message in str(info.value)


def test_dm_tag_tree_with_impossible_counts_is_refused_quickly(shared_data, tmp_path):
    # 65535 struct fields: rosettasciio used to spend 20 s building the definition.
    data = bytearray((shared_data / "dm3/example_Se_implanted_MoS2.dm3").read_bytes())
    struct.pack_into("<I", data, 56, 90_000)
    bad = tmp_path / "mos2.dm3"
    bad.write_bytes(bytes(data))
    with pytest.raises(MicrographReadError, match=r"mos2\.dm3.*corrupt DM3 file"):
        read_micrographs(bad)


def test_mrc_of_zero_width_and_huge_extended_header_are_refused(tmp_path):
    cases = fuzzing.crafted(tmp_path, n_groups=1)
    (nx0,) = [c.path for c in cases if c.path.parent.name == "mrc_nx0"]
    with pytest.raises(MicrographReadError, match=r"case\.mrc.*empty or negative size"):
        read_micrographs(nx0)
    huge = tmp_path / "ext.mrc"
    raw = bytearray(nx0.read_bytes())
    struct.pack_into("<i", raw, 0, 16)
    struct.pack_into("<i", raw, 92, 1_308_622_848)  # nsymbt
    huge.write_bytes(bytes(raw))
    with pytest.raises(MicrographReadError, match=r"ext\.mrc.*extended header of 1308622848"):
        read_micrographs(huge)


def test_crafted_tiffs_are_refused_before_allocating(tmp_path, sandbox):
    cases = {c.path.parent.name: c for c in fuzzing.crafted(tmp_path, n_groups=1)}
    bomb = sandbox.run(cases["tiff_zlib_90000"])
    assert bomb["outcome"] == "clean error"
    assert "cannot come from its" in bomb["detail"]
    bps0 = sandbox.run(cases["tiff_bps0"])
    assert bps0["outcome"] == "clean error", bps0


def test_helios_tiff_one_byte_short_is_a_truncation(shared_data, tmp_path):
    src = shared_data / "tiff/FEI-Helios-Ebeam-16bits.tif"
    bad = tmp_path / src.name
    bad.write_bytes(src.read_bytes()[:-1])
    with pytest.raises(MicrographReadError, match=re.escape(str(bad))) as info:
        read_micrographs(bad)
    assert "truncated" in str(info.value)


def test_berkeley_dim_without_a_step_is_uncalibrated_and_says_so(tmp_path):
    path = _berkeley(
        tmp_path / "one.emd",
        lambda g: g.create_dataset("data", data=np.ones((8, 8))),
        dims=(("y", np.zeros(1)), ("x", np.zeros(1))),
    )
    (mg,) = read_micrographs(path)
    assert not mg.calibrated
    assert mg.units == ("px", "px") and mg.scale == (1.0, 1.0)
    assert any("dim1" in n and "uncalibrated" in n for n in mg.metadata["notes"])


def test_berkeley_string_and_compound_datasets_are_not_images(tmp_path):
    for name, make in (
        ("s.emd", lambda g: g.create_dataset("data", data=np.array([[b"ab"] * 8] * 8))),
        ("c.emd", lambda g: g.create_dataset("data", data=np.zeros((8, 8), "i4,f8"))),
    ):
        path = _berkeley(tmp_path / name, make)
        with pytest.raises(MicrographReadError, match=re.escape(name) + ".*no 2-D or 3-D image"):
            read_micrographs(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_emi_whose_ser_is_a_fifo_does_not_hang(tmp_path):
    emi = tmp_path / "acq.emi"
    emi.write_bytes(b"\x00" * 64)
    os.mkfifo(tmp_path / "acq_1.ser")
    with pytest.raises(MicrographReadError, match=r"acq\.emi.*acq_1\.ser is not a regular file"):
        read_micrographs(emi)
    assert napari_get_reader(str(tmp_path / "acq_1.ser")) is None
    with pytest.raises(MicrographReadError, match=r"acq_1\.ser.*not a regular file"):
        read_micrographs(tmp_path / "acq_1.ser")


def test_infinite_mrc_cell_is_uncalibrated_with_a_note(tmp_path):
    cases = {c.path.parent.name: c.path for c in fuzzing.crafted(tmp_path, n_groups=1)}
    (mg,) = read_micrographs(cases["mrc_inf_cell"])
    assert not mg.calibrated and mg.units[-2:] == ("px", "px")
    assert any("inf" in n and "uncalibrated" in n for n in mg.metadata["notes"])


def test_copy_of_a_tia_emi_keeps_working(shared_data, tmp_path):
    # The .emi/.ser checks must not refuse intact files.
    for name in ("16_STOimage.emi", "16_STOimage_1.ser"):
        shutil.copy(shared_data / "tia" / name, tmp_path / name)
    (mg,) = read_micrographs(tmp_path / "16_STOimage.emi")
    assert mg.calibrated and mg.data.shape == (1024, 1024)


def test_any_third_party_error_becomes_an_error_naming_the_file(
    shared_data, tmp_path, monkeypatch
):
    # A decoder's UnicodeDecodeError names no file; the reader's error must.
    from napari_hrtem_fft.io import _tiff

    def broken(path, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(_tiff, "read_tiff", broken)
    src = shared_data / "tiff/TVIPS_bin4.tif"
    path = tmp_path / src.name
    shutil.copy(src, path)
    with pytest.raises(MicrographReadError, match=re.escape(str(path))) as info:
        read_micrographs(path)
    assert "UnicodeDecodeError" in str(info.value)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
