"""Turn per-axis (scale, offset, unit) as stored in a file into a :class:`Micrograph`."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._micrograph import Micrograph, MicrographReadError, jsonable
from ._units import FRAME, NM, PX, RECIPROCAL_NM, SECOND, parse_unit

__all__ = ["FileAxis", "build_micrograph", "calibration_changes", "frame_times", "rsciio_axes"]

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

    changes = (extra or {}).get("calibration_changes") or []
    if changes:
        first = changes[0]
        ratio = first.get("relative_to_frame_0")
        ratio = f"{ratio:.4g}" if isinstance(ratio, float) else str(ratio)
        notes.append(
            f"the pixel size changes in {len(changes)} frame(s), first at frame "
            f"{first['frame']} (× {ratio}, a magnification change?); the layer's "
            "scale is frame 0's, see metadata['calibration_changes']"
        )
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


# Two frames have "the same" pixel size when they agree to this relative tolerance
# (calibrations are stored as floats, often re-computed from a magnification).
CALIBRATION_RTOL = 1e-6


def frame_times(times_s, *, source: str) -> tuple[FileAxis | None, dict, list[str]]:
    """Time axis and metadata from per-frame time stamps.

    Parameters
    ----------
    times_s : sequence of float
        One time stamp per frame in s (any origin: only differences are used).
    source : str
        Where the stamps come from, for ``metadata["frame_times_source"]``.

    Returns
    -------
    axis : FileAxis or None
        ``scale`` = median frame interval in s (napari needs one step; the exact
        stamps are in the metadata). None when the stamps are not usable (not finite,
        decreasing, or all equal).
    extra : dict
        ``frame_times_s`` (relative to the first frame), ``frame_interval_s`` and
        ``frame_times_source``; empty when the stamps are not usable.
    notes : list of str
        Irregular intervals or unusable stamps, for ``metadata["notes"]``.
    """
    t = np.asarray(times_s, dtype=float).ravel()
    if t.size < 2:
        return None, {}, []
    rel = t - t[0]
    steps = np.diff(rel)
    if not np.all(np.isfinite(rel)) or np.any(steps < 0) or rel[-1] <= 0:
        return None, {}, [f"per-frame time stamps from {source} are not increasing; ignored"]
    interval = float(np.median(steps))
    if interval <= 0:
        interval = float(rel[-1] / (t.size - 1))
    notes = []
    if np.max(np.abs(steps - interval)) > 0.05 * interval:
        notes.append(
            f"frame intervals vary from {steps.min():.6g} to {steps.max():.6g} s; the "
            f"time axis step is the median {interval:.6g} s, exact times in "
            "metadata['frame_times_s']"
        )
    extra = {
        "frame_times_s": rel.tolist(),
        "frame_interval_s": interval,
        "frame_times_source": source,
    }
    return FileAxis(interval, 0.0, "s", "time"), extra, notes


def calibration_changes(per_frame, *, reference=None) -> list[dict]:
    """Frames whose pixel size differs from the first frame's (magnification changes).

    Parameters
    ----------
    per_frame : sequence of dict
        One per frame, each with ``"scale"`` = (y, x) pixel size in the unit of
        ``"units"``, plus anything worth reporting (``"magnification"``, ``"file"``).
    reference : dict, optional
        The entry to compare with; default the first one.

    Returns
    -------
    list of dict
        ``{"frame": k, **per_frame[k], "relative_to_frame_0": sx / sx0}`` for every
        frame whose scale or units differ from the reference (rel. tol.
        :data:`CALIBRATION_RTOL`).
    """
    if not per_frame:
        return []
    ref = reference if reference is not None else per_frame[0]
    ref_scale = tuple(float(v) for v in ref["scale"])
    out = []
    for k, entry in enumerate(per_frame):
        scale = tuple(float(v) for v in entry["scale"])
        same = entry.get("units") == ref.get("units") and all(
            math.isclose(a, b, rel_tol=CALIBRATION_RTOL)
            for a, b in zip(scale, ref_scale, strict=True)
        )
        if not same:
            ratio = scale[-1] / ref_scale[-1] if ref_scale[-1] else math.nan
            out.append({"frame": k, **jsonable(entry), "relative_to_frame_0": jsonable(ratio)})
    return out
