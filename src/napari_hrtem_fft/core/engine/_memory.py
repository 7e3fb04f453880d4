"""Large arrays of one call in memory mapped afresh, in huge pages where the system offers them.

For the arrays a call allocates once (the kept spectra, the maps): per-block temporaries
stay on the heap, which the next block reuses at no cost.

A call on a larger image than the process has analysed before needs more memory than the
allocator holds: glibc hands out heap memory (below its mmap threshold, which rises to
32 MB as large arrays are freed) that the kernel then maps in one 4-KB page per first
touch.  On the VM of the benchmarks that costs ~5 µs a page: the ~19,000 pages of a first
call on a 4096² image (window 128, step 8) took ~0.1 s of CPU, which later calls, reusing
the freed heap, do not pay.  Mapped afresh and marked for transparent huge pages
(``madvise(MADV_HUGEPAGE)``, as numpy does for its own arrays of 4 MB and more), the same
arrays fault in 2-MB pages: the kernel zeroes them (~3 ms per 37 MB here) on first and
later calls alike.  Only on Linux with transparent huge pages enabled ("always" or
"madvise"); elsewhere, and for arrays under 4 MB, ``np.empty``.  A mapping is a whole
number of 2-MB pages (under 2 MB more than the array).  Nothing is kept between
calls: the mapping is returned to the system when the last array viewing it is freed.
"""

from __future__ import annotations

import functools
import math
import mmap

import numpy as np

# numpy's own threshold for asking for huge pages: a 2-MB page needs a 2-MB aligned range
# inside the array.
_FRESH_BYTES = 4 * 2**20
_HUGE_PAGE = 2 * 2**20
_THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def fresh_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, of its own fresh huge-page mapping if large.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    dtype : numpy dtype
        Element type.

    Returns
    -------
    numpy.ndarray
        Writable; its memory is unmapped when it and every view of it are freed.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _FRESH_BYTES or not _huge_pages():
        return np.empty(shape, dtype=dtype)
    # A whole number of huge pages, which the kernel maps on a huge-page boundary (else
    # the first and last ~2 MB fault page by page); private, as shared anonymous memory
    # is shmem, whose huge pages are a separate setting.
    length = -(-nbytes // _HUGE_PAGE) * _HUGE_PAGE
    mapping = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mapping.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(mapping, dtype=dtype, count=math.prod(shape)).reshape(shape)


@functools.cache
def _huge_pages() -> bool:
    """Whether the system gives transparent huge pages to regions that ask for them."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open(_THP_SETTING) as setting:
            return "[never]" not in setting.read()
    except OSError:
        return False
