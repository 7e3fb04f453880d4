"""The result contract of every reader: one calibrated image (or stack) per entry."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.records import jsonable
from ._units import NM, PX, RECIPROCAL_NM

__all__ = ["Micrograph", "MicrographReadError", "jsonable"]


class MicrographReadError(ValueError):
    """A file that claims a supported format cannot be read.

    The message names the file and says what is wrong (truncated, corrupt, not an
    image, ...). ``path`` and ``reason`` are kept as attributes.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot read {self.path!r}: {reason}")


@contextmanager
def corrupt_file_errors(path, what: str):
    """Report any error of a third-party reader inside as a corrupt ``what`` file.

    Parameters
    ----------
    path : str or Path
        The file being read (named in the message).
    what : str
        The format, e.g. ``"TIFF"``: "corrupt or truncated TIFF file (...)".

    Raises
    ------
    MicrographReadError
        Instead of whatever the reader raised (kept as the cause); a
        MicrographReadError raised inside passes unchanged.
    """
    try:
        yield
    except MicrographReadError:
        raise
    except Exception as exc:  # the readers raise many types on corrupt input
        raise MicrographReadError(
            path, f"corrupt or truncated {what} file ({type(exc).__name__}: {exc})"
        ) from exc


@dataclass(eq=False)
class Micrograph:
    """One image or image stack with its calibration, as read from a file.

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        Pixel values, shape ``(..., y, x)``; dask for stacks and large files.
    scale : tuple of float
        Size of one pixel along each axis: nm for real space, nm⁻¹ for reciprocal
        space, s for a time axis, 1 for uncalibrated axes.
    translate : tuple of float
        Position of the first pixel along each axis, in the units of ``scale``, taken
        from the file's origin/offset.
    units : tuple of str
        Per axis: ``"nm"``, ``"1/nm"``, ``"px"`` (no calibration in the file), ``"s"``
        or ``"frame"`` (an uncalibrated frame axis).
    calibrated : bool
        True when the two image axes (y, x) carry a physical calibration.
    reciprocal : bool
        True for diffraction patterns and other reciprocal-space images (units 1/nm).
    name : str
        Layer name.
    metadata : dict
        JSON-serialisable. Always has ``pixel_size_source``, ``source_path``, ``format``,
        ``calibrated``, ``reciprocal`` and ``original_metadata``.
    """

    data: Any
    scale: tuple
    translate: tuple
    units: tuple
    calibrated: bool
    reciprocal: bool
    name: str
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        ndim = len(self.data.shape)
        if ndim < 2:
            raise ValueError(
                f"data must have at least 2 dimensions (y, x), got shape {tuple(self.data.shape)}"
            )
        self.scale = tuple(float(s) for s in self.scale)
        self.translate = tuple(float(t) for t in self.translate)
        self.units = tuple(str(u) for u in self.units)
        for label, values in (
            ("scale", self.scale),
            ("translate", self.translate),
            ("units", self.units),
        ):
            if len(values) != ndim:
                raise ValueError(
                    f"{label} has {len(values)} entries but data has {ndim} "
                    f"dimensions {tuple(self.data.shape)}"
                )
        if not all(math.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError(f"scale must be finite and positive, got {self.scale}")
        self.calibrated = bool(self.calibrated)
        self.reciprocal = bool(self.reciprocal)
        self.metadata.setdefault("calibrated", self.calibrated)
        self.metadata.setdefault("reciprocal", self.reciprocal)

    @property
    def shape(self) -> tuple:
        """Shape of ``data``."""
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        """Number of axes of ``data``."""
        return len(self.data.shape)

    @property
    def pixel_size(self) -> float:
        """Real-space pixel size in nm (the y and x scale, which must be equal).

        Raises
        ------
        ValueError
            If the image is uncalibrated, in reciprocal space, or has anisotropic
            pixels (then use ``scale[-2:]``, which keeps both axes).
        """
        if not self.calibrated:
            raise ValueError(
                f"{self.name!r} has no pixel-size calibration (units "
                f"{self.units[-2:]}); set the pixel size by hand"
            )
        if self.reciprocal or self.units[-2:] != (NM, NM):
            raise ValueError(
                f"{self.name!r} is not a real-space image (units "
                f"{self.units[-2:]}); its pixel is {self.scale[-2:]} "
                f"{self.units[-1]}, see `scale`"
            )
        sy, sx = self.scale[-2:]
        if not math.isclose(sy, sx, rel_tol=1e-6):
            raise ValueError(
                f"{self.name!r} has anisotropic pixels: y {sy:.6g} nm, "
                f"x {sx:.6g} nm; use scale[-2:] for both"
            )
        return sx

    def layer_kwargs(self) -> dict:
        """Keyword arguments for ``napari.Viewer.add_image`` / a reader layer tuple.

        Returns
        -------
        dict
            ``name``, ``scale``, ``translate``, ``units``, ``metadata``, ``rgb=False``
            (so that a last axis of length 3 or 4 is never taken for colour) and
            ``multiscale=False`` (napari does not have to guess). Units that napari's
            unit registry does not know (``frame``) are passed as ``None``, which napari
            shows as pixels; the file's unit per axis stays in
            ``metadata["axis_units"]``. For lazy (dask) data, ``cache=False``: napari
            would otherwise keep every frame it has shown in its dask cache (up to a
            quarter of the RAM), while the frames are in the operating system's file
            cache anyway. For lazy stacks, ``contrast_limits`` are the minimum and
            maximum of the middle frame (the one napari shows first), so that nothing
            looks at the other frames; one frame is read.
        """
        metadata = dict(self.metadata)
        metadata["axis_units"] = list(self.units)
        metadata["calibrated"] = self.calibrated
        metadata["reciprocal"] = self.reciprocal
        kwargs = {
            "name": self.name,
            "scale": self.scale,
            "translate": self.translate,
            "units": tuple(_napari_unit(u) for u in self.units),
            "metadata": metadata,
            "rgb": False,
            "multiscale": False,
        }
        if hasattr(self.data, "compute"):
            kwargs["cache"] = False
        if self.ndim > 2 and hasattr(self.data, "compute"):
            limits = self.frame_limits()
            if limits is not None:
                kwargs["contrast_limits"] = limits
        return kwargs

    def frame_limits(self, index=None) -> list[float] | None:
        """Minimum and maximum finite value of one frame.

        Parameters
        ----------
        index : tuple of int, optional
            The frame (one index per leading axis); default the middle frame.

        Returns
        -------
        [float, float] or None
            ``[lo, hi]`` with ``hi > lo`` (a flat frame gives ``[v, v + 1]``); None for
            8-bit data (napari uses 0-255) or a frame without finite values.
        """
        if np.dtype(self.data.dtype) == np.uint8:
            return None
        if index is None:
            index = tuple(n // 2 for n in self.shape[:-2])
        frame = self.data[tuple(index)]
        frame = np.asarray(frame.compute() if hasattr(frame, "compute") else frame)
        if np.issubdtype(frame.dtype, np.floating):
            frame = frame[np.isfinite(frame)]
        if frame.size == 0:
            return None
        lo, hi = float(frame.min()), float(frame.max())
        return [lo, hi if hi > lo else lo + 1.0]

    def __repr__(self) -> str:
        kind = "reciprocal" if self.reciprocal else "real"
        return (
            f"Micrograph(name={self.name!r}, shape={self.shape}, dtype={self.data.dtype}, "
            f"scale={self.scale}, units={self.units}, calibrated={self.calibrated}, {kind})"
        )


def _napari_unit(unit: str):
    if unit in (NM, RECIPROCAL_NM, "s"):
        return unit
    if unit == PX:
        return "pixel"
    try:
        import pint
    except ImportError:
        return None
    try:
        pint.get_application_registry().parse_expression(unit)
    except (pint.errors.PintError, ValueError, TypeError, AttributeError, SyntaxError):
        return None
    return unit
