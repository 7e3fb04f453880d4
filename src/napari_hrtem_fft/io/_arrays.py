"""Small array helpers shared by the readers: eager/lazy choice and pixel types."""

from __future__ import annotations

import numpy as np

__all__ = ["EAGER_MAX_BYTES", "displayable", "eager_or_lazy", "is_lazy"]

# Single images up to this size are loaded into memory; bigger ones and all stacks stay
# lazy (dask), so opening a long movie costs nothing until frames are looked at.
EAGER_MAX_BYTES = 512 * 2**20


def is_lazy(data) -> bool:
    """True for dask arrays (anything with a ``compute`` method)."""
    return hasattr(data, "compute") and hasattr(data, "chunks")


def eager_or_lazy(data):
    """Load 2-D images below :data:`EAGER_MAX_BYTES`; keep stacks and big images lazy."""
    if is_lazy(data):
        if data.ndim == 2 and data.nbytes <= EAGER_MAX_BYTES:
            return np.asarray(data.compute())
        return data
    if data.ndim > 2 or data.nbytes > EAGER_MAX_BYTES:
        import dask.array as da

        return da.from_array(data, chunks=(1,) * (data.ndim - 2) + tuple(data.shape[-2:]))
    return np.asarray(data)


def displayable(data) -> tuple[object, list[str]]:
    """Make pixel values something napari shows as one grey Image layer.

    Structured RGB(A) values (DigitalMicrograph colour images) become float32
    luminance (ITU-R BT.601 weights) and complex values (saved FFTs) their modulus.

    Returns
    -------
    data : array
        The converted data (same laziness as the input).
    notes : list of str
        What was changed, for ``metadata["notes"]``.
    """
    dtype = np.dtype(data.dtype)
    if dtype.names and {"R", "G", "B"} <= set(dtype.names):

        def lum(block):
            return (0.299 * block["R"] + 0.587 * block["G"] + 0.114 * block["B"]).astype(
                np.float32
            )

        if is_lazy(data):
            out = data.map_blocks(lum, dtype=np.float32)
        else:
            out = lum(np.asarray(data))
        return out, ["colour (RGB) pixels converted to float32 luminance"]
    if np.issubdtype(dtype, np.complexfloating):
        return abs(data), ["complex pixels (a saved FFT?) replaced by their modulus"]
    if dtype == np.bool_:
        return data.astype(np.uint8), ["boolean pixels converted to uint8"]
    return data, []
