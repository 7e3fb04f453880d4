"""Array helpers shared by the readers: lazy frame stacks, eager/lazy choice, pixel types.

A movie must open without being loaded: every stack is a dask array whose chunks are
single frames (``(1, ..., 1, ny, nx)``), and every chunk reads only its own bytes from
the file. :class:`FrameStack` is the array-like behind those dask arrays; it is handed
a function that reads one frame (or a band of rows of one frame), so each format only
has to say where a frame is.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import numpy as np

__all__ = [
    "EAGER_MAX_BYTES",
    "FrameStack",
    "SharedHandle",
    "displayable",
    "eager_or_lazy",
    "file_token",
    "frame_chunks",
    "has_frame_chunks",
    "is_lazy",
    "lazy_frames",
    "raw_frames",
    "read_exact",
]

# Single images up to this size are loaded into memory; bigger ones and all stacks stay
# lazy (dask), so opening a long movie costs nothing until frames are looked at.
EAGER_MAX_BYTES = 512 * 2**20


def is_lazy(data) -> bool:
    """True for dask arrays (anything with a ``compute`` method)."""
    return hasattr(data, "compute") and hasattr(data, "chunks")


def frame_chunks(shape) -> tuple:
    """Dask chunks of one 2-D frame: 1 along every leading axis, whole (y, x)."""
    shape = tuple(int(s) for s in shape)
    return (1,) * (len(shape) - 2) + shape[-2:]


def has_frame_chunks(data) -> bool:
    """True when a dask array's chunks are whole frames, one per chunk.

    A leading axis may also be a single chunk when it has length 1.
    """
    chunks = data.chunks
    return all(all(c == 1 for c in axis) for axis in chunks[:-2]) and all(
        len(axis) == 1 for axis in chunks[-2:]
    )


def eager_or_lazy(data):
    """Load 2-D images below :data:`EAGER_MAX_BYTES`; keep stacks and big images lazy.

    Numpy (or memory-mapped) stacks become dask arrays with one frame per chunk. Dask
    input is returned as it is (a 2-D one below the limit is computed); the readers
    build their dask stacks with :func:`lazy_frames` so that chunks are frames.
    """
    if is_lazy(data):
        if data.ndim == 2 and data.nbytes <= EAGER_MAX_BYTES:
            return np.asarray(data.compute())
        return data
    if data.ndim > 2 or data.nbytes > EAGER_MAX_BYTES:
        import dask.array as da

        return da.from_array(data, chunks=frame_chunks(data.shape))
    return np.asarray(data)


class FrameStack:
    """Read-only array-like over a stack of 2-D frames, read frame by frame.

    Parameters
    ----------
    shape : tuple of int
        ``(..., ny, nx)``; the leading axes are walked in C order (flat frame index).
    dtype : numpy dtype
        Pixel type as returned by ``read_rows``.
    read_rows : callable
        ``read_rows(frame, row_start, row_stop) -> ndarray`` of shape
        ``(row_stop - row_start, nx)`` for the flat frame index ``frame``. Readers that
        cannot read part of a frame read it whole and slice.
    token : tuple
        Identifies the data for dask (e.g. path, size, modification time, layout), so
        that opening the same file twice gives the same dask keys.
    source : str or Path, optional
        The file or folder named in errors (default ``token[0]``, the path).

    Indexing takes integers and slices (what dask's ``from_array`` passes); only the
    frames (and rows) asked for are read.
    """

    def __init__(self, shape, dtype, read_rows, *, token, source=None):
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) < 2:
            raise ValueError(f"shape must have at least 2 axes (y, x), got {self.shape}")
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._read_rows = read_rows
        self._token = tuple(token)
        self.source = str(source) if source is not None else str(self._token[0])

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __dask_tokenize__(self):
        return ("FrameStack", self.shape, self.dtype.str, self._token)

    def __getitem__(self, key):
        key = _full_key(key, self.shape)
        lead_shape = self.shape[:-2]
        lead = []  # (indices, keep_axis) per leading axis
        for k, n in zip(key[:-2], lead_shape, strict=True):
            if isinstance(k, slice):
                lead.append((range(*k.indices(n)), True))
            else:
                lead.append(([k], False))
        ky, kx = key[-2:]
        rows = range(*ky.indices(self.shape[-2])) if isinstance(ky, slice) else range(ky, ky + 1)
        tail = _tail_shape(ky, kx, self.shape)
        out_lead = tuple(len(idx) for idx, keep in lead if keep)
        combos = list(itertools.product(*(idx for idx, _ in lead)))
        out = np.empty((len(combos), *tail), dtype=self.dtype)
        if len(rows) and out.size:
            r0, r1 = min(rows), max(rows) + 1
            # Positions of the wanted rows inside the band r0..r1 that is read.
            local = slice(0, r1 - r0, rows.step) if rows.step > 0 else [r - r0 for r in rows]
            for i, combo in enumerate(combos):
                flat = int(np.ravel_multi_index(combo, lead_shape)) if lead_shape else 0
                band = self._read(flat, r0, r1)
                part = band[local][:, kx]
                part = part[0] if not isinstance(ky, slice) else part
                if len(combos) == 1:  # the usual dask chunk: no second copy of the frame
                    return part.astype(self.dtype, copy=False).reshape(out_lead + tail)
                out[i] = part
        return out.reshape(out_lead + tail)

    def _read(self, frame: int, r0: int, r1: int) -> np.ndarray:
        """Rows r0..r1 of a frame; any error of the file's reader names the file."""
        from ._micrograph import MicrographReadError

        try:
            band = np.asarray(self._read_rows(frame, r0, r1))
        except MicrographReadError:
            raise
        except Exception as exc:  # h5py/tifffile raise many types on corrupt data
            raise MicrographReadError(
                self.source, f"cannot read frame {frame} ({type(exc).__name__}: {exc})"
            ) from exc
        if band.shape[0] != r1 - r0:
            raise MicrographReadError(
                self.source,
                f"frame {frame} has {band.shape[0]} rows where {r1 - r0} were expected",
            )
        return band


def _tail_shape(ky, kx, shape) -> tuple:
    tail = []
    for k, n in ((ky, shape[-2]), (kx, shape[-1])):
        if isinstance(k, slice):
            tail.append(len(range(*k.indices(n))))
    return tuple(tail)


def _full_key(key, shape) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    if len(key) != len(shape):
        raise IndexError(f"too many indices ({len(key)}) for shape {shape}")
    out = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            out.append(k)
        elif isinstance(k, (int, np.integer)):
            k = int(k)
            if not -n <= k < n:
                raise IndexError(f"index {k} out of range for axis of length {n}")
            out.append(k % n)
        else:
            raise TypeError(f"FrameStack takes integers and slices, not {type(k).__name__}")
    return tuple(out)


def lazy_frames(stack: FrameStack):
    """A dask array over ``stack`` with one frame per chunk."""
    import dask.array as da

    return da.from_array(
        stack,
        chunks=frame_chunks(stack.shape),
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * stack.ndim, dtype=stack.dtype),
    )


def file_token(path) -> tuple:
    """(absolute path, size, mtime in ns) of a file, for dask tokens."""
    path = Path(path).resolve()
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def read_exact(path, offset: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (contiguous) with bytes of ``path`` from ``offset``.

    Plain reads rather than a memory map: the bytes land in an ordinary array, so the
    process's resident memory holds only the frames that are still referenced.

    Raises
    ------
    MicrographReadError
        If the file ends before ``out`` is full (the file was truncated after opening).
    """
    view = memoryview(out).cast("B")
    with open(path, "rb") as f:
        f.seek(offset)
        got = f.readinto(view)
    if got != view.nbytes:
        from ._micrograph import MicrographReadError

        raise MicrographReadError(
            path,
            f"truncated file: wanted bytes {offset}..{offset + view.nbytes} but "
            f"the file ends after {offset + got}",
        )
    return out


def raw_frames(path, *, offset: int, shape, dtype):
    """Lazy dask array over uncompressed pixels stored contiguously in a file.

    Parameters
    ----------
    path : str or Path
        The file.
    offset : int
        Byte offset of the first pixel.
    shape : tuple of int
        ``(..., ny, nx)`` in C order: x varies fastest, then y, then the frame axes.
    dtype : numpy dtype
        Pixel type with its byte order as stored; big-endian data is returned in the
        native byte order.

    Returns
    -------
    dask.array.Array
        One chunk per frame; a chunk reads only its rows, with plain file reads.
    """
    path = Path(path)
    shape = tuple(int(s) for s in shape)
    stored = np.dtype(dtype)
    stack = FrameStack(
        shape,
        stored.newbyteorder("="),
        _RawRows(path, int(offset), shape[-2], shape[-1], stored),
        token=(*file_token(path), "raw", int(offset), stored.str),
    )
    return lazy_frames(stack)


class _RawRows:
    """Reads rows r0..r1 of frame k of a contiguous C-order pixel block (picklable)."""

    def __init__(self, path, offset, ny, nx, stored):
        self.path, self.offset, self.ny, self.nx, self.stored = path, offset, ny, nx, stored

    def __call__(self, frame, r0, r1):
        out = np.empty((r1 - r0, self.nx), dtype=self.stored)
        row_bytes = self.nx * self.stored.itemsize
        read_exact(self.path, self.offset + (frame * self.ny + r0) * row_bytes, out)
        return out if self.stored.isnative else out.astype(self.stored.newbyteorder("="))


class SharedHandle:
    """A file handle opened on first use and shared by the threads of one process.

    Holds only the path when pickled, so dask graphs that use it can be sent to other
    processes, which open their own handle.
    """

    def __init__(self, path, opener):
        self.path = str(path)
        self._opener = opener
        self._handle = None
        self._lock = threading.Lock()
        self._pid = None

    def __getstate__(self):
        return {"path": self.path, "_opener": self._opener}

    def __setstate__(self, state):
        self.__init__(state["path"], state["_opener"])

    def call(self, fn):
        """Run ``fn(handle)`` under the lock (tifffile/h5py handles are not thread safe)."""
        with self._lock:
            if self._handle is None or self._pid != os.getpid():
                self._handle = self._opener(self.path)
                self._pid = os.getpid()
            return fn(self._handle)


def displayable(data) -> tuple[object, list[str]]:
    """Make pixel values something napari shows as one grey Image layer.

    Structured RGB(A) values (DigitalMicrograph colour images) become float32
    luminance (ITU-R BT.601 weights) and complex values (saved FFTs) their modulus.

    Returns
    -------
    data : array
        The converted data (same laziness as the input; dask input stays lazy with the
        same chunks).
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
