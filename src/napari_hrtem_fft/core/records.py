"""Plain JSON records of metadata and results: :func:`jsonable`.

Core writes records (zarr attributes, layer metadata) and io writes sidecars and
reads file metadata with the same conversion; it lives in core because core must not
import io (io re-exports it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["jsonable"]


def jsonable(obj, *, max_items: int | None = 4096, allow_nan: bool = False):
    """Convert metadata trees (dicts, lists, numpy values, bytes) to plain JSON types.

    Parameters
    ----------
    obj : object
        Nested metadata, e.g. rosettasciio ``original_metadata``.
    max_items : int or None
        Arrays with more elements than this are replaced by a short description, so
        that no image data ends up in metadata; None keeps every element (records such
        as a per-frame drift of a long movie).
    allow_nan : bool
        Keep non-finite floats as floats (as ``json.dumps(allow_nan=True)`` writes
        them) instead of turning them into strings.

    Returns
    -------
    object
        Only dict (str keys), list, str, int, float, bool and None; unless
        ``allow_nan``, non-finite floats become strings so that
        ``json.dumps(..., allow_nan=False)`` works.
    """
    return _jsonable(obj, max_items, allow_nan, 0)


def _jsonable(obj, max_items: int | None, allow_nan: bool, depth: int):
    if depth > 64:
        return "<nested too deep>"
    options = (max_items, allow_nan, depth + 1)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if allow_nan or math.isfinite(value) else str(value)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (bytes, np.bytes_)):
        return bytes(obj).decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {str(k): _jsonable(v, *options) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        if max_items is not None and obj.size > max_items:
            return f"<array shape={obj.shape} dtype={obj.dtype}>"
        if obj.dtype.names:
            return {n: _jsonable(obj[n], *options) for n in obj.dtype.names}
        return _jsonable(obj.tolist(), *options)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)
        if max_items is not None and len(items) > max_items:
            return f"<sequence of {len(items)} items>"
        return [_jsonable(v, *options) for v in items]
    if isinstance(obj, complex | np.complexfloating):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return f"<array shape={tuple(obj.shape)} dtype={obj.dtype}>"
    return str(obj)
