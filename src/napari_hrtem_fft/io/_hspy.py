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
    out, rejected = [], []
    for sig in signals:
        title = str(sig.get("metadata", {}).get("General", {}).get("title", "")) or path.stem
        axes = sig["axes"]
        n_signal = sum(1 for a in axes if not a.get("navigate", False))
        n_nav = len(axes) - n_signal
        if n_signal != 2 or n_nav > 1:
            rejected.append(f"{title!r} ({n_nav} navigation + {n_signal} signal axes)")
            continue
        try:
            data, notes = displayable(eager_or_lazy(sig["data"]))
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
