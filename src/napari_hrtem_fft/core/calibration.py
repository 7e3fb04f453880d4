"""Calibrate an image's scale from a lattice of known spacing.

Nominal pixel sizes of real files are often 3–8 % off, and a scanned (STEM) image is
also sheared and stretched differently along its two axes (scan distortion).  A lattice
of known spacing in the image fixes both:

- **isotropic** from one reflection: the scale is multiplied by ``d_true / d_measured``;
- **affine** from two non-parallel reflections: a symmetric 2×2 stretch ``M`` maps each
  measured reciprocal vector onto one of the true length, with the true angle between
  the two (three conditions fix the three entries of a symmetric matrix).

Why symmetric: a rotation of the whole image does not change any spacing, so spacings
cannot determine it; the symmetric choice is the pure stretch (no rotation) that
corrects the lattice, so angles on screen move as little as possible.

Convention (one path for every front end): an analysis runs on the image's *nominal*
pixel size, exactly as the engine demodulates the pixels, and its results are then
corrected by :func:`correct_maps`.  A measured reciprocal vector ``g`` (``(gy, gx)``
in nm⁻¹ of the nominal scale) becomes ``M @ g``; d, angle and strain are computed from
the corrected ``g``.  In real space a position ``r`` (nm, nominal) becomes
``M⁻¹ @ r`` (``g·r`` is kept, since ``M`` is symmetric), so the corrected scale of the
image is the 2×2 matrix ``M⁻¹ @ diag(sy, sx)`` in nm per pixel (:attr:`ScaleCorrection.scale`),
which napari shows as the layer's ``affine``.

This module never imports napari or Qt.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from .reciprocal import as_reflections, g_angle, g_spacing

__all__ = [
    "CALIBRATION_KEY",
    "MATERIALS",
    "Material",
    "ScaleCorrection",
    "affine_correction",
    "calibrated_maps",
    "correct_g",
    "correct_maps",
    "correction_from_planes",
    "isotropic_correction",
    "layer_geometry",
    "material_planes",
    "plane_angles",
    "plane_spacing",
    "residual_correction",
]


@dataclass(frozen=True)
class Material:
    """A crystal whose lattice calibrates images.

    Attributes
    ----------
    name : str
        Name shown to users.
    system : str
        ``"cubic"`` or ``"hexagonal"``.
    a : float
        Lattice constant a in nm.
    c : float or None
        Lattice constant c in nm (hexagonal only).
    structure : str
        ``"fcc"``, ``"diamond"``, ``"perovskite"`` or ``"hexagonal"``: decides which
        reflections are listed (the kinematically allowed ones).
    planes : tuple of tuple of int
        Low-index planes ``(h, k, l)`` listed for calibration, strongest first.
    source : str
        Where the lattice constants come from (room temperature).
    """

    name: str
    system: str
    a: float
    c: float | None
    structure: str
    planes: tuple
    source: str

    def reciprocal_basis(self) -> np.ndarray:
        """Reciprocal basis vectors ``a*, b*, c*`` as rows, in nm⁻¹ (no 2π)."""
        if self.system == "cubic":
            direct = np.eye(3) * self.a
        else:
            direct = np.array(
                [[self.a, 0.0, 0.0], [-self.a / 2, self.a * math.sqrt(3) / 2, 0.0], [0, 0, self.c]]
            )
        return np.linalg.inv(direct).T

    def g(self, hkl) -> np.ndarray:
        """Reciprocal vector of plane ``hkl`` (Cartesian, nm⁻¹)."""
        return np.asarray(hkl, dtype=float) @ self.reciprocal_basis()


_WYCKOFF = "R. W. G. Wyckoff, Crystal Structures, 2nd ed., vol. 1 (Wiley, 1963), room temperature"

#: Built-in materials by name.  Lattice constants in nm.
MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material(
            "Si",
            "cubic",
            0.5431021,
            None,
            "diamond",
            ((1, 1, 1), (2, 2, 0), (3, 1, 1), (4, 0, 0)),
            "CODATA 2018, a(Si) = 543.1020511 pm at 22.5 °C",
        ),
        Material("Au", "cubic", 0.40782, None, "fcc", ((1, 1, 1), (2, 0, 0), (2, 2, 0)), _WYCKOFF),
        Material("Ag", "cubic", 0.40853, None, "fcc", ((1, 1, 1), (2, 0, 0), (2, 2, 0)), _WYCKOFF),
        Material("Cu", "cubic", 0.36149, None, "fcc", ((1, 1, 1), (2, 0, 0), (2, 2, 0)), _WYCKOFF),
        Material("Pd", "cubic", 0.38907, None, "fcc", ((1, 1, 1), (2, 0, 0), (2, 2, 0)), _WYCKOFF),
        Material("Pt", "cubic", 0.39242, None, "fcc", ((1, 1, 1), (2, 0, 0), (2, 2, 0)), _WYCKOFF),
        Material(
            "SrTiO3",
            "cubic",
            0.3905,
            None,
            "perovskite",
            ((1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 0, 0)),
            _WYCKOFF,
        ),
        Material(
            "MoS2",
            "hexagonal",
            0.3160,
            1.2294,
            "hexagonal",
            ((0, 0, 2), (1, 0, 0), (1, 1, 0), (2, 0, 0)),
            _WYCKOFF + " (2H-MoS2)",
        ),
        Material(
            "graphite",
            "hexagonal",
            0.2464,
            0.6711,
            "hexagonal",
            ((0, 0, 2), (1, 0, 0), (1, 1, 0)),
            "P. Trucano and R. Chen, Nature 258, 136 (1975)",
        ),
    )
}


def _material(material) -> Material:
    if isinstance(material, Material):
        return material
    try:
        return MATERIALS[material]
    except KeyError:
        raise ValueError(
            f"unknown material {material!r}; built in: {', '.join(MATERIALS)}"
        ) from None


def plane_spacing(material, hkl) -> float:
    """Spacing ``d`` in nm of plane ``hkl`` of a built-in material.

    Parameters
    ----------
    material : str or Material
        A key of :data:`MATERIALS` (e.g. ``"Pd"``) or a :class:`Material`.
    hkl : sequence of 3 int
        Miller indices.

    Returns
    -------
    float
        d in nm.
    """
    g = _material(material).g(hkl)
    return float(1.0 / np.linalg.norm(g))


def material_planes(material) -> list[dict]:
    """The listed planes of a material: ``hkl``, label ``"{111}"`` and ``d`` in nm."""
    mat = _material(material)
    return [
        {
            "hkl": tuple(hkl),
            "label": "{" + "".join(str(i) for i in hkl) + "}",
            "d": plane_spacing(mat, hkl),
        }
        for hkl in mat.planes
    ]


def _family(mat: Material, hkl) -> np.ndarray:
    """Cartesian g of every plane with the spacing of ``hkl`` (its family, both signs)."""
    d = plane_spacing(mat, hkl)
    n = int(max(abs(i) for i in hkl)) + 1
    members = [
        v
        for v in itertools.product(range(-n, n + 1), repeat=3)
        if any(v) and abs(plane_spacing(mat, v) - d) <= 1e-9 * d
    ]
    return np.array([mat.g(v) for v in members])


def plane_angles(material, hkl1, hkl2) -> np.ndarray:
    """Every angle in degrees between a plane of family ``hkl1`` and one of ``hkl2``.

    The image shows one zone; which members of the two families lie in it is not known
    from the indices, so :func:`correction_from_planes` takes the listed angle nearest to
    the measured one.

    Returns
    -------
    numpy.ndarray
        Sorted distinct angles in (0, 180) degrees.
    """
    mat = _material(material)
    f1, f2 = _family(mat, hkl1), _family(mat, hkl2)
    cos = (f1 @ f2.T) / np.outer(np.linalg.norm(f1, axis=1), np.linalg.norm(f2, axis=1))
    ang = np.degrees(np.arccos(np.clip(cos, -1, 1))).ravel()
    ang = ang[(ang > 1e-6) & (ang < 180 - 1e-6)]
    return np.unique(np.round(ang, 6))


@dataclass(frozen=True)
class ScaleCorrection:
    """A calibration of an image's scale from a lattice of known spacing.

    Attributes
    ----------
    kind : str
        ``"isotropic"`` (from one reflection) or ``"affine"`` (from two).
    matrix : numpy.ndarray
        ``M`` (2×2, dimensionless, symmetric): a reciprocal vector measured with the
        nominal scale, ``(gy, gx)`` in nm⁻¹, is ``M @ g`` in truth.
    nominal_scale : tuple of float
        The image's nominal pixel size ``(sy, sx)`` in nm.
    measured : numpy.ndarray
        The measured reflections ``(k, 2)`` (nominal scale, nm⁻¹) it was fitted to.
    d_true : tuple of float
        Their true spacings in nm.
    angle_true : float or None
        The true angle between the two reflections in degrees (affine only).
    source : str
        Where the true values come from (material, plane, reference, or "user").
    """

    kind: str
    matrix: np.ndarray
    nominal_scale: tuple
    measured: np.ndarray
    d_true: tuple
    angle_true: float | None
    source: str

    @property
    def scale(self) -> np.ndarray:
        """Corrected scale, 2×2 nm per pixel: image pixel ``(i, j)`` lies at ``scale @ (i, j)``."""
        return np.linalg.inv(self.matrix) @ np.diag(self.nominal_scale)

    @property
    def pixel_size(self) -> float:
        """Corrected mean pixel size in nm (square root of the corrected pixel area)."""
        return float(math.sqrt(abs(np.linalg.det(self.scale))))

    @property
    def scale_factor(self) -> float:
        """Corrected over nominal mean pixel size (1.03: pixels are 3 % larger than said)."""
        return float(1.0 / math.sqrt(abs(np.linalg.det(self.matrix))))

    def describe(self) -> str:
        """One line for a status bar: kind, change of scale and source."""
        text = f"{self.kind} calibration from {self.source}: pixel size ×{self.scale_factor:.4f}"
        if self.kind == "affine":
            w, _ = np.linalg.eigh(np.linalg.inv(self.matrix))
            text += f" (stretch {w[0]:.4f}–{w[1]:.4f})"
        return text

    def to_metadata(self) -> dict:
        """A JSON-ready record of the correction, for layer metadata and exported maps."""
        return {
            "kind": self.kind,
            "matrix": np.asarray(self.matrix, dtype=float).tolist(),
            "scale_nm_per_px": self.scale.tolist(),
            "nominal_scale_nm": [float(v) for v in self.nominal_scale],
            "pixel_size_nm": self.pixel_size,
            "measured_g": np.asarray(self.measured, dtype=float).tolist(),
            "d_true_nm": [float(v) for v in self.d_true],
            "angle_true_deg": None if self.angle_true is None else float(self.angle_true),
            "source": self.source,
        }

    @classmethod
    def from_metadata(cls, record: dict) -> ScaleCorrection:
        """The correction from :meth:`to_metadata`'s record."""
        return cls(
            kind=record["kind"],
            matrix=np.asarray(record["matrix"], dtype=float),
            nominal_scale=tuple(record["nominal_scale_nm"]),
            measured=np.asarray(record["measured_g"], dtype=float),
            d_true=tuple(record["d_true_nm"]),
            angle_true=record.get("angle_true_deg"),
            source=record["source"],
        )


def _nominal(pixel_size) -> tuple:
    s = np.broadcast_to(np.asarray(pixel_size, dtype=float), (2,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"pixel_size must be positive nm per pixel, got {pixel_size!r}")
    return (float(s[0]), float(s[1]))


def _positive(values, name) -> np.ndarray:
    v = np.atleast_1d(np.asarray(values, dtype=float))
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be positive spacings in nm, got {values!r}")
    return v


def isotropic_correction(g, d_true, *, pixel_size, source: str = "user") -> ScaleCorrection:
    """Correction that makes one measured reflection have its true spacing.

    Parameters
    ----------
    g : array_like
        The measured reflection ``(gy, gx)`` in nm⁻¹ (nominal scale).
    d_true : float
        Its true spacing in nm.
    pixel_size : float or (float, float)
        Nominal pixel size in nm (``(sy, sx)`` if not square).
    source : str
        Where ``d_true`` comes from, recorded with the correction.

    Returns
    -------
    ScaleCorrection
        ``matrix = (d_measured / d_true) · I``.
    """
    g = as_reflections(g, name="g")
    if g.shape[0] != 1:
        raise ValueError(f"an isotropic correction takes one reflection, got {g.shape[0]}")
    (d,) = _positive(d_true, "d_true")
    d_meas = float(g_spacing(g[0]))
    return ScaleCorrection(
        kind="isotropic",
        matrix=np.eye(2) * (d_meas / d),
        nominal_scale=_nominal(pixel_size),
        measured=g,
        d_true=(float(d),),
        angle_true=None,
        source=source,
    )


def affine_correction(
    g, d_true, *, pixel_size, angle_true: float | None = None, source: str = "user"
) -> ScaleCorrection:
    """Correction of scale and scan distortion from two non-parallel reflections.

    Finds the symmetric positive-definite ``M`` with ``|M g1| = 1/d1``,
    ``|M g2| = 1/d2`` and the angle between ``M g1`` and ``M g2`` equal to
    ``angle_true``.  These are three linear equations in the entries of the metric
    ``G = MᵀM``; ``M`` is its symmetric square root.

    Parameters
    ----------
    g : array_like
        The two measured reflections ``(2, 2)`` as ``(gy, gx)`` in nm⁻¹ (nominal scale).
    d_true : sequence of 2 float
        Their true spacings in nm.
    pixel_size : float or (float, float)
        Nominal pixel size in nm.
    angle_true : float, optional
        True angle between the two reflections in degrees (e.g. 60 between two {100}
        of a hexagonal lattice, see :func:`plane_angles`).  Default: the measured angle
        (then only the two lengths are corrected).
    source : str
        Where the true values come from, recorded with the correction.

    Returns
    -------
    ScaleCorrection

    Raises
    ------
    ValueError
        If the reflections are (nearly) parallel, or the true values are inconsistent
        with any stretch (``G`` not positive definite).
    """
    g = as_reflections(g, name="g")
    if g.shape[0] != 2:
        raise ValueError(f"an affine correction takes two reflections, got {g.shape[0]}")
    d = _positive(d_true, "d_true")
    if d.size != 2:
        raise ValueError(f"d_true needs one spacing per reflection (2), got {d.size}")
    g1, g2 = g
    cross = g1[0] * g2[1] - g1[1] * g2[0]
    sin_meas = abs(cross) / (np.linalg.norm(g1) * np.linalg.norm(g2))
    if sin_meas < math.sin(math.radians(10)):
        raise ValueError(
            "the two reflections are within 10° of parallel; an affine correction needs "
            f"two directions (angles {g_angle(g).round(2).tolist()} deg)"
        )
    if angle_true is None:
        cos_true = float(g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2)))
    else:
        if not 0 < angle_true < 180:
            raise ValueError(f"angle_true must lie in (0, 180) degrees, got {angle_true}")
        cos_true = math.cos(math.radians(angle_true))
    # Unknowns (Gyy, Gyx, Gxx) of the symmetric metric G: u·G·v for u, v in {g1, g2}.
    rows = [
        [u[0] * v[0], u[0] * v[1] + u[1] * v[0], u[1] * v[1]]
        for u, v in ((g1, g1), (g2, g2), (g1, g2))
    ]
    rhs = [1 / d[0] ** 2, 1 / d[1] ** 2, cos_true / (d[0] * d[1])]
    gyy, gyx, gxx = np.linalg.solve(np.array(rows), np.array(rhs))
    w, v = np.linalg.eigh(np.array([[gyy, gyx], [gyx, gxx]]))
    if np.any(w <= 0):
        raise ValueError("the true spacings and angle cannot be reached by stretching the image")
    matrix = (v * np.sqrt(w)) @ v.T
    return ScaleCorrection(
        kind="affine",
        matrix=matrix,
        nominal_scale=_nominal(pixel_size),
        measured=g,
        d_true=(float(d[0]), float(d[1])),
        angle_true=None if angle_true is None else float(angle_true),
        source=source,
    )


def correction_from_planes(g, material, planes, *, pixel_size) -> ScaleCorrection:
    """Isotropic (one reflection) or affine (two) correction from a material's planes.

    Parameters
    ----------
    g : array_like
        One or two measured reflections ``(gy, gx)`` in nm⁻¹ (nominal scale).
    material : str or Material
        A key of :data:`MATERIALS`.
    planes : sequence of (h, k, l)
        The plane of each reflection.  For two, the true angle is the angle between
        members of the two families nearest the measured one.
    pixel_size : float or (float, float)
        Nominal pixel size in nm.

    Returns
    -------
    ScaleCorrection
        Its ``source`` names material, planes and lattice constants' reference.
    """
    mat = _material(material)
    g = as_reflections(g, name="g")
    planes = [tuple(int(i) for i in hkl) for hkl in planes]
    if len(planes) != g.shape[0]:
        raise ValueError(
            f"give one plane per reflection: {g.shape[0]} reflections, {len(planes)} planes"
        )
    d = [plane_spacing(mat, hkl) for hkl in planes]
    const = f"a = {mat.a:g} nm" + (f", c = {mat.c:g} nm" if mat.c else "")
    labels = ", ".join("(" + "".join(str(i) for i in hkl) + ")" for hkl in planes)
    source = f"{mat.name} {labels} ({const}; {mat.source})"
    if g.shape[0] == 1:
        return isotropic_correction(g, d[0], pixel_size=pixel_size, source=source)
    cos = float(g[0] @ g[1] / (np.linalg.norm(g[0]) * np.linalg.norm(g[1])))
    measured = math.degrees(math.acos(np.clip(cos, -1, 1)))
    angles = plane_angles(mat, *planes)
    if angles.size == 0:
        raise ValueError(f"planes {labels} of {mat.name} are parallel; pick two directions")
    angle = float(angles[np.argmin(np.abs(angles - measured))])
    return affine_correction(g, d, pixel_size=pixel_size, angle_true=angle, source=source)


def correct_g(g, correction: ScaleCorrection) -> np.ndarray:
    """Reciprocal vectors ``(..., 2)`` measured with the nominal scale, corrected (``M @ g``)."""
    g = np.asarray(g)
    return g @ np.asarray(correction.matrix, dtype=g.dtype if g.dtype.kind == "f" else float).T


def correct_maps(maps, correction: ScaleCorrection):
    """Lattice maps of the nominal scale, corrected: d, angle and strain from ``M @ g``.

    Parameters
    ----------
    maps : LatticeMaps
        Maps computed with the image's nominal pixel size.
    correction : ScaleCorrection
        The calibration of that image.

    Returns
    -------
    LatticeMaps
        ``d_spacing`` and ``angle`` of the corrected local ``g``; ``d_sigma`` scaled by
        the local change of ``d`` and ``angle_sigma`` kept (first order); reflections
        corrected; strain recomputed from the corrected maps against the corrected
        reference; ``pixel_size`` the corrected mean pixel size and
        ``parameters["calibration"]`` the correction's record.
    """
    from .maps import LatticeMaps
    from .strain import strain as compute_strain

    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")
    g = correct_g(maps.g, correction)
    d = g_spacing(g).astype(maps.d_spacing.dtype, copy=False)
    angle = g_angle(g).astype(maps.angle.dtype, copy=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_sigma = maps.d_sigma * (d / maps.d_spacing)
    out = dataclasses.replace(
        maps.with_arrays({"d_spacing": d, "angle": angle, "d_sigma": d_sigma}),
        reflections=correct_g(maps.reflections, correction),
        pixel_size=correction.pixel_size,
    )
    out.parameters["calibration"] = correction.to_metadata()
    if maps.strain is not None:
        reference = correct_g(maps.strain.reference, correction)
        out = dataclasses.replace(out, strain=compute_strain(out, reference=reference))
    return out


#: Key of the calibration record in an image layer's (or a map's) metadata.
CALIBRATION_KEY = "napari_hrtem_fft_calibration"


def layer_geometry(correction: ScaleCorrection) -> dict:
    """How a napari layer carries a correction: a square scale and a shape-only affine.

    The layer's ``scale`` becomes the corrected mean pixel size on y and x, so that
    everything reading the layer's pixel size (picker, maps, CLI) uses it; what is left,
    a stretch of determinant 1, is the layer's ``affine`` (the image is shown
    undistorted) and is applied to the maps by :func:`residual_correction`.

    Returns
    -------
    dict
        ``pixel_size`` (nm) and ``affine`` (2×2, determinant 1; identity when isotropic).
    """
    pixel = correction.pixel_size
    return {"pixel_size": pixel, "affine": correction.scale / pixel}


def residual_correction(correction: ScaleCorrection) -> ScaleCorrection | None:
    """The correction left for maps analysed with :func:`layer_geometry`'s pixel size.

    Returns
    -------
    ScaleCorrection or None
        ``M`` of maps measured with the mean corrected pixel size; None when the
        correction is isotropic (the pixel size then corrects everything).
    """
    if correction.kind == "isotropic":
        return None
    pixel = correction.pixel_size
    # g measured with `pixel` is g_nominal · nominal/pixel (square nominal pixels), so
    # true g = M g_nominal = M · (pixel / nominal) g_measured.
    nominal = math.sqrt(correction.nominal_scale[0] * correction.nominal_scale[1])
    return dataclasses.replace(
        correction,
        matrix=np.asarray(correction.matrix) * (pixel / nominal),
        nominal_scale=(pixel, pixel),
    )


def calibrated_maps(maps, record: dict | None):
    """Maps of an image layer calibrated by :func:`layer_geometry`, fully corrected.

    Parameters
    ----------
    maps : LatticeMaps
        Maps analysed with the layer's (corrected mean) pixel size.
    record : dict or None
        The layer's ``metadata[CALIBRATION_KEY]`` (:meth:`ScaleCorrection.to_metadata`).

    Returns
    -------
    LatticeMaps
        ``maps`` unchanged without a record; else corrected by the residual stretch
        (affine) and with ``parameters["calibration"]`` the record, so that every
        exported map carries the correction and its source.
    """
    if not record:
        return maps
    residual = residual_correction(ScaleCorrection.from_metadata(record))
    out = maps.with_arrays({}) if residual is None else correct_maps(maps, residual)
    out.parameters["calibration"] = dict(record)
    return out
