"""HDF5 safety: bounded layout sniffing and refusal of data stored outside the file.

HDF5 can make a file's datasets read bytes of other files: external links (a link to
an object in another HDF5 file), external raw storage (a dataset whose bytes are in
any file, ``/etc/passwd`` as well as a camera's raw dump) and virtual datasets (VDS,
mappings of datasets of other files). Opening a file must read that file only, so
:func:`check_self_contained` refuses them unless the caller asked for them
(``read_micrographs(..., allow_external=True)``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ._micrograph import MicrographReadError

__all__ = [
    "CHECK_LIMIT",
    "check_self_contained",
    "global_heaps_consistent",
    "hard_get",
    "ncem_groups",
]

#: Objects looked at when searching a file for Berkeley EMD groups: such groups are
#: a few levels down (``/data/<name>``; Prismatic: four), so a bounded breadth-first walk finds
#: them without visiting every group of a huge file.
NCEM_SEARCH_LIMIT = 500
NCEM_SEARCH_DEPTH = 6
#: Links (and objects) checked for data outside the file before a read; electron
#: microscopy files hold a few hundred.
CHECK_LIMIT = 20_000


def hard_get(group, name: str):
    """``group[name]`` if every link on the way is a hard link inside the file, else None.

    Soft links are followed when they point inside the file; external links are never
    opened, so sniffing a file never reads another one.
    """
    import h5py

    obj = group
    for part in name.strip("/").split("/"):
        link = obj.get(part, getlink=True)
        if isinstance(link, h5py.SoftLink):
            target = obj.file.get(link.path, getlink=True) if link.path.startswith("/") else None
            if target is None or not isinstance(target, h5py.HardLink):
                return None
        elif not isinstance(link, h5py.HardLink):
            return None
        obj = obj[part]
    return obj


def ncem_groups(h5, *, limit: int = NCEM_SEARCH_LIMIT, depth: int = NCEM_SEARCH_DEPTH) -> list:
    """Names of the groups with ``emd_group_type = 1`` (Berkeley EMD data groups).

    A breadth-first walk over hard-linked groups only, at most ``limit`` objects and
    ``depth`` levels deep: a file with 200,000 groups is answered in milliseconds.
    """
    import h5py

    found, queue, seen = [], [("", h5, 0)], 0
    while queue and seen < limit:
        prefix, group, level = queue.pop(0)
        for raw in _first_names(group, limit - seen):
            seen += 1
            if not isinstance(group.get(raw, getlink=True), h5py.HardLink):
                continue
            obj = group.get(raw)
            if not isinstance(obj, h5py.Group):
                continue
            key = raw.decode("utf-8", "replace")
            name = f"{prefix}/{key}" if prefix else key
            if _int_attr(obj, "emd_group_type") == 1:
                found.append(name)
            elif level + 1 < depth:
                queue.append((name, obj, level + 1))
    return found


def _first_names(group, n: int) -> list[bytes]:
    """The first ``n`` link names of a group (H5Literate, stopped early).

    Iterating an h5py Group asks for names by index, which costs O(members) each in
    a large group (1 s for 2000 names of a 200,000-member group); this takes 20 ms.
    """
    names: list[bytes] = []
    if n <= 0:
        return names

    def take(name):
        names.append(name)
        return True if len(names) >= n else None

    group.id.links.iterate(take)
    return names


def _int_attr(obj, key):
    try:
        return int(np.ravel(obj.attrs[key])[0])
    except (KeyError, TypeError, ValueError, IndexError, OSError):
        return None


def check_self_contained(path: Path, h5, *, limit: int = CHECK_LIMIT) -> None:
    """Refuse an HDF5 file whose objects are (partly) stored in other files.

    Two passes in HDF5's own loops, each stopped after ``limit`` entries: the links
    (for external links) and the objects (for datasets with external raw storage or
    virtual layout).

    Raises
    ------
    MicrographReadError
        Naming the first external link, external raw storage or virtual dataset
        found, and how to read the file anyway (``allow_external=True``); also for a
        file with more than ``limit`` links, which cannot be checked quickly.
    """
    import h5py

    problem: list[str] = []
    count = [0, 0]

    def link(name, info):
        count[0] += 1
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            target = h5.get(name, getlink=True)
            problem.append(f"{_text(name)!r} is an external link to {target.filename!r}")
        return True if problem or count[0] >= limit else None

    def obj(name, info):
        count[1] += 1
        if info.type == h5py.h5o.TYPE_DATASET:
            dset = h5py.h5d.open(h5.id, name)
            plist = dset.get_create_plist()
            if plist.get_layout() == h5py.h5d.VIRTUAL:
                problem.append(f"{_text(name)!r} is a virtual dataset mapping other files")
            elif plist.get_external_count() > 0:
                problem.append(f"{_text(name)!r} keeps its bytes in an external raw file")
        return True if problem or count[1] >= limit else None

    h5.id.links.visit(link, info=True)
    if not problem and count[0] < limit:
        h5py.h5o.visit(h5.id, obj, info=True)
    if problem:
        raise MicrographReadError(
            path,
            f"{problem[0]}: reading it would read another file. Refused for safety; "
            "pass allow_external=True to read_micrographs if you trust the file",
        )
    if max(count) >= limit:
        raise MicrographReadError(
            path,
            f"HDF5 file with more than {limit} objects: too many to check for data "
            "stored in other files; pass allow_external=True to read it anyway",
        )


def _text(name) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def global_heaps_consistent(path: Path, *, max_bytes: int = 256 * 2**20) -> bool | None:
    """True when every HDF5 global heap collection (``GCOL``) in the file is well formed.

    Variable-length strings live in global heaps; the HDF5 library can loop for
    minutes on a collection whose object sizes are corrupt (one flipped byte in
    ``Acquisition_18.emd`` does it). Files larger than ``max_bytes`` are not scanned
    (None). A "GCOL" that occurs by chance in pixel data can make this False for an
    intact file, so callers degrade (skip text attributes) rather than refuse where
    they can.
    """
    size = path.stat().st_size
    if size > max_bytes:
        return None
    data = path.read_bytes()
    start = 0
    while (k := data.find(b"GCOL", start)) >= 0:
        start = k + 4
        if k + 16 > size or data[k + 4] != 1:
            continue  # not a collection header (the bytes occur in pixel data)
        (csize,) = struct.unpack_from("<Q", data, k + 8)
        if csize < 16 or k + csize > size:
            return False
        pos = 16
        while pos + 16 <= csize:
            index, _, _, osize = struct.unpack_from("<HHIQ", data, k + pos)
            if index == 0:
                # The free space runs from here to the end of the collection.
                if osize != csize - pos:
                    return False
                break
            pos += 16 + (osize + 7) // 8 * 8
            if pos > csize:
                return False
    return True
