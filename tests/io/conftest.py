"""Builders of small synthetic movies in the formats the readers take (tests/io only)."""

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
