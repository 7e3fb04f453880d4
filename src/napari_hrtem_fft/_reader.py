"""npe2 reader: electron-microscopy files open in napari with their calibration.

napari calls :func:`napari_get_reader` for every file or folder dropped on it; it must
answer quickly and never raise: it looks at the extension and the first bytes, and for
the generic ``.hdf5`` extension at a bounded number of HDF5 objects (milliseconds even
for a file of 200,000 groups), and declines anything it cannot check. The reader it
returns does the actual work and raises :class:`~napari_hrtem_fft.io.MicrographReadError`
(a ValueError naming the file) when a file is truncated or corrupt, which napari reports
without losing the session.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def napari_get_reader(path):
    """Return :func:`read_layers` if ``path`` looks like a file we read, else None.

    Parameters
    ----------
    path : str, os.PathLike or list of them
        A file, a folder (numbered TIFF frames), or a list of such paths (accepted only
        if every entry is).

    Returns
    -------
    callable or None
        The reader function, or None so that napari tries other plugins.
    """
    try:
        from napari_hrtem_fft.io import sniff

        if isinstance(path, (list, tuple)):
            if path and all(isinstance(p, (str, os.PathLike)) and sniff(p) for p in path):
                return read_layers
            return None
        if isinstance(path, (str, os.PathLike)) and sniff(path):
            return read_layers
    except Exception as exc:  # napari's hook must never raise
        logger.debug("napari-hrtem-fft declines %r: %s", path, exc)
    return None


def read_layers(path) -> list[tuple]:
    """Read a file, folder or list of them into napari layer data tuples.

    Parameters
    ----------
    path : str, os.PathLike or list of them

    Returns
    -------
    list of (data, kwargs, "image")
        One Image layer per micrograph, with ``name``, ``scale``, ``translate``,
        ``units`` and ``metadata`` (``metadata["reciprocal"]`` is True for diffraction
        patterns, whose units are 1/nm).
    """
    from napari_hrtem_fft.io import read_micrographs

    paths = path if isinstance(path, (list, tuple)) else [path]
    layers = []
    for p in paths:
        for mg in read_micrographs(p):
            layers.append((mg.data, mg.layer_kwargs(), "image"))
    return layers
