"""Reading and writing electron-microscopy images with their calibration.

Heavy dependencies (rosettasciio, tifffile, h5py, mrcfile, dask) are imported only
when a file is read or written, so importing this package is cheap.

Example
-------
>>> from napari_hrtem_fft.io import read_micrographs
>>> (mg,) = read_micrographs("particle.dm4")        # doctest: +SKIP
>>> mg.pixel_size, mg.units                          # doctest: +SKIP
(0.0126953125, ('nm', 'nm'))
"""

from ._atomic import (
    atomic_directory,
    atomic_path,
    atomic_paths,
    is_zarr_store,
    staged_outputs,
)
from ._micrograph import Micrograph, MicrographReadError, jsonable
from ._read import EXTENSIONS, read_micrographs, sniff
from ._units import UnitInfo, axis_times, parse_unit
from ._watch import watch_source
from ._write import sidecar_path, write_tiff

__all__ = [
    "EXTENSIONS",
    "Micrograph",
    "MicrographReadError",
    "UnitInfo",
    "atomic_directory",
    "atomic_path",
    "atomic_paths",
    "axis_times",
    "is_zarr_store",
    "jsonable",
    "parse_unit",
    "read_micrographs",
    "sidecar_path",
    "sniff",
    "staged_outputs",
    "watch_source",
    "write_tiff",
]
