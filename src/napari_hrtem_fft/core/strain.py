"""Strain and rotation maps from local reciprocal vectors.

Convention
----------
Vectors are in the image axis order ``(y, x)`` (y pointing down on screen).  The
local lattice is the reference lattice deformed by a 2×2 matrix ``F``::

    a_local = F a_ref            (direct lattice vectors)
    g_local = F⁻ᵀ g_ref          (reciprocal vectors, since a·g is invariant)

To first order ``F = I + ε + ω`` (``ε`` symmetric strain, ``ω`` antisymmetric
rotation), so ``g_local ≈ (I - ε + ω) g_ref``.  Per map pixel, ``F`` is solved from the
``n ≥ 2`` reflections by least squares in reciprocal space (exact for ``n = 2``), and
is then split by the polar decomposition ``F = V R`` into a rotation ``R`` and the
symmetric stretch ``V`` (in the image frame).  The reported values are finite, not
linearised::

    [[eyy, exy],
     [exy, exx]] = V - I          (Biot strain in image axes)
    rotation = angle of R         (degrees, counter-clockwise on screen)

so that a uniform dilatation by ``s`` gives exactly ``exx = eyy = s - 1``, and a pure
rotation by θ gives exactly ``rotation = θ`` and zero strain (``sym(F) - I`` would give
``cos θ - 1`` instead).  For small deformations both agree with ``ε`` and ``ω`` above
to first order.
"""

from __future__ import annotations

import warnings

import numpy as np

from .maps import LatticeMaps, StrainMaps
from .reciprocal import as_reflections

__all__ = [
    "MIN_RECIPROCAL_ANGLE",
    "check_independent",
    "has_two_directions",
    "reference_from_maps",
    "relative_to_region",
    "strain",
    "strain_from_g",
]

# Two reflections closer than this angle (or than 180° minus it) are treated as collinear:
# the strain would be dominated by noise along the missing direction.
MIN_RECIPROCAL_ANGLE = 5.0  # degrees


def _is_dask(a) -> bool:
    return type(a).__module__.split(".")[0] == "dask"


def _spans_plane(g: np.ndarray) -> bool:
    """The rule: two or more reflections, not all within MIN_RECIPROCAL_ANGLE of one line."""
    if g.shape[0] < 2:
        return False
    sv = np.linalg.svd(g, compute_uv=False)
    if not sv[0] > 0:
        # All-zero vectors span nothing; the ratio test below would accept 0 >= 0.
        return False
    # For two vectors at angle α the singular-value ratio is tan(α/2) (equal lengths);
    # lengths differ little in practice, so this is the angle criterion.
    return bool(sv[1] >= np.tan(np.radians(MIN_RECIPROCAL_ANGLE) / 2) * sv[0])


def has_two_directions(reflections) -> bool:
    """Whether reflections span the plane, so that strain can be computed from them.

    Parameters
    ----------
    reflections : array_like
        ``(n, 2)`` reciprocal vectors ``(gy, gx)`` in nm⁻¹.

    Returns
    -------
    bool
        True for two or more reflections of which at least two lie more than
        :data:`MIN_RECIPROCAL_ANGLE` degrees (5°) apart, either sign (``g`` and ``-g``
        are one direction); the rule :func:`strain` enforces.

    Raises
    ------
    TypeError, ValueError
        If ``reflections`` are not ``(n, 2)`` finite real numbers.
    """
    return _spans_plane(as_reflections(reflections))


def check_independent(reflections, *, name: str = "reflections") -> None:
    """Raise unless the reflections span the plane (see :func:`has_two_directions`).

    Parameters
    ----------
    reflections : array_like
        ``(n, 2)`` reciprocal vectors ``(gy, gx)`` in nm⁻¹.
    name : str
        Parameter name used in the error messages.

    Raises
    ------
    ValueError
        If there are fewer than two reflections, or they are (nearly) collinear: no two
        more than :data:`MIN_RECIPROCAL_ANGLE` degrees apart.  Also, as
        :func:`~napari_hrtem_fft.core.reciprocal.as_reflections`, if they are not
        ``(n, 2)`` finite values (TypeError for non-numbers).
    """
    g = as_reflections(reflections, name=name)
    if g.shape[0] < 2:
        raise ValueError(
            f"{name}: strain needs at least two non-collinear reflections, got {g.shape[0]}"
        )
    if not _spans_plane(g):
        raise ValueError(
            f"{name} are zero or (nearly) collinear: strain needs two non-zero reflections "
            f"more than {MIN_RECIPROCAL_ANGLE:g}° apart, got {np.round(g, 4).tolist()} 1/nm"
        )


def _local_components(maps: LatticeMaps):
    """Local ``gy, gx`` (each ``(n, ..., my, mx)``, lazy for dask) in nm⁻¹."""
    return _g_components(maps.d_spacing, maps.angle)


def _g_components(d, angle):
    """``gy, gx`` from spacing (nm) and angle (degrees) maps, elementwise.

    In the maps' precision, at least float32: the float32 maps of ``analyze`` resolve
    6e-8 relative, far below their noise, and single precision halves the cost.
    """
    if not _is_dask(d):
        d, angle = np.asarray(d), np.asarray(angle)
    dtype = np.result_type(d.dtype, angle.dtype, np.float32)
    d = d.astype(dtype, copy=False)
    a = np.radians(angle.astype(dtype, copy=False))
    # numpy ufuncs dispatch to dask, so this stays lazy.
    return -np.sin(a) / d, np.cos(a) / d


def reference_from_maps(maps: LatticeMaps, region, *, per_frame: bool = False) -> np.ndarray:
    """Reference reflections: the median local ``g`` inside a region of the maps.

    Parameters
    ----------
    maps : LatticeMaps
        Maps with local spacing and angle per reflection.
    region : array_like of bool or tuple of slice
        Boolean mask broadcastable to the map shape ``(..., my, mx)``, or a tuple of
        slices selecting map pixels in the trailing axes (e.g. ``(slice(10, 20),
        slice(5, 30))`` for rows 10-19 and columns 5-29 of every frame).
    per_frame : bool
        False: one median over the region in every frame.  True: one median per frame
        of the maps' leading axes (a movie's lattice in the region, frame by frame); a
        frame whose region holds no valid value gets NaN.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹: the NaN-ignoring median of each
        component over the region; ``(..., n, 2)`` with ``per_frame`` (the maps'
        leading axes first).

    Raises
    ------
    ValueError
        If the region has the wrong shape, or holds no valid value for a reflection
        (in any frame, with ``per_frame``).
    """
    map_shape = tuple(np.shape(maps.d_spacing)[1:])
    if isinstance(region, tuple) and all(isinstance(s, slice) for s in region):
        if len(region) > len(map_shape):
            raise ValueError(
                f"reference region has {len(region)} slices but the maps have "
                f"{len(map_shape)} axes {map_shape}"
            )
        mask = np.zeros(map_shape, dtype=bool)
        mask[(Ellipsis, *region)] = True
    else:
        mask = np.asarray(region)
        if mask.dtype != bool:
            raise TypeError(f"reference mask must be boolean, got dtype {mask.dtype}")
        try:
            mask = np.broadcast_to(mask, map_shape)
        except ValueError:
            raise ValueError(
                f"reference mask of shape {mask.shape} does not match the map shape {map_shape}"
            ) from None
    if not mask.any():
        raise ValueError("reference region is empty")
    gy, gx = _local_components(maps)
    n = maps.n_reflections
    lead = map_shape[:-2] if per_frame else ()
    frames = int(np.prod(lead, dtype=np.int64))
    # (n, frames, pixels): per frame the region's pixels of that frame.
    flat = mask.reshape(frames, -1)
    parts = [c.reshape(n, frames, -1) for c in (gy, gx)]
    if _is_dask(parts[0]):
        import dask

        parts = dask.compute(*parts)
    with warnings.catch_warnings():
        # An all-NaN reflection gives NaN, reported just below.
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.stack(
            [
                np.stack(
                    [np.nanmedian(np.asarray(p)[:, f, flat[f]], axis=1) for f in range(frames)]
                )
                for p in parts
            ],
            axis=-1,
        )  # (frames, n, 2)
    valid = np.all(np.isfinite(ref), axis=-1)  # (frames, n)
    if not per_frame:
        ref = ref[0]
        if not valid.all():
            bad = np.nonzero(~valid[0])[0].tolist()
            raise ValueError(f"reference region holds no valid value for reflection(s) {bad}")
        return ref
    if not valid.any(axis=0).all():
        bad = np.nonzero(~valid.any(axis=0))[0].tolist()
        raise ValueError(
            f"reference region holds no valid value for reflection(s) {bad} in any frame"
        )
    ref[~valid.all(axis=1)] = np.nan
    return ref.reshape(*lead, n, 2)


def _check_reference(reference, lead: tuple) -> np.ndarray:
    """Reference reflections ``(n, 2)``, or ``(*lead, n, 2)`` one set per frame, checked.

    Every frame without NaN must span the plane.
    """
    g_ref = np.asarray(reference, dtype=np.float64) if np.ndim(reference) > 2 else None
    if g_ref is None:
        g_ref = as_reflections(reference, name="reference")
        check_independent(g_ref, name="reference")
        return g_ref
    if g_ref.shape[:-2] != tuple(lead) or g_ref.shape[-1] != 2:
        raise ValueError(
            f"a reference per frame must have shape (*frames, n, 2) with frames {tuple(lead)}, "
            f"got {g_ref.shape}"
        )
    sets = g_ref.reshape(-1, *g_ref.shape[-2:])
    for g in sets[np.all(np.isfinite(sets), axis=(1, 2))]:
        check_independent(g, name="reference")
    return g_ref


def strain_from_g(gy, gx, reference) -> dict:
    """Strain and rotation from local reciprocal-vector components.

    Parameters
    ----------
    gy, gx : array_like
        Local components ``(n, ...)`` in nm⁻¹ of the ``n`` reflections (numpy or dask;
        dask stays lazy).  NaN in any reflection gives NaN outputs there.
    reference : array_like
        Reference reflections ``(n, 2)`` in nm⁻¹, non-collinear; or one set per frame,
        ``(..., n, 2)`` with the leading axes of ``gy`` between the reflection and the
        two map axes (a frame whose reference holds NaN gives NaN).

    Returns
    -------
    dict
        ``exx, eyy, exy`` (dimensionless) and ``rotation`` (degrees, counter-clockwise on
        screen), each of shape ``gy.shape[1:]``, in the precision of ``gy`` (at least
        float32).  See the module docstring for
        the finite-strain convention.

    Raises
    ------
    ValueError
        If ``reference`` has fewer than two or collinear reflections, or does not match
        the number of local reflections.
    """
    g_ref = _check_reference(reference, np.shape(gy)[1:-2])
    if np.shape(gy)[0] != g_ref.shape[-2] or np.shape(gx) != np.shape(gy):
        raise ValueError(
            f"reference has {g_ref.shape[-2]} reflections but the local components have "
            f"shapes {np.shape(gy)} and {np.shape(gx)}"
        )
    # Rows g_localᵀ = g_refᵀ F⁻¹, so F⁻¹ = pinv(G_ref) G_local: a fixed linear
    # combination of the n local maps, identical for every pixel (of a frame).
    # In the components' precision (float32 maps give float32 strain).
    dtype = np.result_type(getattr(gy, "dtype", np.float64), np.float32)
    if g_ref.ndim == 2:
        # Explicit sums (no BLAS call: its threads contend with the engine's on a busy
        # machine, and a product of four (n, my, mx) maps needs none).
        pinv = np.linalg.pinv(g_ref).astype(dtype)  # (2, n)
        a00 = _combination(pinv[0], gy)
        a01 = _combination(pinv[0], gx)
        a10 = _combination(pinv[1], gy)
        a11 = _combination(pinv[1], gx)
    else:
        # One pinv per frame, (n, ..., 2, 1, 1) against (n, ..., my, mx); a NaN frame
        # gets zeros, hence det 0 and NaN strain below.
        pinv = np.linalg.pinv(np.nan_to_num(g_ref, nan=0.0)).astype(dtype)  # (..., 2, n)
        w = np.moveaxis(pinv, -1, 0)[..., None, None]
        a00 = (w[..., 0, :, :] * gy).sum(axis=0)
        a01 = (w[..., 0, :, :] * gx).sum(axis=0)
        a10 = (w[..., 1, :, :] * gy).sum(axis=0)
        a11 = (w[..., 1, :, :] * gx).sum(axis=0)
    return _polar_strain(a00, a01, a10, a11)


def _combination(weights, comps):
    """``Σ_j weights[j]·comps[j]`` over the first axis (numpy in place, dask lazy)."""
    out = comps[0] * weights[0]
    for j in range(1, len(weights)):
        if _is_dask(out):
            out = out + comps[j] * weights[j]
        else:
            out += comps[j] * weights[j]
    return out


def _polar_strain(a00, a01, a10, a11) -> dict:
    """Strain and rotation of ``F = A⁻¹`` from the four maps of ``A = F⁻¹``.

    Polar decomposition ``F = V R``, ``R = [[c, -s], [s, c]]`` in (y, x) order (a
    counter-clockwise rotation on screen, y down), in closed form: with
    ``F = adj(A)/det``, ``P = a00 + a11`` and ``Q = a01 - a10``, the rotation is
    ``θ = atan2(Q/det, P/det)`` and ``V = F Rᵀ`` has, with ``k = 1/(|det|·hypot(P, Q))``,
    ``v00 = (a11 P + a01 Q) k``, ``v11 = (a00 P - a10 Q) k`` and
    ``v01 + v10 = ((a11 - a00) Q - (a01 + a10) P) k`` (no sine or cosine per pixel).
    ``det = 0`` (a frame without reference) gives NaN.
    """
    with np.errstate(all="ignore"):
        det = a00 * a11 - a01 * a10
        p = a00 + a11
        q = a01 - a10
        inv = 1.0 / det
        theta = np.arctan2(q * inv, p * inv)
        k = 1.0 / (abs(det) * np.sqrt(p * p + q * q))
        return {
            "exx": (a00 * p - a10 * q) * k - 1.0,
            "eyy": (a11 * p + a01 * q) * k - 1.0,
            "exy": 0.5 * ((a11 - a00) * q - (a01 + a10) * p) * k,
            "rotation": theta * (180.0 / np.pi),
        }


def strain(maps: LatticeMaps, reference=None) -> StrainMaps:
    """Strain and rotation maps relative to a reference lattice.

    Parameters
    ----------
    maps : LatticeMaps
        Local spacing and angle of ``n ≥ 2`` non-collinear reflections.
    reference : None, array_like of bool, tuple of slice or array_like, optional
        The undeformed lattice:

        - ``None`` (default): ``maps.reflections``, the reflections that were analysed;
        - a boolean mask broadcastable to the map shape ``(..., my, mx)``, or a tuple
          of slices of map pixels: the median local ``g`` inside that region, in each
          frame of a movie's maps separately (see :func:`reference_from_maps` with
          ``per_frame=True``);
        - ``(n, 2)`` reciprocal vectors ``(gy, gx)`` in nm⁻¹, or ``(..., n, 2)`` one set
          per frame of the maps' leading axes.

    Returns
    -------
    StrainMaps
        ``exx, eyy, exy`` (dimensionless, finite Biot strain ``V - I`` in image axes)
        and ``rotation`` (degrees, counter-clockwise on screen), each of the map shape
        ``(..., my, mx)`` and the floating dtype of ``maps.d_spacing`` (at least
        float32); NaN wherever any reflection is NaN.  Dask inputs give lazy dask
        outputs.  ``reference`` holds the reference reflections used (``(n, 2)``, or
        ``(..., n, 2)`` per frame).

    Raises
    ------
    ValueError
        If there are fewer than two reflections or they are collinear (message names
        ``reflections``), or ``reference`` does not match the maps.
    TypeError
        If ``maps`` is not a :class:`LatticeMaps`.

    Notes
    -----
    With ``a_local = F a_ref`` and hence ``g_local = F⁻ᵀ g_ref``, ``F`` is fitted per
    pixel by least squares over the reflections in reciprocal space and decomposed as
    ``F = V R``; ``[[eyy, exy], [exy, exx]] = V - I`` and ``rotation`` is the angle of
    ``R``.  To first order ``F = I + ε + ω``: a uniform dilatation by ``s`` gives
    exactly ``exx = eyy = s - 1``; a rigid rotation by ``θ`` exactly ``rotation = θ``.
    """
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")
    refl = as_reflections(maps.reflections, name="reflections")
    check_independent(refl)
    if reference is None:
        g_ref = refl
    elif (isinstance(reference, tuple) and all(isinstance(s, slice) for s in reference)) or (
        np.asarray(reference).dtype == bool
    ):
        g_ref = reference_from_maps(maps, reference, per_frame=True)
    else:
        g_ref = np.asarray(reference) if np.ndim(reference) > 2 else None
        if g_ref is None:
            g_ref = as_reflections(reference, name="reference")
        if g_ref.shape[-2:] != refl.shape:
            raise ValueError(
                f"reference must have one (gy, gx) per reflection, shape {refl.shape}, "
                f"got {g_ref.shape}"
            )
    g_ref = _check_reference(g_ref, tuple(np.shape(maps.d_spacing)[1:-2]))
    comps = strain_of_spacing(maps.d_spacing, maps.angle, g_ref)
    return StrainMaps(**comps, reference=g_ref)


def strain_of_spacing(d_spacing, angle, reference) -> dict:
    """Strain and rotation from local spacing and angle maps (what :func:`strain` computes).

    Pixel by pixel: a block of the maps gives that block of the strain (the engine
    computes it so, block by block beside the maps).

    Parameters
    ----------
    d_spacing, angle : array_like
        ``(n, ..., my, mx)`` spacing in nm and angle in degrees (numpy or dask).
    reference : array_like
        Reference reflections as :func:`strain_from_g` takes them.

    Returns
    -------
    dict
        ``exx, eyy, exy, rotation`` in the maps' floating dtype (at least float32).
    """
    gy, gx = _g_components(d_spacing, angle)
    comps = strain_from_g(gy, gx, reference)
    dtype = np.result_type(getattr(d_spacing, "dtype", np.float64), np.float32)
    return {k: v.astype(dtype, copy=False) for k, v in comps.items()}


def relative_to_region(
    maps: LatticeMaps, region, *, record=None, follow_drift: bool = True
) -> LatticeMaps:
    """Maps whose strain and phase are relative to the lattice inside a region.

    The reference lattice ``g_ref`` is the median local ``g`` of each reflection in the
    region, in each frame of a movie separately (:func:`reference_from_maps` with
    ``per_frame=True``).  Strain is computed against it (:func:`strain`), and the phase
    is re-referred to it (:func:`~napari_hrtem_fft.core.phase.relative_phase`, from
    the reflections each frame was demodulated at, which a tracked movie records per
    frame): flat, with zero circular mean, inside the region.

    A movie analysed with its drift followed (``parameters["movie"]`` with
    ``drift_mode == "follow"`` and ``drift_px``, as
    :func:`~napari_hrtem_fft.core.movie.analyze_movie` and the live run record it) is
    on the original frames, where the crystal moves: a 2D region, drawn on the first
    analysed frame, moves with the drift as in the live run
    (:func:`~napari_hrtem_fft.core.drift.shift_region`).

    Parameters
    ----------
    maps : LatticeMaps
        Maps of one image ``(n, my, mx)`` or a movie ``(n, ..., my, mx)``.
    region : array_like of bool
        Map pixels of the region, broadcastable to the map shape ``(..., my, mx)``: a
        2D region applies to every frame, a ``(t, my, mx)`` region gives each frame of
        a movie its own (e.g. painted per frame, or following the particle).
    record : object, optional
        How the region was given (e.g. a rectangle in nm, a layer name and label),
        JSON-friendly; stored in ``parameters["reference"]["region"]``.
    follow_drift : bool
        Move a 2D region with the recorded drift of a movie (see above); False uses
        it as given in every frame.

    Returns
    -------
    LatticeMaps
        A copy with ``strain`` (when the reflections span the plane) and ``phase`` (when
        the maps have one) relative to the region, and ``parameters["reference"]``:
        ``region`` (the record), ``reflections`` (``g_ref``, nm⁻¹, ``(n, 2)`` or
        ``(..., n, 2)``), ``map_pixels`` (pixels of the region per frame) and
        ``follows_drift`` (whether the region moved with the drift).

    Raises
    ------
    ValueError
        If the region is empty in some frame (the frames are named), does not match the
        maps, or holds no valid value of a reflection in any frame.
    """
    import dataclasses

    from .phase import relative_phase

    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")
    mask = np.asarray(region)
    if mask.dtype != bool:
        raise TypeError(f"reference region must be a boolean mask, got dtype {mask.dtype}")
    map_shape = tuple(np.shape(maps.d_spacing)[1:])
    try:
        mask = np.broadcast_to(mask, map_shape)
    except ValueError:
        raise ValueError(
            f"reference region of shape {np.shape(region)} does not match the map shape "
            f"{map_shape}"
        ) from None
    moved = _moved_with_drift(maps, np.asarray(region), follow_drift)
    if moved is not None:
        mask = moved
    empty = ~mask.reshape(-1, *map_shape[-2:]).any(axis=(-2, -1))
    if empty.any() and not empty.all():
        # A frame without a region would silently get NaN strain and phase.
        frames = np.flatnonzero(empty).tolist()
        raise ValueError(f"reference region holds no map pixel in frame(s) {frames} of the maps")
    g_ref = reference_from_maps(maps, mask, per_frame=True)
    fields = {}
    if _spans_plane(as_reflections(maps.reflections)):
        fields["strain"] = strain(maps, reference=g_ref)
    if maps.phase is not None:
        fields["phase"] = relative_phase(maps, g_ref, mask)
    params = dict(maps.parameters)
    params["reference"] = {
        "region": record,
        "reflections": np.round(g_ref, 9).tolist(),
        "map_pixels": np.sum(mask, axis=(-2, -1)).tolist(),
        "follows_drift": moved is not None,
        "convention": "strain and phase relative to the median local g inside the region, "
        "per frame; the phase has zero circular mean there",
    }
    return dataclasses.replace(maps, **fields, parameters=params)


def _moved_with_drift(maps: LatticeMaps, region: np.ndarray, follow: bool):
    """A 2D region moved with a movie's followed drift, ``(t, my, mx)``.

    None when the region is used as given (not asked, not 2D, no drift followed).
    """
    from .drift import shift_region

    movie = maps.parameters.get("movie")
    lead = tuple(np.shape(maps.d_spacing)[1:-2])
    if not follow or region.ndim != 2 or len(lead) != 1 or not isinstance(movie, dict):
        return None
    if movie.get("drift_mode") != "follow" or movie.get("drift_px") is None:
        return None
    drift = np.asarray(movie["drift_px"], dtype=np.float64)
    if drift.shape != (lead[0], 2):
        raise ValueError(
            f"the maps' movie record has a drift of shape {drift.shape} for {lead[0]} frames"
        )
    return shift_region(region, drift, step=maps.step)
