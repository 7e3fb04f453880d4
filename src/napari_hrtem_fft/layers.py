"""Result layers in napari's console: maps to layers and back.

The public names of :mod:`napari_hrtem_fft._napari.layers`, the napari adapter the
docks use, so that a script made in the console keeps working::

    from napari_hrtem_fft.layers import maps_to_layers

    for data, kwargs, _ in maps_to_layers(maps, image_scale=img.scale,
                                          image_translate=img.translate):
        viewer.add_image(data, **kwargs)
"""

from ._napari import layers as _adapter

__all__ = list(_adapter.__all__)


def __getattr__(name: str):
    """The adapter's public name ``name`` (PEP 562: ``from ... import name`` works)."""
    if name in __all__:
        return getattr(_adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """The public names."""
    return list(__all__)
