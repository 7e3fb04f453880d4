"""Conventions for reciprocal vectors, shared by every module.

A reflection is a reciprocal vector ``g = (gy, gx)`` in nm⁻¹, in the (y, x) axis
order napari uses for images.  Its lattice spacing is ``d = 1 / |g|`` (nm) and its
angle is ``degrees(atan2(-gy, gx))``: counter-clockwise from +x as seen on screen
(y grows downwards on screen), in (-180, 180].
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_reflections", "g_angle", "g_from_spacing_angle", "g_spacing"]


def as_reflections(reflections, *, name: str = "reflections") -> np.ndarray:
    """Return reflections as a float64 array of shape ``(n, 2)``.

    Parameters
    ----------
    reflections : array_like
        One ``(gy, gx)`` pair or a sequence of them, in nm⁻¹.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 2)``, float64, nm⁻¹.

    Raises
    ------
    TypeError
        If the values are not real numbers.
    ValueError
        If the shape is not ``(n, 2)`` with ``n >= 1`` or a value is not finite.
    """
    arr = np.asarray(reflections)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers (gy, gx) in 1/nm, got dtype {arr.dtype}")
    arr = np.atleast_2d(arr.astype(np.float64))
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, 2) as (gy, gx) in 1/nm, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def g_spacing(g) -> np.ndarray:
    """Lattice spacing ``d = 1/|g|`` in nm for reciprocal vectors ``(..., 2)`` in nm⁻¹."""
    g = np.asarray(g, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 1.0 / np.hypot(g[..., 0], g[..., 1])


def g_angle(g) -> np.ndarray:
    """Angle in degrees, ``atan2(-gy, gx)``: counter-clockwise on screen, in (-180, 180]."""
    g = np.asarray(g, dtype=np.float64)
    ang = np.degrees(np.arctan2(-g[..., 0], g[..., 1]))
    # atan2 returns -180 for (-0.0, negative); the convention is the half-open (-180, 180].
    return np.where(ang <= -180.0, ang + 360.0, ang)


def g_from_spacing_angle(d, angle) -> np.ndarray:
    """Reciprocal vector(s) ``(..., 2)`` in nm⁻¹ from spacing ``d`` (nm) and angle (degrees)."""
    d = np.asarray(d, dtype=np.float64)
    a = np.radians(np.asarray(angle, dtype=np.float64))
    return np.stack([-np.sin(a) / d, np.cos(a) / d], axis=-1)
