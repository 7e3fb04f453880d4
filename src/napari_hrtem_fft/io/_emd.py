"""EMD files (HDF5): ThermoFisher Velox and Berkeley/NCEM EMD.

Velox goes through rosettasciio for the pixel data, but the calibration is taken from
the raw ``BinaryResult/PixelSize``, ``PixelUnitX/Y`` and ``Offset`` (m or 1/m).

Berkeley EMD (``emd_group_type = 1``) is read here with h5py. rosettasciio returns
these arrays transposed (``raw.T``); we keep the file's own axis order and only
reorder axes when the dimension names say which one is x and which is y, so that the
result is always ``(..., y, x)``: ``Acquisition_18.emd`` (dim1 ``Y``, dim2 ``X``) comes
out exactly as stored, as ncempy returns it, and the Prismatic output
``Si100_2x1x1_3D.emd`` (dim1 ``R_x``, dim2 ``R_y``) is transposed to (R_y, R_x).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import numpy as np

from ._arrays import FrameStack, SharedHandle, displayable, eager_or_lazy, file_token, lazy_frames
from ._calibration import (
    FileAxis,
    build_micrograph,
    calibration_changes,
    frame_times,
    rsciio_axes,
)
from ._hdf5 import CHECK_LIMIT, global_heaps_consistent, hard_get, ncem_groups
from ._micrograph import Micrograph, MicrographReadError
from ._units import parse_unit

logger = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def open_hdf5(path: Path):
    """Open an HDF5 file read-only, turning h5py's errors into a clear message."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        with open(path, "rb") as f:
            head = f.read(8)
        what = (
            "truncated or corrupt HDF5 file"
            if head == HDF5_MAGIC
            else "not an HDF5 file (no HDF5 signature)"
        )
        raise MicrographReadError(path, f"{what}: {exc}") from exc


def emd_flavour(h5) -> str | None:
    """``"velox"``, ``"ncem"`` or None for an open h5py File.

    Looks at a bounded number of objects and never follows links to other files.
    """
    version_dset = hard_get(h5, "Version") if "Version" in h5 and "Data" in h5 else None
    if version_dset is not None:
        try:
            version = json.loads(bytes(version_dset[0]).decode("utf-8"))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            version = {}
        if isinstance(version, dict) and version.get("format") in ("Velox", "DevelopersKit"):
            return "velox"
    if ncem_groups(h5):
        return "ncem"
    return None


def read_emd(path: Path) -> list[Micrograph]:
    """All images of a Velox or Berkeley EMD file."""
    with open_hdf5(path) as h5:
        flavour = emd_flavour(h5)
    if flavour == "velox":
        return _read_velox(path)
    if flavour == "ncem":
        return _read_ncem(path)
    raise MicrographReadError(
        path,
        "HDF5 file, but neither a Velox EMD (no Version/Data) nor "
        "a Berkeley EMD (no group with emd_group_type = 1)",
    )


def _read_velox(path: Path) -> list[Micrograph]:
    from rsciio.emd import file_reader

    try:
        signals = file_reader(str(path), lazy=True, select_type="images")
    except Exception as exc:  # rsciio raises many types on corrupt input
        raise MicrographReadError(
            path, f"corrupt Velox EMD file ({type(exc).__name__}: {exc})"
        ) from exc
    signals = [s for s in signals if s["data"].ndim >= 2]
    if not signals:
        raise MicrographReadError(path, "this Velox file holds no image (spectra only?)")
    with open_hdf5(path) as h5:
        # rosettasciio returns one signal per Data/Image group, in the group's key order.
        groups = list(h5["Data/Image"].keys()) if "Data/Image" in h5 else []
        if len(groups) != len(signals):
            groups = [None] * len(signals)
        series = [_velox_series(path, h5, g, sig) for g, sig in zip(groups, signals, strict=True)]
    out = []
    for sig, (data, per_frame) in zip(signals, series, strict=True):
        om = sig.get("original_metadata", {})
        title = str(sig.get("metadata", {}).get("General", {}).get("title", "")) or path.stem
        try:
            data, notes = displayable(eager_or_lazy(data))
        except (OSError, ValueError) as exc:
            raise MicrographReadError(path, f"cannot load the pixels of {title!r}: {exc}") from exc
        axes = rsciio_axes(sig["axes"], data.ndim, path)
        br = om.get("BinaryResult", {})
        try:
            size, offset = br["PixelSize"], br.get("Offset", {"x": 0, "y": 0})
            axes[-2] = FileAxis(
                float(size["height"]), float(offset["y"]), br.get("PixelUnitY", "m"), "y"
            )
            axes[-1] = FileAxis(
                float(size["width"]), float(offset["x"]), br.get("PixelUnitX", "m"), "x"
            )
            source = (
                f"Velox EMD metadata BinaryResult/PixelSize "
                f"({br.get('PixelUnitX', 'm')} → "
                f"{'1/nm' if '1/' in str(br.get('PixelUnitX')) else 'nm'})"
            )
        except (KeyError, TypeError, ValueError):
            notes.append(
                "no BinaryResult/PixelSize in the Velox metadata; used rosettasciio's axes"
            )
            source = "rosettasciio Velox axes"
        extra = {"title": title, "detector": br.get("Detector")}
        if data.ndim == 3:
            info = velox_frame_info(per_frame, br.get("Detector")) if per_frame else {}
            if info.get("time_axis") is not None:
                axes[0] = info["time_axis"]
            else:
                notes.append(
                    "no per-frame time stamps in the Velox metadata; the time step is "
                    "rosettasciio's (Scan/FrameTime, else the exposure time)"
                )
            notes += info.get("notes", [])
            extra.update(info.get("metadata", {}))
        name = path.stem if len(signals) == 1 else f"{path.stem} [{title}]"
        out.append(
            build_micrograph(
                data,
                axes,
                path=path,
                fmt="Velox EMD",
                name=name,
                pixel_size_source=source,
                original_metadata=om,
                extra=extra,
                notes=notes,
            )
        )
    return out


def _velox_series(path, h5, group_key, sig):
    """Frame-wise pixel data and per-frame metadata dicts of one Velox image group.

    rosettasciio chunks a lazy Velox stack as the HDF5 dataset is chunked (one frame
    per chunk in files Velox wrote, but "auto" cubes for contiguous data); here a stack
    is always read one frame at a time, ``Data[:, :, k]``.
    """
    data = sig["data"]
    if group_key is None or data.ndim != 3:
        return data, None
    group = h5["Data/Image"][group_key]
    dset = group.get("Data")
    if dset is None or dset.ndim != 3 or tuple(dset.shape) != (*data.shape[1:], data.shape[0]):
        return data, None
    per_frame = _velox_frame_metadata(group, data.shape[0])
    if dset.dtype.names:  # FFT/DPC compound pixels: keep rosettasciio's conversion
        return data, per_frame
    name = dset.name
    ny, nx, n = dset.shape
    stack = FrameStack(
        (n, ny, nx),
        dset.dtype,
        H5FrameRows(path, name, frames_last=True),
        token=(*file_token(path), "velox", name),
    )
    return lazy_frames(stack), per_frame


def _open_h5(path):
    import h5py

    return h5py.File(path, "r")


class H5FrameRows:
    """Reads rows r0..r1 of frame k of an HDF5 dataset (picklable, own file handle).

    ``frames_last``: the dataset is (y, x, frame) as Velox stores it; otherwise
    (..., y, x) with the flat frame index walking the leading axes in C order.
    """

    def __init__(self, path, name, *, frames_last=False):
        self.handle = SharedHandle(path, _open_h5)
        self.name, self.frames_last = name, frames_last

    def __call__(self, frame, r0, r1):
        def read(h5):
            dset = h5[self.name]
            if self.frames_last:
                return dset[r0:r1, :, frame]
            lead = np.unravel_index(frame, dset.shape[:-2])
            return dset[(*(int(i) for i in lead), slice(r0, r1), slice(None))]

        return self.handle.call(read)


def _velox_frame_metadata(group, n_frames: int) -> list[dict] | None:
    """One parsed metadata JSON per frame, or None when the file has only one.

    Velox keeps a JSON document per frame in the columns of ``Metadata`` (uint8,
    zero-padded); ``FrameLookupTable[k]`` is the column of frame ``k``.
    """
    md = group.get("Metadata")
    if md is None or md.ndim != 2 or md.shape[1] < 2:
        return None
    columns = list(range(n_frames))
    table = group.get("FrameLookupTable")
    if table is not None and table.shape == (n_frames,):
        lookup = np.asarray(table[()], dtype=np.int64)
        if lookup.min() >= 0 and lookup.max() < md.shape[1]:
            columns = lookup.tolist()
    if max(columns) >= md.shape[1]:
        return None
    parsed: dict[int, dict] = {}
    for c in sorted(set(columns)):
        raw = bytes(md[:, c]).rstrip(b"\x00")
        try:
            parsed[c] = json.loads(raw.decode("utf-8", errors="replace"))
        except ValueError:
            logger.info("unreadable Velox metadata column %d", c)
            return None
    return [parsed[c] for c in columns]


def velox_frame_info(per_frame: list[dict], detector: str | None = None) -> dict:
    """Time axis and magnification changes from Velox per-frame metadata.

    Parameters
    ----------
    per_frame : list of dict
        The parsed metadata JSON of each frame (as in ``Data/Image/*/Metadata``).
    detector : str, optional
        ``BinaryResult/Detector`` of the image (e.g. ``"BM-Ceta"``): the time stamp is
        ``CustomProperties["Detectors[<detector>].TimeStamp"]`` (µs since 1970),
        falling back to the only ``…TimeStamp`` property present.

    Returns
    -------
    dict
        ``time_axis`` (FileAxis in s, or None), ``notes`` (list of str) and
        ``metadata`` (``frame_times_s``, ``frame_interval_s``, ``frame_times_source``,
        ``calibration_changes``; only those found).
    """
    out: dict = {"time_axis": None, "notes": [], "metadata": {}}
    stamps = [_velox_timestamp(md, detector) for md in per_frame]
    if stamps and all(s is not None for s in stamps):
        key, first = stamps[0]
        # Differences in µs first: µs since 1970 as float64 seconds keep only ~0.2 µs.
        axis, extra, notes = frame_times(
            [(value - first) * 1e-6 for _, value in stamps],
            source=f"Velox CustomProperties {key} (µs)",
        )
        out["time_axis"] = axis
        out["metadata"].update(extra)
        out["notes"] += notes
    sizes = []
    for md in per_frame:
        br = md.get("BinaryResult", {}) if isinstance(md, dict) else {}
        try:
            unit = parse_unit(br.get("PixelUnitX", "m"))
            scale = [
                float(br["PixelSize"]["height"]) * unit.factor,
                float(br["PixelSize"]["width"]) * unit.factor,
            ]
        except (KeyError, TypeError, ValueError):
            sizes = []
            break
        entry = {"scale": scale, "units": unit.canonical}
        mag = md.get("Optics", {}).get("NominalMagnification")
        if mag is not None:
            entry["magnification"] = _as_float(mag)
        sizes.append(entry)
    changes = calibration_changes(sizes)
    if changes:
        out["metadata"]["calibration_changes"] = changes
    return out


def _velox_timestamp(md, detector):
    custom = md.get("CustomProperties", {}) if isinstance(md, dict) else {}
    keys = [f"Detectors[{detector}].TimeStamp"] if detector else []
    found = [k for k in custom if k.endswith(".TimeStamp")]
    keys += found if len(found) == 1 else []
    for key in keys:
        try:
            return key, float(custom[key]["value"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _as_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _attrs(obj, vlen_ok: bool) -> dict:
    """An object's attributes; variable-length ones only when ``vlen_ok``."""
    import h5py

    out = {}
    for key in obj.attrs:
        dtype = obj.attrs.get_id(key).dtype
        if not vlen_ok and (dtype.kind == "O" or h5py.check_vlen_dtype(dtype) is not None):
            continue
        out[key] = obj.attrs[key]
    return out


def _attr_str(obj, key) -> str:
    value = obj.attrs.get(key, b"")
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _axis_letter(name: str) -> str | None:
    # "Y", "y", "R_y", "Ry", "Q_x", "kx" -> the spatial letter, else None
    match = re.fullmatch(r"(?:[a-z]_?)?([xyz])", name.strip().lower())
    return match.group(1) if match else None


def _read_ncem(path: Path) -> list[Micrograph]:
    h5 = open_hdf5(path)
    out = []
    try:
        for group_name in ncem_groups(h5, limit=CHECK_LIMIT, depth=8):
            group = h5[group_name]
            candidates = [
                k
                for k in group
                if not re.fullmatch(r"dim\d+", k)
                and hasattr(group[k], "shape")
                and group[k].ndim >= 1
                and _numeric(group[k].dtype)
            ]
            datasets = [k for k in candidates if f"dim{group[k].ndim}" in group]
            if not datasets:
                continue
            key = "data" if "data" in datasets else datasets[0]
            dset = group[key]
            if dset.ndim < 2:
                logger.info("%s: skipped 1-D EMD group %s", path.name, group_name)
                continue
            if dset.ndim > 3:
                logger.info(
                    "%s: skipped %d-D EMD group %s (4-D STEM is not an image)",
                    path.name,
                    dset.ndim,
                    group_name,
                )
                continue
            out.append(_ncem_image(path, h5, group_name, group, dset))
    except MicrographReadError:
        h5.close()
        raise
    except Exception as exc:  # h5py raises many types on corrupt datasets
        h5.close()
        raise MicrographReadError(
            path, f"corrupt Berkeley EMD file ({type(exc).__name__}: {exc})"
        ) from exc
    if not any(hasattr(m.data, "dask") for m in out):
        h5.close()
    if not out:
        raise MicrographReadError(path, "no 2-D or 3-D image in this Berkeley EMD file")
    if len(out) > 1:
        for m in out:
            m.name = f"{path.stem} [{m.metadata['title']}]"
    return out


def _numeric(dtype) -> bool:
    """Pixel types that are an image: numbers, not strings or compound records."""
    return np.dtype(dtype).kind in "biufc"


def _ncem_axis(path, group, i: int, notes: list) -> FileAxis:
    """Axis ``i`` (1-based) from ``dim<i>``; uncalibrated when its values give no step."""
    dim = group[f"dim{i}"]
    name, unit = _attr_str(dim, "name"), _attr_str(dim, "units")
    try:
        values = np.asarray(dim[()], dtype=float).ravel()
    except (TypeError, ValueError):
        values = np.array([])
    step = float(values[1] - values[0]) if values.size > 1 else math.nan
    if not (math.isfinite(step) and step > 0):
        notes.append(
            f"dim{i} ({name or 'unnamed'}) holds {values.size} value(s) that give no "
            "positive finite step: that axis is uncalibrated"
        )
        return FileAxis(math.nan, 0.0, unit, name)
    if values.size > 2 and not np.allclose(np.diff(values), step, rtol=1e-4):
        logger.warning("%s: dim%d is not evenly spaced; using its first step", path, i)
    return FileAxis(step, float(values[0]), unit, name)


def _ncem_image(path, h5, group_name, group, dset) -> Micrograph:
    notes = []
    file_axes = [_ncem_axis(path, group, i, notes) for i in range(1, dset.ndim + 1)]
    letters = [_axis_letter(a.name) for a in file_axes]
    order = list(range(dset.ndim))
    if "x" in letters and "y" in letters and letters.count("x") == letters.count("y") == 1:
        iy, ix = letters.index("y"), letters.index("x")
        order = [i for i in order if i not in (iy, ix)] + [iy, ix]
    if order != list(range(dset.ndim)):
        notes.append(
            f"axes reordered from the file's (dim1..dim{dset.ndim}) = "
            f"{[a.name for a in file_axes]} to put y before x"
        )
    if dset.ndim == 2 and dset.nbytes <= 512 * 2**20:
        data = dset[()]
    else:
        import dask.array as da

        # One chunk per frame after the axes are put in (..., y, x) order.
        image_axes = set(order[-2:])
        chunks = tuple(n if i in image_axes else 1 for i, n in enumerate(dset.shape))
        data = da.from_array(dset, chunks=chunks)
    data = np.transpose(data, order) if order != list(range(dset.ndim)) else data
    data, conv = displayable(eager_or_lazy(data))
    axes = [file_axes[i] for i in order]
    title = group_name.rsplit("/", 1)[-1]
    # Text attributes of variable length are read from the file's global heaps, on
    # which HDF5 can loop for minutes when they are corrupt: checked first.
    vlen_ok = global_heaps_consistent(path) is True
    if not vlen_ok:
        notes.append("variable-length text attributes not read (corrupt or unchecked heaps)")
    om = {"group": group_name, "attrs": _attrs(group, vlen_ok)}
    for key in ("microscope", "sample", "user", "comments", "stage"):
        obj = hard_get(h5, key)
        if obj is not None:
            om[key] = _attrs(obj, vlen_ok)
    om["root"] = _attrs(h5, vlen_ok)
    units = sorted({str(a.unit) for a in axes[-2:]})
    return build_micrograph(
        data,
        axes,
        path=path,
        fmt="Berkeley EMD",
        name=path.stem,
        pixel_size_source=f"Berkeley EMD {group_name}/dim* datasets (units {', '.join(units)} "
        "→ nm)",
        original_metadata=om,
        extra={"title": title, "file_axis_order": [a.name for a in file_axes]},
        notes=notes + conv,
    )
