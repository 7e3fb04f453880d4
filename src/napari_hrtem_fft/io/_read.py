"""Entry point of the readers: pick a format from the extension and the file's signature."""

from __future__ import annotations

import os
from pathlib import Path

from ._micrograph import Micrograph, MicrographReadError

__all__ = ["EXTENSIONS", "read_micrographs", "sniff"]

#: Supported file extensions (lower case) and the reader family behind each.
EXTENSIONS = {
    ".dm3": "dm",
    ".dm4": "dm",
    ".emd": "hdf5",
    ".hspy": "hdf5",
    ".hdf5": "hdf5",
    ".ser": "tia",
    ".emi": "tia",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".map": "mrc",
    ".tif": "tiff",
    ".tiff": "tiff",
}

_SIGNATURES = {
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "hdf5": (b"\x89HDF\r\n\x1a\n",),
}


def sniff(path) -> bool:
    """Cheap check that ``path`` is something :func:`read_micrographs` takes on.

    Files need a supported extension; TIFF and HDF5-based files (.emd, .hspy, .hdf5)
    must also start with their signature, so that other plugins get a chance at files
    that only carry the extension. Directories qualify when they hold numbered TIFF
    frames. Never raises.
    """
    try:
        path = Path(os.fspath(path))
        if path.is_dir():
            from ._folder import numbered_tiffs

            return bool(numbered_tiffs(path))
        family = EXTENSIONS.get(path.suffix.lower())
        if family is None or not path.is_file():
            return False
        if family in _SIGNATURES:
            with open(path, "rb") as f:
                head = f.read(8)
            if not head.startswith(_SIGNATURES[family]):
                return False
        if path.suffix.lower() == ".hdf5":
            # A generic extension: claim only HyperSpy/EMD layouts, leave other HDF5 to
            # other plugins.
            return _is_our_hdf5(path)
        return True
    except (OSError, TypeError, ValueError):
        return False


def _is_our_hdf5(path: Path) -> bool:
    import h5py

    from ._emd import emd_flavour
    from ._hspy import is_hyperspy

    try:
        with h5py.File(path, "r") as h5:
            return is_hyperspy(h5) or emd_flavour(h5) is not None
    except OSError:
        return False


def read_micrographs(path, *, crop_databar: bool = True) -> list[Micrograph]:
    """Read every image in an electron-microscopy file, with its calibration.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.dm3``, ``.dm4``, ``.emd`` (Velox or Berkeley), ``.ser``/``.emi`` (TIA),
        ``.mrc``/``.mrcs``/``.map``, ``.hspy``/``.hdf5`` (HyperSpy) or ``.tif``/``.tiff``
        file, or a folder of numbered TIFF frames.
    crop_databar : bool, optional
        Remove the information bar under FEI/TFS SEM/FIB TIFF images (default True;
        the number of rows removed is in ``metadata["databar_rows_removed"]``).

    Returns
    -------
    list of Micrograph
        One per image: four for a Velox file with four detectors, one per ``.ser`` for
        a TIA ``.emi``. Scales are in nm (real space) or nm⁻¹ (reciprocal space), ``px``
        when the file has no calibration.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    MicrographReadError
        (a ValueError) If the file is not of the format its extension says, is truncated
        or corrupt, or holds no image; the message names the file.
    TypeError
        If ``path`` is not a path.
    """
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {str(path)!r}")
    if path.is_dir():
        from ._folder import read_tiff_folder

        return read_tiff_folder(path, crop_databar=crop_databar)
    family = EXTENSIONS.get(path.suffix.lower())
    if family is None:
        raise MicrographReadError(
            path,
            f"unsupported file type {path.suffix!r}; supported: {', '.join(sorted(EXTENSIONS))}",
        )
    if path.stat().st_size == 0:
        raise MicrographReadError(path, "the file is empty")
    if family == "dm":
        from ._dm import read_dm

        return read_dm(path)
    if family == "tia":
        from ._tia import read_tia

        return read_tia(path)
    if family == "mrc":
        from ._mrc import read_mrc

        return read_mrc(path)
    if family == "tiff":
        from ._tiff import read_tiff

        return read_tiff(path, crop_databar=crop_databar)
    return _read_hdf5(path)


def _read_hdf5(path: Path) -> list[Micrograph]:
    from ._emd import emd_flavour, open_hdf5, read_emd
    from ._hspy import is_hyperspy, read_hspy

    with open(path, "rb") as f:
        if not f.read(8).startswith(_SIGNATURES["hdf5"][0]):
            raise MicrographReadError(
                path, f"not an HDF5 file, which a {path.suffix} file must be (no HDF5 signature)"
            )
    with open_hdf5(path) as h5:
        hyperspy = is_hyperspy(h5)
        emd = emd_flavour(h5) if not hyperspy else None
    if hyperspy:
        return read_hspy(path)
    if emd is not None or path.suffix.lower() == ".emd":
        return read_emd(path)
    raise MicrographReadError(
        path, "HDF5 file of an unknown layout: not Velox EMD, Berkeley EMD or HyperSpy"
    )
