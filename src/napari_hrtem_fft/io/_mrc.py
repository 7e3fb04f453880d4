"""MRC / .mrcs / .map, through mrcfile (memory-mapped, so stacks stay lazy)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ._arrays import displayable, eager_or_lazy
from ._calibration import FileAxis, build_micrograph
from ._micrograph import Micrograph, MicrographReadError

logger = logging.getLogger(__name__)


def read_mrc(path: Path) -> list[Micrograph]:
    """The image, image stack or volume of an MRC file.

    The voxel size is ``cella / mx`` in Å (converted to nm). A zero or negative voxel
    size means "uncalibrated" (Direct Electron writes -10 Å for that), giving px. A
    3-D file with space group 0 or the extension ``.mrcs`` is an image stack (frame
    axis); otherwise a volume (z in nm). The origin is the header ``origin`` (Å) when it
    is non-zero, else ``nxstart × voxel size``.
    """
    import mrcfile

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
    except (OSError, ValueError, EOFError) as exc:
        raise MicrographReadError(path, f"not a readable MRC file: {exc}") from exc
    problems = [str(w.message) for w in caught]
    if mrc.data is None:
        mrc.close()
        raise MicrographReadError(
            path, "not a readable MRC file: " + ("; ".join(problems) or "no data block")
        )
    header = mrc.header
    expected = int(header.nx) * int(header.ny) * int(header.nz)
    if mrc.data.size < expected or any(
        "smaller than expected" in p or "truncat" in p.lower() for p in problems
    ):
        mrc.close()
        raise MicrographReadError(
            path,
            "truncated MRC file: "
            + ("; ".join(problems) or f"{mrc.data.size} of {expected} voxels present"),
        )
    for p in problems:
        logger.info("%s: %s", path.name, p)

    data = mrc.data
    stack = int(header.ispg) == 0 or path.suffix.lower() == ".mrcs"
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    voxel = mrc.voxel_size  # Å, (x, y, z)
    vx, vy, vz = float(voxel.x), float(voxel.y), float(voxel.z)
    origin = header.origin
    start = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    if any(float(origin[k]) != 0.0 for k in ("x", "y", "z")):
        offs = (float(origin["x"]), float(origin["y"]), float(origin["z"]))
        origin_source = "header origin (Å)"
    else:
        offs = (start[0] * vx, start[1] * vy, start[2] * vz)
        origin_source = "nxstart/nystart/nzstart × voxel size"
    axes = [FileAxis(vy, offs[1], "Å", "y"), FileAxis(vx, offs[0], "Å", "x")]
    if data.ndim == 3:
        if stack:
            axes.insert(0, FileAxis(1.0, 0.0, None, "frame"))
        else:
            axes.insert(0, FileAxis(vz, offs[2], "Å", "z"))
    # Copy 2-D images: the memory map is closed below.
    data = np.array(data) if data.ndim == 2 else data
    data, notes = displayable(eager_or_lazy(data))
    if data.ndim == 2:
        mrc.close()
    extra = {
        "mrc_kind": "image stack"
        if (data.ndim == 3 and stack)
        else ("volume" if data.ndim == 3 else "image"),
        "origin_source": origin_source,
        "mrc_warnings": problems,
    }
    om = {k: header[k] for k in header.dtype.names if k not in ("label",)}
    om["labels"] = [
        bytes(lbl).decode("ascii", "replace").strip() for lbl in header.label[: int(header.nlabl)]
    ]
    om["exttyp"] = bytes(header.exttyp).decode("ascii", "replace")
    info = path.with_name(path.stem.removesuffix("_final") + "_info.txt")
    if info.is_file():
        extra["de_info_file"] = info.name
    return [
        build_micrograph(
            data,
            axes,
            path=path,
            fmt="MRC",
            name=path.stem,
            pixel_size_source="MRC header voxel size cella/mx (Å → nm)",
            original_metadata=om,
            extra=extra,
            notes=notes,
        )
    ]
