"""A folder of numbered TIFF frames (a movie saved frame by frame) as one lazy stack."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._micrograph import Micrograph, MicrographReadError
from ._tiff import natural_key, read_tiff

TIFF_SUFFIXES = (".tif", ".tiff")


def numbered_tiffs(folder) -> list[Path]:
    """TIFF files directly in ``folder`` whose names contain a number, in natural order.

    Returns an empty list unless there are at least two such files (a folder with one
    image is not a movie) and every TIFF in the folder is numbered.
    """
    folder = Path(folder)
    try:
        tiffs = [
            p
            for p in folder.iterdir()
            if p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".") and p.is_file()
        ]
    except OSError:
        return []
    if len(tiffs) < 2 or not all(re.search(r"\d", p.stem) for p in tiffs):
        return []
    return sorted(tiffs, key=lambda p: natural_key(p.name))


def read_tiff_folder(folder: Path) -> list[Micrograph]:
    """Stack numbered TIFF frames lazily along a new first axis (unit ``frame``).

    The calibration (and FEI databar crop) is taken from the first frame. Each frame
    is read when napari or dask asks for it; a frame with a different shape or pixel
    type raises :class:`MicrographReadError` naming that frame.
    """
    import dask
    import dask.array as da

    folder = Path(folder)
    files = numbered_tiffs(folder)
    if not files:
        raise MicrographReadError(
            folder,
            "not a folder of numbered TIFF frames (need at least "
            "two .tif files, all with a number in the name)",
        )
    first = read_tiff(files[0])
    if len(first) != 1 or first[0].ndim != 2:
        raise MicrographReadError(
            files[0],
            "the frames of a TIFF folder must be single 2-D "
            f"images; this one holds {len(first)} image(s) of "
            f"shape {first[0].shape}",
        )
    ref = first[0]
    shape, dtype = ref.shape, np.dtype(ref.data.dtype)
    frames = [
        da.from_delayed(
            dask.delayed(_load_frame, pure=True)(f, shape, dtype), shape=shape, dtype=dtype
        )
        for f in files
    ]
    stack = da.stack(frames)
    meta = dict(ref.metadata)
    meta.update(
        {
            "format": f"folder of TIFF frames ({ref.metadata.get('format', 'TIFF')})",
            "source_path": str(folder.resolve()),
            "frames": [f.name for f in files],
            "pixel_size_source": f"{ref.metadata.get('pixel_size_source')} (first frame "
            f"{files[0].name})",
            "notes": [
                *ref.metadata.get("notes", []),
                "time axis in frames: the files carry no time stamps",
            ],
        }
    )
    return [
        Micrograph(
            data=stack,
            scale=(1.0, *ref.scale),
            translate=(0.0, *ref.translate),
            units=("frame", *ref.units),
            calibrated=ref.calibrated,
            reciprocal=ref.reciprocal,
            name=folder.name,
            metadata=meta,
        )
    ]


def _load_frame(path: Path, shape, dtype) -> np.ndarray:
    (frame,) = read_tiff(path)
    data = np.asarray(frame.data)
    if data.shape != tuple(shape) or data.dtype != dtype:
        raise MicrographReadError(
            path,
            f"frame has shape {data.shape} {data.dtype}, but the "
            f"first frame of the folder is {tuple(shape)} {dtype}",
        )
    return data
