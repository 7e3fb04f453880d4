"""Broken, foreign and unsupported input: a clear error naming the file, or None from napari."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_hrtem_fft._reader import napari_get_reader
from napari_hrtem_fft.io import MicrographReadError, read_micrographs


def _half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize(
    "rel",
    [
        "dm3/example_Se_implanted_MoS2.dm3",
        "dm4/PTO100-40nm-HAADF.dm4",
        "velox_emd/Camera Ceta Imaging Micro.emd",
        "ncem_emd/Acquisition_18.emd",
        "tiff/TVIPS_bin4.tif",
        "tiff/FEI-Helios-Ebeam-16bits.tif",
        "mrc/HAADFscan.mrc",
        "tia/16_STOimage_1.ser",
    ],
)
def test_truncated_copy_raises_error_naming_the_file(shared_data, tmp_path, rel):
    src = shared_data / rel
    if src.suffix == ".ser":  # keep the .emi beside it, as TIA users do
        shutil.copy(src.with_name("16_STOimage.emi"), tmp_path / "16_STOimage.emi")
    bad = _half(src, tmp_path / src.name)
    with pytest.raises(MicrographReadError, match=re.escape(str(bad))) as info:
        read_micrographs(bad)
    assert re.search(r"truncated|corrupt|not a readable", str(info.value))
    # napari's reader: the sniff accepts the file (right signature), reading raises clearly.
    reader = napari_get_reader(str(bad))
    assert reader is not None
    with pytest.raises(MicrographReadError, match=re.escape(bad.name)):
        reader(str(bad))


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "notes.dm3",
            b"This is a text file, not a DigitalMicrograph image.\n" * 20,
            "not a DigitalMicrograph file",
        ),
        ("noise.tif", None, "not a TIFF file"),
        ("text.emd", b"plain text\n" * 50, "not an HDF5 file"),
        ("text.hspy", b"plain text\n" * 50, "not an HDF5 file"),
        ("noise.mrc", None, "MRC"),
        ("text.ser", b"plain text\n" * 50, "not a TIA .ser file"),
        ("empty.dm4", b"", "empty"),
    ],
)
def test_foreign_file_with_our_extension_raises_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        content = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(content)
    with pytest.raises(MicrographReadError, match=re.escape(name)) as info:
        read_micrographs(path)
    assert message in str(info.value)


def test_hdf5_of_unknown_layout_is_rejected(tmp_path):
    import h5py

    path = tmp_path / "other.h5.emd"
    with h5py.File(path, "w") as f:
        f["something"] = np.zeros((4, 4))
    with pytest.raises(MicrographReadError, match="neither a Velox EMD"):
        read_micrographs(path)


def test_unsupported_extension_and_missing_file(tmp_path):
    other = tmp_path / "image.png"
    other.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(MicrographReadError, match=r"unsupported file type '\.png'"):
        read_micrographs(other)
    with pytest.raises(FileNotFoundError, match=r"missing\.dm3"):
        read_micrographs(tmp_path / "missing.dm3")
    with pytest.raises(TypeError, match="path must be"):
        read_micrographs(42)


def test_tia_emi_without_ser_is_explained(tmp_path, shared_data):
    emi = tmp_path / "16_STOimage.emi"
    shutil.copy(shared_data / "tia/16_STOimage.emi", emi)
    with pytest.raises(MicrographReadError, match=r"no \.ser data file"):
        read_micrographs(emi)


def test_folder_without_numbered_tiffs_is_rejected(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(MicrographReadError, match="not a folder of numbered TIFF frames"):
        read_micrographs(tmp_path)


def test_get_reader_declines_garbage_and_never_raises(tmp_path):
    random_tif = tmp_path / "random.tif"
    random_tif.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, np.uint8).tobytes())
    text_emd = tmp_path / "text.emd"
    text_emd.write_text("hello")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    for garbage in (
        None,
        42,
        3.5,
        b"bytes",
        [],
        [None],
        [str(txt)],
        {"a": 1},
        object(),
        str(tmp_path / "missing.dm3"),
        str(random_tif),
        str(text_emd),
        str(txt),
        str(empty_dir),
        "",
        "\x00",
        [str(random_tif), str(txt)],
    ):
        assert napari_get_reader(garbage) is None, garbage


def test_get_reader_accepts_supported_paths_and_lists(shared_data):
    dm3 = str(shared_data / "dm3/PZO.dm3")
    emd = str(shared_data / "velox_emd/Camera Ceta Imaging Micro.emd")
    assert callable(napari_get_reader(dm3))
    assert callable(napari_get_reader(Path(dm3)))
    assert callable(napari_get_reader([dm3, emd]))
    assert napari_get_reader([dm3, str(shared_data / "README.md")]) is None
    layers = napari_get_reader([dm3, emd])([dm3, emd])
    assert [layer[0].shape for layer in layers] == [(525, 525), (512, 512)]
