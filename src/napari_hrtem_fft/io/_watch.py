"""Frames of an acquisition that is still being written, never read half-done.

Two sources, both polled (:meth:`poll` returns the frames completed since the last
call):

- :class:`FolderFrames`: a folder where the acquisition software writes one file per
  frame (TIFF, MRC, DM3/DM4).  A file counts as complete at first sight when its own
  byte counts prove it (an uncompressed TIFF whose IFDs, tag values and strips all lie
  inside the size measured before parsing; an MRC file as long as its header says),
  or when the writer renames finished files into place (``renamed=True``); otherwise
  (DM, compressed TIFF) when its size and modification time are the same at two polls
  in a row.  In every case it must parse as one image of the frame shape, and its size
  and modification time must not change while it is read.  Files named like temporary
  files (``.frame.tif``, ``frame.tif.part``, ``frame.tif.tmp``, ``frame.tif~``) are
  never read.
- :class:`GrowingStack`: one multi-frame TIFF or MRC file that grows as frames are
  appended.  Only frames whose bytes are all in the file count: for MRC, the header
  gives the frame size and offset; for TIFF, each page's IFD gives its strip offsets
  and byte counts, checked against the file size measured before the IFDs are read.

Polling rather than file-system events (watchdog, inotify): events say that a file
changed, not that it is complete, so the same size and parse checks would still be
needed; events are unreliable on the network shares acquisition PCs write to, and a
poll every 50 ms costs a directory listing.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._arrays import read_exact
from ._micrograph import MicrographReadError
from ._tiff import natural_key

__all__ = [
    "FRAME_SUFFIXES",
    "FileFrame",
    "FolderFrames",
    "GrowingStack",
    "LiveFrame",
    "watch_source",
]

logger = logging.getLogger(__name__)

#: File types a folder source reads, one image per file.
FRAME_SUFFIXES = (".tif", ".tiff", ".mrc", ".dm3", ".dm4")
#: File types a growing-stack source reads.
STACK_SUFFIXES = (".tif", ".tiff", ".mrc", ".mrcs")
# Names acquisition and copy tools give files they are still writing.
_TEMPORARY = re.compile(r"(^[.~])|(\.(part|partial|tmp|temp|crdownload|filepart)$)|(~$)", re.I)
# MRC modes (data types) a stack source reads; 4-bit and complex modes are not frames.
_MRC_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}


@dataclass(frozen=True)
class LiveFrame:
    """One complete frame of an acquisition.

    Attributes
    ----------
    index : int
        Frame number in the acquisition, from 0, in the order the frames were written.
    data : numpy.ndarray or FileFrame
        Pixels ``(y, x)``; a :class:`FileFrame` (read by ``numpy.asarray``) for a file
        whose byte counts proved it complete.
    time : float
        Seconds since the source's first frame: the files' modification times for a
        folder, the times the frames were found complete for a growing stack.
    name : str
        File name (folder) or ``"file[k]"`` (stack).
    complete : float
        ``time.monotonic()`` when the frame was found complete (for latencies).
    pixel_size : float or None
        Pixel size in nm from the file's calibration, None if it has none.
    """

    index: int
    data: np.ndarray
    time: float
    name: str
    complete: float
    pixel_size: float | None = None


def watch_source(path, **options):
    """The source for ``path``: a folder of frames or one growing multi-frame file.

    Parameters
    ----------
    path : str or pathlib.Path
        A folder (:class:`FolderFrames`) or a ``.tif``/``.tiff``/``.mrc``/``.mrcs`` file
        (:class:`GrowingStack`; it may not exist yet).
    **options
        Passed to the source.

    Raises
    ------
    ValueError
        If ``path`` is neither a folder nor a file type a growing stack can be.
    """
    path = Path(path)
    if path.is_dir():
        return FolderFrames(path, **options)
    if path.suffix.lower() in STACK_SUFFIXES:
        return GrowingStack(path, **options)
    raise ValueError(
        f"{str(path)!r} is neither a folder of frames nor a growing stack "
        f"({', '.join(STACK_SUFFIXES)})"
    )


def _pixel_size(micrograph) -> float | None:
    try:
        return float(micrograph.pixel_size)
    except ValueError:
        return None


class FolderFrames:
    """Frames written one file each into a folder, returned once each file is complete.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder the acquisition writes to (it must exist).
    renamed : bool
        The writer writes each file under a temporary name and renames it when done,
        so a file with a frame name is complete at first sight (saves one poll).
    frame_shape : tuple of int, optional
        Shape ``(y, x)`` every frame must have; default the first frame's.
    give_up : float
        Seconds a file may keep its size without parsing as a frame before it is
        refused (listed in :attr:`problems`, never returned): a writer may stall, a
        file that is not a frame must not be tried forever.

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a folder.
    """

    def __init__(self, folder, *, renamed: bool = False, frame_shape=None, give_up: float = 10.0):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"{str(self.folder)!r} is not a folder")
        self.renamed = bool(renamed)
        self.frame_shape = None if frame_shape is None else tuple(int(s) for s in frame_shape)
        self.give_up = float(give_up)
        #: Files refused, with the reason: ``[(name, reason)]``.
        self.problems: list[tuple[str, str]] = []
        self._seen: dict[str, tuple[int, int]] = {}  # name -> (size, mtime) at last poll
        self._stable_since: dict[str, float] = {}  # name -> when its size stopped changing
        self._done: set[str] = set()
        self._count = 0
        self._t0: float | None = None
        self._pixel_size: float | None = None  # of the first frame

    def _candidates(self) -> list[os.DirEntry]:
        with os.scandir(self.folder) as entries:
            found = [
                e
                for e in entries
                if e.name not in self._done
                and not _TEMPORARY.search(e.name)
                and Path(e.name).suffix.lower() in FRAME_SUFFIXES
                and e.is_file()
            ]
        return sorted(found, key=lambda e: natural_key(e.name))

    def poll(self) -> list[LiveFrame]:
        """The frames completed since the last call, in file-name order."""
        frames = []
        for entry in self._candidates():
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            stable = self._seen.get(entry.name) == stamp
            self._seen[entry.name] = stamp
            if not stable:
                self._stable_since[entry.name] = time.monotonic()
            path = Path(entry.path)
            proven, layout = (None, None) if stable else _proven(path, st.st_size)
            if st.st_size == 0 or not (stable or self.renamed or proven):
                continue
            if proven is not None and proven == self.frame_shape:
                # Read only if analysed (the first frame was read: shape, calibration).
                data = FileFrame(path, self.frame_shape, stamp, layout=layout)
                frames.append(self._frame(entry.name, data, st.st_mtime, self._pixel_size))
                continue
            frame = self._read(path, st.st_mtime, stamp)
            if frame is not None:
                frames.append(frame)
        return frames

    def _read(self, path: Path, mtime: float, stamp: tuple[int, int]) -> LiveFrame | None:
        """The frame in ``path``, or None.

        None unless it parses as one image of the frame shape and the file kept its size
        and modification time ``stamp`` while it was read.
        """
        name = path.name
        try:
            data, pixel_size = _read_frame(path, self.frame_shape, stamp)
        except _Changed:
            # Written to while it was read: look again at the next poll.
            self._stable_since[name] = time.monotonic()
            return None
        except (MicrographReadError, OSError) as exc:
            # Still being written (a stalled writer keeps its size), or not a frame.
            if time.monotonic() - self._stable_since.get(name, time.monotonic()) > self.give_up:
                self._done.add(name)
                self.problems.append((name, str(exc)))
                logger.warning("%s refused: %s", name, exc)
            return None
        if self.frame_shape is None:
            self.frame_shape, self._pixel_size = tuple(data.shape), pixel_size
        return self._frame(name, data, mtime, pixel_size)

    def _frame(self, name: str, data, mtime: float, pixel_size) -> LiveFrame:
        self._done.add(name)
        self._seen.pop(name, None)
        self._stable_since.pop(name, None)
        if self._t0 is None:
            self._t0 = mtime
        frame = LiveFrame(self._count, data, mtime - self._t0, name, time.monotonic(), pixel_size)
        self._count += 1
        return frame


#: Reads of a frame file that changed after it was found complete, and the pause (s)
#: before reading it again.
_REREADS = 4
_REREAD_PAUSE_S = 0.05


class _Changed(OSError):
    """The file changed while it was read."""


def _read_frame(path: Path, frame_shape, stamp) -> tuple[np.ndarray, float | None]:
    """Pixels and pixel size of the one frame in ``path``, which must keep ``stamp``.

    Raises
    ------
    MicrographReadError
        If it is not one image of ``frame_shape`` (when given).
    _Changed
        If its size or modification time is no longer ``stamp`` once read.
    """
    from ._read import read_micrographs

    with _quiet_tifffile():
        images = read_micrographs(path)
    if len(images) != 1 or len(images[0].data.shape) != 2:
        raise MicrographReadError(path, f"holds {len(images)} image(s), not one frame (y, x)")
    shape = tuple(images[0].data.shape)
    if frame_shape is not None and shape != tuple(frame_shape):
        raise MicrographReadError(path, f"frame of shape {shape}, the frames are {frame_shape}")
    data = images[0].data
    data = np.asarray(data.compute() if hasattr(data, "compute") else data)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != tuple(stamp):
        raise _Changed(f"{path.name} changed while it was read")
    return data, _pixel_size(images[0])


class FileFrame:
    """The pixels of a frame file whose byte counts prove it complete, read when asked.

    A live run behind the acquisition skips most waiting frames: only the frames it
    analyses are read (``numpy.asarray(frame)``), so that memory does not grow with the
    number of frames waiting.  The file must still be one image of ``shape`` and keep
    the size and modification time it had when found complete.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    shape : tuple of int
        The frame shape ``(y, x)``.
    stamp : tuple of int
        ``(size, st_mtime_ns)`` when it was found complete.
    layout : tuple, optional
        ``(offset, dtype)``: the pixels are one block of ``shape`` at ``offset`` (a plain
        uncompressed TIFF, as its completeness check found it).  They are then read with
        one plain read instead of parsing the file again, and the file must still keep
        its size and modification time; otherwise (or if it changed) it is parsed.
    """

    ndim = 2

    def __init__(self, path: Path, shape, stamp, *, layout=None) -> None:
        self.path, self.shape, self._stamp = Path(path), tuple(shape), tuple(stamp)
        self._layout = layout
        self._data: np.ndarray | None = None

    def _read_block(self) -> np.ndarray:
        """The pixels from their known place (raises ``_Changed`` if the file changed)."""
        offset, dtype = self._layout
        out = read_exact(self.path, offset, np.empty(self.shape, dtype))
        after = self.path.stat()
        if (after.st_size, after.st_mtime_ns) != self._stamp:
            raise _Changed(f"{self.path.name} changed while it was read")
        return out if dtype.isnative else out.astype(dtype.newbyteorder("="))

    def read(self) -> np.ndarray:
        """The pixels (read once).

        Raises
        ------
        MicrographReadError, OSError
            If the file is no longer the frame it was found to be (changed, removed).
        """
        for _ in range(_REREADS):
            if self._data is not None:
                break
            try:
                if self._layout is not None:
                    self._data = self._read_block()
                else:
                    self._data = _read_frame(self.path, self.shape, self._stamp)[0]
            except _Changed:
                # Its layout may have changed with it: parse it from now on.
                self._layout = None
                # Writers touch a file once more after its bytes are complete (closing
                # it, rewriting a tag): read it as it is now, if it holds still while
                # it is read, rather than lose the frame.
                time.sleep(_REREAD_PAUSE_S)
                after = self.path.stat()
                self._stamp = (after.st_size, after.st_mtime_ns)
        if self._data is None:
            raise MicrographReadError(self.path, "changed after it was found complete")
        return self._data

    @property
    def dtype(self) -> np.dtype:
        """Data type of the pixels (reads them)."""
        return self.read().dtype

    def __getitem__(self, key):
        """Indexing of the pixels (reads them)."""
        return self.read()[key]

    def __array__(self, dtype=None, copy=None):
        """The pixels as a numpy array."""
        data = self.read()
        return data if dtype is None else data.astype(dtype)


def complete_by_its_sizes(path: Path, size: int) -> tuple[int, ...] | None:
    """The image shape if the first ``size`` bytes of a frame file hold all of it.

    An uncompressed TIFF whose every IFD, tag value and strip lies inside ``size`` bytes
    and whose strips add up to the image; an MRC file whose header's dimensions and mode
    end its data inside ``size``.  None for other file types (DM), compressed TIFF
    and whatever does not parse yet: those wait for the size to stay put.  The shape is
    the first page's (TIFF) or ``(nz, ny, nx)`` without ``nz == 1`` (MRC).

    Parameters
    ----------
    path : pathlib.Path
        The file.
    size : int
        Its size in bytes, measured before this call.
    """
    return _proven(path, size)[0]


def _proven(path: Path, size: int) -> tuple[tuple[int, ...] | None, tuple | None]:
    """:func:`complete_by_its_sizes`, and where the pixels of a plain TIFF image are.

    The second item is ``(offset, dtype)`` of one contiguous block of the shape for an
    uncompressed TIFF of one single-sample image, else None.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            return _tiff_complete(path, size)
        if suffix in (".mrc", ".mrcs"):
            return _mrc_complete(path, size), None
    except (OSError, ValueError, IndexError, KeyError, struct.error):
        return None, None
    return None, None


def _tiff_complete(path: Path, size: int) -> tuple[tuple[int, ...] | None, tuple | None]:
    import tifffile

    with _quiet_tifffile():
        try:
            tf = tifffile.TiffFile(path)
        except tifffile.TiffFileError:
            return None, None
        with tf:
            pages = list(tf.pages)
            if not pages:
                return None, None
            for page in pages:
                if page is None or page.compression != 1:
                    return None, None
                tags = page.tags.values()
                ends = [t.valueoffset + t.valuebytecount for t in tags]
                ends += [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True)]
                if max(ends) > size or sum(page.databytecounts) < page.nbytes:
                    return None, None
            if len(pages) > 1:
                return (len(pages),), None
            page = pages[0]
            layout = None
            dtype = page.dtype
            offsets, counts = np.asarray(page.dataoffsets), np.asarray(page.databytecounts)
            if (
                len(page.shape) == 2
                and page.samplesperpixel == 1
                and dtype is not None
                and dtype.kind in "iuf"
                and page.bitspersample == 8 * dtype.itemsize
                and counts.sum() == page.nbytes
                and np.array_equal(offsets[1:], offsets[:-1] + counts[:-1])
            ):
                # The pixels as tifffile would give them: one block in the file's order.
                layout = (int(offsets[0]), dtype.newbyteorder(tf.byteorder))
    return tuple(page.shape), layout


def _mrc_complete(path: Path, size: int) -> bool:
    import mrcfile

    if size < 1024:
        return None
    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        header = mrc.header
        shape = (int(header.nz), int(header.ny), int(header.nx))
        mode, extended = int(header.mode), int(header.nsymbt)
    dims = shape[0] * shape[1] * shape[2]
    if dims <= 0 or mode not in _MRC_MODES:
        return None
    if 1024 + extended + dims * np.dtype(_MRC_MODES[mode]).itemsize > size:
        return None
    return shape[1:] if shape[0] == 1 else shape


class GrowingStack:
    """Frames of one multi-frame TIFF or MRC file, returned as their bytes arrive.

    Frames must be appended in order (as acquisition software streams them).  The file
    may not exist yet.

    Parameters
    ----------
    path : str or pathlib.Path
        ``.tif``, ``.tiff``, ``.mrc`` or ``.mrcs`` file.

    Raises
    ------
    ValueError
        If the file type is not one of those.
    """

    def __init__(self, path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in STACK_SUFFIXES:
            raise ValueError(f"{str(self.path)!r}: a growing stack is {', '.join(STACK_SUFFIXES)}")
        self._tiff = suffix in (".tif", ".tiff")
        self._count = 0
        self._t0: float | None = None
        self._pixel_size: float | None = None

    def poll(self) -> list[LiveFrame]:
        """The frames whose bytes all arrived since the last call, in order."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        read = self._tiff_frames if self._tiff else self._mrc_frames
        arrays = read(size)
        now = time.monotonic()
        if arrays and self._t0 is None:
            self._t0 = now
        frames = []
        for data in arrays:
            name = f"{self.path.name}[{self._count}]"
            frames.append(
                LiveFrame(self._count, data, now - self._t0, name, now, self._pixel_size)
            )
            self._count += 1
        return frames

    def _mrc_frames(self, size: int) -> list[np.ndarray]:
        """Frames of the MRC file fully inside its first ``size`` bytes."""
        import mrcfile

        if size < 1024:
            return []
        with mrcfile.open(self.path, header_only=True, permissive=True) as mrc:
            header = mrc.header
            nx, ny, mode = int(header.nx), int(header.ny), int(header.mode)
            offset = 1024 + int(header.nsymbt)
            order = "<" if header.mode.dtype.byteorder in "<=|" else ">"
            if self._pixel_size is None and int(header.mx) > 0 and float(header.cella.x) > 0:
                self._pixel_size = float(header.cella.x) / int(header.mx) / 10.0  # Å → nm
        if mode not in _MRC_MODES:
            raise MicrographReadError(self.path, f"MRC mode {mode} is not a frame type")
        dtype = np.dtype(_MRC_MODES[mode]).newbyteorder(order)
        frame_bytes = nx * ny * dtype.itemsize
        n = max(0, (size - offset) // frame_bytes) if frame_bytes else 0
        frames = []
        for k in range(self._count, n):
            out = np.empty((ny, nx), dtype)
            frames.append(read_exact(self.path, offset + k * frame_bytes, out))
        return frames

    def _tiff_frames(self, size: int) -> list[np.ndarray]:
        """Pages of the TIFF file whose IFD and strips are inside its first ``size`` bytes."""
        import tifffile

        frames = []
        with _quiet_tifffile():
            try:
                tf = tifffile.TiffFile(self.path)
            except (tifffile.TiffFileError, OSError, ValueError, IndexError, struct.error):
                # The header or the first IFD is not written yet.
                return []
            with tf:
                k = self._count
                while True:
                    try:
                        page = tf.pages[k]
                    except (IndexError, tifffile.TiffFileError, ValueError, OSError):
                        break
                    if page is None or len(page.shape) != 2:
                        break
                    ends = [
                        o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True)
                    ]
                    if not ends or max(ends) > size:
                        break
                    frames.append(np.asarray(page.asarray()))
                    k += 1
        if frames and self._pixel_size is None:
            self._pixel_size = self._tiff_pixel_size()
        return frames

    def _tiff_pixel_size(self) -> float | None:
        """The file's calibration as the TIFF reader gives it (None if it cannot yet)."""
        from ._tiff import read_tiff

        try:
            images = read_tiff(self.path, lazy=True)
        except (MicrographReadError, OSError):
            return None
        return _pixel_size(images[0]) if images else None


class _quiet_tifffile:
    """Hide tifffile's log records while it parses a file that may still be written.

    A file being written is often not a valid TIFF yet (tifffile warns, e.g., that it
    "contains no pages" while the header's first IFD offset is still 0, or about IFD
    offsets past the end); the completeness checks say so by their result, and a file
    that stays broken is refused with its error later.  Nothing is printed meanwhile.
    """

    def filter(self, record) -> bool:
        return False

    def __enter__(self):
        logging.getLogger("tifffile").addFilter(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("tifffile").removeFilter(self)
        return False
