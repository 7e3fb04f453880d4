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
    except Exception:
        return False


def _is_our_hdf5(path: Path) -> bool:
    """HyperSpy or EMD layout, looked for in a bounded number of HDF5 objects."""
    import h5py

    from ._emd import emd_flavour
    from ._hspy import is_hyperspy

    try:
        with h5py.File(path, "r") as h5:
            return is_hyperspy(h5) or emd_flavour(h5) is not None
    except Exception:
        return False


def read_micrographs(
    path, *, crop_databar: bool = True, allow_external: bool = False
) -> list[Micrograph]:
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
    allow_external : bool, optional
        Read HDF5 files (.emd, .hspy, .hdf5) whose data are stored in other files
        (external links, external raw storage, virtual datasets). Default False: such
        a file is refused, so that opening a file never reads another one.

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
        or corrupt, holds no image, is not a regular file, declares an image larger
        than its bytes can hold, or (HDF5) keeps data in other files; the message
        names the file. Any other error of a third-party reader is reported the same
        way.
    TypeError
        If ``path`` is not a path.
    """
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {str(path)!r}")
    try:
        out = _dispatch(path, crop_databar=crop_databar, allow_external=allow_external)
    except (MicrographReadError, FileNotFoundError):
        raise
    except MemoryError as exc:
        raise MicrographReadError(
            path, "the file declares an image too large for memory (corrupt header?)"
        ) from exc
    except Exception as exc:  # third-party readers raise many types on corrupt input
        raise MicrographReadError(
            path, f"corrupt or unreadable file ({type(exc).__name__}: {exc})"
        ) from exc
    for mg in out:
        if min(mg.data.shape) < 1:
            raise MicrographReadError(
                path, f"the image {mg.name!r} is empty (shape {tuple(mg.data.shape)})"
            )
    return out


def _dispatch(path: Path, *, crop_databar: bool, allow_external: bool) -> list[Micrograph]:
    if path.is_dir():
        from ._folder import read_tiff_folder

        return read_tiff_folder(path, crop_databar=crop_databar)
    if not path.is_file():
        raise MicrographReadError(path, "not a regular file (a pipe, socket or device?)")
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
    return _read_hdf5(path, allow_external=allow_external)


def _read_hdf5(path: Path, *, allow_external: bool = False) -> list[Micrograph]:
    from ._emd import emd_flavour, open_hdf5, read_emd
    from ._hdf5 import check_self_contained, global_heaps_consistent
    from ._hspy import is_hyperspy, read_hspy

    with open(path, "rb") as f:
        if not f.read(8).startswith(_SIGNATURES["hdf5"][0]):
            raise MicrographReadError(
                path, f"not an HDF5 file, which a {path.suffix} file must be (no HDF5 signature)"
            )
    with open_hdf5(path) as h5:
        if not allow_external:
            check_self_contained(path, h5)
        hyperspy = is_hyperspy(h5)
        emd = emd_flavour(h5) if not hyperspy else None
    if (hyperspy or emd == "velox") and global_heaps_consistent(path) is False:
        # rosettasciio reads every text attribute; HDF5 can loop on a corrupt heap.
        raise MicrographReadError(
            path, "corrupt HDF5 file: a global heap (variable-length text) is inconsistent"
        )
    if hyperspy:
        return read_hspy(path)
    if emd is not None or path.suffix.lower() == ".emd":
        return read_emd(path)
    raise MicrographReadError(
        path, "HDF5 file of an unknown layout: not Velox EMD, Berkeley EMD or HyperSpy"
    )
