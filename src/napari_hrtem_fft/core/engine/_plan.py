"""The block plan shared by the numpy and dask drivers, and the work on one block.

An image is cut into blocks whose cores tile it (sizes multiples of ``step``, at least
the overlap ``depth``); each block carries ``depth`` pixels of context on each side
where the image has them and none beyond its edges (windows reaching there are NaN
anyway).  numpy and dask input go through the same blocks and the same functions
below, so that the two give identical maps for the same block layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..maps import map_shape
from ._frame import FrameSpectrum, _frame_maps, frame_spectrum
from ._survey import _refined, _survey_frame

# Auto chunking: spatial chunk side between these bounds, 8 windows where possible, so
# that the overlap (window/2 each side) costs little and a task stays near 100 MB.
_CHUNK_MIN, _CHUNK_MAX = 1024, 2048


@dataclass(frozen=True)
class Settings:
    """Everything a block needs, validated: frequencies in cycles/pixel, sizes in pixels.

    ``given`` is ``(n, 2)``; ``shape`` the image's 2D shape; ``depth`` the context
    (``window/2`` rounded up to a multiple of ``step``).
    """

    given: np.ndarray
    window: int
    step: int
    depth: int
    shape: tuple[int, int]
    pixel_size: float
    min_amplitude: float
    search: float
    background: bool

    def frame_options(self) -> dict:
        """Keyword arguments of the per-frame maps (one FFT thread per task)."""
        return dict(
            window=self.window,
            step=self.step,
            pixel_size=self.pixel_size,
            min_amplitude=self.min_amplitude,
            search=self.search,
            background=self.background,
            workers=1,
        )

    def survey_options(self) -> dict:
        """Keyword arguments of the per-frame survey."""
        return dict(
            given=self.given,
            window=self.window,
            step=self.step,
            search=self.search,
            workers=1,
        )


# ------------------------------------------------------------------ the block layout


@dataclass(frozen=True)
class BlockPlan:
    """Block cores along y and x as ``(start, stop)`` image pixels, and the map chunks."""

    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]
    step: int

    @classmethod
    def from_chunks(cls, chunks, step: int) -> BlockPlan:
        """The plan of given core sizes ``(cy..., cx...)`` per axis."""
        bounds = []
        for sizes in chunks:
            starts = np.cumsum((0, *sizes[:-1]))
            pairs = zip(starts, sizes, strict=True)
            bounds.append(tuple((int(a), int(a) + int(b)) for a, b in pairs))
        return cls(bounds[0], bounds[1], step)

    @classmethod
    def split(cls, shape, spatial, depth: int, step: int) -> BlockPlan:
        """Cores of ``spatial`` pixels; a last remainder smaller than ``depth`` merges."""
        chunks = [_split(n, c, depth) for n, c in zip(shape, spatial, strict=True)]
        return cls.from_chunks(chunks, step)

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Core sizes per axis, as dask chunks."""
        return tuple(tuple(b - a for a, b in axis) for axis in (self.rows, self.cols))

    @property
    def map_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Map pixels per block and axis: the windows centred in each core."""
        return tuple(_map_chunks(c, self.step) for c in self.chunks)

    @property
    def n_blocks(self) -> int:
        return len(self.rows) * len(self.cols)

    def blocks(self):
        """``((y0, y1), (x0, x1))`` of every core, row by row."""
        return [(r, c) for r in self.rows for c in self.cols]

    def origin(self, block_id) -> tuple[int, int]:
        """Image pixel where the core of block ``(..., i, j)`` starts."""
        return self.rows[block_id[-2]][0], self.cols[block_id[-1]][0]


def _split(size: int, chunk: int, depth: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` along an axis; a last remainder smaller than ``depth`` merges."""
    sizes = [chunk] * (size // chunk)
    rest = size - chunk * len(sizes)
    if rest:
        if sizes and rest < depth:
            sizes[-1] += rest
        else:
            sizes.append(rest)
    return tuple(sizes)


def auto_chunk(window: int, step: int) -> int:
    """Spatial block side for dask input: about 8 windows, a multiple of ``step``."""
    side = min(max(8 * window, _CHUNK_MIN), _CHUNK_MAX)
    return -(-side // step) * step


def numpy_chunks(shape, window: int, step: int, depth: int) -> tuple[int, int]:
    """Blocks for in-memory images: full-width strips (less overlap), at least one per CPU.

    Each strip holds at most about ``_CHUNK_MAX²`` pixels, which bounds the memory of a
    task (≈ 50 bytes per pixel).
    """
    h, w = shape[-2:]
    cx = w if w <= 2 * _CHUNK_MAX else auto_chunk(window, step)
    strips = -(-h * cx // _CHUNK_MAX**2)
    if h * w >= 2**20:
        strips = max(strips, os.cpu_count() or 1)
    cy = max(-(-h // strips), depth, window)
    return -(-cy // step) * step, cx


def compatible(chunks: tuple[int, ...], step: int, depth: int, window: int) -> bool:
    """Whether an input's chunks along an axis can be used as they are.

    Multiples of the step (but the last) and at least the overlap depth, as the block
    layout requires; between 4 windows (or the whole axis) and ``2·_CHUNK_MAX`` so that
    the overlap stays cheap and a task's memory bounded.
    """
    whole = len(chunks) == 1
    return (
        all(c % step == 0 for c in chunks[:-1])
        and min(chunks) >= depth
        and (whole or max(chunks[:-1]) >= 4 * window)
        and max(chunks) <= 2 * _CHUNK_MAX
    )


def _map_chunks(chunks: tuple[int, ...], step: int) -> tuple[int, ...]:
    return tuple(-(-c // step) for c in chunks)


def within_image(origin, core, depth: int, shape):
    """The part of a block with ``depth`` context pixels that lies inside the image.

    A block's core of ``core`` pixels starts on image pixel ``origin``; returns the
    slices of the block inside an image of 2D ``shape`` and the context then left
    before the core.  The context beyond the image edges is not transformed at all:
    windows reaching there are NaN anyway, and numpy and dask input cut the same
    frames this way, so that their results agree exactly.
    """
    (y0, x0), (hc, wc), (h, w) = origin, core, shape
    top, left = min(depth, y0), min(depth, x0)
    bottom, right = min(depth, h - y0 - hc), min(depth, w - x0 - wc)
    cut = (slice(depth - top, depth + hc + bottom), slice(depth - left, depth + wc + right))
    return cut, (top, left)


# ------------------------------------------------------------------ work on a block


def spectrum_of(frame, settings: Settings) -> FrameSpectrum:
    """The spectrum of one 2D frame (core plus context), for its survey and its maps.

    Every demodulation lies in the search region of a given reflection (the survey's
    modes are component-wise medians of estimates inside it), so its ``|f_x|`` is at
    most ``(1 + search)·|g|``.
    """
    reach = (1.0 + settings.search) * float(np.max(np.hypot(*settings.given.T)))
    return frame_spectrum(frame, settings.window, settings.step, workers=1, reach=reach)


def frame_maps(spec: FrameSpectrum, context, origin, demod, settings: Settings, out):
    """The maps ``(6, n, my, mx)`` of one 2D frame (core plus context) into ``out``.

    ``spec`` is the frame's spectrum (:func:`spectrum_of`); its core starts on image
    pixel ``origin``.
    ``demod`` is ``None`` (demodulate at the given reflections) or the survey's modes
    ``(n, 4)``; a reflection whose first mode moved by less than the tolerance, or that
    has none, is demodulated at its given frequency, and also at its second mode if it
    has one.
    """
    given = settings.given
    freqs = given if demod is None else _refined(demod, given, settings.window)
    return _frame_maps(
        spec, freqs, given, out, start=context, origin=origin, **settings.frame_options()
    )


def frame_survey(spec: FrameSpectrum, context, origin, core, settings: Settings):
    """The survey ``(3, n, cy, cx)`` of one 2D frame (core plus context) from its spectrum."""
    return _survey_frame(spec, origin, context, core, **settings.survey_options())


def block_maps(block, origin, demod, settings: Settings):
    """One block ``(*lead, h, w)`` with ``depth`` context (NaN beyond the image) → maps.

    The block's core starts on image pixel ``origin``.  Returns ``(6, n, *lead, my, mx)``
    float32.  ``demod`` is ``None`` or the survey's modes ``(n, 4, *lead)`` in
    cycles/pixel.
    """
    lead, depth = block.shape[:-2], settings.depth
    core = (block.shape[-2] - 2 * depth, block.shape[-1] - 2 * depth)
    cut, context = within_image(origin, core, depth, settings.shape)
    n, step = settings.given.shape[0], settings.step
    out = np.empty((6, n, *lead, *map_shape(core, step)), dtype=np.float32)
    for idx in np.ndindex(*lead):
        frame_demod = None if demod is None else demod[(slice(None), slice(None), *idx)]
        where = (slice(None), slice(None), *idx)
        spec = spectrum_of(block[idx][cut], settings)
        frame_maps(spec, context, origin, frame_demod, settings, out[where])
    return out


def block_survey(block, origin, settings: Settings):
    """The survey ``(3, n, *lead, cy, cx)`` of one block with context (see ``block_maps``)."""
    lead, depth = block.shape[:-2], settings.depth
    core = (block.shape[-2] - 2 * depth, block.shape[-1] - 2 * depth)
    cut, context = within_image(origin, core, depth, settings.shape)
    parts = [
        frame_survey(spectrum_of(block[idx][cut], settings), context, origin, core, settings)
        for idx in np.ndindex(*lead)
    ]
    n, count = settings.given.shape[0], parts[0].shape[-2:]
    return np.stack(parts, axis=2).reshape(3, n, *lead, *count)
