"""Calibrated float32 TIFF that ImageJ/Fiji reads with its scale, plus a JSON sidecar."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_paths
from ._micrograph import jsonable
from ._tiff import WRITER_ID
from ._units import FRAME, NM, PX, RECIPROCAL_NM, UnitInfo, parse_unit

__all__ = ["sidecar_path", "write_tiff"]


def sidecar_path(path) -> Path:
    """The JSON sidecar written next to a TIFF: ``<stem>.json``."""
    return Path(path).with_suffix(".json")


def write_tiff(
    path, data, *, scale, units, translate=None, metadata=None, name=None, overwrite: bool = False
) -> list[str]:
    """Write an image or stack as float32 ImageJ TIFF with its calibration and a sidecar.

    ImageJ/Fiji open the TIFF with the pixel size (``unit=nm``, or ``micron`` for
    layers in µm, ``1/nm`` in reciprocal space) and origin; the stack axis is time
    (``finterval`` in s) or z (``spacing``). The sidecar ``<stem>.json`` keeps the
    exact scale, translate, units, name and metadata, and :func:`read_micrographs`
    uses it when reading the TIFF back.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.tif``/``.tiff`` file.
    data : array-like
        Pixel data ``(..., y, x)`` with 2 to 5 dimensions; written as float32.
    scale : sequence of float
        Pixel size per axis (positive), in ``units``.
    units : sequence of str or pint.Unit
        Unit per axis: nm, µm, Å, 1/nm, s, px/pixel, frame, ... Lengths are written in
        nm (µm layers stay in µm, as ImageJ ``micron``).
    translate : sequence of float, optional
        Position of the first pixel per axis, in ``units`` (default zeros).
    metadata : dict, optional
        Saved in the sidecar (converted to JSON-safe types).
    name : str, optional
        Layer name for the sidecar (default: the file stem).
    overwrite : bool
        Replace existing files; if False (default) an existing TIFF or sidecar raises.

    Returns
    -------
    list of str
        The TIFF path and the sidecar path.

    Raises
    ------
    FileExistsError
        If the TIFF or the sidecar exists and ``overwrite`` is False.
    ValueError
        If the extension, dimensions, scale or units are not usable.
    """
    import tifffile

    path = Path(os.fspath(path))
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"path must end in .tif or .tiff, got {path.name!r}")
    side = sidecar_path(path)
    if not overwrite:
        for p in (path, side):
            if p.exists():
                raise FileExistsError(
                    f"{str(p)!r} already exists; not overwriting it "
                    "(choose another name or pass overwrite=True)"
                )
    where = f"cannot write {str(path)!r}"
    shape = tuple(data.shape)
    ndim = len(shape)
    if not 2 <= ndim <= 5:
        raise ValueError(f"{where}: data must have 2 to 5 dimensions (..., y, x), got {shape}")
    if min(shape) < 1:
        raise ValueError(f"{where}: the image is empty (shape {shape})")
    dtype = np.dtype(getattr(data, "dtype", np.float32))
    if dtype.kind not in "biuf":
        what = "complex" if dtype.kind == "c" else f"{dtype} (not real numbers)"
        raise TypeError(
            f"{where}: the pixels are {what}; float32 TIFF holds real values only, "
            "so write abs(data), data.real or data.imag explicitly"
        )
    try:
        scale = tuple(float(s) for s in scale)
        units = tuple(str(u) if u is not None else PX for u in units)
        translate = tuple(
            float(t) for t in (translate if translate is not None else (0.0,) * ndim)
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: scale and translate must be numbers ({exc})") from None
    for label, values in (("scale", scale), ("units", units), ("translate", translate)):
        if len(values) != ndim:
            raise ValueError(
                f"{where}: {label} needs {ndim} entries for data of shape {shape}, "
                f"got {len(values)}"
            )
    if not all(math.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"{where}: scale must be finite and positive, got {scale}")
    if not all(math.isfinite(t) for t in translate):
        raise ValueError(f"{where}: translate must be finite, got {translate}")

    canon_scale, canon_translate, canon_units = [], [], []
    kinds = []
    for s, t, u in zip(scale, translate, units, strict=True):
        info = parse_unit(u)
        if u == FRAME:
            info = UnitInfo("none", 1.0, FRAME)
        elif info.kind == "unknown":
            raise ValueError(
                f"{where}: cannot write unit {u!r}; use a length, reciprocal length, time "
                "or pixel unit"
            )
        kinds.append(info.kind)
        canon_scale.append(s * info.factor)
        canon_translate.append(t * info.factor)
        canon_units.append(info.canonical)
    if kinds[-1] != kinds[-2]:
        raise ValueError(
            f"{where}: the y and x axes need the same kind of unit, got {units[-2:]!r}"
        )

    ij_unit, factor = _imagej_unit(units[-1], kinds[-1])
    sy, sx = (canon_scale[-2] / factor, canon_scale[-1] / factor)
    ij = {"axes": _imagej_axes(kinds[:-2])}
    if ij_unit is not None:
        ij["unit"] = ij_unit
        ij["xorigin"] = -canon_translate[-1] / factor / sx
        ij["yorigin"] = -canon_translate[-2] / factor / sy
        resolution = (1.0 / sx, 1.0 / sy)
    else:
        resolution = None
    for letter, s, kind in zip(ij["axes"][:-2], canon_scale[:-2], kinds[:-2], strict=True):
        if letter == "Z" and kind == "length" and ij_unit is not None:
            ij["spacing"] = s / factor
        elif letter == "T" and kind == "time":
            ij["finterval"] = s

    if hasattr(data, "compute") and ndim > 2:
        # A lazy movie is written frame by frame (two passes: the range, then the
        # pixels), never loaded whole.
        lead = shape[:-2]

        def pixels():
            for index in np.ndindex(*lead):
                yield np.asarray(data[index].compute(), dtype=np.float32)

        lo, hi = math.inf, -math.inf
        for frame in pixels():
            finite = frame[np.isfinite(frame)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        if lo <= hi:
            ij["min"], ij["max"] = lo, hi
        image = {"data": pixels(), "shape": shape, "dtype": np.float32}
    else:
        values = np.asarray(data.compute() if hasattr(data, "compute") else data, np.float32)
        finite = values[np.isfinite(values)]
        if finite.size:
            ij["min"], ij["max"] = float(finite.min()), float(finite.max())
        image = {"data": values}

    sidecar = {
        "writer": WRITER_ID,
        "name": name if name is not None else path.stem,
        "shape": list(shape),
        "dtype": "float32",
        "scale": canon_scale,
        "translate": canon_translate,
        "units": canon_units,
        "metadata": jsonable(metadata or {}),
    }
    try:
        text = json.dumps(sidecar, indent=1, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"{where}: the metadata cannot be saved as JSON ({exc})") from None
    # Both files appear together, only once complete (an interrupted or failed write
    # leaves neither, so a rerun does not find a half-written "existing" output).
    with atomic_paths([path, side], overwrite=overwrite) as (tmp_tiff, tmp_side):
        tifffile.imwrite(tmp_tiff, **image, imagej=True, resolution=resolution, metadata=ij)
        tmp_side.write_text(text, encoding="utf-8")
    return [str(path), str(side)]


def _imagej_unit(unit: str, kind: str) -> tuple[str | None, float]:
    """ImageJ unit string and the factor from our canonical unit to it."""
    if kind == "length":
        if parse_unit(unit).factor == 1e3:
            return "micron", 1e3
        return NM, 1.0
    if kind == "reciprocal":
        return RECIPROCAL_NM, 1.0
    return None, 1.0


def _imagej_axes(leading_kinds: list) -> str:
    if len(leading_kinds) == 0:
        return "YX"
    if len(leading_kinds) == 1:
        return ("Z" if leading_kinds[0] == "length" else "T") + "YX"
    if len(leading_kinds) == 2:
        return "TZYX"
    return "TZCYX"
