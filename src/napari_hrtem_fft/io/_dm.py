"""Gatan DigitalMicrograph .dm3 / .dm4, through rosettasciio."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ._arrays import EAGER_MAX_BYTES, displayable, eager_or_lazy, raw_frames
from ._calibration import build_micrograph, rsciio_axes
from ._micrograph import Micrograph, MicrographReadError, corrupt_file_errors

logger = logging.getLogger(__name__)


def dm_version(path) -> int | None:
    """The DM version number from the first 4 bytes (big-endian): 3 or 4, else None."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        return None
    version = int.from_bytes(head, "big")
    return version if version in (3, 4) else None


def read_dm(path: Path) -> list[Micrograph]:
    """Every 2-D or higher image in a DigitalMicrograph file; 1-D plots are skipped.

    Calibration comes from ``ImageData/Calibrations/Dimension`` (scale, origin, unit
    per axis) as decoded by rosettasciio, whose offset is ``-origin × scale``.
    """
    version = dm_version(path)
    if version is None:
        raise MicrographReadError(
            path, "not a DigitalMicrograph file (the header does not start with version 3 or 4)"
        )
    fmt = f"DM{version}"
    from rsciio.digitalmicrograph import file_reader

    with corrupt_file_errors(path, fmt):
        signals = file_reader(str(path), lazy=True)

    size = Path(path).stat().st_size
    images, skipped = [], []
    for sig in signals:
        title = str(sig.get("metadata", {}).get("General", {}).get("title", "")) or path.stem
        data = sig["data"]
        if data.ndim < 2:
            skipped.append(f"{title!r} ({data.ndim}-D {tuple(data.shape)})")
            continue
        _check_extent(path, sig, size, fmt)
        images.append((title, sig))
    if not images:
        raise MicrographReadError(path, f"contains no image, only 1-D data: {', '.join(skipped)}")

    out = []
    for title, sig in images:
        notes = []
        if skipped:
            notes.append(f"skipped non-image content: {', '.join(skipped)}")
        try:
            data, conv = displayable(eager_or_lazy(_frame_wise(path, sig)))
        except (OSError, ValueError) as exc:
            raise MicrographReadError(
                path, f"cannot load the pixel data of {title!r} ({exc})"
            ) from exc
        notes += conv
        name = path.stem if len(images) == 1 else f"{path.stem} [{title}]"
        out.append(
            build_micrograph(
                data,
                rsciio_axes(sig["axes"], data.ndim, path),
                path=path,
                fmt=fmt,
                name=name,
                pixel_size_source=f"{fmt} tags ImageList/…/ImageData/Calibrations/Dimension "
                f"(image {title!r})",
                original_metadata=sig.get("original_metadata"),
                extra={"title": title},
                notes=notes,
            )
        )
    return out


def _data_block(sig) -> dict | None:
    """``ImageData`` tags of the image (``Data`` offset/size_bytes, ``DataType``)."""
    try:
        image_list = sig["original_metadata"]["ImageList"]
        return next(iter(image_list.values()))["ImageData"]
    except (KeyError, TypeError, StopIteration):
        return None


# DataTypes whose stored bytes are not the array rosettasciio returns: packed complex
# (5, 27, 28) and RGB(A) (8, 23).
_PACKED_TYPES = {5, 8, 23, 27, 28}


def _frame_wise(path, sig):
    """The pixel data, as a dask array of one frame per chunk for stacks and big images.

    rosettasciio maps DM pixels with dask's "auto" chunks, which for a movie are cubes
    of ~400 frames × 400 × 400 px: showing one 4k frame would read a hundred of them
    (~13 GB). Stacks are stored frame after frame (x fastest), so they are re-read
    here frame by frame from the data offset in the tags.
    """
    data = sig["data"]
    if data.ndim < 3 and data.nbytes <= EAGER_MAX_BYTES:
        return data
    block = _data_block(sig)
    try:
        offset = int(block["Data"]["offset"])
        size = int(block["Data"]["size_bytes"])
        dtype_code = int(block.get("DataType", -1))
    except (KeyError, TypeError, ValueError):
        logger.info("%s: no data offset in the tags; keeping rosettasciio's chunks", path)
        return data
    dtype = np.dtype(data.dtype)
    if dtype_code in _PACKED_TYPES or size != int(np.prod(data.shape)) * dtype.itemsize:
        logger.info("%s: packed DM data type %s; rosettasciio's chunks", path, dtype_code)
        return data
    return raw_frames(path, offset=offset, shape=data.shape, dtype=dtype)


def _check_extent(path, sig, file_size: int, fmt: str) -> None:
    # rosettasciio maps the pixel data lazily, so a truncated file only fails when the
    # pixels are first read (inside napari's drawing); check the byte range up front.
    block = _data_block(sig)
    try:
        info = block["Data"]
        end = int(info["offset"]) + int(info["size_bytes"])
    except (KeyError, TypeError, ValueError):
        logger.debug("%s: no data offset in the tags; cannot check for truncation", path)
        return
    if end > file_size:
        raise MicrographReadError(
            path,
            f"truncated {fmt} file: the pixel data end at byte "
            f"{end} but the file has {file_size} bytes",
        )
