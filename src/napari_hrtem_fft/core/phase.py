"""Displacement field and dislocation cores from geometric-phase maps.

Conventions (also in ``docs/gpa.md``)
-------------------------------------
* ``maps.phase[j]`` is the geometric phase ``P_j`` of reflection ``g_j`` relative to the
  given ``g_j``: the image holds ``A_j cos(2π g_j·r + P_j(r))`` around ``r``.  A
  displacement ``u`` of the lattice (material from the reference position ``r - u``
  now at ``r``) gives ``P_j = -2π g_j·u + φ_j`` (Hÿtch 1998), ``φ_j`` a constant.
* :func:`displacement` inverts this: ``u = -(1/2π) G⁺ P`` with ``G`` the ``(n, 2)``
  matrix of the reflections (for two reflections ``G⁺ P = Σ P_j a_j``, ``a_j`` the
  real-space basis dual to the ``g_j``).  ``u`` is defined up to a constant (the
  ``φ_j``, i.e. the choice of lattice origin) and modulo a lattice vector ``t``
  (``g_j·t`` integer for every ``j``).
* A dislocation with Burgers vector ``b`` winds the phases: around a loop that runs
  once **counter-clockwise on screen** round the core, ``∮ dP_j = -2π g_j·b`` with
  ``b = ∮ du`` along that loop.  :func:`find_dislocations` counts the windings
  ``n_j = ∮ dP_j / 2π`` (integers) and solves ``g_j·b = -n_j``.  Seen from the
  viewer, a counter-clockwise loop is right-handed about a line direction ``ξ``
  pointing out of the screen, towards the viewer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .maps import LatticeMaps
from .strain import check_independent

__all__ = [
    "Dislocations",
    "displacement",
    "find_dislocations",
    "phase_reflections",
    "phase_windings",
    "relative_phase",
]


def _wrap(a):
    """Angles wrapped to [-π, π)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def _phases(maps: LatticeMaps, reflections) -> tuple[np.ndarray, np.ndarray, list[int]]:
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")
    if maps.phase is None:
        raise ValueError(
            "maps have no phase: compute them with a method that fills LatticeMaps.phase "
            "(e.g. napari_hrtem_fft.analyze_gpa)"
        )
    n = maps.n_reflections
    idx = list(range(n)) if reflections is None else [int(i) for i in reflections]
    if any(i < 0 or i >= n for i in idx) or len(set(idx)) != len(idx):
        raise ValueError(f"reflections must be distinct indices in 0 … {n - 1}, got {idx}")
    g = np.asarray(maps.reflections, dtype=np.float64)[idx]
    check_independent(g)
    phase = np.asarray(maps.phase, dtype=np.float64)[idx]
    return phase, g, idx


def phase_reflections(maps: LatticeMaps) -> np.ndarray:
    """The reflections each frame's phase is measured against.

    ``maps.reflections``, unless the maps record others per frame: a tracked movie
    demodulates each frame at the lattice found in the previous one
    (``parameters["movie"]["reflections_per_frame"]``), and
    :func:`~napari_hrtem_fft.core.strain.relative_to_region` re-refers the phase to the
    region's lattice (``parameters["reference"]["reflections"]``; a frame whose
    reference is NaN keeps the movie's reflections).

    Parameters
    ----------
    maps : LatticeMaps
        Maps of one image ``(n, my, mx)`` or a movie ``(n, ..., my, mx)``.

    Returns
    -------
    numpy.ndarray
        ``(..., n, 2)`` float64 ``(gy, gx)`` in nm⁻¹, the maps' leading axes first
        (``(n, 2)`` for one image).
    """
    g = np.asarray(maps.reflections, dtype=np.float64)
    lead = tuple(np.shape(maps.d_spacing)[1:-2])
    out = np.broadcast_to(g, (*lead, *g.shape))
    for key, name in (("movie", "reflections_per_frame"), ("reference", "reflections")):
        record = maps.parameters.get(key)
        if not isinstance(record, dict) or record.get(name) is None:
            continue
        try:
            # JSON records hold NaN as null or "NaN": float arrays read both back as NaN.
            recorded = np.asarray(record[name], dtype=np.float64)
        except (TypeError, ValueError):
            continue  # not a record of reflections (e.g. a shortened description)
        if recorded.shape in (g.shape, out.shape):
            out = np.where(np.isfinite(recorded), recorded, out)
    return np.array(out)


def relative_phase(maps: LatticeMaps, reference, region) -> np.ndarray:
    """The phase maps re-referred to other reflections, with zero mean in a region.

    Parameters
    ----------
    maps : LatticeMaps
        Maps with ``phase``, relative to :func:`phase_reflections` (in a tracked movie
        each frame's own).
    reference : array_like
        ``(n, 2)`` reflections ``g_ref`` in nm⁻¹, or ``(..., n, 2)`` one set per frame of
        the maps' leading axes (NaN sets give NaN frames), e.g. the median local ``g``
        in the region (:func:`napari_hrtem_fft.core.strain.reference_from_maps`).
    region : array_like of bool
        Map pixels broadcastable to ``(..., my, mx)``, where the result has zero
        circular mean in each frame.

    Returns
    -------
    array
        ``(n, ..., my, mx)`` float, radians in (-π, π]:
        ``P'_j(c) = P_j(c) - 2π (g_ref,j - g_j)·c - φ_j`` with ``g_j`` the reflection
        the frame's phase is measured against, ``c`` the window centre in
        nm from the image origin and ``φ_j`` the circular mean of the rest over the
        region; i.e. the phase of the image's fringes against ``g_ref`` (the GPA
        phase of ``g_ref``, whose gradient is ``2π`` times the local ``g - g_ref``).
        Lazy for dask maps.
    """
    if maps.phase is None:
        raise ValueError("maps have no phase")
    phase = maps.phase
    if type(phase).__module__.split(".")[0] != "dask":
        phase = np.asarray(phase, dtype=np.float64)
    g = phase_reflections(maps)
    g_ref = np.asarray(reference, dtype=np.float64)
    lead = tuple(np.shape(phase)[1:-2])
    if g_ref.shape[-2:] != g.shape[-2:] or g_ref.shape[:-2] not in ((), lead):
        raise ValueError(
            f"reference must be (n, 2) = {g.shape[-2:]} or (*frames, n, 2) with frames {lead}, "
            f"got {g_ref.shape}"
        )
    my, mx = np.shape(phase)[-2:]
    dg = np.moveaxis(np.broadcast_to(g_ref - g, (*lead, *g.shape[-2:])), -2, 0)  # (n, ..., 2)
    yy = np.arange(my) * maps.map_scale
    xx = np.arange(mx) * maps.map_scale
    ramp = (
        2 * np.pi * (dg[..., 0, None, None] * yy[:, None] + dg[..., 1, None, None] * xx[None, :])
    )
    rest = phase - ramp
    mask = np.broadcast_to(np.asarray(region, dtype=bool), np.shape(phase)[1:])
    z = np.where(mask & np.isfinite(rest), np.exp(1j * rest), 0)
    total = z.sum(axis=(-2, -1))
    if hasattr(total, "compute"):
        total = total.compute()
    offset = np.angle(np.asarray(total))[..., None, None]
    # (-π, π]: π - ((π - x) mod 2π).
    return np.pi - (np.pi - (rest - offset)) % (2 * np.pi)


def _basis_pair(g: np.ndarray) -> tuple[int, int]:
    """The two reflections spanning the largest parallelogram (best conditioned)."""
    best, pair = -1.0, (0, 1)
    for i in range(len(g)):
        for j in range(i + 1, len(g)):
            area = abs(g[i, 0] * g[j, 1] - g[i, 1] * g[j, 0])
            if area > best:
                best, pair = area, (i, j)
    return pair


def _unwrap(phase: np.ndarray) -> np.ndarray:
    """Spatially unwrap one 2D phase map; NaN stays NaN, each island on its own."""
    from skimage.restoration import unwrap_phase

    finite = np.isfinite(phase)
    if not finite.any():
        return phase
    out = unwrap_phase(np.ma.masked_array(np.where(finite, phase, 0.0), ~finite))
    out = np.ma.filled(out, np.nan)
    # unwrap_phase may shift an island by a multiple of 2π: keep the wrapped value at
    # one pixel of each island so the result is reproducible.
    labels, count = ndimage.label(finite)
    for lab in range(1, count + 1):
        where = labels == lab
        k = np.argmax(where)
        shift = np.round((out.flat[k] - phase.flat[k]) / (2 * np.pi)) * 2 * np.pi
        out[where] -= shift
    return out


def _reference_phase(maps: LatticeMaps, idx: list[int], reference):
    """Phases ``(n, ..., my, mx)`` and reflections ``(n, 2)`` of ``displacement``'s
    reference lattice; ``None`` to keep the maps' phases and given reflections.
    """
    from .strain import reference_from_maps

    given = np.asarray(maps.reflections, dtype=np.float64)
    if reference is None:
        record = maps.parameters.get("reference")
        if not isinstance(record, dict) or "reflections" not in record:
            return None
        # relative_to_region: the phases are already relative to the region's lattice,
        # whose g's also give u (the given ones would scale u by |g|/|g_ref|).
        g_ref = np.asarray(record["reflections"], dtype=np.float64).reshape(-1, *given.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames
            g = np.nanmedian(g_ref, axis=0)[idx]
        return (None, g) if np.all(np.isfinite(g)) else None
    if isinstance(reference, str):
        if reference != "median":
            raise ValueError(
                f"reference must be None, 'median' or a boolean mask, got {reference!r}"
            )
        region = np.all(np.isfinite(np.asarray(maps.d_spacing, dtype=np.float64)[idx]), axis=0)
    else:
        region = np.asarray(reference)
        if region.dtype != bool:
            raise TypeError(f"reference must be a boolean mask, got dtype {region.dtype}")
        try:
            region = np.broadcast_to(region, np.shape(maps.phase)[1:])
        except ValueError:
            raise ValueError(
                f"reference mask of shape {np.shape(reference)} does not match the map "
                f"shape {np.shape(maps.phase)[1:]}"
            ) from None
    if not region.any():
        raise ValueError("reference region is empty (no map pixel with a local g)")
    found = reference_from_maps(maps, region, per_frame=True)
    # A frame without a valid local g in the region keeps the given reflections.
    g_ref = np.where(np.isfinite(found), found, given)
    # Reflections beyond the best pair follow from it as they do among the given ones
    # (002 = 111 + 11-1): separate medians break that by ~10⁻³, a ramp between the
    # phases that the 2π rounding of displacement() turns into jumps of a lattice vector.
    sub = given[idx]
    i, j = _basis_pair(sub)
    miller = sub @ np.linalg.inv(sub[[i, j]])
    if np.allclose(miller, np.round(miller), atol=0.05):
        pair = g_ref[..., [idx[i], idx[j]], :]
        g_ref[..., idx, :] = np.einsum("nk,...kc->...nc", np.round(miller), pair)
    phase = np.asarray(relative_phase(maps, g_ref, region), dtype=np.float64)[idx]
    return phase, np.median(g_ref.reshape(-1, *given.shape), axis=0)[idx]


def displacement(
    maps: LatticeMaps, *, reflections=None, unwrap: bool = True, reference=None
) -> np.ndarray:
    """Displacement field ``u = (uy, ux)`` in nm from the geometric phases.

    Parameters
    ----------
    maps : LatticeMaps
        Maps with ``phase`` (e.g. from :func:`napari_hrtem_fft.analyze_gpa`) of at least
        two non-collinear reflections.
    reflections : sequence of int, optional
        Indices of the reflections to use (default all).
    unwrap : bool
        True: each phase map is unwrapped spatially (quality-guided, Herráez et al.
        2002, per 2D frame and per connected region of valid pixels), so that ``u`` is
        continuous except on the cuts that any loop round a dislocation core must
        cross, where it jumps by the Burgers vector.  False: ``u`` is the per-pixel
        value in the unit cell of the lattice round 0 (a sawtooth map).
    reference : None, "median" or array_like of bool
        The lattice ``u`` is measured from.  None (default): the maps' own, i.e. the
        given reflections, or the region's lattice for maps made relative to a region
        (:func:`napari_hrtem_fft.core.strain.relative_to_region`).  ``"median"``: the
        median local ``g`` over the map pixels where every used reflection has one, per
        frame (GPA's usual refinement of ``g`` to the mean lattice: a ``g`` picked from
        the FFT a fraction of a bin off adds a ramp ``(g_local - g)·r`` to the phase and
        a linear term to ``u``, ~100 pm across a 9 nm particle for a 1.5 % error).  A
        boolean mask of map pixels ``(..., my, mx)``: the median local ``g`` inside it,
        per frame.  The given reflections stay the default because a lattice with
        dislocations has no region whose mean lattice is the reference one: the
        cores' long-range rotations shift the median local ``g`` of
        ``dislocation_sample`` by 0.2-0.5 % from the lattice the field is built on.

    Returns
    -------
    numpy.ndarray
        ``(2, ..., my, mx)`` float64, ``(uy, ux)`` in nm on the map grid; NaN where any
        used phase is NaN.

    Notes
    -----
    ``P_j = -2π g_j·u`` (module docstring), solved per pixel by least squares,
    ``u = -(1/2π) G⁺ P``.  With more than two reflections their phases are first made
    consistent: the two reflections spanning the largest parallelogram give ``u₀``,
    and every phase gets the multiple of 2π that brings it closest to
    ``-2π g_j·u₀`` plus that reflection's constant offset (the circular mean of the
    difference over the frame, weighted by amplitude: the fringes' phases at the origin
    need not add up like the ``g_j``).  ``u`` holds an arbitrary constant (the fringes'
    phases at the image origin) and, without unwrapping, is known only modulo a lattice
    vector.

    Raises
    ------
    ValueError
        If the maps have no phase, or the reflections are fewer than two or collinear.
    """
    phase, g, idx = _phases(maps, reflections)
    if not isinstance(unwrap, bool | np.bool_):
        raise TypeError(f"unwrap must be True or False, got {unwrap!r}")
    referred = _reference_phase(maps, idx, reference)
    if referred is not None:
        phase = phase if referred[0] is None else referred[0]
        g = referred[1]
    if unwrap:
        flat = phase.reshape(-1, *phase.shape[-2:])
        phase = np.stack([_unwrap(p) for p in flat]).reshape(phase.shape)
    i, j = _basis_pair(g)
    dual = np.linalg.inv(g[[i, j]])  # columns: real-space vectors a_i, a_j (nm)
    u0 = -np.tensordot(dual, phase[[i, j]], axes=(1, 0)) / (2 * np.pi)
    expected = -2 * np.pi * np.tensordot(g, u0, axes=(1, 0))
    # A reflection beyond the pair differs from its prediction by a constant too: the
    # fringes' own phases at the origin need not add up like the g's (structure factor,
    # contrast transfer).  That constant, the circular mean over each frame, is kept out
    # of the rounding, so that noise never flips it.
    # Weighted by the weakest reflection's amplitude, so that the film does not count.
    weight = np.min(np.asarray(maps.amplitude, dtype=np.float64)[idx], axis=0)
    offset = weight * np.exp(1j * (phase - expected))
    offset = np.where(np.isfinite(offset), offset, 0)
    offset = np.angle(offset.sum(axis=(-2, -1), keepdims=True))
    with np.errstate(invalid="ignore"):
        turns = np.round((expected + offset - phase) / (2 * np.pi))
    consistent = phase + 2 * np.pi * turns
    return -np.tensordot(np.linalg.pinv(g), consistent, axes=(1, 0)) / (2 * np.pi)


def _fill_holes(phase: np.ndarray) -> np.ndarray:
    """Each NaN hole of a 2D phase map filled with the nearest valid phase.

    A hole is a connected NaN region that does not reach the map's edge.  By the
    discrete Stokes theorem the plaquette windings summed over a filled hole are the
    winding round its rim (each inner edge is crossed once each way, and
    ``wrap(-x) = -wrap(x)``), whatever the filling: a core hidden in a hole is counted
    from the valid pixels round it.  NaN reaching the edge stays NaN (no closed rim).
    """
    missing = ~np.isfinite(phase)
    labels, count = ndimage.label(missing)
    if not count:
        return phase
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = missing & ~np.isin(labels, edge)
    if not holes.any():
        return phase
    _, (iy, ix) = ndimage.distance_transform_edt(missing, return_indices=True)
    filled = phase.copy()
    filled[holes] = phase[iy[holes], ix[holes]]
    return filled


def phase_windings(phase) -> np.ndarray:
    """Winding number of a phase map round every plaquette of four map pixels.

    Parameters
    ----------
    phase : array_like
        ``(..., my, mx)`` phase in radians.

    Returns
    -------
    numpy.ndarray
        ``(..., my-1, mx-1)`` int: ``∮ dP / 2π`` counter-clockwise on screen round the
        pixels ``(i, j)``, ``(i+1, j)``, ``(i+1, j+1)``, ``(i, j+1)`` (each step
        wrapped to (-π, π]); 0 where a corner is NaN.
    """
    p = np.asarray(phase, dtype=np.float64)
    tl, bl = p[..., :-1, :-1], p[..., 1:, :-1]
    br, tr = p[..., 1:, 1:], p[..., :-1, 1:]
    # Counter-clockwise on screen (y down): top-left → bottom-left → bottom-right →
    # top-right → top-left.
    total = _wrap(bl - tl) + _wrap(br - bl) + _wrap(tr - br) + _wrap(tl - tr)
    turns = np.round(total / (2 * np.pi))
    return np.where(np.isfinite(turns), turns, 0).astype(np.int64)


@dataclass
class Dislocations:
    """Dislocation cores found from phase windings.

    Attributes
    ----------
    position : numpy.ndarray
        ``(k, 2)`` core positions ``(y, x)`` in nm relative to the image origin (add the
        image layer's translate for world coordinates).
    burgers : numpy.ndarray
        ``(k, 2)`` Burgers vectors ``(by, bx)`` in nm: ``b = ∮ du`` counter-clockwise on
        screen round the core (module docstring).
    winding : numpy.ndarray
        ``(k, n)`` int: winding ``∮ dP_j / 2π`` of each reflection's phase round the core
        (``= -g_j·b``).
    quality : numpy.ndarray
        ``(k,)`` lower quartile of the amplitude on a ring round the core (between one and
        two cluster radii): how well the phase is defined where the windings were
        counted; compare with the amplitude threshold (noise alone gives ~1).
    residual : numpy.ndarray
        ``(k,)`` RMS of ``g_j·b + n_j`` over the reflections (dimensionless; 0 when the
        windings are those of one lattice vector, always 0 for two reflections).
    frame : numpy.ndarray
        ``(k, m)`` int index of the frame in the maps' leading axes ``(...)`` (``m = 0``
        for a single image).
    reflections : numpy.ndarray
        ``(n, 2)`` reflections used, nm⁻¹.
    parameters : dict
        Options used.
    """

    position: np.ndarray
    burgers: np.ndarray
    winding: np.ndarray
    quality: np.ndarray
    residual: np.ndarray
    frame: np.ndarray
    reflections: np.ndarray
    parameters: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.position.shape[0])

    @property
    def burgers_length(self) -> np.ndarray:
        """``|b|`` in nm, ``(k,)``."""
        return np.hypot(self.burgers[:, 0], self.burgers[:, 1])

    @property
    def burgers_angle(self) -> np.ndarray:
        """Direction of ``b`` in degrees, counter-clockwise on screen from +x, ``(k,)``."""
        return np.degrees(np.arctan2(-self.burgers[:, 0], self.burgers[:, 1]))

    def table(self) -> dict[str, np.ndarray]:
        """Columns of a table, one row per core (units in the names)."""
        cols: dict[str, np.ndarray] = {}
        for a in range(self.frame.shape[1]):
            cols[f"frame_{a}"] = self.frame[:, a]
        cols.update(
            {
                "y_nm": self.position[:, 0],
                "x_nm": self.position[:, 1],
                "by_nm": self.burgers[:, 0],
                "bx_nm": self.burgers[:, 1],
                "b_length_nm": self.burgers_length,
                "b_angle_deg": self.burgers_angle,
            }
        )
        for j in range(self.winding.shape[1]):
            cols[f"winding_{j}"] = self.winding[:, j]
        cols["quality"] = self.quality
        cols["residual"] = self.residual
        return cols

    def points_data(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Data and features of a napari Points layer (nm, leading frame axes first)."""
        data = np.concatenate([self.frame.astype(np.float64), self.position], axis=1)
        features = {k: v for k, v in self.table().items() if not k.startswith(("y_", "x_"))}
        return data, features

    def vectors_data(self, length_scale: float = 1.0) -> np.ndarray:
        """Data ``(k, 2, D)`` of a napari Vectors layer: each core and its Burgers vector.

        Parameters
        ----------
        length_scale : float
            Factor on the drawn vector length (Burgers vectors are a few tenths of a nm long).
        """
        start = np.concatenate([self.frame.astype(np.float64), self.position], axis=1)
        direction = np.concatenate(
            [np.zeros_like(self.frame, dtype=np.float64), self.burgers * length_scale], axis=1
        )
        return np.stack([start, direction], axis=1)


def _ring_quality(amplitude, centre, r_in, r_out) -> float:
    """Lower quartile over reflections and ring pixels of ``amplitude (n, my, mx)``."""
    my, mx = amplitude.shape[-2:]
    yy, xx = np.ogrid[:my, :mx]
    rho = np.hypot(yy - centre[0], xx - centre[1])
    ring = (rho >= r_in) & (rho <= r_out)
    vals = amplitude[:, ring]
    vals = vals[np.isfinite(vals)]
    return float(np.percentile(vals, 25)) if vals.size else float("nan")


def _groups(points: np.ndarray, weight: np.ndarray, radius: float) -> list[np.ndarray]:
    """Group vortices into cores: each group is the points within ``radius`` of its own
    weighted centre (a few mean-shift steps from the heaviest unassigned point), so that
    groups never chain across neighbouring cores the way connected components would.
    """
    left = np.ones(len(points), dtype=bool)
    groups = []
    while left.any():
        idx = np.nonzero(left)[0]
        centre = points[idx[np.argmax(weight[idx])]]
        for _ in range(10):
            members = idx[np.hypot(*(points[idx] - centre).T) <= radius]
            new = (weight[members] @ points[members]) / weight[members].sum()
            if np.allclose(new, centre):
                break
            centre = new
        members = idx[np.hypot(*(points[idx] - centre).T) <= radius]
        if members.size == 0:  # the centre drifted off every point: take the seed alone
            members = idx[[np.argmax(weight[idx])]]
        left[members] = False
        groups.append(members)
    return groups


def _merge_fragments(groups, points, charges, g, pinv, max_residual, radius):
    """Make every group's windings those of one lattice vector, moving vortices if needed.

    A winding of 2 of one reflection is unstable and splits into two unit vortices that
    can stray farther from the core than the grouping radius, even next to another
    core; the groups are then inconsistent with the other reflections' windings
    (residual > ``max_residual``).  For such a group, first the single vortex within 3
    radii of its centre whose move into or out of it lowers the summed residual most
    (ties: fewer cores, then the most compact groups) is moved; if no move helps, the
    group within 3 radii that makes the sum most consistent is merged with it.
    """
    # Single-vortex moves first: merging whole groups would join a fragment to the
    # neighbouring core when the sum happens to be a lattice vector.

    def residual(members):
        if len(members) == 0:
            return 0.0
        n_j = charges[members].sum(axis=0)
        return float(np.sqrt(np.mean((g @ (-pinv @ n_j) + n_j) ** 2)))

    def centre(members):
        w = np.abs(charges[members]).sum(axis=1)
        return (w @ points[members]) / w.sum()

    groups = [np.asarray(m) for m in groups]
    stuck = set()  # inconsistent groups that no move or merge improves
    for _ in range(4 * len(points) + 4):
        bad = [
            a
            for a in range(len(groups))
            if residual(groups[a]) > max_residual and frozenset(groups[a].tolist()) not in stuck
        ]
        if not bad:
            break
        a = bad[0]
        ca, res_a = centre(groups[a]), residual(groups[a])
        # Candidate moves of one vortex into or out of group a; the one that lowers the
        # summed residual most wins, ties going to the move that leaves fewer cores,
        # then to the most compact pair of groups.
        best, best_key = None, (1e-9, -2, -np.inf)
        for b in range(len(groups)):
            if b == a or np.hypot(*(ca - centre(groups[b]))) > 3 * radius:
                continue
            res_b = residual(groups[b])
            moves = [(b, a, p) for p in groups[b]] + [(a, b, p) for p in groups[a]]
            for src, dst, p in moves:
                new_src = groups[src][groups[src] != p]
                new_dst = np.append(groups[dst], p)
                gain = res_a + res_b - residual(new_src) - residual(new_dst)
                spread = sum(
                    float(np.sum((points[m] - centre(m)) ** 2))
                    for m in (new_src, new_dst)
                    if len(m)
                )
                key = (round(gain, 9), -int(len(new_src) > 0), -spread)
                if key > best_key:
                    best, best_key = (src, dst, p), key
        if best is not None:
            src, dst, p = best
            groups[dst] = np.append(groups[dst], p)
            groups[src] = groups[src][groups[src] != p]
            groups = [m for m in groups if len(m)]
            continue
        merge, best_res = None, res_a
        for b in range(len(groups)):
            if b == a or np.hypot(*(ca - centre(groups[b]))) > 3 * radius:
                continue
            res = residual(np.concatenate([groups[a], groups[b]]))
            if res < best_res - 1e-9:
                merge, best_res = b, res
        if merge is None:
            # Nothing helps: leave it (find_dislocations drops it by its residual).
            stuck.add(frozenset(groups[a].tolist()))
            continue
        groups[a] = np.concatenate([groups[a], groups[merge]])
        del groups[merge]
    return groups


def _join_close(groups, points, charges, distance):
    """The halves of a split higher winding joined again into one core.

    A core that winds a phase twice (``n = (1, 1, 2)``) splits, in a filtered phase
    field, into two sets of unit vortices that can each be a lattice vector on its own
    (``(1, 0, 1)`` and ``(0, 1, 1)``), so that no repair of inconsistent groups joins
    them.  Two groups are joined when their weighted centres are closer than
    ``distance`` and their summed windings wind some phase more often than either does
    alone (the signature of such a split; two cores that each already wind a phase
    twice stay apart).  The halves lie up to ~0.6 window from each other (local FFT,
    SNR 1-2).  Closest pairs first; groups whose windings sum to zero (noise pairs)
    stay apart.
    """
    groups = [np.asarray(m) for m in groups]

    def centre(members):
        w = np.abs(charges[members]).sum(axis=1)
        return (w @ points[members]) / w.sum()

    while True:
        live = [a for a in range(len(groups)) if charges[groups[a]].sum(axis=0).any()]
        if len(live) < 2:
            return groups
        c = np.array([centre(groups[a]) for a in live])
        n = np.array([charges[groups[a]].sum(axis=0) for a in live])
        top = np.abs(n).max(axis=1)
        dist = np.hypot(*(c[:, None] - c[None]).transpose(2, 0, 1))
        split = np.abs(n[:, None] + n[None]).max(axis=2) > np.maximum(top[:, None], top[None])
        dist[~split] = np.inf
        dist[np.diag_indices(len(live))] = np.inf
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[i, j] >= distance:
            return groups
        a, b = live[i], live[j]
        groups[a] = np.concatenate([groups[a], groups[b]])
        del groups[b]


def _window_nm(maps: LatticeMaps) -> float:
    """The local-FFT window (nm) the maps' resolution amounts to.

    Local-FFT maps: their window.  GPA maps: the window whose step response matches
    their ``resolution_nm`` (:func:`napari_hrtem_fft.core.gpa.matched_resolution`).
    """
    from .gpa import matched_resolution

    resolution = maps.parameters.get("resolution_nm")
    if maps.parameters.get("method") == "gpa" and resolution:
        return float(resolution) / matched_resolution(1, 1.0)
    return maps.window * maps.pixel_size


def find_dislocations(
    maps: LatticeMaps,
    *,
    reflections=None,
    min_quality: float | None = None,
    max_residual: float = 0.25,
    cluster_radius: float | None = None,
) -> Dislocations:
    """Dislocation cores and Burgers vectors from the windings of the phase maps.

    Parameters
    ----------
    maps : LatticeMaps
        Maps with ``phase`` of at least two non-collinear reflections.
    reflections : sequence of int, optional
        Indices of the reflections to use (default all).
    min_quality : float, optional
        Cores whose ring amplitude (see :class:`Dislocations`) is below this are
        dropped as noise; default ``maps.parameters["min_amplitude"]`` or 10.
    max_residual : float
        Cores whose windings are not those of one lattice vector (RMS of
        ``g_j·b + n_j`` above this, possible with three or more reflections) are dropped:
        noise vortices of single reflections.
    cluster_radius : float, optional
        Windings of the different reflections closer than this (nm) to their weighted
        centre belong to one core (their singularities separate by a fraction of the
        resolution), and the halves of a split core closer than twice this are joined
        (Notes); default 3/8 of the maps' window (``0.375 · window · pixel_size``; for
        GPA maps the local-FFT window of matched resolution, ``resolution_nm / 0.443``).

    Returns
    -------
    Dislocations
        One row per core whose summed windings are not all zero (vortex pairs of noise
        cancel).  Two cores closer than ``cluster_radius`` are reported as one with the
        sum of their Burgers vectors, and so are two cores closer than
        ``2 · cluster_radius`` whose sum winds a phase more often than either (what a
        core winding a phase twice splits into).

    Notes
    -----
    Windings are counted round every plaquette of four valid map pixels and round
    every NaN hole that does not reach the map's edge (its rim closes round it): a
    local-FFT map is NaN over a core, where the fringes of the window cancel, and a
    core in such a hole lies within about the hole's radius of the reported position.
    (The engine keeps the local-FFT phase wherever the window is clean, as GPA does, so
    such holes now come from masks.)

    Raises
    ------
    ValueError
        If the maps have no phase, or the reflections are fewer than two or collinear.
    """
    phase, g, idx = _phases(maps, reflections)
    amplitude = np.asarray(maps.amplitude, dtype=np.float64)[idx]
    scale = maps.map_scale
    if min_quality is None:
        min_quality = float(maps.parameters.get("min_amplitude", 10.0))
    if cluster_radius is None:
        cluster_radius = 0.375 * _window_nm(maps)
    radius_px = max(float(cluster_radius) / scale, 1.0)
    n = len(idx)
    lead = phase.shape[1:-2]
    flat_phase = phase.reshape(n, -1, *phase.shape[-2:])
    flat_amp = amplitude.reshape(n, -1, *amplitude.shape[-2:])
    pinv = np.linalg.pinv(g)
    rows = []
    for t in range(flat_phase.shape[1]):
        # Holes filled: local-FFT maps are NaN over a core (the window straddling it
        # loses its fringe amplitude and its local g leaves the search region), and
        # masks may cut holes too; the windings round a hole still count.
        wind = phase_windings(np.stack([_fill_holes(p) for p in flat_phase[:, t]]))
        any_wind = np.any(wind != 0, axis=0)
        if not any_wind.any():
            continue
        iy, ix = np.nonzero(any_wind)
        # Plaquette (i, j) is centred half a map pixel below and right of pixel (i, j).
        points = np.stack([iy, ix], axis=1).astype(np.float64) + 0.5
        charges = wind[:, iy, ix].T  # (m, n)
        groups = _groups(points, np.abs(charges).sum(axis=1), radius_px)
        groups = _merge_fragments(groups, points, charges, g, pinv, max_residual, radius_px)
        groups = _join_close(groups, points, charges, 2 * radius_px)
        for members in groups:
            n_j = charges[members].sum(axis=0)
            if not n_j.any():
                continue
            weight = np.abs(charges[members]).sum(axis=1).astype(np.float64)
            cy, cx = (weight @ points[members]) / weight.sum()
            b = -pinv @ n_j
            residual = float(np.sqrt(np.mean((g @ b + n_j) ** 2)))
            quality = _ring_quality(flat_amp[:, t], (cy, cx), radius_px, 2 * radius_px)
            if not (quality >= min_quality and residual <= max_residual):
                continue
            frame = np.unravel_index(t, lead) if lead else ()
            rows.append((frame, (cy * scale, cx * scale), b, n_j, quality, residual))
    k = len(rows)
    return Dislocations(
        position=np.array([r[1] for r in rows], dtype=np.float64).reshape(k, 2),
        burgers=np.array([r[2] for r in rows], dtype=np.float64).reshape(k, 2),
        winding=np.array([r[3] for r in rows], dtype=np.int64).reshape(k, n),
        quality=np.array([r[4] for r in rows], dtype=np.float64),
        residual=np.array([r[5] for r in rows], dtype=np.float64),
        frame=np.array([r[0] for r in rows], dtype=np.int64).reshape(k, len(lead)),
        reflections=g,
        parameters={
            "reflections": idx,
            "min_quality": float(min_quality),
            "max_residual": float(max_residual),
            "cluster_radius_nm": float(cluster_radius),
            "closure": "b = ∮du counter-clockwise on screen; winding n_j = -g_j·b",
        },
    )
