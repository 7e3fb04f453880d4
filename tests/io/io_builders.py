"""Builders of small synthetic movies in the formats the readers take (tests/io only).

A module of its own, not conftest.py: test modules import these helpers by name, and
several conftest.py files in one session would shadow each other."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

VELOX_TEMPLATE = "velox_emd/Camera Ceta Imaging Micro.emd"
VELOX_T0_US = 1596041301797929  # the template's Detectors[BM-Ceta].TimeStamp


def movie_frames(n, shape=(32, 48), dtype=np.int16) -> np.ndarray:
    """Frames that differ from each other and inside each frame (frame k has offset 100 k)."""
    ramp = np.arange(shape[0] * shape[1]).reshape(shape) % 97
    return (np.arange(n)[:, None, None] * 100 + ramp).astype(dtype)


@pytest.fixture
def velox_series(shared_data, tmp_path):
    """Factory: a Velox EMD image series made from a real single-frame Velox file.

    The template's groups, metadata and calibration are kept; ``Data`` becomes
    (y, x, n) with one chunk per frame (as Velox writes it), ``Metadata`` one JSON per
    frame with ``Detectors[BM-Ceta].TimeStamp`` = t0 + k·dt (µs) and, from frame
    ``mag_change_at`` on, half the pixel size and NominalMagnification 54000.
    """
    import h5py

    def make(n=6, *, dt_us=250_000, mag_change_at=None, stamps=True, name="series.emd"):
        path = tmp_path / name
        shutil.copy(shared_data / VELOX_TEMPLATE, path)
        frames = movie_frames(n)
        with h5py.File(path, "r+") as f:
            (key,) = list(f["Data/Image"])
            group = f["Data/Image"][key]
            template = json.loads(bytes(group["Metadata"][:, 0]).rstrip(b"\0").decode())
            length = group["Metadata"].shape[0]
            for ds in ("Data", "Metadata", "FrameLookupTable"):
                del group[ds]
            group.create_dataset(
                "Data", data=np.moveaxis(frames, 0, -1), chunks=(*frames.shape[1:], 1)
            )
            md = np.zeros((length, n), np.uint8)
            for k in range(n):
                d = json.loads(json.dumps(template))
                custom = d["CustomProperties"]
                if stamps:
                    custom["Detectors[BM-Ceta].TimeStamp"]["value"] = str(VELOX_T0_US + k * dt_us)
                else:
                    del custom["Detectors[BM-Ceta].TimeStamp"]
                if mag_change_at is not None and k >= mag_change_at:
                    half = float(d["BinaryResult"]["PixelSize"]["width"]) / 2
                    d["BinaryResult"]["PixelSize"] = {"width": repr(half), "height": repr(half)}
                    d["Optics"]["NominalMagnification"] = "54000"
                raw = json.dumps(d).encode()
                md[: len(raw), k] = np.frombuffer(raw, np.uint8)
            group.create_dataset("Metadata", data=md, chunks=(length, 1))
            group.create_dataset("FrameLookupTable", data=np.arange(n, dtype=np.uint32))
        return path, frames

    return make


def write_ser(path, frames, *, deltas_m, times_s, offset_m=-1e-7, version=0x210):
    """Write a TIA .ser image series (the layout rosettasciio reads).

    ``frames`` are (n, ny, nx) as displayed; TIA stores rows bottom-up. ``deltas_m``
    and ``times_s`` (integer s since 1970) are per frame.
    """
    import struct

    frames = np.asarray(frames)
    n, ny, nx = frames.shape
    codes = {np.dtype("<u2"): 2, np.dtype("<i2"): 5, np.dtype("<f4"): 7}
    code = codes[frames.dtype.newbyteorder("<")]
    wide = version > 0x210
    head = struct.pack("<HHHIIII", 0x4949, 0x0197, version, 0x4122, 0x4152, n, n)
    dims = struct.pack("<IddiI", n, 0.0, 1.0, 0, 6) + b"Number" + struct.pack("<I", 0)
    offset_array = len(head) + (12 if wide else 8) + len(dims)
    head += struct.pack("<QI" if wide else "<II", offset_array, 1)
    pos = offset_array + 2 * n * (8 if wide else 4)
    body, data_offsets, tag_offsets = b"", [], []
    for k in range(n):
        element = struct.pack(
            "<ddiddihii", offset_m, deltas_m[k], 0, offset_m, deltas_m[k], 0, code, nx, ny
        )
        pixels = np.ascontiguousarray(frames[k][::-1]).astype(frames.dtype.newbyteorder("<"))
        data_offsets.append(pos)
        tag_offsets.append(pos + len(element) + pixels.nbytes)
        chunk = element + pixels.tobytes() + struct.pack("<HHI", 0x4152, 0, int(times_s[k]))
        body += chunk
        pos += len(chunk)
    table = np.array(data_offsets + tag_offsets, "<u8" if wide else "<u4").tobytes()
    with open(path, "wb") as f:
        f.write(head + dims + table + body)
