"""The two drivers over the block plan: in-process for numpy input, a graph for dask.

numpy input is computed block by block in a thread pool (numpy releases the GIL in every
heavy step, and a graph would only add overhead here) by a generator that reports each
finished block, so that a front end can show progress and stop between blocks.  dask
input gives a lazy graph of the same block functions.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..maps import map_shape
from ._frame import survey_step
from ._plan import (
    BlockPlan,
    Settings,
    block_maps,
    block_survey,
    frame_maps,
    frame_survey,
    spectrum_of,
    within_image,
)
from ._survey import _refined, _survey_modes, _weighted_modes

logger = logging.getLogger(__name__)

STRAIN_NAMES = ("exx", "eyy", "exy", "rotation")

# The spectra of the survey's blocks are kept for their maps up to this many bytes in all
# (256 MB: those of 14 frames of 2048², 18 MB each); the blocks beyond it are transformed
# again for their maps.
_KEEP_SPECTRA_BYTES = 2**28


@dataclass(frozen=True)
class Progress:
    """Progress of :func:`iter_analyze`: ``done`` of ``total`` block tasks, and what ran."""

    done: int
    total: int
    message: str


# ------------------------------------------------------------------------ numpy input


def numpy_maps(
    arr, plan: BlockPlan, settings: Settings, work, refine: bool, strain_reference=None
):
    """Generator of :class:`Progress` per block; returns maps, demodulation and strain.

    The blocks of the plan are cut straight from the array (views where the dtype
    allows), with their context inside the image only: windows reaching beyond the
    image are NaN anyway, so that padding would only cost FFT and fold work.  Returns
    ``(6, n, *lead, my, mx)`` maps and the refined demodulation ``(n, 4, *lead)`` in
    cycles/pixel (two modes, the second NaN where there is none; ``None`` without
    refinement), and with ``strain_reference`` (``(n, 2)`` in nm⁻¹) the strain
    components ``exx, eyy, exy, rotation`` as a dict of ``(*lead, my, mx)`` float32 maps
    (else ``None``): computed pixel by pixel, so each block's in its own task, beside
    its maps.  Closing the generator cancels the blocks not yet started.
    """
    from ..strain import strain_of_spacing

    lead = arr.shape[:-2]
    n, step = settings.given.shape[0], settings.step
    jobs = [(f, *block) for f in np.ndindex(*lead) for block in plan.blocks()]
    counter = _Counter(len(jobs) * (2 if refine else 1))
    out = np.empty((6, n, *lead, *map_shape(settings.shape, step)), dtype=np.float32)
    strain = None
    if strain_reference is not None:
        strain = np.empty((4, *lead, *map_shape(settings.shape, step)), dtype=np.float32)
    pool = ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1))
    kept = _Spectra(_KEEP_SPECTRA_BYTES)
    try:
        demod = None
        if refine:
            demod = yield from _numpy_survey(pool, arr, jobs, plan, settings, work, counter, kept)

        def maps(job):
            f, (y0, y1), (x0, x1) = job
            spec, context = kept.pop(job) or _spectrum(arr, job, settings, work)
            rows, cols = slice(y0 // step, -(-y1 // step)), slice(x0 // step, -(-x1 // step))
            frame_demod = None if demod is None else demod[(slice(None), slice(None), *f)]
            block = out[(..., *f, rows, cols)]
            frame_maps(spec, context, (y0, x0), frame_demod, settings, block)
            if strain is not None:
                comps = strain_of_spacing(block[0], block[1], strain_reference)
                for i, name in enumerate(STRAIN_NAMES):
                    strain[(i, *f, rows, cols)] = comps[name]

        for _ in pool.map(maps, jobs):
            yield counter.step("maps")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if strain is not None:
        strain = dict(zip(STRAIN_NAMES, strain, strict=True))
    return out, demod, strain


class _Spectra:
    """The spectra of surveyed blocks, kept for their maps up to a number of bytes."""

    def __init__(self, budget: int):
        self.budget, self.held, self.lock, self.items = budget, 0, threading.Lock(), {}

    def keep(self, job, item):
        with self.lock:
            size = item[0].nbytes
            if self.held + size <= self.budget:
                self.items[job] = item
                self.held += size

    def pop(self, job):
        with self.lock:
            item = self.items.pop(job, None)
            if item is not None:
                self.held -= item[0].nbytes
            return item


class _Counter:
    """Counts finished block tasks into :class:`Progress` records."""

    def __init__(self, total: int):
        self.done, self.total = 0, total

    def step(self, what: str) -> Progress:
        self.done += 1
        return Progress(self.done, self.total, f"{what}: block {self.done} of {self.total}")


def _cut(arr, job, settings: Settings, work):
    """The frame of a job with its context inside the image, and the context before the core."""
    f, (y0, y1), (x0, x1) = job
    depth = settings.depth
    (rows, cols), context = within_image((y0, x0), (y1 - y0, x1 - x0), depth, settings.shape)
    rows = slice(rows.start + y0 - depth, rows.stop + y0 - depth)
    cols = slice(cols.start + x0 - depth, cols.stop + x0 - depth)
    return arr[(*f, rows, cols)].astype(work, copy=False), context


def _spectrum(arr, job, settings: Settings, work):
    """The spectrum of a job's frame, and the context before its core."""
    frame, context = _cut(arr, job, settings, work)
    return spectrum_of(frame, settings), context


def _numpy_survey(pool, arr, jobs, plan: BlockPlan, settings: Settings, work, counter, kept):
    """Generator of progress per surveyed block; returns the refined ``(n, 4, *lead)``.

    The blocks' spectra go to ``kept`` for the maps, as far as it takes them.
    """
    lead = arr.shape[:-2]
    demod = np.empty((settings.given.shape[0], 4, *lead))
    modes = partial(_survey_modes, window=settings.window)

    def survey(job):
        spec, context = _spectrum(arr, job, settings, work)
        kept.keep(job, (spec, context))
        _, (y0, y1), (x0, x1) = job
        return frame_survey(spec, context, (y0, x0), (y1 - y0, x1 - x0), settings)

    pieces = pool.map(survey, jobs)
    for f in np.ndindex(*lead):
        # The frame's survey assembled as the dask path does, so that both take the
        # medians over the same ordered values.
        grid = []
        for _ in plan.rows:
            row = []
            for _ in plan.cols:
                row.append(next(pieces))
                yield counter.step("survey")
            grid.append(np.concatenate(row, axis=-1))
        frame_survey_ = np.concatenate(grid, axis=-2)
        medians = np.stack(list(pool.map(modes, frame_survey_.swapaxes(0, 1))))
        demod[(slice(None), slice(None), *f)] = _refined(medians, settings.given, settings.window)
    logger.debug("demodulation after the survey (cycles/pixel): %s", demod.tolist())
    return demod


# ------------------------------------------------------------------------- dask input


def dask_maps(x, plan: BlockPlan, settings: Settings, refine: bool):
    """Lazy ``(6, n, *lead, my, mx)`` maps of a dask image chunked as ``plan``.

    With ``refine`` the survey and its medians are graph nodes of their own.
    """
    import dask.array as da

    if refine and x.ndim > 2 and x.numblocks[0] > 1:
        # Each block of frames is refined from its own survey: one graph over the
        # whole stack would make every frame's second pass wait for the medians of all
        # frames, holding each frame's first-pass intermediates (~20 MB per 2048²
        # frame) until the last survey is done.
        pieces = [dask_maps(x.blocks[i], plan, settings, True) for i in range(x.numblocks[0])]
        return da.concatenate(pieces, axis=2)
    if not refine:
        return _overlap_pass(x, plan, settings, _maps_of_block, 6, plan.map_chunks)
    coarse = _coarse_chunks(plan, survey_step(settings.window, settings.step))
    survey = _overlap_pass(x, plan, settings, _survey_of_block, 3, coarse)
    lead_ind = tuple(f"l{i}" for i in range(x.ndim - 2))
    demod = da.blockwise(
        partial(_weighted_modes, window=settings.window),
        ("R", "C", *lead_ind),
        survey,
        ("F", "R", *lead_ind, "y", "x"),
        new_axes={"C": 4},
        concatenate=True,
        dtype=np.float64,
        meta=np.empty((0,) * x.ndim),
    )
    return _refined_pass(x, plan, settings, demod)


def _overlap_pass(x, plan: BlockPlan, settings: Settings, func, fields: int, map_chunks):
    """One pass of ``func`` over the blocks with their context, by ``map_overlap``.

    ``trim=False``: each block function returns map pixels for its core only.  The
    core's origin comes from ``block_id`` and the plan, not from ``block_info``, whose
    ``array-location`` refers to the overlapped array (dask#11349).  The plan's chunks
    are at least the overlap depth, so dask never rechunks here (dask#11580).
    """
    import dask.array as da

    ndim = x.ndim
    n = settings.given.shape[0]
    return da.map_overlap(
        partial(func, settings=settings, plan=plan),
        x,
        depth={ndim - 2: settings.depth, ndim - 1: settings.depth},
        boundary={ndim - 2: np.nan, ndim - 1: np.nan},
        trim=False,
        allow_rechunk=False,
        new_axis=[0, 1],
        chunks=((fields,), (n,), *x.chunks[:-2], *map_chunks),
        dtype=np.float32,
        meta=np.empty((0,) * (ndim + 2), dtype=np.float32),
    )


def _maps_of_block(block, *, settings, plan, block_id=None):
    return block_maps(block, plan.origin(block_id), None, settings)


def _survey_of_block(block, *, settings, plan, block_id=None):
    return block_survey(block, plan.origin(block_id), settings)


def _coarse_chunks(plan: BlockPlan, coarse: int):
    """Survey windows per block and axis: the global grid of every ``coarse`` pixels."""
    return tuple(
        tuple(len(range(-(-a // coarse) * coarse, b, coarse)) for a, b in bounds)
        for bounds in (plan.rows, plan.cols)
    )


def _refined_pass(x, plan: BlockPlan, settings: Settings, demod):
    """The maps demodulated at the survey's modes ``demod (n, 4, *lead)``.

    ``blockwise``, not ``map_overlap``: the second input is one small array per block of
    frames that every spatial block of those frames reads (broadcast along y and x),
    which ``map_overlap`` cannot express, as it overlaps and aligns all its inputs.
    The block origins travel as two more small inputs.
    """
    import dask
    import dask.array as da
    from dask.graph_manipulation import bind

    ndim = x.ndim
    overlapped = da.overlap.overlap(
        x,
        depth={ndim - 2: settings.depth, ndim - 1: settings.depth},
        boundary={ndim - 2: np.nan, ndim - 1: np.nan},
        allow_rechunk=False,
    )
    # A fresh copy of the input graph that starts only once the medians are known,
    # so that no image block is held in memory between the two passes.
    source = bind(overlapped, demod, seed=dask.base.tokenize(overlapped, "pass2"))
    lead_ind = tuple(f"l{i}" for i in range(ndim - 2))
    starts = [np.array([a for a, _ in bounds]) for bounds in (plan.rows, plan.cols)]
    map_chunks = plan.map_chunks
    return da.blockwise(
        partial(_refined_block, settings=settings),
        ("F", "R", *lead_ind, "y", "x"),
        source,
        (*lead_ind, "y", "x"),
        da.from_array(starts[0], chunks=1),
        ("y",),
        da.from_array(starts[1], chunks=1),
        ("x",),
        demod,
        ("R", "C", *lead_ind),
        new_axes={"F": 6},
        adjust_chunks={"y": map_chunks[0], "x": map_chunks[1]},
        align_arrays=False,
        concatenate=True,
        dtype=np.float32,
        meta=np.empty((0,) * (ndim + 2), dtype=np.float32),
        name="lattice-maps-" + dask.base.tokenize(source, demod, settings),
    )


def _refined_block(block, start_y, start_x, demod, *, settings):
    return block_maps(block, (int(start_y[0]), int(start_x[0])), demod, settings)
