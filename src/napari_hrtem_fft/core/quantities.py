"""Units and descriptions of the map quantities, as files record them.

Standard library only: the command line imports this at start-up.  Units are those of
:class:`~napari_hrtem_fft.core.maps.LatticeMaps` and
:class:`~napari_hrtem_fft.core.maps.StrainMaps` (``"1"``: dimensionless).  The names
here are the field names of those classes, in their order: this is the one list of
them (``LatticeMaps.FIELDS``, ``StrainMaps.FIELDS``).
"""

from __future__ import annotations

__all__ = ["MAP_QUANTITIES", "OPTIONAL_QUANTITIES", "STRAIN_QUANTITIES"]

#: Per-reflection maps ``(n, ..., my, mx)`` every analysis gives: name → (unit, description).
MAP_QUANTITIES = {
    "d_spacing": ("nm", "local lattice spacing"),
    "angle": ("deg", "local angle of g, counter-clockwise on screen"),
    "amplitude": ("1", "peak power over the local background"),
    "d_sigma": ("nm", "standard deviation of d_spacing"),
    "angle_sigma": ("deg", "standard deviation of angle"),
}

#: Per-reflection maps a method may add (None in LatticeMaps when it did not).
OPTIONAL_QUANTITIES = {
    "phase": ("rad", "geometric phase relative to the given g, in (-pi, pi]"),
}

#: Strain maps ``(..., my, mx)``: name → (unit, description).
STRAIN_QUANTITIES = {
    "exx": ("1", "strain along x (finite, Biot)"),
    "eyy": ("1", "strain along y (finite, Biot)"),
    "exy": ("1", "shear strain"),
    "rotation": ("deg", "lattice rotation, counter-clockwise on screen"),
}
