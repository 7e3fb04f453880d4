"""Result containers of the lattice analysis, their field names and their placement.

:class:`LatticeMaps` owns its vocabulary: :attr:`LatticeMaps.FIELDS` (per-reflection
maps, from :mod:`~napari_hrtem_fft.core.quantities`), :meth:`LatticeMaps.arrays` and
:meth:`LatticeMaps.with_arrays` (every map by name, and a copy with some replaced), and
:meth:`LatticeMaps.geometry` (world scale and translate of the maps of an image, time
axis included).  Code that handles "every map" goes through these, so a new field
(such as ``phase``) reaches every writer and reader at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .quantities import MAP_QUANTITIES, OPTIONAL_QUANTITIES, STRAIN_QUANTITIES

__all__ = ["LatticeMaps", "StrainMaps", "map_geometry", "map_shape"]


def map_shape(image_shape: Sequence[int], step: int) -> tuple[int, ...]:
    """Shape of the maps of an image: ``ceil(n / step)`` map pixels on y and x.

    Map pixel ``(i, j)`` is the window centred on image pixel ``(i·step, j·step)``, so
    an axis of ``n`` image pixels has one map pixel per step up to pixel ``n - 1``.
    Leading axes (frames of a movie) are kept.

    Parameters
    ----------
    image_shape : sequence of int
        Image shape ``(..., h, w)`` in pixels.
    step : int
        Step between windows in pixels, at least 1.

    Returns
    -------
    tuple of int
        ``(..., ceil(h / step), ceil(w / step))``.

    Raises
    ------
    ValueError
        If the shape has fewer than 2 axes or ``step`` is below 1.
    """
    shape = tuple(int(n) for n in image_shape)
    step = int(step)
    if len(shape) < 2 or step < 1:
        raise ValueError(f"need an image shape (..., h, w) and a step >= 1, got {shape}, {step}")
    return (*shape[:-2], -(-shape[-2] // step), -(-shape[-1] // step))


def map_geometry(
    image_scale: Sequence[float],
    image_translate: Sequence[float],
    step: int,
    *,
    frames=None,
) -> dict:
    """World placement of maps made from an image: one ``scale`` and ``translate`` per axis.

    Map pixel ``(i, j)`` is the window centred on image pixel ``(i·step, j·step)``, and
    napari (like the zarr and TIFF writers) puts data index ``k`` at
    ``translate + k·scale``: the maps have the image's translate and its scale times
    ``step`` on y and x.  A movie analysed on ``frames`` starts its time axis (the first
    axis) at the first analysed frame and steps by the frame step.

    Parameters
    ----------
    image_scale, image_translate : sequence of float
        World calibration of the image axes ``(..., y, x)``.
    step : int
        Step between windows in pixels.
    frames : range or sequence of int, optional
        Frame numbers analysed of a movie ``(t, y, x)``, evenly spaced.

    Returns
    -------
    dict
        ``scale`` and ``translate``, tuples of floats per map axis ``(..., my, mx)``.

    Raises
    ------
    ValueError
        If the calibrations differ in length, have fewer than 2 axes, are not finite,
        or ``frames`` is given for an image without a leading axis or is not evenly
        spaced.
    """
    scale = [float(v) for v in np.atleast_1d(np.asarray(image_scale, dtype=np.float64))]
    translate = [float(v) for v in np.atleast_1d(np.asarray(image_translate, dtype=np.float64))]
    if len(scale) != len(translate) or len(scale) < 2:
        raise ValueError(
            "image_scale and image_translate need one value per image axis (..., y, x), "
            f"got {len(scale)} and {len(translate)}"
        )
    if not np.all(np.isfinite(scale + translate)):
        raise ValueError(f"image scale and translate must be finite, got {scale}, {translate}")
    scale[-2] *= step
    scale[-1] *= step
    if frames is not None:
        if len(scale) < 3:
            raise ValueError("frames are given but the image has no time axis")
        frames = np.asarray(frames, dtype=np.int64).ravel()
        steps = np.unique(np.diff(frames))
        if frames.size == 0 or steps.size > 1 or (steps.size and steps[0] < 1):
            raise ValueError(
                f"frames must be evenly spaced increasing frame numbers, got {frames.tolist()}"
            )
        translate[0] += int(frames[0]) * scale[0]
        scale[0] *= int(steps[0]) if steps.size else 1
    return {"scale": tuple(scale), "translate": tuple(translate)}


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

    #: Names of the strain maps, in a fixed order.
    FIELDS: ClassVar[tuple[str, ...]] = tuple(STRAIN_QUANTITIES)

    exx: Any
    eyy: Any
    exy: Any
    rotation: Any
    reference: np.ndarray

    def components(self) -> dict[str, Any]:
        """The four maps by name, in the order of :attr:`FIELDS`."""
        return {name: getattr(self, name) for name in self.FIELDS}


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

    #: Names of the per-reflection maps ``(n, ..., my, mx)``, in a fixed order.
    FIELDS: ClassVar[tuple[str, ...]] = (*MAP_QUANTITIES, *OPTIONAL_QUANTITIES)
    #: The fields that may be None (a method that does not compute them).
    OPTIONAL: ClassVar[tuple[str, ...]] = tuple(OPTIONAL_QUANTITIES)

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

    def arrays(self) -> dict[str, Any]:
        """Every map by name: the fields of :attr:`FIELDS` that are present, then strain.

        Returns
        -------
        dict
            ``{name: array}``: per-reflection maps ``(n, ..., my, mx)`` (an optional
            field only when not None), then ``exx``, ``eyy``, ``exy``, ``rotation``
            ``(..., my, mx)`` when there is strain.
        """
        out = {name: getattr(self, name) for name in self.FIELDS}
        out = {name: a for name, a in out.items() if a is not None}
        if self.strain is not None:
            out.update(self.strain.components())
        return out

    def with_arrays(self, arrays: Mapping[str, Any]) -> LatticeMaps:
        """A copy with the maps named in ``arrays`` replaced (names of :meth:`arrays`).

        Parameters
        ----------
        arrays : mapping of str to array
            New maps by name; strain names replace the strain maps (the reference is
            kept).  Maps not named are shared with ``self``; ``parameters`` is copied.

        Returns
        -------
        LatticeMaps

        Raises
        ------
        ValueError
            If a name is unknown, or names a strain map of maps without strain.
        """
        unknown = sorted(set(arrays) - set(self.FIELDS) - set(StrainMaps.FIELDS))
        if unknown:
            known = self.FIELDS + StrainMaps.FIELDS
            raise ValueError(f"unknown map names {unknown}; known: {known}")
        comps = {name: a for name, a in arrays.items() if name in StrainMaps.FIELDS}
        if comps and self.strain is None:
            raise ValueError(f"the maps have no strain to replace {sorted(comps)} in")
        strain = dataclasses.replace(self.strain, **comps) if comps else self.strain
        fields = {name: a for name, a in arrays.items() if name in self.FIELDS}
        return dataclasses.replace(self, **fields, strain=strain, parameters=dict(self.parameters))

    def geometry(
        self,
        image_scale: Sequence[float] | None = None,
        image_translate: Sequence[float] | None = None,
        *,
        frames=None,
    ) -> dict:
        """World ``scale`` and ``translate`` of every map axis ``(..., my, mx)``.

        Parameters
        ----------
        image_scale, image_translate : sequence of float, optional
            Calibration of the analysed image ``(..., y, x)``; default
            ``pixel_size`` nm on y and x, 1 on leading axes, translate 0.
        frames : range or sequence of int, optional
            The analysed frames of a movie (see :func:`map_geometry`).

        Returns
        -------
        dict
            As :func:`map_geometry`.
        """
        ndim = int(np.ndim(self.d_spacing)) - 1
        if image_scale is None:
            image_scale = (1.0,) * (ndim - 2) + (self.pixel_size, self.pixel_size)
        if image_translate is None:
            image_translate = (0.0,) * ndim
        return map_geometry(image_scale, image_translate, self.step, frames=frames)
