"""FEI TIA ES Vision ``.emi`` + ``.ser``, through rosettasciio, with its traps fixed.

rosettasciio (0.15) converts ``CalibrationDelta`` from m to nm but leaves
``CalibrationOffset`` in metres while calling it nm; when a ``.ser`` is opened on its
own it cannot know that a diffraction pattern is in 1/m and multiplies it by 1e9 as if
it were metres. Here the image calibration is recomputed from the raw ``.ser`` header
values (SI units: m or 1/m) and the real/reciprocal decision is taken from the
``.emi`` Mode string.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _arrays
from ._arrays import FrameStack, displayable, eager_or_lazy, file_token, lazy_frames
from ._calibration import FileAxis, build_micrograph, calibration_changes, rsciio_axes
from ._micrograph import Micrograph, MicrographReadError, corrupt_file_errors
from ._units import parse_unit

logger = logging.getLogger(__name__)

SER_MAGIC = (b"II\x97\x01",)  # little-endian byte order mark, SeriesID 0x0197


def emi_for_ser(ser: Path) -> Path | None:
    """The ``.emi`` that belongs to ``name_N.ser`` (``name.emi`` beside it), if any."""
    match = re.match(r"^(?P<stem>.+)_\d+$", ser.stem)
    if not match:
        return None
    for ext in (".emi", ".EMI"):
        emi = ser.with_name(match["stem"] + ext)
        if emi.is_file():
            return emi
    return None


def decide_reciprocal(mode: str | None, acquire_info: dict | None, delta_si: float):
    """Whether a TIA image is in reciprocal space, and why.

    TIA writes the pixel size in SI units without saying m or 1/m. The .emi Mode
    string decides: ``"TEM … Diffraction"`` is a diffraction pattern (1/m); STEM
    Mode strings also end in "Diffraction" (the projector is in diffraction mode while
    scanning) but a STEM detector image is real space — unless it was recorded on a
    camera (``CameraNamePath``), which is then a CBED/Ronchigram. Without a Mode
    string the magnitude decides: a real-space pixel of 1 m or more is impossible.

    Returns
    -------
    reciprocal : bool
    reason : str
    """
    magnitude_says = delta_si >= 1.0
    if mode:
        words = mode.split()
        camera = bool(acquire_info) and "CameraNamePath" in acquire_info
        if words and words[0].upper() == "STEM":
            reciprocal = camera
            reason = f"Mode {mode.strip()!r}: STEM " + (
                "recorded on a camera (CameraNamePath) = reciprocal"
                if camera
                else "detector image = real space"
            )
        else:
            reciprocal = "diffraction" in mode.lower()
            reason = f"Mode {mode.strip()!r}: TEM " + ("diffraction" if reciprocal else "image")
        if reciprocal != magnitude_says:
            logger.warning(
                "TIA %s contradicts the pixel size %g (SI); trusting the Mode", reason, delta_si
            )
        return reciprocal, reason
    reason = f"no .emi Mode string; pixel size {delta_si:g} in SI units is " + (
        "≥ 1, so 1/m (reciprocal)" if magnitude_says else "< 1, so m (real space)"
    )
    return magnitude_says, reason


def read_tia(path: Path) -> list[Micrograph]:
    """All images of an .emi (one per .ser), or the one image of a .ser.

    A .ser holding a series of images (an in-situ movie) is read here, frame by frame:
    rosettasciio reads every element of a .ser into memory when it opens it, even
    with ``lazy=True``.
    """
    path = Path(path)
    if path.suffix.lower() == ".emi":
        emi = path
        numbered = path.parent.glob(f"{glob_escape(path.stem)}_[0-9]*.ser")
        sers = sorted(
            (p for p in numbered if p.stem.rsplit("_", 1)[1].isdigit()),
            key=lambda p: int(p.stem.rsplit("_", 1)[1]),
        )
        if not sers:
            raise MicrographReadError(
                path,
                f"no .ser data file beside it (expected "
                f"{path.stem}_1.ser); TIA keeps the pixels there",
            )
    else:
        _check_ser_header(path)
        emi, sers = emi_for_ser(path), [path]
    for ser in sers:
        if not ser.is_file():
            raise MicrographReadError(
                path, f"{ser.name} is not a regular file (a pipe, socket or device?)"
            )
    layouts = {ser: _series_layout(ser) for ser in sers}
    if not any(layouts.values()):
        return _read_with_rsciio(path, emi)
    multi = len(sers) > 1
    out = []
    for ser in sers:
        info = _emi_object(emi, ser) if emi is not None else {}
        if layouts[ser] is not None:
            out.append(_series(path, ser, layouts[ser], info, emi, multi=multi))
            continue
        (sig,) = _rsciio_signals(ser, ser)
        sig.setdefault("original_metadata", {}).update(info)
        out.append(_one(path, ser.name, sig, emi, multi=multi))
    return out


def _rsciio_signals(path: Path, source: Path) -> list[dict]:
    from rsciio.tia import file_reader

    with corrupt_file_errors(path, "TIA"):
        return file_reader(str(source), lazy=True)


def _read_with_rsciio(path: Path, emi: Path | None) -> list[Micrograph]:
    wanted = path.name if path.suffix.lower() == ".ser" else None
    if emi is not None:
        signals = _rsciio_signals(path, emi)
        if wanted is not None:
            signals = [
                s for s in signals if s["metadata"]["General"].get("original_filename") == wanted
            ]
        if not signals:
            # The .emi reader silently skips .ser files it cannot read.
            if wanted is None:
                raise MicrographReadError(path, "none of its .ser files holds an image")
            signals = _rsciio_signals(path, path)
    else:
        signals = _rsciio_signals(path, path)
    out = []
    for sig in signals:
        ser_name = sig["metadata"]["General"].get("original_filename", path.name)
        out.append(_one(path, ser_name, sig, emi, multi=len(signals) > 1))
    return out


def _emi_object(emi: Path, ser: Path) -> dict:
    """The .emi's ``ObjectInfo`` for ``name_N.ser`` (the N-th object), or {}."""
    from rsciio.tia._api import convert_xml_to_dict, get_xml_info_from_emi

    try:
        index = int(ser.stem.rsplit("_", 1)[1]) - 1
        objects = get_xml_info_from_emi(str(emi))
        if not 0 <= index < len(objects):
            return {}
        return convert_xml_to_dict(objects[index]).to_dict()
    except (OSError, ValueError, IndexError, SyntaxError) as exc:
        logger.info("%s: no metadata for %s (%s)", emi.name, ser.name, exc)
        return {}


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a file stem."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _check_ser_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in SER_MAGIC:
        raise MicrographReadError(
            path, "not a TIA .ser file (bad byte-order mark / series ID in the first 4 bytes)"
        )


def _one(path: Path, ser_name: str, sig: dict, emi: Path | None, *, multi: bool) -> Micrograph:
    om = sig.get("original_metadata", {})
    hdr = om.get("ser_header_parameters", {})
    data = sig["data"]
    if data.ndim < 2:
        raise MicrographReadError(
            path, f"{ser_name} holds {data.ndim}-D data (a spectrum), not an image"
        )
    try:
        raw = {
            k: float(np.ravel(hdr[k])[0])
            for k in (
                "CalibrationDeltaX",
                "CalibrationDeltaY",
                "CalibrationOffsetX",
                "CalibrationOffsetY",
            )
        }
        elem = {
            k: float(np.ravel(hdr.get(k, 0))[0])
            for k in ("CalibrationElementX", "CalibrationElementY")
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise MicrographReadError(
            path,
            f"{ser_name} has no image calibration in its header "
            f"(it is not an image series?): {exc}",
        ) from exc
    mode, reciprocal, reason = _space(om.get("ObjectInfo", {}), raw["CalibrationDeltaX"])
    unit = "1/m" if reciprocal else "m"
    try:
        data = eager_or_lazy(data)
    except (OSError, ValueError) as exc:
        raise MicrographReadError(path, f"cannot load the pixels of {ser_name}: {exc}") from exc
    data, notes = displayable(data)
    axes = rsciio_axes(sig["axes"], data.ndim, path)
    # rsciio flips the rows (TIA stores them bottom-up) and keeps the offset of the y
    # axis, and so do we.
    calibration = {**raw, **elem}
    axes[-2] = _image_axis(calibration, "y", unit)
    axes[-1] = _image_axis(calibration, "x", unit)
    notes.append(f"real/reciprocal space from {reason}")
    notes.append(
        "offsets converted from SI units like the pixel size (rosettasciio 0.15 "
        "leaves them in metres)"
    )
    extra = _ser_extra(ser_name, emi, mode)
    times = np.ravel(hdr.get("Time", [])) if "Time" in hdr else np.array([])
    if data.ndim == 3 and times.size == data.shape[0]:
        extra["frame_times_s"] = (times.astype(float) - float(times[0])).tolist()
    return _ser_micrograph(
        data, axes, path, ser_name, emi, om, extra, notes, multi=multi, reciprocal=reciprocal
    )


def _space(object_info: dict, delta_x: float) -> tuple:
    """TIA mode, whether the series is in reciprocal space, why, from its ObjectInfo."""
    mode = object_info.get("ExperimentalDescription", {}).get("Mode")
    reciprocal, reason = decide_reciprocal(mode, object_info.get("AcquireInfo"), abs(delta_x))
    return mode, reciprocal, reason


def _image_axis(calibration, letter: str, unit: str) -> FileAxis:
    """Image axis ``letter`` ("y" or "x") from a TIA calibration record.

    Pixel i is at Offset + (i - Element) * Delta; the first pixel's position is the
    translate.
    """
    up = letter.upper()
    delta = float(calibration[f"CalibrationDelta{up}"])
    element = float(calibration[f"CalibrationElement{up}"])
    return FileAxis(
        delta, float(calibration[f"CalibrationOffset{up}"]) - element * delta, unit, letter
    )


def _ser_extra(ser_name: str, emi: Path | None, mode) -> dict:
    """The reader metadata every TIA series records."""
    return {
        "ser_file": ser_name,
        "emi_file": emi.name if emi else None,
        "tia_mode": mode,
        "rows_flipped": True,
    }


def _ser_micrograph(
    data, axes, path: Path, ser_name: str, emi, om, extra, notes, *, multi, reciprocal
):
    """The Micrograph of one .ser series, named after it (or after the file opened).

    ``om``, ``extra``, ``notes``: its original metadata, reader metadata and notes.
    """
    if emi is None:
        notes.append("no .emi beside the .ser: microscope metadata unavailable")
    unit = "1/m" if reciprocal else "m"
    name = Path(ser_name).stem if multi or path.suffix.lower() == ".ser" else path.stem
    return build_micrograph(
        data,
        axes,
        path=path,
        fmt="TIA SER",
        name=name,
        pixel_size_source=f"TIA .ser CalibrationDelta ({unit} → {'1/nm' if reciprocal else 'nm'})",
        original_metadata=om,
        extra=extra,
        notes=notes,
    )


# TIA element header of a 2-D image (packed, little-endian), followed by the pixels.
_ELEMENT = np.dtype(
    [
        ("CalibrationOffsetX", "<f8"),
        ("CalibrationDeltaX", "<f8"),
        ("CalibrationElementX", "<i4"),
        ("CalibrationOffsetY", "<f8"),
        ("CalibrationDeltaY", "<f8"),
        ("CalibrationElementY", "<i4"),
        ("DataType", "<i2"),
        ("ArraySizeX", "<i4"),
        ("ArraySizeY", "<i4"),
    ]
)
_PIXEL_TYPES = {
    1: "<u1",
    2: "<u2",
    3: "<u4",
    4: "<i1",
    5: "<i2",
    6: "<i4",
    7: "<f4",
    8: "<f8",
    9: "<c8",
    10: "<c16",
}
_IMAGE_SERIES = 0x4122
_TIME_TAGS = (0x4152, 0x4142)


@dataclass
class SerLayout:
    """Where the frames of a TIA image series are, and what each frame's header says."""

    header: dict
    dims: list
    data_offsets: np.ndarray  # byte offset of each frame's pixels
    elements: np.ndarray  # per-frame calibration (_ELEMENT)
    times: np.ndarray | None  # per-frame Time tag, s since 1970 (1-s resolution)
    shape: tuple
    dtype: np.dtype


def _series_layout(path: Path) -> SerLayout | None:
    """Layout of a .ser that holds a 1-D series of two or more 2-D images, else None.

    Reads the header, the offset arrays and the 50-byte header and time tag of every
    element (the layout in Boothroyd's description of the format, as rosettasciio
    reads it), never the pixels.
    """
    with open(path, "rb") as f:
        head = f.read(34)
        if len(head) < 30:
            return None
        _, _, version, data_type, tag_type, total, valid = struct.unpack_from("<HHHIIII", head)
        if data_type != _IMAGE_SERIES or valid < 2:
            return None
        if version <= 0x210:
            offset_array, ndim = struct.unpack_from("<II", head, 22)
            pos, offset_type = 30, "<u4"
        else:
            offset_array, ndim = struct.unpack_from("<QI", head, 22)
            pos, offset_type = 34, "<u8"
        if ndim != 1:
            return None  # a map of images (4-D STEM), not a movie: left to rosettasciio
        f.seek(pos)
        dims = []
        for _ in range(ndim):
            size, cal_offset, cal_delta, cal_element, n_desc = struct.unpack("<IddiI", f.read(28))
            desc = f.read(min(n_desc, 4096)).decode("latin-1")
            f.seek(f.tell() + max(0, n_desc - 4096))
            (n_units,) = struct.unpack("<I", f.read(4))
            units = f.read(min(n_units, 4096)).decode("latin-1")
            dims.append(
                {
                    "size": size,
                    "offset": cal_offset,
                    "delta": cal_delta,
                    "element": cal_element,
                    "description": desc,
                    "units": units,
                }
            )
        size = f.seek(0, 2)
        itemsize = np.dtype(offset_type).itemsize
        if valid > total:
            raise MicrographReadError(
                path,
                f"corrupt TIA .ser header: ValidNumberElements {valid} > "
                f"TotalNumberElements {total}",
            )
        if offset_array + 2 * total * itemsize > size:
            raise MicrographReadError(
                path,
                f"truncated or corrupt TIA .ser file: its offset table of {total} elements "
                f"at byte {offset_array} does not fit in the file's {size} bytes",
            )
        f.seek(offset_array)
        offsets = np.frombuffer(f.read(2 * total * itemsize), offset_type)
        if offsets.size != 2 * total:
            raise MicrographReadError(path, "truncated TIA .ser file: the offset table is cut")
        data_offsets = offsets[:valid].astype(np.int64)
        tag_offsets = offsets[total : total + valid].astype(np.int64)
        if valid and (data_offsets.max() >= size or tag_offsets.max() >= size):
            raise MicrographReadError(
                path,
                f"truncated or corrupt TIA .ser file: element offsets point past its {size} bytes",
            )
        elements = np.empty(valid, _ELEMENT)
        times = np.empty(valid, np.float64) if tag_type in _TIME_TAGS else None
        for k in range(valid):
            f.seek(int(data_offsets[k]))
            raw = f.read(_ELEMENT.itemsize)
            if len(raw) < _ELEMENT.itemsize:
                raise MicrographReadError(path, f"truncated TIA .ser file: frame {k} is missing")
            elements[k] = np.frombuffer(raw, _ELEMENT)[0]
            if times is not None:
                f.seek(int(tag_offsets[k]))
                tag = f.read(8)
                times[k] = struct.unpack("<HHI", tag)[2] if len(tag) == 8 else np.nan
    first = elements[0]
    shape = (int(first["ArraySizeY"]), int(first["ArraySizeX"]))
    if min(shape) < 1:
        raise MicrographReadError(path, f"the TIA .ser frames are empty (ArraySize {shape})")
    code = int(first["DataType"])
    if code not in _PIXEL_TYPES:
        raise MicrographReadError(path, f"unknown TIA pixel type {code}")
    for name in ("ArraySizeX", "ArraySizeY", "DataType"):
        odd = np.flatnonzero(elements[name] != first[name])
        if odd.size:
            raise MicrographReadError(
                path,
                f"frame {int(odd[0])} of the series has {name} {int(elements[name][odd[0]])}, "
                f"frame 0 has {int(first[name])}; frames of different sizes or types",
            )
    dtype = np.dtype(_PIXEL_TYPES[code])
    end = int(data_offsets.max()) + _ELEMENT.itemsize + shape[0] * shape[1] * dtype.itemsize
    if end > size:
        raise MicrographReadError(
            path, f"truncated TIA .ser file: the frames end at byte {end} but it has {size}"
        )
    header = {
        "SeriesVersion": version,
        "DataTypeID": data_type,
        "TagTypeID": tag_type,
        "TotalNumberElements": total,
        "ValidNumberElements": valid,
    }
    return SerLayout(header, dims, data_offsets + _ELEMENT.itemsize, elements, times, shape, dtype)


class _SerRows:
    """Reads rows r0..r1 of frame k of a TIA series, rows flipped (picklable).

    TIA stores rows bottom-up; like rosettasciio (and TIA's display) row 0 of the
    result is the last stored row.
    """

    def __init__(self, path, offsets, shape, dtype):
        self.path, self.offsets = path, offsets
        self.ny, self.nx = shape
        self.dtype = dtype

    def __call__(self, frame, r0, r1):
        out = np.empty((r1 - r0, self.nx), self.dtype)
        first_stored = self.ny - r1  # stored rows ny-r1 .. ny-r0, read at once
        row_bytes = self.nx * self.dtype.itemsize
        _arrays.read_exact(self.path, int(self.offsets[frame]) + first_stored * row_bytes, out)
        out = out[::-1]
        return out if self.dtype.isnative else out.astype(self.dtype.newbyteorder("="))


def _series(path: Path, ser: Path, layout: SerLayout, info: dict, emi, *, multi) -> Micrograph:
    first = layout.elements[0]
    mode, reciprocal, reason = _space(
        info.get("ObjectInfo", {}), float(first["CalibrationDeltaX"])
    )
    unit = "1/m" if reciprocal else "m"
    n = len(layout.elements)
    stack = FrameStack(
        (n, *layout.shape),
        layout.dtype.newbyteorder("="),
        _SerRows(ser, layout.data_offsets, layout.shape, layout.dtype),
        token=(*file_token(ser), "tia series"),
    )
    data, notes = displayable(lazy_frames(stack))
    extra = _ser_extra(ser.name, emi, mode)
    time_axis = FileAxis(1.0, 0.0, None, "frame")
    dim = layout.dims[0] if len(layout.dims) == 1 else None
    if dim is not None and parse_unit(dim["units"]).kind == "time" and dim["delta"] > 0:
        time_axis = FileAxis(dim["delta"], dim["offset"], dim["units"], dim["description"])
    if layout.times is not None and np.all(np.isfinite(layout.times)):
        rel = layout.times - layout.times[0]
        if np.all(np.diff(rel) >= 0) and rel[-1] > 0:
            extra["frame_times_s"] = rel.tolist()
            extra["frame_times_source"] = "TIA .ser Time tags (1-s resolution)"
            if time_axis.name == "frame":
                interval = float(rel[-1]) / (n - 1)
                time_axis = FileAxis(interval, 0.0, "s", "time")
                extra["frame_interval_s"] = interval
                notes.append(
                    "TIA time tags have a 1-s resolution: the time step is the mean "
                    f"interval (last − first)/(n − 1) = {interval:.4g} s"
                )
    factor = parse_unit(unit).factor
    changes = calibration_changes(
        [
            {
                "scale": [
                    float(el["CalibrationDeltaY"]) * factor,
                    float(el["CalibrationDeltaX"]) * factor,
                ],
                "units": "1/nm" if reciprocal else "nm",
            }
            for el in layout.elements
        ]
    )
    if changes:
        extra["calibration_changes"] = changes
    notes.append(f"real/reciprocal space from {reason}")
    notes.append("series read frame by frame from the .ser offset table")
    om = {"ser_header_parameters": {**layout.header, "dimensions": layout.dims}, **info}
    axes = [time_axis, _image_axis(first, "y", unit), _image_axis(first, "x", unit)]
    return _ser_micrograph(
        data, axes, path, ser.name, emi, om, extra, notes, multi=multi, reciprocal=reciprocal
    )
