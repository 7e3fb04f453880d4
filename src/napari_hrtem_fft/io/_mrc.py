"""MRC / .mrcs / .map, through mrcfile (memory-mapped, so stacks stay lazy)."""

from __future__ import annotations

import logging
import struct
import warnings
from pathlib import Path

import numpy as np

from ._arrays import EAGER_MAX_BYTES, displayable, eager_or_lazy, raw_frames
from ._calibration import FileAxis, build_micrograph, calibration_changes, frame_times
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

    _check_header(path)
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
    per_frame = {}
    if data.ndim == 3 and data.shape[0] > 1 and stack:
        per_frame = _fei_frames(mrc, path)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if isinstance(data, np.memmap) and (data.ndim == 3 or data.nbytes > EAGER_MAX_BYTES):
        # Read frames with plain file reads (not through the memory map), so that
        # scrolling a long movie does not keep every frame seen mapped in memory.
        offset = int(header.nbytes) + int(mrc.extended_header.nbytes)
        data = raw_frames(path, offset=offset, shape=data.shape, dtype=data.dtype)
    else:
        # A copy: the memory map is closed below (4-bit data is unpacked in memory).
        data = np.array(data)
    mrc.close()
    axes = [FileAxis(vy, offs[1], "Å", "y"), FileAxis(vx, offs[0], "Å", "x")]
    notes = list(per_frame.pop("notes", []))
    if data.ndim == 3:
        if stack:
            axes.insert(0, per_frame.pop("time_axis", None) or FileAxis(1.0, 0.0, None, "frame"))
        else:
            axes.insert(0, FileAxis(vz, offs[2], "Å", "z"))
    per_frame.pop("time_axis", None)
    data, conv = displayable(eager_or_lazy(data))
    notes += conv
    extra = {
        "mrc_kind": "image stack"
        if (data.ndim == 3 and stack)
        else ("volume" if data.ndim == 3 else "image"),
        "origin_source": origin_source,
        "mrc_warnings": problems,
        **per_frame,
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


def _check_header(path: Path) -> None:
    """Check the header's sizes against the file before mrcfile reads anything.

    mrcfile reads the extended header into memory with the length the header gives
    (``nsymbt``, up to 2 GiB), so a corrupt length must be refused first; image
    dimensions of zero or less are refused too.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1024)
    if len(head) < 1024:
        raise MicrographReadError(
            path, f"not an MRC file or truncated: {len(head)} bytes, the header alone has 1024"
        )
    big = head[212:214] == b"\x11\x11"
    order = ">" if big else "<"
    nx, ny, nz = struct.unpack_from(order + "3i", head, 0)
    (nsymbt,) = struct.unpack_from(order + "i", head, 92)
    if min(nx, ny, nz) < 1:
        raise MicrographReadError(
            path, f"the MRC header gives an empty or negative size nx, ny, nz = {nx}, {ny}, {nz}"
        )
    if not 0 <= nsymbt <= size - 1024:
        raise MicrographReadError(
            path,
            f"corrupt MRC header: an extended header of {nsymbt} bytes does not fit in "
            f"the file's {size} bytes",
        )


# Days (OLE automation date or days since 1900) or seconds since 1970: the FEI/TFS
# extended header documentation does not give the unit of "Timestamp", so it is told
# from the magnitude; only differences between frames are used.
_DAY_S = 86400.0


def _fei_frames(mrc, path) -> dict:
    """Per-frame time stamps and pixel sizes from an FEI1/FEI2 extended header.

    Returns a dict with ``time_axis`` (FileAxis or None), ``notes`` and the metadata
    entries ``frame_times_s``/``frame_interval_s``/``frame_times_source`` and
    ``calibration_changes``; empty for other extended header types.
    """
    exttyp = bytes(mrc.header.exttyp)
    if exttyp not in (b"FEI1", b"FEI2"):
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ext = mrc.indexed_extended_header
    if ext is None or len(ext) != mrc.data.shape[0]:
        return {"notes": [f"{exttyp.decode()} extended header is not one entry per frame"]}
    out: dict = {"notes": []}
    stamps = np.asarray(ext["Timestamp"], dtype=float)
    if np.all(np.isfinite(stamps)) and stamps[0] > 0:
        if stamps[0] > 1e8:
            unit, factor = "s (since 1970)", 1.0
        elif 1e3 < stamps[0] < 1e6:
            unit, factor = "days", _DAY_S
        else:
            unit, factor = None, None
        if factor is not None:
            axis, extra, notes = frame_times(
                stamps * factor, source=f"MRC {exttyp.decode()} extended header Timestamp ({unit})"
            )
            out["time_axis"] = axis
            out.update(extra)
            out["notes"] += notes
    px = np.asarray(ext["Pixel size X"], dtype=float) * 1e9  # m -> nm
    py = np.asarray(ext["Pixel size Y"], dtype=float) * 1e9
    if np.all(np.isfinite(px)) and np.all(px > 0) and np.all(py > 0):
        mags = np.asarray(ext["Magnification"], dtype=float)
        per_frame = [
            {"scale": [float(y), float(x)], "units": "nm", "magnification": float(m)}
            for y, x, m in zip(py, px, mags, strict=True)
        ]
        changes = calibration_changes(per_frame)
        if changes:
            out["calibration_changes"] = changes
    return out
