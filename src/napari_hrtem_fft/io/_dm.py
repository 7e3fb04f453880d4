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
    check_tag_tree(path)
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
    data = sig["data"]
    try:
        packed = int(block.get("DataType", -1)) in _PACKED_TYPES
    except (TypeError, ValueError):
        packed = True
    needed = int(np.prod(data.shape, dtype=object)) * np.dtype(data.dtype).itemsize
    if not packed and (
        needed > int(info["size_bytes"]) or int(info["offset"]) + needed > file_size
    ):
        raise MicrographReadError(
            path,
            f"corrupt {fmt} file: the image dimensions {tuple(data.shape)} need {needed} "
            f"bytes but the data block has {int(info['size_bytes'])} bytes "
            f"(file {file_size} bytes)",
        )


# --- tag-tree check before rosettasciio parses it ---------------------------------
#
# rosettasciio reads every tag value element by element (only ImageData/Data is
# skipped) and builds struct definitions and strings by repeated concatenation, so a
# corrupt count in the tag tree (65536 struct fields, a 2-GB string) makes it run for
# minutes or allocate without bound. The walk below follows the same grammar
# (rosettasciio's DigitalMicrographReader.parse_tags), reads only the counts and
# refuses any count that the file's bytes, or a sane tag, cannot hold.

_SIMPLE_SIZES = {2: 2, 3: 4, 4: 2, 5: 4, 6: 4, 7: 8, 8: 1, 9: 1, 10: 1, 11: 8, 12: 8}
_MAX_STRUCT_FIELDS = 4096  # DM structs are complex numbers, RGB, rectangles: < 20
_MAX_STRING = 64 * 2**10  # bytes of one tag string (read by concatenation)
_MAX_TAG_VALUES = 4 * 2**20  # elements of one tag array read into a Python list
_MAX_DEPTH = 64


class _TagWalk:
    def __init__(self, f, version: int, size: int):
        self.f, self.size = f, size
        self.q = 8 if version == 4 else 4
        self.version = version

    def fail(self, what: str):
        raise ValueError(f"{what} at byte {self.f.tell()}")

    def raw(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            self.fail("the tag tree ends early")
        return b

    def count(self, what: str, limit: int | None = None) -> int:
        value = int.from_bytes(self.raw(self.q), "big", signed=True)
        if value < 0 or (limit is not None and value > limit):
            self.fail(f"impossible {what} {value}")
        return value

    def skip(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or self.f.tell() + nbytes > self.size:
            self.fail(f"{what} of {nbytes} bytes does not fit in the file")
        self.f.seek(nbytes, 1)

    def remaining(self) -> int:
        return self.size - self.f.tell()

    def simple(self, etype: int) -> int:
        if etype not in _SIMPLE_SIZES:
            self.fail(f"unknown tag data type {etype}")
        return _SIMPLE_SIZES[etype]

    def struct(self) -> int:
        self.count("struct name length")
        nfields = self.count("number of struct fields", _MAX_STRUCT_FIELDS)
        total = 0
        for _ in range(nfields):
            self.count("field name length")
            total += self.simple(self.count("field type"))
        return total

    def group(self, depth: int, name: str = "root") -> None:
        if depth > _MAX_DEPTH:
            self.fail("tag groups nested too deep")
        self.raw(2)  # sorted, open
        if self.version == 4 and depth > 0:
            self.count("tag group size")
        ntags = self.count("number of tags", self.remaining() // 3)
        for _ in range(ntags):
            self.tag(depth, name)

    def tag(self, depth: int, parent: str) -> None:
        tag_id = self.raw(1)[0]
        name_len = int.from_bytes(self.raw(2), "big", signed=True)
        name = self.raw(max(0, name_len)).decode("latin-1").replace(".", "")
        if tag_id == 20:
            self.group(depth + 1, name)
            return
        if tag_id != 21:
            self.fail(f"unknown tag kind {tag_id}")
        # ImageData/Data (the pixels) is skipped by rosettasciio, the rest is read.
        data = name == "Data" and parent == "ImageData"
        if self.version == 4:
            self.count("tag size")
        if self.raw(4) != b"%%%%":
            self.fail("missing %%%% before a tag's data")
        ninfo = self.count("info array size")
        if ninfo == 1:
            self.skip(self.simple(self.count("data type")), "a value")
        elif ninfo == 2:
            if self.count("string type") != 18:
                self.fail("a 2-entry tag that is not a string")
            length = self.count("string length", None if data else _MAX_STRING)
            self.skip(length, "a string")
        elif ninfo == 3:
            if self.count("array type") != 20:
                self.fail("a 3-entry tag that is not an array")
            eltype = self.count("array element type")
            n = self.count("array length", None if data else _MAX_TAG_VALUES)
            self.skip(n * self.simple(eltype), "an array")
        elif ninfo > 3:
            kind = self.count("tag data type")
            if kind == 15:
                self.skip(self.struct(), "a struct")
            elif kind == 20:
                self.complex_array(data)
            else:
                self.fail(f"unknown tag data type {kind}")
        else:
            self.fail("an empty tag info array")

    def complex_array(self, data: bool) -> None:
        eltype = self.count("array element type")
        limit = None if data else _MAX_TAG_VALUES
        if eltype == 15:
            size = self.struct()
            n = self.count("array length", limit)
        elif eltype == 18:
            size = self.count("string length", _MAX_STRING)
            n = self.count("array length", limit)
        elif eltype == 20:
            inner_type = self.count("array element type")
            inner = self.count("array length", limit)
            size = inner * self.simple(inner_type)
            n = self.count("array length", limit)
        else:
            self.fail(f"unknown array element type {eltype}")
        self.skip(n * size, "an array")


def check_tag_tree(path) -> None:
    """Walk a DM3/DM4 tag tree and refuse counts the file cannot hold.

    Raises
    ------
    MicrographReadError
        "corrupt DM3 file: impossible number of struct fields 65536 at byte 1590", ...
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        version = int.from_bytes(head, "big") if len(head) == 4 else 0
        walk = _TagWalk(f, version, size)
        try:
            walk.count("file size")
            walk.raw(4)  # byte order
            walk.group(0)
        except ValueError as exc:
            raise MicrographReadError(path, f"corrupt DM{version} file: {exc}") from None
