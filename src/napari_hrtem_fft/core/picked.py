"""Reflections picked on an image, recorded with the image itself.

The reflection picker writes what the user picked into the image's own record (a
napari layer's ``metadata``, under :data:`PICKED_KEY`); the lattice-map dock, the
console and scripts read it back from there.  The picks thus travel with the image
(one set per image, kept when the layer is saved or copied), and no dock needs to know
another.

Nothing here imports napari or Qt: the functions take and return plain mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["PICKED_KEY", "PickedReflections"]

#: Key of the picked reflections in an image layer's ``metadata``.
PICKED_KEY = "napari_hrtem_fft_reflections"


@dataclass(frozen=True)
class PickedReflections:
    """Reflections picked on an image's FFT, with the window they were picked in.

    Attributes
    ----------
    g : numpy.ndarray
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹ (``n`` may be 0).
    window : int
        Side in pixels of the FFT window they were picked in.
    pixel_size : float
        Pixel size in nm used for that FFT.
    center : tuple of int or None
        Centre ``(y, x)`` of the window in image pixels, if known.
    """

    g: np.ndarray
    window: int
    pixel_size: float
    center: tuple[int, int] | None = None

    def to_metadata(self) -> dict:
        """The record as plain JSON-able values, to store under :data:`PICKED_KEY`."""
        return {
            "g_per_nm": np.asarray(self.g, dtype=float).reshape(-1, 2).tolist(),
            "window": int(self.window),
            "pixel_size_nm": float(self.pixel_size),
            "center_px": None if self.center is None else [int(c) for c in self.center],
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping) -> PickedReflections | None:
        """The reflections recorded in a layer's ``metadata``, or None if there are none.

        Raises
        ------
        ValueError
            If the record is there but malformed (not ``(n, 2)`` reflections, or no
            positive window and pixel size).
        """
        record = metadata.get(PICKED_KEY)
        if record is None:
            return None
        try:
            g = np.asarray(record["g_per_nm"], dtype=float).reshape(-1, 2)
            window, pixel_size = int(record["window"]), float(record["pixel_size_nm"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed picked reflections {record!r}: {exc}") from None
        if window <= 0 or not pixel_size > 0:
            raise ValueError(
                f"picked reflections need a positive window and pixel size: {record!r}"
            )
        center = record.get("center_px")
        return cls(g, window, pixel_size, None if center is None else tuple(center))
