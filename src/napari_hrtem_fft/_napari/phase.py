"""The lattice-map dock's "Phase & dislocations" layers.

Phase maps come with the result layers (:func:`napari_hrtem_fft.layers.maps_to_layers`,
kind ``phase``, cyclic colour map); this module adds what the core derives from them —
the displacement field (:func:`napari_hrtem_fft.displacement`) as two Image layers and
the dislocation cores (:func:`napari_hrtem_fft.find_dislocations`) as a Points layer
with one feature row per core and a Vectors layer of the Burgers vectors.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PHASE_KEY", "cores_text", "phase_layer_tuples"]

#: Metadata key of the displacement and dislocation layers (their source image).
PHASE_KEY = "napari_hrtem_fft_phase"

# Burgers vectors are a few tenths of a nm: drawn this many times longer.
_VECTOR_SCALE = 5.0


def phase_layer_tuples(maps, *, scale, translate, units, source: str, reference=None) -> list:
    """Layer data tuples of the displacement and the dislocation cores of ``maps``.

    Parameters
    ----------
    maps : LatticeMaps
        Maps with ``phase`` of two or more non-collinear reflections (2D, numpy).
    scale, translate : sequence of float
        World placement ``(y, x)`` of the analysed image (its layer's).
    units : sequence of str
        World units of the image axes.
    source : str
        Name of the analysed image (recorded in the metadata).
    reference : dict, optional
        The reference region's record (``maps.parameters["reference"]``), recorded in
        the metadata.

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``displacement uy``, ``displacement ux`` (images, nm), ``dislocations`` (points
        with the core table as features) and ``Burgers vectors`` (vectors, drawn
        ×5).
    """
    from ..core.phase import displacement, find_dislocations

    u = displacement(maps)
    cores = find_dislocations(maps)
    meta = {PHASE_KEY: {"source": source, "reference": reference}}
    step = maps.step
    map_scale = tuple(float(s) * step for s in scale[-2:])
    common = {"translate": tuple(translate[-2:]), "units": tuple(units[-2:]), "metadata": meta}
    out = []
    for k, axis in enumerate(("uy", "ux")):
        data = np.asarray(u[k], dtype=np.float32)
        finite = data[np.isfinite(data)]
        limit = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
        kwargs = {
            **common,
            "name": f"{source}: displacement {axis} (nm)",
            "scale": map_scale,
            "colormap": "coolwarm",
            "contrast_limits": (-limit, limit) if limit > 0 else (-1.0, 1.0),
            "visible": False,
        }
        out.append((data, kwargs, "image"))
    # Core positions are nm from the image origin: world = position · (scale / pixel) + t.
    world = np.asarray(scale[-2:], dtype=np.float64) / maps.pixel_size
    points, features = cores.points_data()
    points = points[:, -2:] * world + np.asarray(translate[-2:])
    out.append(
        (
            points.reshape(-1, 2),
            {
                **common,
                "name": f"{source}: dislocations",
                "features": features,
                "size": 0.3 * float(np.mean(world)),
                "face_color": "transparent",
                "border_color": "yellow",
                "symbol": "ring",
            },
            "points",
        )
    )
    vectors = cores.vectors_data(_VECTOR_SCALE)[:, :, -2:] * world
    vectors[:, 0] += np.asarray(translate[-2:])
    out.append(
        (
            vectors.reshape(-1, 2, 2),
            {
                **common,
                "name": f"{source}: Burgers vectors (×{_VECTOR_SCALE:g})",
                "edge_color": "yellow",
                "edge_width": 0.05 * float(np.mean(world)),
            },
            "vectors",
        )
    )
    return out


def cores_text(layers, source: str | None) -> str:
    """The dislocation cores of ``source`` (its Points layer), one line per core.

    Parameters
    ----------
    layers : sequence of napari layers
        The viewer's layers.
    source : str or None
        Name of the analysed image.

    Returns
    -------
    str
        ``""`` when the image has no dislocation layer; else a count and, per core,
        its position ``(y, x)`` in world nm and ``|b|`` (nm) with its direction
        (degrees counter-clockwise on screen).
    """
    from napari.layers import Points

    for layer in layers:
        info = layer.metadata.get(PHASE_KEY)
        if isinstance(layer, Points) and info and info.get("source") == source:
            features = layer.features
            lines = [f"{len(layer.data)} dislocation core(s)"]
            for k, (y, x) in enumerate(np.asarray(layer.data)[:, -2:]):
                b = float(features["b_length_nm"].iloc[k])
                angle = float(features["b_angle_deg"].iloc[k])
                lines.append(f"{k + 1}: ({y:.2f}, {x:.2f}) nm, |b| {b:.3f} nm at {angle:.0f}°")
            return "\n".join(lines)
    return ""
