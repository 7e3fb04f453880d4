"""Turn per-axis (scale, offset, unit) as stored in a file into a :class:`Micrograph`."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ._micrograph import Micrograph, MicrographReadError, jsonable
from ._units import FRAME, NM, PX, RECIPROCAL_NM, SECOND, parse_unit

__all__ = ["FileAxis", "build_micrograph", "rsciio_axes"]

logger = logging.getLogger(__name__)


@dataclass
class FileAxis:
    """One axis as the file states it, before unit conversion."""

    scale: float = 1.0
    offset: float = 0.0
    unit: object = None
    name: str = ""


def rsciio_axes(axes: list, ndim: int, path) -> list[FileAxis]:
    """Axes of a rosettasciio signal dictionary, in array order.

    rosettasciio gives ``size`` as a string for some TIA files and ``index_in_array``
    only for some formats, so neither is trusted for anything but ordering.
    """
    if len(axes) != ndim:
        raise MicrographReadError(
            path, f"the file describes {len(axes)} axes for {ndim}-dimensional data"
        )
    if all("index_in_array" in a for a in axes):
        axes = sorted(axes, key=lambda a: int(a["index_in_array"]))
    return [
        FileAxis(
            scale=_float(a.get("scale", 1.0)),
            offset=_float(a.get("offset", 0.0)),
            unit=a.get("units"),
            name=str(a.get("name") or ""),
        )
        for a in axes
    ]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _valid(scale: float) -> bool:
    return math.isfinite(scale) and scale > 0


def build_micrograph(
    data,
    axes: list[FileAxis],
    *,
    path,
    fmt: str,
    name: str,
    pixel_size_source: str,
    original_metadata=None,
    extra: dict | None = None,
    notes: list | None = None,
) -> Micrograph:
    """Convert file axes to nm / nm⁻¹ / s and assemble a :class:`Micrograph`.

    The two last axes are the image (y, x). They count as calibrated only when both
    have a positive, finite scale and both are lengths, or both reciprocal lengths;
    anything else (no unit, a negative "uncalibrated" sentinel, an unknown unit) gives
    1 px per pixel, and the reason is added to ``metadata["notes"]``.

    Parameters
    ----------
    data : array-like
        Pixel data, shape ``(..., y, x)``.
    axes : list of FileAxis
        One per axis of ``data``, in array order, in the file's own units.
    path : str or Path
        Source file (for messages and metadata).
    fmt, name, pixel_size_source : str
        Format label, layer name, where the pixel size came from.
    original_metadata : object, optional
        The file's metadata tree; converted with :func:`jsonable`.
    extra : dict, optional
        More metadata entries.
    notes : list of str, optional
        Corrections applied, shown to the user in ``metadata["notes"]``.
    """
    ndim = len(data.shape)
    if ndim < 2:
        raise MicrographReadError(path, f"{name!r} is {ndim}-D, not an image")
    if len(axes) != ndim:
        raise MicrographReadError(path, f"{len(axes)} axis calibrations for {ndim}-D data")
    notes = list(notes or [])
    scale, translate, units = [], [], []
    infos = [parse_unit(a.unit) for a in axes]

    y, x = axes[-2:]
    iy, ix = infos[-2:]
    spatial_ok = _valid(y.scale) and _valid(x.scale)
    if spatial_ok and iy.kind == ix.kind == "length":
        calibrated, reciprocal = True, False
    elif spatial_ok and iy.kind == ix.kind == "reciprocal":
        calibrated, reciprocal = True, True
    else:
        calibrated, reciprocal = False, False
        if not spatial_ok and (iy.kind != "none" or ix.kind != "none"):
            notes.append(
                f"the file's pixel size ({y.scale:g} {y.unit}, {x.scale:g} {x.unit}) "
                "is not positive, which marks an uncalibrated image; using px"
            )
        elif iy.kind != "none" or ix.kind != "none":
            notes.append(
                f"image axes in units {y.unit!r}, {x.unit!r} are not lengths or "
                "reciprocal lengths; using px"
            )

    for i, (axis, info) in enumerate(zip(axes, infos, strict=True)):
        if i >= ndim - 2:
            if calibrated:
                scale.append(axis.scale * info.factor)
                translate.append(_finite(axis.offset) * info.factor + 0.0)
                units.append(RECIPROCAL_NM if reciprocal else NM)
            else:
                scale.append(1.0)
                translate.append(0.0)
                units.append(PX)
        elif _valid(axis.scale) and info.kind in ("length", "reciprocal", "time"):
            scale.append(axis.scale * info.factor)
            translate.append(_finite(axis.offset) * info.factor + 0.0)
            units.append({"length": NM, "reciprocal": RECIPROCAL_NM, "time": SECOND}[info.kind])
        elif _valid(axis.scale) and info.kind == "unknown":
            scale.append(axis.scale)
            translate.append(_finite(axis.offset) + 0.0)
            units.append(info.canonical)
        else:
            scale.append(1.0)
            translate.append(0.0)
            units.append(FRAME)

    metadata = {
        "format": fmt,
        "source_path": str(Path(path).resolve()),
        "pixel_size_source": pixel_size_source
        if calibrated
        else (
            "none (no calibration in the file)"
            if pixel_size_source == "none"
            else f"none (the file's {pixel_size_source} is not a usable calibration)"
        ),
        "calibrated": calibrated,
        "reciprocal": reciprocal,
        "file_axes": [
            {
                "name": a.name,
                "scale": jsonable(a.scale),
                "offset": jsonable(a.offset),
                "units": jsonable(a.unit),
            }
            for a in axes
        ],
        "notes": notes,
    }
    if extra:
        metadata.update(jsonable(extra))
    metadata["original_metadata"] = jsonable(original_metadata or {})
    for note in notes:
        logger.info("%s: %s", Path(path).name, note)
    return Micrograph(
        data=data,
        scale=tuple(scale),
        translate=tuple(translate),
        units=tuple(units),
        calibrated=calibrated,
        reciprocal=reciprocal,
        name=name,
        metadata=metadata,
    )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
