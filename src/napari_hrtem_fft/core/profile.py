"""Line profiles of lattice maps: values along a line, averaged across a width."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .maps import LatticeMaps

__all__ = ["LineProfile", "line_profile", "step_width"]

# Per-reflection quantities: name → (unit, circular period or None).
_PER_REFLECTION = {
    "d_spacing": ("nm", None),
    "angle": ("deg", 360.0),
    "amplitude": ("1", None),
    "phase": ("rad", 2 * np.pi),
}
_STRAIN = {"exx": ("1", None), "eyy": ("1", None), "exy": ("1", None), "rotation": ("deg", None)}


@dataclass
class LineProfile:
    """Map values along a line.

    Attributes
    ----------
    distance : numpy.ndarray
        ``(k,)`` distance from the start in nm, one sample per map pixel spacing.
    position : numpy.ndarray
        ``(k, 2)`` sample positions ``(y, x)`` in nm relative to the image origin.
    values : dict of str to numpy.ndarray
        Mean across the width at each sample: per-reflection quantities ``d_spacing``
        (nm), ``angle`` (deg), ``amplitude`` and ``phase`` (rad) of shape
        ``(n, ..., k)``; strain components ``exx, eyy, exy`` and ``rotation`` (deg) of
        shape ``(..., k)``, when the maps have them.  NaN where no valid map pixel
        contributes.  Angles and phases are circular means.
    units : dict of str to str
        Unit of each quantity (``"1"``: dimensionless).
    start, end : numpy.ndarray
        The line's ends ``(y, x)`` in nm.
    width : float
        Width averaged across, nm.
    parameters : dict
        Sampling used.
    """

    distance: np.ndarray
    position: np.ndarray
    values: dict
    units: dict
    start: np.ndarray
    end: np.ndarray
    width: float
    parameters: dict = field(default_factory=dict)

    def columns(self) -> dict[str, np.ndarray]:
        """Flat columns for a table or CSV, one row per sample and frame."""
        first = next(iter(self.values.values()))
        lead = first.shape[1:-1] if self.values and _is_per_reflection(first, self) else ()
        k = self.distance.size
        frames = list(np.ndindex(*lead)) if lead else [()]
        cols: dict[str, list] = {}
        for fr in frames:
            for a, i in enumerate(fr):
                cols.setdefault(f"frame_{a}", []).append(np.full(k, i))
            cols.setdefault("distance_nm", []).append(self.distance)
            cols.setdefault("y_nm", []).append(self.position[:, 0])
            cols.setdefault("x_nm", []).append(self.position[:, 1])
            for name, arr in self.values.items():
                unit = self.units[name]
                if name in _PER_REFLECTION:
                    for j in range(arr.shape[0]):
                        cols.setdefault(f"{name}_{j}_{unit}", []).append(arr[(j, *fr)])
                else:
                    cols.setdefault(f"{name}_{unit}", []).append(arr[fr])
        return {name: np.concatenate(parts) for name, parts in cols.items()}

    def to_csv(self, delimiter: str = ",") -> str:
        """CSV text: ``#`` lines with the line's ends and width, a header, the rows."""
        cols = self.columns()
        out = io.StringIO()
        out.write(
            f"# line from (y, x) = ({float(self.start[0])!r}, {float(self.start[1])!r}) nm "
            f"to ({float(self.end[0])!r}, {float(self.end[1])!r}) nm, "
            f"width {float(self.width)!r} nm\n"
        )
        out.write(delimiter.join(cols) + "\n")
        data = np.column_stack([np.asarray(v, dtype=np.float64) for v in cols.values()])
        for row in data:
            out.write(delimiter.join(repr(float(v)) if np.isfinite(v) else "nan" for v in row))
            out.write("\n")
        return out.getvalue()


def _is_per_reflection(arr, prof: LineProfile) -> bool:
    return any(arr is prof.values.get(name) for name in _PER_REFLECTION)


def _sample(image: np.ndarray, coords: np.ndarray, period: float | None) -> np.ndarray:
    """Bilinear samples of a 2D map with NaN; circular quantities via cos and sin."""
    valid = np.isfinite(image)
    weight = ndimage.map_coordinates(valid.astype(np.float64), coords, order=1, cval=0.0)
    if period is None:
        parts = [np.where(valid, image, 0.0)]
    else:
        ang = 2 * np.pi * image / period
        parts = [np.where(valid, np.cos(ang), 0.0), np.where(valid, np.sin(ang), 0.0)]
    out = [ndimage.map_coordinates(p, coords, order=1, cval=0.0) for p in parts]
    # A sample needs at least half its bilinear weight on valid map pixels.
    ok = weight >= 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        out = [np.where(ok, o / weight, np.nan) for o in out]
    return out[0] if period is None else out[0] + 1j * out[1]


def _mean_across(samples, period: float | None) -> np.ndarray:
    """Mean over the across-line axis (last) ignoring NaN; circular for periodic ones."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if period is None:
            return np.nanmean(samples, axis=-1)
        z = np.nanmean(samples, axis=-1)
        return np.angle(z) * period / (2 * np.pi)


def line_profile(maps: LatticeMaps, start, end, width: float = 0.0) -> LineProfile:
    """Values of the maps along a line from ``start`` to ``end``, averaged across ``width``.

    Parameters
    ----------
    maps : LatticeMaps
        The maps (numpy or dask; dask is computed).
    start, end : array_like
        The line's ends ``(y, x)`` in nm relative to the image origin (map pixel
        ``(i, j)`` lies at ``(i, j)·step·pixel_size``), as drawn on the image in napari
        minus the layer's translate.
    width : float
        Full width in nm over which the values are averaged across the line (0: on the
        line only).  Samples lie every map pixel spacing along and across the line,
        bilinearly interpolated.

    Returns
    -------
    LineProfile
        Distances, positions and mean values of ``d_spacing``, ``angle``,
        ``amplitude``, ``phase`` (if present) and the strain components (if present).

    Raises
    ------
    TypeError
        If ``maps`` is not a LatticeMaps.
    ValueError
        If the ends are not two finite ``(y, x)`` pairs, coincide, or ``width`` is
        negative or not finite.
    """
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")
    p0 = np.asarray(start, dtype=np.float64)
    p1 = np.asarray(end, dtype=np.float64)
    if p0.shape != (2,) or p1.shape != (2,) or not np.all(np.isfinite([p0, p1])):
        raise ValueError(f"start and end must be finite (y, x) in nm, got {start!r}, {end!r}")
    width = float(width)
    if not np.isfinite(width) or width < 0:
        raise ValueError(f"width must be a finite length >= 0 nm, got {width}")
    length = float(np.hypot(*(p1 - p0)))
    scale = maps.map_scale
    if length <= 0:
        raise ValueError(f"start and end coincide at {p0.tolist()} nm")
    k = int(np.floor(length / scale + 1e-9)) + 1
    along = np.arange(k) * scale
    direction = (p1 - p0) / length
    normal = np.array([-direction[1], direction[0]])
    m = int(np.floor(width / scale / 2 + 1e-9))
    across = np.arange(-m, m + 1) * scale
    pos = p0 + along[:, None] * direction
    pts = pos[:, None, :] + across[None, :, None] * normal  # (k, w, 2) nm
    coords = np.moveaxis(pts / scale, -1, 0).reshape(2, -1)

    sources = {}
    for name in _PER_REFLECTION:
        arr = getattr(maps, name, None)
        if arr is not None:
            sources[name] = (arr, _PER_REFLECTION[name])
    if maps.strain is not None:
        for name, arr in maps.strain.components().items():
            sources[name] = (arr, _STRAIN[name])
    values, units = {}, {}
    for name, (arr, (unit, period)) in sources.items():
        arr = np.asarray(arr.compute() if hasattr(arr, "compute") else arr, dtype=np.float64)
        flat = arr.reshape(-1, *arr.shape[-2:])
        prof = np.stack(
            [_mean_across(_sample(f, coords, period).reshape(k, -1), period) for f in flat]
        )
        values[name] = prof.reshape(*arr.shape[:-2], k)
        units[name] = unit
    return LineProfile(
        distance=along,
        position=pos,
        values=values,
        units=units,
        start=p0,
        end=p1,
        width=width,
        parameters={
            "sample_spacing_nm": scale,
            "samples_across": 2 * m + 1,
            "interpolation": "bilinear, NaN-aware",
        },
    )


def step_width(distance, values, *, low: float = 0.1, high: float = 0.9) -> float:
    """10–90 % width (nm) of a step in a profile.

    The plateaus are the medians of the first and last quarter of the finite samples.
    The width runs from the last sample below ``low`` of the way from one plateau to the
    other before the first sample above ``high``, to that sample (crossings linearly
    interpolated), so that noise on the plateaus does not count.

    Parameters
    ----------
    distance : array_like
        ``(k,)`` positions in nm, increasing.
    values : array_like
        ``(k,)`` profile with one step.
    low, high : float
        Fractions of the step.

    Returns
    -------
    float
        The width in nm; NaN if the profile does not cross both levels.
    """
    x = np.asarray(distance, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    x, v = x[ok], v[ok]
    if v.size < 8:
        return float("nan")
    q = v.size // 4
    a, b = np.median(v[:q]), np.median(v[-q:])
    if a == b:
        return float("nan")
    frac = (v - a) / (b - a)

    above = np.nonzero(frac >= high)[0]
    if above.size == 0 or above[0] == 0:
        return float("nan")
    i_high = above[0]
    below = np.nonzero(frac[:i_high] < low)[0]
    if below.size == 0:
        return float("nan")
    i_low = below[-1]

    def at(i, level):
        # Linear interpolation of the crossing of ``level`` between samples i and i + 1.
        return x[i] + (level - frac[i]) / (frac[i + 1] - frac[i]) * (x[i + 1] - x[i])

    return float(at(i_high - 1, high) - at(i_low, low))
