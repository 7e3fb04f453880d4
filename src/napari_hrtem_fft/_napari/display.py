"""How result maps are shown: one map at a time, with a titled colour bar and a scale bar.

A run of the lattice-map dock is ONE layer per analysed image (:func:`show_result`):
it shows one map and holds every map of the run in its result record
(:data:`~.layers.MAPS_KEY`); :func:`choose_map` swaps the map it shows in place
(data, colour map, contrast limits, name and title), :func:`add_map_layers` adds every
map as a layer of its own for users who want to blend or compare them.

napari hands plugin widgets a ``PublicOnlyProxy`` of the viewer, whose layers are
proxies too: two proxies of one layer are different objects, so layers are compared
through :func:`same_layer` (the proxied object), never with ``is``.

Units shown for map values come from :mod:`napari_hrtem_fft.core.quantities`: d in nm
everywhere in the GUI (layer names, colour bar title, status line, tables), as the
maps hold it, so that a value read off the colour bar is the value in the layer.
"""

from __future__ import annotations

import contextlib
import re

from ..core.quantities import MAP_QUANTITIES, OPTIONAL_QUANTITIES, STRAIN_QUANTITIES
from ..io import parse_unit
from .layers import MAPS_KEY, RESULT_KEY, find_result_layers, map_key, result_info

__all__ = [
    "add_map_layers",
    "batched",
    "canvas_overlay",
    "choose_map",
    "map_choices",
    "map_title",
    "record_layer",
    "replace_result_layers",
    "run_summary",
    "same_layer",
    "show_map",
    "show_result",
    "show_scale_bar",
    "source_name",
    "warm_overlays",
]

_UNITS = {
    name: unit
    for name, (unit, _) in {**MAP_QUANTITIES, **OPTIONAL_QUANTITIES, **STRAIN_QUANTITIES}.items()
}
# How a unit reads in a title ("1" is a ratio: strain or a power ratio).
_SHOWN_UNIT = {"nm": "nm", "deg": "°", "rad": "rad", "1": "dimensionless"}


def same_layer(a, b) -> bool:
    """True when ``a`` and ``b`` are the same layer, proxied by napari or not."""
    if a is None or b is None:
        return False
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def source_name(name: str, source: str) -> str:
    """A result layer's name with its image, so that two images' maps differ.

    ``"d-spacing 1 (0.225 nm)"`` of the image ``"PZO"`` is ``"d-spacing 1 (0.225 nm) · PZO"``.
    """
    return f"{name} · {source}"


def map_title(layer) -> str | None:
    """Colour-bar title of a result layer: its name, image and unit; None otherwise."""
    info = result_info(layer)
    if info is None:
        return None
    unit = _SHOWN_UNIT.get(_UNITS.get(info.get("kind"), "1"), "")
    source = info.get("source")
    where = f" of {source}" if source and source not in layer.name else ""
    return f"{layer.name}{where} [{unit}]"


def canvas_overlay(viewer, name: str):
    """A canvas overlay (``scale_bar``, ``text``): napari ≥ 0.9 keeps them on the canvas."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    if overlays is not None and name in overlays:
        return overlays[name]
    return getattr(viewer, "scale_bar" if name == "scale_bar" else "text_overlay")


def _in_length_units(layer) -> bool:
    """True when ``layer`` is calibrated in a length unit (napari's scale bar reads it)."""
    units = getattr(layer, "units", None)
    return units is not None and parse_unit(str(units[-1])).kind == "length"


def show_scale_bar(viewer, layer) -> None:
    """Turn napari's scale bar on when ``layer`` is calibrated in a length unit.

    napari takes the bar's unit from the layers' ``units``.
    """
    if _in_length_units(layer):
        canvas_overlay(viewer, "scale_bar").visible = True


# The characters of map titles and scale bars: napari draws text from a glyph atlas
# that it fills one character at a time, on the first draw that needs it.
_GLYPHS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ·()[]°σ-_.,:/'"


def warm_overlays(viewer, image=None):
    """Have napari build the title's and scale bar's visuals and glyphs now, unseen.

    napari builds an overlay's canvas visual (shaders) the first time the overlay is
    made visible and loads each character of a text on the first draw that shows it:
    ~1 s that the first :func:`show_map` of a session paid.  Here the text overlay,
    holding every character of titles and scale bars, is made visible fully
    transparent, and so is the scale bar when ``image`` is calibrated in a length unit
    (the first map of it shows the bar: 0.05-0.1 s of that map's Run, its text program
    and line).  After the next canvas draw the returned function puts them back as
    they were, unless a map was shown meanwhile (then only their opacity is restored:
    the map shows both).  A visible overlay is left alone.  The scale bar's visual,
    once built, follows the camera's zoom while hidden, as it does after the first map
    shows it.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it).
    image : napari.layers.Image, optional
        The image the dock will analyse.

    Returns
    -------
    callable
        The undo, a plain function (it may run after the dock is closed).
    """
    undos = []
    text = canvas_overlay(viewer, "text")
    if not text.visible:
        before, opacity = text.text, text.opacity
        text.opacity = 0.0
        text.text = _GLYPHS
        text.visible = True

        def undo_text() -> None:
            text.opacity = opacity
            if text.text == _GLYPHS:  # no map shown since
                text.text = before
                text.visible = False

        undos.append(undo_text)
    bar = canvas_overlay(viewer, "scale_bar")
    if image is not None and not bar.visible and _in_length_units(image):
        bar_opacity = bar.opacity
        bar.opacity = 0.0
        bar.visible = True

        def undo_bar() -> None:
            bar.opacity = bar_opacity
            if not any(layer.visible for layer in find_result_layers(viewer.layers)):
                bar.visible = False

        undos.append(undo_bar)

    def undo() -> None:
        for step in undos:
            step()

    return undo


def batched(viewer):
    """A context in which layers are added, removed and shown or hidden as one change.

    napari redraws the canvas (synchronously) after every layer added or removed and
    every change of a layer's visibility; in ``viewer.layers.batched_update()`` the
    scene graph is updated once, at the end.
    """
    batch = getattr(viewer.layers, "batched_update", None)
    return contextlib.nullcontext() if batch is None else batch()


def show_map(viewer, active) -> None:
    """Show ``active`` (a result layer) alone over its image, with its colour bar.

    The other result layers of every image are hidden and their colour bars off; the
    analysed image stays visible beneath; the title (name, image, unit) is shown in the
    viewer's text overlay, above the colour bar.
    """
    title = map_title(active)
    if title is None:
        return
    visible = []  # (layer, visibility to set): each change redraws the canvas
    bars = []  # colour bars to switch
    for layer in find_result_layers(viewer.layers):
        show = same_layer(layer, active)
        if layer.visible != show:
            visible.append((layer, show))
        if layer.colorbar.visible != show:
            bars.append((layer.colorbar, show))
    source = result_info(active).get("source")
    if source is not None and source in viewer.layers and not viewer.layers[source].visible:
        visible.append((viewer.layers[source], True))
    # A batch redraws once but starts with a full garbage collection: worth it from
    # three layers shown or hidden on.
    with batched(viewer) if len(visible) > 2 else contextlib.nullcontext():
        for layer, show in visible:
            layer.visible = show
    for bar, show in bars:
        bar.visible = show
    overlay = canvas_overlay(viewer, "text")
    overlay.text = title
    overlay.position = "top_left"  # the colour bar is top right
    overlay.font_size = 12
    overlay.visible = True
    show_scale_bar(viewer, active)
    # napari's status bar names the layer under the cursor only when the mouse moves:
    # after a new image's Run it still named the map shown before.
    update_status = getattr(viewer, "update_status_from_cursor", None)  # not in every napari
    if update_status is not None:
        update_status()


def _key(info) -> tuple:
    return (info.get("kind"), info.get("reflection"))


def replace_result_layers(viewer, old: list, tuples: list) -> list:
    """Put the layer tuples of a run in the viewer, reusing the layers of an earlier run.

    A layer of the same kind and reflection gets the new data, placement, display and
    metadata in place; new kinds are added and kinds the run no longer has are removed.
    Updating in place is what makes a re-run fast: napari collects garbage on every
    layer removal and builds a canvas visual and controls on every addition.  Several
    layers are added in one batch (one scene-graph update) without selecting each; the
    selection is then empty, and the caller selects the layer to show.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it).
    old : list of napari.layers.Image
        The earlier result layers of the same image.
    tuples : list of (data, kwargs, "image")
        From :func:`napari_hrtem_fft.layers.maps_to_layers`.

    Returns
    -------
    list of napari.layers.Image
        The layers of the run, in the order of ``tuples``.
    """
    reusable = {_key(result_info(layer)): layer for layer in old}
    plan = []  # (tuple, the layer it updates or None)
    for data, kwargs, kind in tuples:
        layer = reusable.pop(_key(kwargs["metadata"][RESULT_KEY]), None)
        if layer is not None and layer.ndim != data.ndim:
            reusable[object()] = layer  # removed below
            layer = None
        plan.append(((data, kwargs, kind), layer))
    added = sum(layer is None for _, layer in plan)
    # A batch ends with one scene-graph update, which napari starts with a full garbage
    # collection (0.05-0.5 s): worth it from two layers added or removed on.
    out = []
    with batched(viewer) if added + len(reusable) > 1 else contextlib.nullcontext():
        with _selection_quiet(viewer) if added > 1 else contextlib.nullcontext():
            for (data, kwargs, _), layer in plan:
                if layer is None:
                    out.append(viewer.add_image(data, **kwargs))
                else:
                    _update_layer(layer, data, kwargs)
                    out.append(layer)
        for layer in reusable.values():
            viewer.layers.remove(layer)
    return out


@contextlib.contextmanager
def _selection_quiet(viewer):
    """Add layers without selecting each in turn; nothing is selected afterwards.

    napari selects every layer it adds, and each selection rebuilds the layer controls
    shown, the layer list's selection and every dock's view of the active layer
    (~0.03 s a layer).  The selection is cleared before (so that the layer list follows)
    and after (so that it is in step again); the caller selects the layer to show.
    """
    selection = viewer.layers.selection
    selection.clear()
    try:
        with selection.events.blocker_all():
            yield
    finally:
        selection.clear()


def _update_layer(layer, data, kwargs: dict) -> None:
    """Give an existing result layer the data and display of a new run.

    Only what changed is set: every assignment emits napari events (a new scale
    recomputes the viewer's extent and dims, a colour map rebuilds the shader).
    """
    import numpy as np

    layer.data = data
    for name in ("scale", "translate"):
        if not np.array_equal(np.asarray(getattr(layer, name)), np.asarray(kwargs[name])):
            setattr(layer, name, kwargs[name])
    if tuple(str(u) for u in layer.units) != tuple(str(u) for u in kwargs["units"]):
        layer.units = kwargs["units"]
    if layer.colormap.name != kwargs["colormap"]:
        layer.colormap = kwargs["colormap"]
    limits = tuple(kwargs["contrast_limits"])
    if tuple(layer.contrast_limits) != limits:
        layer.contrast_limits_range = limits
        # The new range clips the limits, often to the range itself: setting them
        # again would redo the colour bar's ticks and the thumbnail for nothing.
        if tuple(layer.contrast_limits) != limits:
            layer.contrast_limits = limits
    if layer.opacity != kwargs["opacity"]:
        layer.opacity = kwargs["opacity"]
    for name in ("blending", "interpolation2d"):
        if name in kwargs and str(getattr(layer, name)) != str(kwargs[name]):
            setattr(layer, name, kwargs[name])
    layer.metadata = kwargs["metadata"]
    if layer.name != kwargs["name"]:
        layer.name = kwargs["name"]


def _result_layers_of(layers, source: str) -> tuple[list, list]:
    """``source``'s result layers: those holding a run's record, and those of one map."""
    holders, singles = [], []
    for layer in find_result_layers(layers, source=source):
        (holders if layer.metadata.get(MAPS_KEY) else singles).append(layer)
    return holders, singles


def record_layer(layers, source: str):
    """The layer showing the maps of ``source``'s run (holding its record), or None."""
    holders, _ = _result_layers_of(layers, source)
    return holders[0] if holders else None


def _record_kwargs(record: list, key) -> tuple:
    """Data and layer kwargs of the map ``key`` of ``record``, holding the record."""
    for data, kwargs, _ in record:
        if map_key(kwargs["metadata"][RESULT_KEY]) == key:
            metadata = {**kwargs["metadata"], MAPS_KEY: record}
            return data, {**kwargs, "visible": True, "metadata": metadata}
    raise KeyError(f"the run has no map {key}")


def show_result(viewer, tuples: list, source: str, *, shown=None) -> list:
    """Put a run's maps in the viewer: one layer shows one map and holds them all.

    The image's layer of an earlier run is updated in place, showing the same map if
    the run has it; layers of single maps the user added (:func:`add_map_layers`) get
    the new maps too, and those the run no longer has are removed.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it).
    tuples : list of (data, kwargs, "image")
        Every map of the run, from :func:`napari_hrtem_fft.layers.maps_to_layers`.
    source : str
        Name of the analysed image layer.
    shown : tuple, optional
        ``(kind, reflection)`` of the map to show (default: the earlier run's, else the
        first map).

    Returns
    -------
    list of napari.layers.Image
        The layer showing the run, then the layers of single maps.
    """
    holders, singles = _result_layers_of(viewer.layers, source)
    keys = [map_key(kwargs["metadata"][RESULT_KEY]) for _, kwargs, _ in tuples]
    if shown is None and holders:
        shown = map_key(result_info(holders[0]))
    if shown not in keys:
        shown = keys[0]
    data, kwargs = _record_kwargs(tuples, shown)
    kept = {map_key(result_info(layer)) for layer in singles}
    with batched(viewer) if len(holders) + len(singles) > 2 else contextlib.nullcontext():
        for extra in holders[1:]:
            viewer.layers.remove(extra)
        if holders:
            layer = holders[0]
            _update_layer(layer, data, kwargs)
        else:
            layer = viewer.add_image(data, **kwargs)
        again = [t for t, key in zip(tuples, keys, strict=True) if key in kept]
        singles = replace_result_layers(viewer, singles, again) if singles else []
    return [layer, *singles]


def choose_map(layer, key) -> None:
    """Show the map ``key`` (``(kind, reflection)``) of ``layer``'s run in ``layer``.

    Data, colour map, contrast limits, name and metadata are swapped in place (no new
    layer); :func:`show_map` then gives the colour bar and the title.

    Raises
    ------
    KeyError
        If the run has no such map.
    """
    record = layer.metadata.get(MAPS_KEY)
    if not record or map_key(result_info(layer)) == key:
        return
    data, kwargs = _record_kwargs(record, key)
    _update_layer(layer, data, kwargs)


def map_choices(layer) -> list[tuple[str, tuple]]:
    """``(label, key)`` of every map of ``layer``'s run, e.g. ``("exx", ("exx", None))``.

    The label is the map's layer name without its image (the layer name says it).
    """
    out = []
    for _, kwargs, _ in (layer.metadata.get(MAPS_KEY) or []) if layer is not None else []:
        info = kwargs["metadata"][RESULT_KEY]
        name, source = str(kwargs["name"]), info.get("source")
        if source and name.endswith(f" · {source}"):
            name = name[: -len(f" · {source}")]
        out.append((name, map_key(info)))
    return out


def add_map_layers(viewer, layer) -> list:
    """Every map of ``layer``'s run but the one it shows as a layer of its own, hidden.

    For blending, side-by-side views or comparing maps; the image's earlier layers of
    single maps are updated in place.  Each layer has the placement (scale,
    translate, units, affine) of ``layer``.

    Returns
    -------
    list of napari.layers.Image
        The layers of single maps, in the order of the run.
    """
    record = layer.metadata.get(MAPS_KEY) or []
    shown = map_key(result_info(layer))
    source = result_info(layer).get("source")
    placement = {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "units": tuple(str(u) for u in layer.units),
    }
    tuples = [
        (data, {**kwargs, **placement, "visible": False}, kind)
        for data, kwargs, kind in record
        if map_key(kwargs["metadata"][RESULT_KEY]) != shown
    ]
    _, old = _result_layers_of(viewer.layers, source)
    added = replace_result_layers(viewer, old, tuples)
    for single in added:
        single.affine = layer.affine
    return added


def run_summary(result, maps, seconds: float, warnings: list[str]) -> str:
    """The status line of a finished run: time, reflections, map size, frames, warnings.

    Parameters
    ----------
    result : LatticeMaps or MovieResult
        What the run returned (a movie run names its frames and blank frames).
    maps : LatticeMaps
        The maps shown.
    seconds : float
        From the click to the layers.
    warnings : list of str
        From :func:`empty_map_warnings`, appended.
    """
    shape = "×".join(str(s) for s in maps.d_spacing.shape[-2:])
    what = f"{maps.n_reflections} reflection(s), maps {shape}"
    frames = getattr(result, "frames", None)
    if frames is not None:
        n = len(frames)
        what = f"{f'frame {frames[0]}' if n == 1 else f'{n} frames'}, {what}"
        if result.blank_frames:
            what += f"; no crystal in frame(s) {result.blank_frames}"
    status = f"done in {seconds:.1f} s: {what}"
    return " — ".join([status, " ".join(warnings)]) if warnings else status


def empty_map_warnings(maps) -> list[str]:
    """Say which reflections left their maps more than half empty inside the image.

    Only map pixels whose window lies inside the image count (windows beyond the edge
    are NaN by definition).  Where the engine's own maps were mostly empty, its
    diagnosis (``maps.parameters["diagnostics"]``, a text per reflection) is quoted.
    Where they were not, the NaN came from the masks of the post-processing
    (``maps.parameters["masks"]``): a particle on an amorphous film or in vacuum is
    that way by design, so the message names the mask instead of blaming the amplitude
    threshold.  Reflections empty for the same reason share one message (the
    per-reflection figures of the diagnosis are then left out).

    Returns
    -------
    list of str
        The messages, or one for a run with no finite value at all.
    """
    import numpy as np

    d = np.asarray(maps.d_spacing)
    margin = -(-maps.window // (2 * maps.step))  # map pixels whose window leaves the image
    inner = d[..., margin : d.shape[-2] - margin, margin : d.shape[-1] - margin]
    if inner.size == 0:
        inner = d
    empty = np.isnan(inner).reshape(len(d), -1).mean(axis=1)
    diagnostics = maps.parameters.get("diagnostics") or {}
    if not isinstance(diagnostics, dict):
        diagnostics = {}
    if np.all(empty >= 1.0):
        return [
            "No window gave a lattice spacing: every reflection is below the amplitude "
            "threshold or outside the search region everywhere. Try a larger window, a "
            "lower peak threshold or no crystal mask, or pick the reflections again."
        ]
    masks = list(maps.parameters.get("masks") or [])
    # Reflections failing for the same reason share one message (three near-identical
    # paragraphs for a particle on a film say less than one).
    groups: dict[str, list[int]] = {}
    reasons = {}
    for k in np.flatnonzero(empty > 0.5):
        why = reasons[int(k)] = diagnostics.get(str(k)) or diagnostics.get(int(k))
        if why is None:
            key = "mask" if masks else ""
        else:  # the same cause and advice, whatever the per-reflection figures
            key = re.sub(r" \([^)]*\)", "", why)
        groups.setdefault(key, []).append(int(k))
    out = []
    for key, ks in groups.items():
        low, high = (f"{100 * v:.0f}" for v in (empty[ks].min(), empty[ks].max()))
        share = f"{low} %" if low == high else f"{low}–{high} %"
        head = f"{_reflections_named(maps, ks)}: {share} of {'its' if len(ks) == 1 else 'each'}"
        them = "it" if len(ks) == 1 else "them"
        if key == "mask":
            out.append(
                f"{head} map inside the image is outside the {' and '.join(masks)} (no "
                f"lattice found there). If that is crystal, lower the peak threshold or "
                f"turn the {masks[0]} off."
            )
        elif key:  # the engine's diagnosis carries its own advice
            why = reasons[ks[0]] if len(ks) == 1 else key
            out.append(
                f"{head} map is empty inside the image; {why}. Or remove {them} (strain "
                "needs every reflection)."
            )
        else:
            out.append(
                f"{head} map is empty inside the image; the peak is below the amplitude "
                "threshold or outside the search region. Try a larger window, a lower "
                f"peak threshold or no crystal mask, or remove {them} (strain needs every "
                "reflection)."
            )
    return out


def _reflections_named(maps, indices) -> str:
    """'Reflection 2 (d = 0.2500 nm)' or 'Reflections 1, 2 (d = 0.2247, 0.1946 nm)'."""
    from ..core.reciprocal import g_spacing

    numbers = ", ".join(str(k + 1) for k in indices)
    spacings = ", ".join(f"{g_spacing(maps.reflections[k]):.4f}" for k in indices)
    plural = "s" if len(indices) > 1 else ""
    return f"Reflection{plural} {numbers} (d = {spacings} nm)"
