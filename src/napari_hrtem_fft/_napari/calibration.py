"""Calibration and slicing of napari image layers, shared by the widgets.

Nothing here imports Qt: the functions take a layer (or its scale/units) and return
plain numbers, so that they are testable without a display.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..io import parse_unit

__all__ = ["camera_of", "current_plane", "layer_pixel_size", "world_to_pixel"]


def camera_of(viewer):
    """The viewer's camera model (``viewer.scene.camera`` from napari 0.9 on)."""
    scene = getattr(viewer, "scene", None)
    camera = getattr(scene, "camera", None)
    return camera if camera is not None else viewer.camera


def layer_pixel_size(layer) -> float | None:
    """Pixel size of an image layer in nm, or None when the layer is not calibrated.

    A layer counts as uncalibrated when its x unit is a pixel (``px``, ``pixel``),
    dimensionless or not a length, or when its x scale is exactly 1: readers that lose
    the calibration leave scale 1, and 1 nm per pixel is no HRTEM magnification.

    Parameters
    ----------
    layer : napari.layers.Image
        The image layer; only ``scale`` and ``units`` are read.

    Returns
    -------
    float or None
        nm per pixel along x (the last axis).
    """
    scale = float(layer.scale[-1])
    units = getattr(layer, "units", None)
    unit = str(units[-1]) if units is not None else "pixel"
    info = parse_unit(unit)
    if info.kind != "length" or not np.isfinite(scale) or scale <= 0 or scale == 1.0:
        return None
    if not np.isclose(float(layer.scale[-2]), scale, rtol=1e-3):
        warnings.warn(
            f"layer {layer.name!r} has non-square pixels {tuple(layer.scale[-2:])}; "
            "the x pixel size is used",
            stacklevel=2,
        )
    return scale * info.factor


def world_to_pixel(layer, world_point) -> np.ndarray:
    """Layer data coordinates (fractional pixels) of a world point.

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer whose pixel grid is wanted.
    world_point : array_like
        A point in world coordinates, as many values as the layer has dimensions
        (extra leading viewer dimensions are dropped).

    Returns
    -------
    numpy.ndarray
        Fractional data indices, one per layer dimension.
    """
    point = np.asarray(world_point, dtype=float)[-layer.ndim :]
    return np.asarray(layer.world_to_data(point), dtype=float)


def current_plane(layer, world_point):
    """The 2-D ``(y, x)`` plane of an image layer at the viewer's current position.

    For a movie ``(t, y, x)`` this is the frame under the dims slider; the data are not
    copied for numpy and stay lazy for dask.

    Parameters
    ----------
    layer : napari.layers.Image
        A single-channel (not RGB) image layer of two or more dimensions.
    world_point : array_like
        The viewer's current point (``viewer.dims.point``), world coordinates.

    Returns
    -------
    array
        The 2-D plane.
    """
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer {layer.name!r} is RGB; HRTEM analysis needs a grey-scale image")
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    if data.ndim < 2:
        raise ValueError(f"layer {layer.name!r} must have at least 2 dimensions")
    if data.ndim == 2:
        return data
    index = np.rint(world_to_pixel(layer, world_point)[:-2]).astype(int)
    index = np.clip(index, 0, np.asarray(data.shape[:-2]) - 1)
    return data[tuple(index)]
