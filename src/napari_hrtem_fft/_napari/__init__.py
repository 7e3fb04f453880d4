"""The napari adapter: napari layer data to and from the core, without Qt.

* :mod:`.layers`: :class:`~napari_hrtem_fft.core.maps.LatticeMaps` as layer data
  tuples, and result layers read back as maps (the console's
  :mod:`napari_hrtem_fft.layers` re-exports its public names);
* :mod:`.calibration`: pixel size, world/pixel coordinates and the displayed plane of
  an image layer;
* :mod:`.regions`: Shapes and Labels layers as masks on a map grid;
* :mod:`.display`: which result layer is shown, its colour bar and unit, the canvas
  overlay text and the warnings about mostly-empty maps;
* :mod:`.phase`: the displacement and dislocation layers of "Phase & dislocations";
* :mod:`.picking`: the reflection picker's layers (the FFT window on the image, the
  reflection points on the FFT canvas) and the scale calibration from them.

These modules take layers (or their ``scale``, ``translate``, ``units`` and
``metadata``) and return plain numbers and arrays, so they are tested without a
display.  They never import Qt or magicgui (``tests/test_package.py`` checks it);
napari itself only inside the functions that build its layer types.
"""
