"""Result containers of the lattice analysis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LatticeMaps", "StrainMaps"]


@dataclass
class StrainMaps:
    """Small-strain maps relative to a reference lattice.

    The local lattice vectors are ``a = (I + ε + ω) a_ref`` with the symmetric
    strain ``ε = [[eyy, exy], [exy, exx]]`` in (y, x) order and the rotation ``ω``.

    Attributes
    ----------
    exx, eyy, exy : array
        Strain components (dimensionless), shape ``(..., my, mx)``; NaN where undefined.
    rotation : array
        Lattice rotation in degrees, positive counter-clockwise on screen.
    reference : numpy.ndarray
        Reference reciprocal vectors ``(n, 2)`` in nm⁻¹.
    """

    exx: Any
    eyy: Any
    exy: Any
    rotation: Any
    reference: np.ndarray

    def components(self) -> dict[str, Any]:
        """The four maps by name, in a fixed order."""
        return {"exx": self.exx, "eyy": self.eyy, "exy": self.exy, "rotation": self.rotation}


@dataclass
class LatticeMaps:
    """Maps of local lattice parameters from a rolling-window FFT.

    Map pixel ``(i, j)`` is the window centred on image pixel ``(i·step, j·step)``;
    in world units its centre is at ``(i, j)·step·pixel_size`` (nm) relative to the
    image origin.  Missing values are NaN.

    Attributes
    ----------
    d_spacing : array
        Local lattice spacing in nm, shape ``(n, ..., my, mx)``.
    angle : array
        Local angle in degrees, ``atan2(-gy, gx)``, counter-clockwise on screen, in (-180, 180].
    amplitude : array
        Peak strength over the local background (power signal-to-noise ratio, dimensionless).
    d_sigma : array
        Estimated standard deviation of ``d_spacing`` (nm) from the local noise.
    angle_sigma : array
        Estimated standard deviation of ``angle`` (degrees).
    reflections : numpy.ndarray
        The reflections analysed, ``(n, 2)`` as ``(gy, gx)`` in nm⁻¹.
    window : int
        Window size in pixels.
    step : int
        Step between windows in pixels.
    pixel_size : float
        Image pixel size in nm.
    strain : StrainMaps or None
        Present when at least two non-collinear reflections were analysed.
    parameters : dict
        Every option used, for provenance.
    phase : array or None
        Geometric phase of each reflection relative to its given ``g``, in radians in
        (-π, π], shape ``(n, ..., my, mx)``; None when the method did not compute it.
    """

    d_spacing: Any
    angle: Any
    amplitude: Any
    d_sigma: Any
    angle_sigma: Any
    reflections: np.ndarray
    window: int
    step: int
    pixel_size: float
    strain: StrainMaps | None = None
    parameters: dict = field(default_factory=dict)
    phase: Any = None

    @property
    def n_reflections(self) -> int:
        """Number of reflections ``n``."""
        return int(self.reflections.shape[0])

    @property
    def map_scale(self) -> float:
        """Size of one map pixel in nm (``step · pixel_size``)."""
        return float(self.step * self.pixel_size)

    @property
    def g(self) -> Any:
        """Local reciprocal vectors ``(n, ..., my, mx, 2)`` as ``(gy, gx)`` in nm⁻¹."""
        from .reciprocal import g_from_spacing_angle

        return g_from_spacing_angle(self.d_spacing, self.angle)
