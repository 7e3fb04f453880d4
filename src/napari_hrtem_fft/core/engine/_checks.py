"""Input checks of :func:`analyze` with specific messages naming the parameter."""

from __future__ import annotations

import math
import numbers

import numpy as np


def _check_image(image):
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or dtype is None:
        try:
            image = np.asarray(image)
        except (TypeError, ValueError) as err:
            kind = type(image).__name__
            raise TypeError(f"image must be an array (..., y, x), got {kind}") from err
        shape, dtype = image.shape, image.dtype
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"image must be real-valued, got complex dtype {dtype}")
    if dtype.kind not in "iuf":
        raise TypeError(f"image must hold real numbers, got dtype {dtype}")
    if len(shape) < 2:
        raise ValueError(f"image must have at least 2 dimensions (..., y, x), got shape {shape}")
    return image, tuple(int(s) for s in shape), dtype


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_chunks(chunks, step: int, depth: int):
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        return None
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        chunks = (chunks, chunks)
    if not (isinstance(chunks, tuple | list) and len(chunks) == 2):
        raise ValueError(f"chunks must be None, 'auto', an int or (cy, cx), got {chunks!r}")
    out = []
    for c in chunks:
        c = _check_int(c, "chunks", 1)
        # Multiples of the step keep every block's first window on the global grid;
        # at least the overlap depth, as dask's overlap requires.
        out.append(max(-(-c // step) * step, -(-depth // step) * step))
    return tuple(out)
