"""A folder of numbered TIFF frames (a movie saved frame by frame) as one lazy stack."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._arrays import FrameStack, lazy_frames
from ._calibration import calibration_changes
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


def read_tiff_folder(folder: Path, *, crop_databar: bool = True) -> list[Micrograph]:
    """Stack numbered TIFF frames lazily along a new first axis (unit ``frame``).

    Opening reads the tags of every frame, not the pixels: a frame whose shape or pixel
    type differs from the first one raises :class:`MicrographReadError` naming it, and
    frames whose pixel size differs from the first one are listed in
    ``metadata["calibration_changes"]``. The calibration (and FEI databar crop) is the
    first frame's. Pixels are read frame by frame when napari or dask asks for them.
    """
    folder = Path(folder)
    files = numbered_tiffs(folder)
    if not files:
        raise MicrographReadError(
            folder,
            "not a folder of numbered TIFF frames (need at least "
            "two .tif files, all with a number in the name)",
        )
    headers = [_header(f, crop_databar) for f in files]
    ref = headers[0]
    shape, dtype = ref.shape, np.dtype(ref.data.dtype)
    for f, h in zip(files[1:], headers[1:], strict=True):
        if h.shape != shape or np.dtype(h.data.dtype) != dtype:
            raise MicrographReadError(
                f,
                f"this frame is {_describe(h.shape, h.data.dtype)} but the first frame "
                f"{files[0].name} is {_describe(shape, dtype)}; all frames of a movie "
                "folder must have the same shape and pixel type",
            )
    changes = calibration_changes(
        [
            {"scale": list(h.scale), "units": h.units[-1], "file": f.name}
            for f, h in zip(files, headers, strict=True)
        ]
    )
    stack = FrameStack(
        (len(files), *shape),
        dtype,
        _FolderRows(files, shape, dtype, crop_databar),
        token=("tiff folder", str(folder.resolve()), tuple(_stamp(f) for f in files)),
        source=folder,
    )
    meta = dict(ref.metadata)
    notes = [*ref.metadata.get("notes", []), "time axis in frames: the files carry no time stamps"]
    if changes:
        first = changes[0]
        notes.append(
            f"the pixel size changes in {len(changes)} frame(s), first at frame "
            f"{first['frame']} ({first['file']}); the stack's scale is the first frame's, "
            "see metadata['calibration_changes']"
        )
    meta.update(
        {
            "format": f"folder of TIFF frames ({ref.metadata.get('format', 'TIFF')})",
            "source_path": str(folder.resolve()),
            "frames": [f.name for f in files],
            "pixel_size_source": f"{ref.metadata.get('pixel_size_source')} (first frame "
            f"{files[0].name})",
            "notes": notes,
        }
    )
    if changes:
        meta["calibration_changes"] = changes
    return [
        Micrograph(
            data=lazy_frames(stack),
            scale=(1.0, *ref.scale),
            translate=(0.0, *ref.translate),
            units=("frame", *ref.units),
            calibrated=ref.calibrated,
            reciprocal=ref.reciprocal,
            name=folder.name,
            metadata=meta,
        )
    ]


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (path.name, st.st_size, st.st_mtime_ns)


def _describe(shape, dtype) -> str:
    return f"{' × '.join(str(n) for n in shape)} {np.dtype(dtype)}"


def _header(path: Path, crop_databar: bool) -> Micrograph:
    """The frame as a lazy Micrograph: tags and calibration only, no pixels read."""
    images = read_tiff(path, crop_databar=crop_databar, lazy=True)
    if len(images) != 1 or images[0].ndim != 2:
        raise MicrographReadError(
            path,
            "the frames of a TIFF folder must be single 2-D images; this one holds "
            f"{len(images)} image(s) of shape {images[0].shape}",
        )
    return images[0]


class _FolderRows:
    """Reads frame ``k`` (file ``k``) of a TIFF folder (picklable)."""

    def __init__(self, files, shape, dtype, crop_databar):
        self.files, self.shape, self.dtype = list(files), tuple(shape), np.dtype(dtype)
        self.crop_databar = crop_databar

    def __call__(self, frame, r0, r1):
        path = self.files[frame]
        (image,) = read_tiff(path, crop_databar=self.crop_databar)
        data = image.data
        data = np.asarray(data.compute() if hasattr(data, "compute") else data)
        if data.shape != self.shape or data.dtype != self.dtype:
            raise MicrographReadError(
                path,
                f"this frame is now {_describe(data.shape, data.dtype)} but the folder "
                f"was opened with frames of {_describe(self.shape, self.dtype)}",
            )
        return data[r0:r1]
