"""Result layers in napari's console: maps to layers and back.

The public names of :mod:`napari_hrtem_fft._napari.layers`, the napari adapter the
docks use, so that a script made in the console keeps working::

    from napari_hrtem_fft.layers import maps_to_layers

    for data, kwargs, _ in maps_to_layers(maps, image_scale=img.scale,
                                          image_translate=img.translate):
        viewer.add_image(data, **kwargs)
"""

from ._napari.layers import (
    KINDS,
    PICKER_KEY,
    RESULT_KEY,
    contrast_limits,
    file_stem,
    find_result_layers,
    layer_values,
    maps_from_layers,
    maps_to_layers,
    movie_maps_from_layers,
    result_info,
    result_stacks,
    run_options,
)

__all__ = [
    "KINDS",
    "PICKER_KEY",
    "RESULT_KEY",
    "contrast_limits",
    "file_stem",
    "find_result_layers",
    "layer_values",
    "maps_from_layers",
    "maps_to_layers",
    "movie_maps_from_layers",
    "result_info",
    "result_stacks",
    "run_options",
]
