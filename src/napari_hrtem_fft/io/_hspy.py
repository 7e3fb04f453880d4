"""HyperSpy ``.hspy`` / ``.hdf5`` files, through rosettasciio."""

from __future__ import annotations

from pathlib import Path

from ._arrays import displayable, eager_or_lazy
from ._calibration import build_micrograph, rsciio_axes
from ._micrograph import Micrograph, MicrographReadError


def is_hyperspy(h5) -> bool:
    """True for an open h5py File written by HyperSpy/rosettasciio."""
    fmt = h5.attrs.get("file_format", b"")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    return str(fmt).lower() == "hyperspy" or "Experiments" in h5


def read_hspy(path: Path) -> list[Micrograph]:
    """Every signal with two signal axes (an image, or a stack of images).

    Signals with one signal axis (spectra, spectrum images) and 4-D STEM data (two
    navigation axes) are not micrographs and are rejected with a message.
    """
    from rsciio.hspy import file_reader

    try:
        signals = file_reader(str(path), lazy=True)
    except Exception as exc:  # rsciio raises many types on corrupt input
        raise MicrographReadError(
            path, f"corrupt HyperSpy file ({type(exc).__name__}: {exc})"
        ) from exc
    names = _data_names(path, len(signals))
    out, rejected = [], []
    for sig, name in zip(signals, names, strict=True):
        title = str(sig.get("metadata", {}).get("General", {}).get("title", "")) or path.stem
        axes = sig["axes"]
        n_signal = sum(1 for a in axes if not a.get("navigate", False))
        n_nav = len(axes) - n_signal
        if n_signal != 2 or n_nav > 1:
            rejected.append(f"{title!r} ({n_nav} navigation + {n_signal} signal axes)")
            continue
        try:
            data, notes = displayable(eager_or_lazy(_frame_wise(path, name, sig["data"])))
        except (OSError, ValueError) as exc:
            raise MicrographReadError(path, f"cannot load the pixels of {title!r}: {exc}") from exc
        out.append(
            build_micrograph(
                data,
                rsciio_axes(axes, data.ndim, path),
                path=path,
                fmt="HyperSpy",
                name=title,
                pixel_size_source="HyperSpy axes_manager (scale, offset, units)",
                original_metadata={
                    "metadata": sig.get("metadata", {}),
                    "original_metadata": sig.get("original_metadata", {}),
                },
                extra={"title": title},
                notes=notes,
            )
        )
    if not out:
        raise MicrographReadError(
            path,
            "no image signal (two signal axes) in this HyperSpy "
            f"file: {', '.join(rejected) or 'it is empty'}",
        )
    return out


def _data_names(path: Path, n: int) -> list:
    """(HDF5 name, shape) of each ``data`` dataset, in rosettasciio's signal order.

    rosettasciio reads the groups under ``Experiments`` that hold a ``data`` dataset, in
    key order. Returns Nones when the count does not match.
    """
    import h5py

    from ._emd import open_hdf5

    with open_hdf5(path) as h5:
        group = h5.get("Experiments")
        found = []
        for key in group if group is not None else []:
            item = group[key]
            if not (isinstance(item, h5py.Group) and "data" in item):
                continue
            dset = item["data"]
            ok = isinstance(dset, h5py.Dataset)
            found.append((dset.name, tuple(dset.shape)) if ok else None)
    return found if len(found) == n else [None] * n


def _frame_wise(path: Path, found, data):
    """A stack read frame by frame from its HDF5 dataset.

    rosettasciio chunks a lazy signal as the dataset is chunked on disk, which may be
    several frames (or the whole stack) per chunk, or dask's "auto" cubes for a
    contiguous dataset; a frame is a selection of the dataset, and HDF5 reads only the
    chunks it touches.
    """
    if found is None or data.ndim < 3 or found[1] != tuple(data.shape):
        return data
    from ._arrays import FrameStack, file_token, lazy_frames
    from ._emd import H5FrameRows

    name = found[0]
    stack = FrameStack(
        data.shape, data.dtype, H5FrameRows(path, name), token=(*file_token(path), "h5", name)
    )
    return lazy_frames(stack)
