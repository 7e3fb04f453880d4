"""npe2 writer: an Image layer as float32 ImageJ TIFF with its calibration + JSON sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_calibrated_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """Save one Image layer with :func:`napari_hrtem_fft.io.write_tiff`.

    Parameters
    ----------
    path : str
        Target file; ``.tif`` is appended when it has no TIFF extension.
    data : array-like
        The layer data ``(..., y, x)``.
    meta : dict
        The layer state napari passes: ``name``, ``scale``, ``translate``, ``units``
        (pint units or strings) and ``metadata``.

    Returns
    -------
    list of str
        The TIFF and the sidecar ``<stem>.json``.

    Raises
    ------
    FileExistsError
        If either file exists: nothing is overwritten silently.
    """
    from napari_hrtem_fft.io import write_tiff

    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        target = target.with_name(target.name + ".tif")
    ndim = len(data.shape)
    units = meta.get("units")
    if units is None or isinstance(units, str):
        units = (units,) * ndim
    return write_tiff(
        target,
        data,
        scale=meta.get("scale", (1.0,) * ndim),
        translate=meta.get("translate", (0.0,) * ndim),
        units=tuple(str(u) if u is not None else "px" for u in units),
        metadata=meta.get("metadata") or {},
        name=meta.get("name"),
    )
