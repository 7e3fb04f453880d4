"""LatticeMaps as napari layer data tuples, and result layers read back as maps.

:func:`maps_to_layers` makes the layers; :func:`find_result_layers`,
:func:`result_maps`, :func:`result_stacks`, :func:`maps_from_layers` and
:func:`movie_maps_from_layers` read them back.

The lattice-map dock shows a run as ONE layer per analysed image, which shows one map
at a time: napari spends 0.1-0.2 s on every layer it adds (its controls, a canvas
visual, selection events), so a layer per map made a Run cost seconds.  That layer's
``metadata[MAPS_KEY]`` is the run's result record: the layer tuples of every map of
the run, as :func:`maps_to_layers` made them.  :func:`result_maps` reads the maps of
such records and of layers that show one map each (the console's, or the dock's "Add
all maps as layers") alike, so every reader takes both.

The same function serves the lattice-map widget and napari's console, so a map looks
and is calibrated the same whichever way it was made::

    for data, kwargs, _ in maps_to_layers(maps, image_scale=img.scale,
                                          image_translate=img.translate):
        viewer.add_image(data, **kwargs)

Map pixel ``(i, j)`` is the window centred on image pixel ``(i·step, j·step)``.  napari
draws data index ``k`` centred on ``translate + k·scale``, so a map layer with
``scale = image_scale·step`` and ``translate = image_translate`` puts every map pixel
exactly over the centre of its window.

This module imports neither napari nor Qt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.maps import LatticeMaps
from ..core.reciprocal import g_angle, g_spacing
from ..core.records import jsonable

__all__ = [
    "KINDS",
    "MAPS_KEY",
    "PICKER_KEY",
    "RESULT_KEY",
    "ResultMap",
    "contrast_limits",
    "file_stem",
    "find_result_layers",
    "layer_values",
    "map_key",
    "maps_from_layers",
    "maps_to_layers",
    "movie_maps_from_layers",
    "result_info",
    "result_maps",
    "result_stacks",
    "run_options",
]

#: Key of the plugin's entry in a result layer's ``metadata``.
RESULT_KEY = "napari_hrtem_fft"

#: Metadata key of a run's result record on the layer that shows its maps: the list of
#: layer tuples ``(data, kwargs, "image")`` of every map of the run (:func:`result_maps`).
MAPS_KEY = "napari_hrtem_fft_maps"

#: Metadata key marking the reflection picker's own layers (its value says which:
#: ``"reflections"``, ``"region"``, ``"outline"``, ``"fft"``).
PICKER_KEY = "napari_hrtem_fft_picker"

#: Map kinds :func:`maps_to_layers` can produce, in the order layers are added: the
#: fields of LatticeMaps, then strain.
KINDS = (*LatticeMaps.FIELDS, "strain")

_DEFAULT_KINDS = ("d_spacing", "angle", "amplitude", "strain")

_STRAIN_NAMES = {"exx": "exx", "eyy": "eyy", "exy": "exy", "rotation": "rotation (°)"}

# Robust display range: the 1st to 99th percentile, so a few failed windows at the
# particle edge do not squash the colour scale.
_PERCENTILES = (1.0, 99.0)

# The narrowest colour ranges shown.  A map that varies less than HRTEM resolves
# (strain and relative d changes of ~1e-3, rotations of ~0.1°) would otherwise have
# its noise or the window-position ripple of a perfect lattice stretched over the
# whole colour map (PTO: 0.2836-0.2837 nm, a checkerboard of nothing); it then shows
# as uniform, its colour mid-scale, and the colour bar says how flat it is.
_MIN_SPAN = {"d_spacing": 2e-3, "strain": 2e-3, "angle": 0.2, "rotation": 0.2}

# Values used for the display range at most; a strided subset keeps this fast for
# movies and lazy (dask) maps, and for the dozen maps of a large image, whose ranges the
# GUI computes before it shows one (a 4096² image at step 8: 512² maps, each read at
# every second pixel; the 1st and 99th percentiles of 65,536 values).
_MAX_SAMPLES = 1 << 16

# An angle map whose robust range spans less than this (degrees) shows lattice
# rotation about one orientation: a diverging colour map around the median is then
# unambiguous, whereas a cyclic map would give both ends of the range the same colour.
_CYCLIC_SPREAD = 90.0


def _sample(values) -> np.ndarray:
    """Finite values of ``values`` (numpy or dask), strided down to ≤ ``_MAX_SAMPLES``."""
    size = int(np.prod(values.shape))
    stride = max(1, int(np.ceil(np.sqrt(size / _MAX_SAMPLES))))
    sub = values[..., ::stride, ::stride] if values.ndim >= 2 else values[::stride]
    if hasattr(sub, "compute"):
        sub = sub.compute()
    sub = np.asarray(sub, dtype=np.float64).ravel()
    return sub[np.isfinite(sub)]


def contrast_limits(
    values, *, symmetric: bool = False, min_span: float = 0.0, relative: bool = False
) -> tuple[float, float]:
    """Robust display range of a map: its 1st and 99th percentiles, NaNs ignored.

    Parameters
    ----------
    values : array_like
        Map values (numpy or dask).
    symmetric : bool
        Return ``(-m, m)`` with ``m`` the larger absolute percentile, for signed
        quantities such as strain shown with a diverging colour map.
    min_span : float
        Narrowest range shown (``high - low``), in the map's unit, or as a fraction of
        the range's middle when ``relative``; a narrower range is widened about its
        middle (about 0 when ``symmetric``).
    relative : bool
        ``min_span`` is a fraction of the middle of the range (e.g. of d, in nm).

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``low < high``; ``(0, 1)`` (or ``(-1, 1)``) when the map
        has no finite value.
    """
    finite = _sample(values)
    if finite.size == 0:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(finite, _PERCENTILES))
    if symmetric:
        m = max(abs(low), abs(high), min_span / 2)
        if m == 0:
            m = 1e-6
        return (-m, m)
    middle = (low + high) / 2
    span = min_span * abs(middle) if relative else min_span
    if high - low < span:
        low, high = middle - span / 2, middle + span / 2
    if high <= low:
        # A constant map (e.g. a perfect crystal): widen by a relative epsilon so
        # napari accepts the range and the colour sits mid-scale.
        pad = max(abs(low) * 1e-3, 1e-9)
        low, high = low - pad, high + pad
    return (low, high)


def _angle_display(values) -> tuple[str, tuple[float, float]]:
    """Colour map and range of an angle map (degrees)."""
    finite = _sample(values)
    if finite.size == 0:
        return "twilight_shifted", (-180.0, 180.0)
    low, high = np.percentile(finite, _PERCENTILES)
    if high - low >= _CYCLIC_SPREAD:
        # Many orientations (polycrystal, or a reflection near ±180° that wraps):
        # the full circle on a cyclic colour map.
        return "twilight_shifted", (-180.0, 180.0)
    median = float(np.median(finite))
    half = max(float(high) - median, median - float(low), _MIN_SPAN["angle"] / 2)
    return "coolwarm", (median - half, median + half)


def _as_tuple(value, ndim: int, name: str) -> tuple[float, ...]:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.shape != (ndim,):
        raise ValueError(
            f"{name} must have one value per image axis ({ndim}), got {np.shape(value)}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return tuple(float(v) for v in arr)


def _units_tuple(units, ndim: int) -> tuple[str, ...]:
    if units is None:
        return ("pixel",) * (ndim - 2) + ("nm", "nm")
    if isinstance(units, str):
        return (units,) * ndim
    units = tuple(str(u) for u in units)
    if len(units) != ndim:
        raise ValueError(f"units must be one string or one per image axis ({ndim}), got {units}")
    return units


_UNSET = object()

#: Layer name of each per-reflection map (``k`` from 1, ``d`` its reference spacing, nm).
_LAYER_NAMES = {
    "d_spacing": "d-spacing {k} ({d:.3f} nm)",
    "angle": "angle {k}",
    "amplitude": "amplitude {k}",
    "d_sigma": "d-spacing σ {k}",
    "angle_sigma": "angle σ {k}",
    "phase": "phase {k}",
}


def _display(kind: str, data) -> tuple[str, tuple[float, float]]:
    """Colour map and contrast limits of one per-reflection map."""
    if kind == "angle":
        return _angle_display(data)
    if kind == "phase":
        return "twilight_shifted", (-np.pi, np.pi)
    if kind == "d_spacing":
        return "viridis", contrast_limits(data, min_span=_MIN_SPAN[kind], relative=True)
    return "magma", contrast_limits(data)


def _run_record(maps, source, options) -> dict:
    """The plugin's metadata record shared by every layer of one run.

    Every value once: the grid and the engine's parameters are in ``parameters``, the
    front end's own choices (masks, smoothing, the layers used) in ``options``; an
    option the parameters already hold with the same value is not repeated.  Values
    are kept as they are (NaN, long per-frame records).
    """
    from .. import __version__

    reflections = np.asarray(maps.reflections, dtype=np.float64)
    parameters = {
        "window": maps.window,
        "step": maps.step,
        "pixel_size": maps.pixel_size,
        **maps.parameters,
    }
    options = {
        k: v for k, v in dict(options or {}).items() if not _same(parameters.get(k, _UNSET), v)
    }
    record = {
        "source": source,
        "reflections_per_nm": reflections,
        "reference_d_nm": g_spacing(reflections),
        "reference_angle_deg": g_angle(reflections),
        "parameters": parameters,
        "options": options,
        "version": __version__,
    }
    return jsonable(record, max_items=None, allow_nan=True)


def _same(a, b) -> bool:
    """Whether two recorded values are equal (False when they do not compare)."""
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def maps_to_layers(
    maps,
    *,
    image_scale: Sequence[float] | None = None,
    image_translate: Sequence[float] | None = None,
    units=None,
    name_prefix: str = "",
    source: str | None = None,
    options: Mapping[str, Any] | None = None,
    kinds: Sequence[str] = _DEFAULT_KINDS,
    opacity: float = 1.0,
) -> list[tuple[Any, dict, str]]:
    """Calibrated napari image layers of lattice maps, as layer data tuples.

    Parameters
    ----------
    maps : LatticeMaps
        Result of :func:`napari_hrtem_fft.analyze` (numpy or lazy dask arrays).
    image_scale : sequence of float, optional
        Scale of the analysed image layer, one value per image axis (``(..., y, x)``),
        in its world units.  Default: ``maps.pixel_size`` (nm) for y and x, 1 for
        leading axes.
    image_translate : sequence of float, optional
        Translate of the analysed image layer (default zeros).
    units : str or sequence of str, optional
        World units of the image axes (default ``nm`` for y and x).
    name_prefix : str
        Prepended to every layer name (e.g. ``"particle 2: "``).
    source : str, optional
        Name of the analysed image layer; recorded in the metadata and used to find
        (and replace) the layers of an earlier run.
    options : mapping, optional
        Further options to record (mask, smoothing, ...); ``maps.parameters`` is
        always recorded.
    kinds : sequence of str
        Which maps to return, from :data:`KINDS`.  ``"strain"`` gives ``exx``,
        ``eyy``, ``exy`` and ``rotation`` when ``maps.strain`` exists.
    opacity : float
        Layer opacity in [0, 1]; opaque by default, so that a map is read without the
        image or another map mixing into its colours (NaN pixels stay transparent).

    Returns
    -------
    list of (data, kwargs, "image")
        One tuple per map, in the order of :data:`KINDS` and reflection.  ``kwargs``
        holds ``name``, ``scale`` (``image_scale`` with y and x multiplied by
        ``maps.step``), ``translate`` (``image_translate``), ``units``, ``colormap``,
        ``contrast_limits``, ``blending``, ``opacity``, ``visible`` (only the first
        d-spacing map) and ``metadata[RESULT_KEY]`` with every parameter.

    Raises
    ------
    ValueError
        If an option does not match the maps (axis counts, unknown kind, opacity).
    TypeError
        If ``maps`` is not a LatticeMaps.
    """
    if not isinstance(maps, LatticeMaps):
        raise TypeError(f"maps must be a LatticeMaps, got {type(maps).__name__}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"kinds must be among {KINDS}, got unknown {unknown}")
    if not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity!r}")
    ndim = maps.d_spacing.ndim - 1
    if ndim < 2:
        raise ValueError(
            f"maps.d_spacing must have shape (n, ..., my, mx), got {maps.d_spacing.shape}"
        )
    if image_scale is None:
        image_scale = (1.0,) * (ndim - 2) + (maps.pixel_size, maps.pixel_size)
    if image_translate is None:
        image_translate = (0.0,) * ndim
    geometry = maps.geometry(
        _as_tuple(image_scale, ndim, "image_scale"),
        _as_tuple(image_translate, ndim, "image_translate"),
    )
    units = _units_tuple(units, ndim)

    run = _run_record(maps, source, options)
    common = {
        "scale": geometry["scale"],
        "translate": geometry["translate"],
        "units": units,
        "blending": "translucent",
        "opacity": float(opacity),
        "interpolation2d": "nearest",
    }

    def layer(data, name, kind, colormap, limits, reflection=None, visible=False):
        meta = {RESULT_KEY: {"kind": kind, "reflection": reflection, **run}}
        kwargs = {
            **common,
            "name": f"{name_prefix}{name}",
            "colormap": colormap,
            "contrast_limits": tuple(float(v) for v in limits),
            "visible": visible,
            "metadata": meta,
        }
        return (data, kwargs, "image")

    out = []
    n = maps.n_reflections
    for kind in KINDS:
        if kind not in kinds:
            continue
        if kind == "strain":
            if maps.strain is None:
                continue
            for comp, data in maps.strain.components().items():
                least = _MIN_SPAN["rotation" if comp == "rotation" else "strain"]
                limits = contrast_limits(data, symmetric=True, min_span=least)
                out.append(layer(data, _STRAIN_NAMES[comp], comp, "coolwarm", limits))
            continue
        stack = getattr(maps, kind)
        if stack is None:  # an optional map the method did not compute
            continue
        for k in range(n):
            data = stack[k]
            name = _LAYER_NAMES[kind].format(k=k + 1, d=run["reference_d_nm"][k])
            cmap, limits = _display(kind, data)
            visible = kind == "d_spacing" and k == 0
            out.append(layer(data, name, kind, cmap, limits, reflection=k, visible=visible))
    return out


def result_info(layer) -> dict | None:
    """The plugin's metadata of a result layer, or None for any other layer."""
    meta = getattr(layer, "metadata", None)
    if not isinstance(meta, Mapping):
        return None
    info = meta.get(RESULT_KEY)
    return info if isinstance(info, Mapping) and "kind" in info else None


def find_result_layers(layers, *, source: str | None = None) -> list:
    """Result layers among ``layers``, optionally only those made from ``source``.

    Parameters
    ----------
    layers : iterable of napari layers
        E.g. ``viewer.layers``.
    source : str, optional
        Name of the analysed image layer.

    Returns
    -------
    list
        The matching layers, in their order in ``layers``.
    """
    found = []
    for layer in layers:
        info = result_info(layer)
        if info is not None and (source is None or info.get("source") == source):
            found.append(layer)
    return found


class ResultMap:
    """One map of a run's result record, read as a result layer is read.

    It has what the readers take from a layer: ``data``, ``name``, ``metadata`` (the
    map's own :data:`RESULT_KEY` record), ``ndim`` and the placement (``scale``,
    ``translate``, ``units``) of the layer that holds the record.

    Parameters
    ----------
    data : array_like
        The map (numpy or dask).
    kwargs : dict
        The map's layer keyword arguments (:func:`maps_to_layers`).
    layer : napari layer
        The layer holding the record.
    """

    def __init__(self, data, kwargs: Mapping, layer) -> None:
        self.data = data
        self.kwargs = kwargs
        self.name = str(kwargs["name"])
        self.metadata = {RESULT_KEY: kwargs["metadata"][RESULT_KEY]}
        self.layer = layer

    @property
    def ndim(self) -> int:
        """Number of axes of the map."""
        return int(np.ndim(self.data))

    @property
    def scale(self):
        """World size of a map pixel per axis (the holding layer's)."""
        return self.layer.scale

    @property
    def translate(self):
        """World position of map pixel 0 per axis (the holding layer's)."""
        return self.layer.translate

    @property
    def units(self):
        """World units per axis (the holding layer's)."""
        return self.layer.units

    def __repr__(self) -> str:
        return f"ResultMap({self.name!r}, shape={np.shape(self.data)})"


def map_key(info: Mapping) -> tuple:
    """What a map is within its run: ``(kind, reflection)``, e.g. ``("exx", None)``."""
    return (info.get("kind"), info.get("reflection"))


def result_maps(layers, *, source: str | None = None) -> list:
    """Every result map among ``layers``, from result records and one-map layers alike.

    A layer holding a run's record (:data:`MAPS_KEY`) gives every map of the run as a
    :class:`ResultMap`; any other result layer is its own map.  A map found twice (the
    record and a layer of the same image, kind and reflection) is given once, the
    first found.

    Parameters
    ----------
    layers : iterable of napari layers
        E.g. ``viewer.layers``, or result layers of one image.
    source : str, optional
        Name of the analysed image layer.

    Returns
    -------
    list
        :class:`ResultMap` objects and layers; each has ``data``, ``name``,
        ``metadata``, ``ndim``, ``scale``, ``translate`` and ``units``.

    Examples
    --------
    The exx map of the image "Pd" in napari's console::

        exx = next(m for m in result_maps(viewer.layers, source="Pd")
                   if result_info(m)["kind"] == "exx")
    """
    out, seen = [], set()
    for layer in find_result_layers(layers, source=source):
        record = layer.metadata.get(MAPS_KEY)
        found = [ResultMap(d, kw, layer) for d, kw, _ in record] if record else [layer]
        for item in found:
            info = result_info(item)
            key = (info.get("source"), *map_key(info))
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def file_stem(info: Mapping) -> str:
    """A file-name stem for a result layer from its metadata: ``d_spacing_1``, ``exx``."""
    kind = str(info["kind"])
    k = info.get("reflection")
    stem = kind if k is None else f"{kind}_{int(k) + 1}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)


def layer_values(layer) -> np.ndarray:
    """A layer's data as a float64 numpy array (a lazy dask layer is computed).

    Parameters
    ----------
    layer : napari layer
        Any layer with array ``data`` (numpy or dask), e.g. a result layer.

    Returns
    -------
    numpy.ndarray
        The data in the layer's own units, float64.
    """
    data = layer.data.compute() if hasattr(layer.data, "compute") else layer.data
    return np.asarray(data, dtype=np.float64)


def result_stacks(layers) -> tuple[np.ndarray, np.ndarray, dict]:
    """d-spacing and angle stacks ``(n, ..., my, mx)`` from result layers of one run.

    Parameters
    ----------
    layers : sequence of napari image layers
        Result layers (see :func:`result_info`) of one source image, holding result
        records or one map each (:func:`result_maps`); other kinds (amplitude,
        strain) are ignored.

    Returns
    -------
    d_spacing, angle : numpy.ndarray
        Stacks ordered by reflection number (nm, degrees).
    geometry : dict
        ``shape``, ``scale`` and ``translate`` of the map grid (world units).

    Raises
    ------
    ValueError
        If there is no d-spacing layer, or the d-spacing and angle layers do not pair up.
    """
    by_kind: dict[str, dict[int, object]] = {"d_spacing": {}, "angle": {}}
    for layer in result_maps(layers):
        info = result_info(layer)
        if info is not None and info["kind"] in by_kind:
            by_kind[info["kind"]][int(info["reflection"])] = layer
    numbers = sorted(by_kind["d_spacing"])
    if not numbers:
        raise ValueError("no d-spacing result layer: run the lattice-map analysis first")
    if sorted(by_kind["angle"]) != numbers:
        raise ValueError(
            "the d-spacing and angle result layers do not match "
            f"(reflections {numbers} and {sorted(by_kind['angle'])})"
        )
    d = np.stack([layer_values(by_kind["d_spacing"][k]) for k in numbers])
    angle = np.stack([layer_values(by_kind["angle"][k]) for k in numbers])
    first = by_kind["d_spacing"][numbers[0]]
    geometry = {
        "shape": d.shape[1:],
        "scale": tuple(float(v) for v in first.scale),
        "translate": tuple(float(v) for v in first.translate),
    }
    return d, angle, geometry


def maps_from_layers(layers, *, missing: str = "nan"):
    """Maps and their placement from the result layers of one analysed image or movie.

    Parameters
    ----------
    layers : sequence of napari image layers
        Result layers of one analysed image or movie (same ``source``), holding
        result records or one map each (:func:`result_maps`).
    missing : {"nan", "none"}
        A map without layers for all reflections: NaN arrays, or None (left out of
        :meth:`LatticeMaps.arrays`, e.g. for an export).  Optional maps such as
        ``phase`` are always None then.

    Returns
    -------
    maps : LatticeMaps
        Every map with layers for all reflections (d-spacing and angle always;
        amplitude, sigma, phase and strain when their layers exist) as numpy arrays.
    geometry : dict
        ``shape``, ``scale``, ``translate`` and ``units`` (world, per map axis).
    info : dict
        The plugin's metadata of the first d-spacing layer (see :func:`result_info`).

    Raises
    ------
    ValueError
        If there is no d-spacing layer, or the layers do not pair up.
    """
    from ..core.maps import StrainMaps

    layers = result_maps(layers)
    d, angle, geometry = result_stacks(layers)
    by_kind: dict[str, dict] = {}
    first = None
    for layer in layers:
        info = result_info(layer)
        by_kind.setdefault(info["kind"], {})[info.get("reflection")] = layer
        if info["kind"] == "d_spacing" and first is None:
            first = layer
    info = result_info(first)
    n = d.shape[0]

    fields = {}
    for name in LatticeMaps.FIELDS:
        found = by_kind.get(name, {})
        if sorted(k for k in found if k is not None) == list(range(n)):
            fields[name] = np.stack([layer_values(found[k]) for k in range(n)])
        elif missing == "none" or name in LatticeMaps.OPTIONAL:
            fields[name] = None
        else:
            fields[name] = np.broadcast_to(np.nan, d.shape)
    fields.update(d_spacing=d, angle=angle)
    reflections = np.asarray(info["reflections_per_nm"], dtype=np.float64).reshape(-1, 2)
    strain = None
    if all(c in by_kind for c in _STRAIN_NAMES):
        strain = StrainMaps(
            **{c: layer_values(by_kind[c][None]) for c in _STRAIN_NAMES}, reference=reflections
        )
    parameters = dict(info.get("parameters") or {})
    # Layers made before the grid moved into "parameters" carried it at the top level.
    for key, old in (("window", "window"), ("step", "step"), ("pixel_size", "pixel_size_nm")):
        parameters.setdefault(key, info.get(old))
    maps = LatticeMaps(
        **fields,
        reflections=reflections,
        window=int(parameters["window"]),
        step=int(parameters["step"]),
        pixel_size=float(parameters["pixel_size"]),
        strain=strain,
        parameters=parameters,
    )
    geometry["units"] = tuple(str(u) for u in first.units)
    return maps, geometry, dict(info)


def run_options(info: Mapping):
    """The :class:`~napari_hrtem_fft.core.pipeline.AnalysisOptions` of a result layer.

    Parameters
    ----------
    info : mapping
        The plugin's metadata of a result layer (:func:`result_info`).

    Returns
    -------
    AnalysisOptions
        The front end's choices from ``options``, the rest from the engine's
        ``parameters`` (:func:`maps_to_layers` records a value once), defaults for what
        was not recorded (e.g. maps made in the console).
    """
    import dataclasses

    from ..core.pipeline import AnalysisOptions

    names = {f.name for f in dataclasses.fields(AnalysisOptions)}
    recorded = {**dict(info.get("parameters") or {}), **dict(info.get("options") or {})}
    return AnalysisOptions(**{k: v for k, v in recorded.items() if k in names})


def movie_maps_from_layers(layers):
    """Maps ``(n, t, my, mx)`` and their placement from the result layers of one movie.

    Parameters
    ----------
    layers : sequence of napari image layers
        Result layers of one analysed movie (same ``source``).

    Returns
    -------
    maps : LatticeMaps
        As :func:`maps_from_layers` gives them (maps without layers are NaN).
    geometry : dict
        ``shape``, ``scale``, ``translate``, ``units`` (world, per map axis) and
        ``time_unit`` (the unit of the time axis as napari shows it).
    movie : dict
        The movie record of the lattice-map widget (``frames``, ``drift_px``,
        ``drift_mode``, ...); empty for maps made elsewhere.

    Raises
    ------
    ValueError
        If the layers have no time axis or do not pair up.
    """
    maps, geometry, info = maps_from_layers(layers)
    if maps.d_spacing.ndim != 4:
        raise ValueError(
            f"the maps have no time axis (shape {maps.d_spacing.shape[1:]}): "
            "analyse a movie (t, y, x)"
        )
    geometry["time_unit"] = geometry["units"][0]
    movie = dict((info.get("options") or {}).get("movie") or {})
    return maps, geometry, movie
