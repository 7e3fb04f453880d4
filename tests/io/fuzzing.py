"""Sandboxed fuzzing of the readers: mutated and crafted files, each read in a worker.

Used by ``tests/io/test_fuzz.py`` (a short run in CI) and ``benchmarks/fuzz_report.py``
(thousands of cases). Nothing here is imported by the library.

Every case is a file on disk (a mutated copy of a real instrument file from
``../shared/data``, or a crafted one) and what reading it must give: a correct read or
a :class:`~napari_hrtem_fft.io.MicrographReadError` naming the file. Cases run in
long-lived worker processes with an address-space cap (``resource.setrlimit``); a worker
that hangs past the timeout or dies is replaced, so one bad file cannot stop the run.

Outcomes (one per case):

``correct``
    read, every image non-empty with finite positive scales, one frame computed, and
    nothing read from outside the file (indirection cases must be refused);
``clean error``
    a MicrographReadError whose message names the file;
``escaped``
    any other exception (or an error that names no file), from the reader or the hook;
``bad read``
    a read that returned an empty image, or pixels from outside the opened file;
``crash``
    the worker died (segfault, abort);
``hang``
    no answer within the timeout;
``memory bomb``
    MemoryError under the cap, or a peak RSS growth above ``BOMB_BYTES``;
``slow hook``
    the npe2 hook took more than ``HOOK_LIMIT_S`` = 0.5 s in the report (counted
    besides the read's outcome); the tests use the looser ``HOOK_GUARD_S``.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUTCOMES = (
    "correct",
    "clean error",
    "escaped",
    "bad read",
    "crash",
    "hang",
    "memory bomb",
    "slow hook",
)
MEMORY_CAP = 2 * 2**30  # address space of a worker
BOMB_BYTES = 1 * 2**30  # peak RSS growth of one read counted as a memory bomb
HOOK_LIMIT_S = 0.5  # the report's figure, on a quiet machine
# The tests' bound: a hook that checks cheaply answers in milliseconds, one that parses
# the whole file takes seconds to minutes. A generous guard keeps that distinction on a
# loaded CI machine without making the tests timing tests.
HOOK_GUARD_S = 5.0
EXTENSIONS = (
    ".dm3",
    ".dm4",
    ".emd",
    ".hspy",
    ".hdf5",
    ".ser",
    ".emi",
    ".mrc",
    ".mrcs",
    ".map",
    ".tif",
    ".tiff",
)


@dataclass
class Case:
    """One file to read; ``outside`` marks HDF5 indirection (must be refused)."""

    kind: str
    path: Path
    outside: bool = False


# --------------------------------------------------------------------------- cases


def shared_files(shared: Path) -> list[Path]:
    """The instrument files of the shared data folder (not README/JSON/txt)."""
    skip = {".md", ".json", ".txt"}
    return sorted(p for p in shared.rglob("*") if p.is_file() and p.suffix.lower() not in skip)


def _copy_with(src: Path, dst: Path, data: bytes) -> Path:
    """Write ``data`` as ``dst``; a TIA .ser/.emi keeps its partner beside it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)
    partner = _tia_partner(src)
    if partner is not None and partner.is_file():
        name = dst.stem + "_1.ser" if src.suffix.lower() == ".emi" else None
        if src.suffix.lower() == ".ser":
            stem = dst.stem.rsplit("_", 1)[0]
            name = stem + ".emi"
        shutil.copyfile(partner, dst.with_name(name))
    return dst


def _tia_partner(src: Path) -> Path | None:
    if src.suffix.lower() == ".emi":
        return src.with_name(src.stem + "_1.ser")
    if src.suffix.lower() == ".ser":
        return src.with_name(src.stem.rsplit("_", 1)[0] + ".emi")
    return None


def _slot(out: Path, src: Path, tag: str) -> Path:
    """A fresh folder per case so that TIA partners never collide."""
    d = out / f"{tag}"
    d.mkdir(parents=True, exist_ok=True)
    if src.suffix.lower() == ".ser":
        return d / ("case_1" + src.suffix)
    return d / ("case" + src.suffix)


def truncations(files, out: Path, per_file: int, rng: random.Random) -> list[Case]:
    cases = []
    for i, src in enumerate(files):
        data = src.read_bytes()
        # One byte short and half the file always; the first bytes and random cuts
        # in the long run.
        cuts = {len(data) - 1, len(data) // 2} | ({1, 8} if per_file else set())
        while len(cuts) < (per_file + 4 if per_file else 2):
            cuts.add(rng.randrange(1, len(data)))
        for j, cut in enumerate(sorted(cuts)):
            dst = _slot(out, src, f"trunc_{i}_{j}")
            cases.append(Case("truncation", _copy_with(src, dst, data[:cut])))
    return cases


def byte_flips(files, out: Path, per_file: int, rng: random.Random) -> list[Case]:
    """Set one byte (mostly in the first 4 KiB, where headers are) to a random value."""
    cases = []
    for i, src in enumerate(files):
        data = bytearray(src.read_bytes())
        for j in range(per_file):
            mutated = bytearray(data)
            limit = min(len(data), 4096) if rng.random() < 0.7 else len(data)
            for _ in range(rng.choice((1, 1, 1, 2, 4))):
                mutated[rng.randrange(limit)] = rng.randrange(256)
            dst = _slot(out, src, f"flip_{i}_{j}")
            cases.append(Case("byte flip", _copy_with(src, dst, bytes(mutated))))
    return cases


def known_flips(shared: Path, out: Path) -> list[Case]:
    """The two HDF5 byte flips of issue 11 that escaped as RuntimeError."""
    cases = []
    for rel, pos, value in (
        ("ncem_emd/Acquisition_18.emd", 1405, 177),
        ("velox_emd/STEM HAADF Diffraction Micro.emd", 701, 153),
    ):
        src = shared / rel
        if not src.is_file():
            continue
        data = bytearray(src.read_bytes())
        data[pos] = value
        for ext in (".emd", ".hdf5"):
            dst = out / f"known_{pos}{ext.replace('.', '_')}" / f"x{ext}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(bytes(data))
            cases.append(Case("byte flip", dst))
    return cases


def _int_positions(data: bytes, values, limit: int) -> list[tuple[int, str]]:
    """Positions of 4-byte integers (either byte order) equal to one of ``values``."""
    found = []
    head = data[:limit]
    for v in set(int(x) for x in values if 1 < int(x) < 2**31):
        for fmt in ("<I", ">I"):
            needle = struct.pack(fmt, v)
            start = 0
            while (k := head.find(needle, start)) >= 0:
                found.append((k, fmt))
                start = k + 1
    return found


def huge_dims(files, out: Path, per_file: int, rng: random.Random, shapes) -> list[Case]:
    """Header integers equal to an image dimension replaced by huge (or zero) values."""
    cases = []
    for i, src in enumerate(files):
        shape = shapes.get(src)
        if not shape:
            continue
        data = src.read_bytes()
        positions = _int_positions(data, shape, 1 << 16)
        if src.suffix.lower() == ".ser":
            positions += [(18, "<I"), (14, "<I")]  # Valid/TotalNumberElements
        if not positions:
            continue
        for j in range(per_file):
            mutated = bytearray(data)
            pos, fmt = rng.choice(positions)
            value = rng.choice((0, 2**31 - 1, 2_000_000_000, 90_000, 1 << 20, 65_536))
            mutated[pos : pos + 4] = struct.pack(fmt, value)
            dst = _slot(out, src, f"dims_{i}_{j}")
            cases.append(Case("huge header dims", _copy_with(src, dst, bytes(mutated))))
    return cases


def wrong_extensions(files, out: Path, rng: random.Random, per_file: int) -> list[Case]:
    cases = []
    for i, src in enumerate(files):
        data = src.read_bytes()
        others = [e for e in EXTENSIONS if e != src.suffix.lower()]
        for j, ext in enumerate(rng.sample(others, min(per_file, len(others)))):
            dst = out / f"ext_{i}_{j}" / f"case{ext}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            cases.append(Case("wrong extension", dst))
    return cases


_MAGIC = {
    ".tif": b"II*\x00",
    ".tiff": b"MM\x00*",
    ".emd": b"\x89HDF\r\n\x1a\n",
    ".hspy": b"\x89HDF\r\n\x1a\n",
    ".hdf5": b"\x89HDF\r\n\x1a\n",
    ".ser": b"II\x97\x01",
    ".dm3": b"\x00\x00\x00\x03",
    ".dm4": b"\x00\x00\x00\x04",
}


def random_bytes(out: Path, per_ext: int, rng: random.Random) -> list[Case]:
    """Random files with every extension, half of them starting with the right magic."""
    cases = []
    for ext in EXTENSIONS:
        for j in range(per_ext):
            n = rng.choice((1, 16, 100, 1024, 4096, 70_000))
            data = rng.randbytes(n)
            if j % 2 == 0 and ext in _MAGIC:
                data = _MAGIC[ext] + data
            dst = (
                out
                / f"rand{ext.replace('.', '_')}_{j}"
                / ("case_1.ser" if ext == ".ser" else f"case{ext}")
            )
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            cases.append(Case("random bytes", dst))
    return cases


# ------------------------------------------------------------------ crafted files


def _ncem(path: Path, make_data, *, dims=None) -> Path:
    """A Berkeley EMD file whose ``data`` dataset is made by ``make_data(group)``."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.attrs["version_major"] = 0
        h5.attrs["version_minor"] = 2
        g = h5.create_group("data/img")
        g.attrs["emd_group_type"] = 1
        make_data(g)
        for k, (name, values) in enumerate(dims or (("y", np.arange(8.0)), ("x", np.arange(8.0)))):
            d = g.create_dataset(f"dim{k + 1}", data=values)
            d.attrs["name"] = name
            d.attrs["units"] = "n_m"
    return path


def hdf5_indirection(out: Path) -> list[Case]:
    """External raw storage, external links and virtual datasets (issue 11)."""
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    outside = out / "outside.bin"
    outside.write_bytes(np.arange(64, dtype=np.uint16).tobytes())
    other = out / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["pixels"] = np.arange(64, dtype=np.uint16).reshape(8, 8)
    cases = []
    for target in (outside, Path("/etc/passwd")):
        if not target.is_file():
            continue
        path = out / f"external_raw_{target.name}" / "case.emd"
        _ncem(
            path,
            lambda g, t=target: g.create_dataset(
                "data", shape=(8, 8), dtype="u1", external=[(str(t), 0, 64)]
            ),
        )
        cases.append(Case("hdf5 links", path, outside=True))

    def ext_link(g):
        g["data"] = h5py.ExternalLink(str(other), "/pixels")

    cases.append(Case("hdf5 links", _ncem(out / "external_link" / "case.emd", ext_link), True))

    def vds(g):
        layout = h5py.VirtualLayout(shape=(8, 8), dtype="u2")
        layout[:] = h5py.VirtualSource(str(other), "pixels", shape=(8, 8))
        g.create_virtual_dataset("data", layout, fillvalue=0)

    cases.append(Case("hdf5 links", _ncem(out / "virtual" / "case.emd", vds), True))
    # The same with the .hdf5 extension (sniffed for our layouts).
    for c in list(cases):
        dst = c.path.with_name("case.hdf5")
        shutil.copyfile(c.path, dst)
        cases.append(Case("hdf5 links", dst, True))
    # HyperSpy file with an external link to its data.
    hs = out / "hspy_link" / "case.hspy"
    hs.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(hs, "w") as h5:
        h5.attrs["file_format"] = "HyperSpy"
        h5.attrs["file_format_version"] = "3.1"
        g = h5.create_group("Experiments/img")
        g["data"] = h5py.ExternalLink(str(other), "/pixels")
        for k in range(2):
            a = g.create_group(f"axis-{k}")
            a.attrs.update(
                {
                    "name": "yx"[k],
                    "size": 8,
                    "scale": 1.0,
                    "offset": 0.0,
                    "units": "nm",
                    "navigate": False,
                }
            )
    cases.append(Case("hdf5 links", hs, True))
    return cases


def crafted(out: Path, *, n_groups: int) -> list[Case]:
    """Zero-size images, odd Berkeley EMD datasets, a FIFO .ser, many HDF5 groups."""
    import h5py
    import tifffile

    out.mkdir(parents=True, exist_ok=True)
    cases = []
    # Berkeley EMD: dims of 0/1 values, string and compound datasets, empty image.
    for tag, make, dims in (
        (
            "emd_dim_1value",
            lambda g: g.create_dataset("data", data=np.ones((8, 8))),
            (("y", np.zeros(1)), ("x", np.zeros(1))),
        ),
        (
            "emd_dim_0values",
            lambda g: g.create_dataset("data", data=np.ones((8, 8))),
            (("y", np.zeros(0)), ("x", np.zeros(0))),
        ),
        (
            "emd_strings",
            lambda g: g.create_dataset("data", data=np.array([[b"ab"] * 8] * 8)),
            None,
        ),
        (
            "emd_compound",
            lambda g: g.create_dataset(
                "data", data=np.zeros((8, 8), dtype=[("a", "<i4"), ("b", "<f8")])
            ),
            None,
        ),
        (
            "emd_empty",
            lambda g: g.create_dataset("data", shape=(0, 8), dtype="f4"),
            (("y", np.zeros(0)), ("x", np.arange(8.0))),
        ),
        (
            "emd_inf_dims",
            lambda g: g.create_dataset("data", data=np.ones((8, 8))),
            (("y", np.array([0, np.inf] * 4)), ("x", np.arange(8.0))),
        ),
    ):
        cases.append(Case("crafted", _ncem(out / tag / "case.emd", make, dims=dims)))
    # MRC nx = 0 and an infinite cell.
    import mrcfile

    for tag, nx, cell in (("mrc_nx0", 0, 10.0), ("mrc_inf_cell", 16, np.inf)):
        p = out / tag / "case.mrc"
        p.parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new(p, overwrite=True) as m:
            m.set_data(np.ones((4, 16, 16), np.float32))
            m.voxel_size = 1.0
        raw = bytearray(p.read_bytes())
        raw[0:4] = struct.pack("<i", nx)
        raw[40:44] = struct.pack("<f", cell)
        p.write_bytes(bytes(raw))
        cases.append(Case("crafted", p))
    # TIFF BitsPerSample 0, a zlib TIFF that says it is 90000², zero width.
    p = out / "tiff_bps0" / "case.tif"
    p.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(p, np.ones((3, 68, 68), np.uint8))
    cases.append(Case("crafted", _patch_tiff_tag(p, 258, 0)))
    for tag, w, h in (("tiff_zlib_90000", 90_000, 90_000), ("tiff_width0", 0, 64)):
        p = out / tag / "case.tif"
        p.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(p, np.zeros((64, 64), np.uint16), compression="zlib")
        _patch_tiff_tag(p, 256, w)
        cases.append(Case("crafted", _patch_tiff_tag(p, 257, h)))
    # An .emi whose .ser is a FIFO.
    d = out / "fifo"
    d.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "mkfifo"):
        (d / "case.emi").write_bytes(b"\x00" * 64)
        fifo = d / "case_1.ser"
        if not fifo.exists():
            os.mkfifo(fifo)
        cases.append(Case("crafted", d / "case.emi"))
        cases.append(Case("crafted", fifo))
    # Many HDF5 groups (the hook must not walk them all).
    p = out / "many_groups" / "case.hdf5"
    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, "w") as h5:
        for k in range(n_groups):
            h5.create_group(f"g{k}")
    cases.append(Case("crafted", p))
    shutil.copyfile(p, p.with_suffix(".emd"))
    cases.append(Case("crafted", p.with_suffix(".emd")))
    # A directory with a file extension.
    d = out / "dir_ext" / "case.tif"
    d.mkdir(parents=True, exist_ok=True)
    cases.append(Case("crafted", d))
    return cases


def _patch_tiff_tag(path: Path, code: int, value: int) -> Path:
    """Overwrite the value of a SHORT/LONG tag of the first IFD (little-endian TIFF)."""
    raw = bytearray(path.read_bytes())
    (ifd,) = struct.unpack_from("<I", raw, 4)
    (n,) = struct.unpack_from("<H", raw, ifd)
    for k in range(n):
        pos = ifd + 2 + 12 * k
        tag, typ, count = struct.unpack_from("<HHI", raw, pos)
        if tag == code:
            if typ == 3:
                struct.pack_into("<HH", raw, pos + 8, value & 0xFFFF, 0)
                if value > 0xFFFF:
                    struct.pack_into("<HHI", raw, pos, tag, 4, count)
                    struct.pack_into("<I", raw, pos + 8, value)
            else:
                struct.pack_into("<I", raw, pos + 8, value)
    path.write_bytes(bytes(raw))
    return path


def image_shapes(files) -> dict:
    """Image dimensions of each readable file, from the current reader (for huge_dims)."""
    from napari_hrtem_fft.io import read_micrographs

    shapes = {}
    for f in files:
        try:
            shapes[f] = sorted({int(s) for m in read_micrographs(f) for s in m.data.shape})
        except Exception:  # a file the reader refuses has no shape to mutate
            shapes[f] = []
    return shapes


def build_cases(
    shared: Path, out: Path, *, scale: int = 1, seed: int = 11, quick: bool = False
) -> list[Case]:
    """All case files under ``out``; ``scale`` multiplies the random ones.

    ``quick`` (the CI test): one case of each random kind per file, no originals, and
    5,000 rather than 200,000 HDF5 groups.
    """
    rng = random.Random(seed)
    files = shared_files(shared) if shared.is_dir() else []
    shapes = image_shapes(files)
    per = 1 if quick else 2 * scale
    cases = [] if quick else [Case("original", f) for f in files]
    cases += known_flips(shared, out / "known")
    cases += truncations(files, out / "trunc", 0 if quick else max(1, 2 * scale), rng)
    cases += byte_flips(files, out / "flip", per, rng)
    cases += huge_dims(files, out / "dims", per, rng, shapes)
    cases += wrong_extensions(files, out / "ext", rng, 1 if quick else min(11, scale + 1))
    cases += random_bytes(out / "rand", per, rng)
    cases += hdf5_indirection(out / "links")
    groups = 5_000 if quick else (200_000 if scale > 1 else 20_000)
    cases += crafted(out / "crafted", n_groups=groups)
    return cases


# ------------------------------------------------------------------------- worker


def _names_file(message: str, path: Path) -> bool:
    return path.name in message or str(path) in message


def run_one(path: Path, outside: bool) -> dict:
    """Read ``path`` as napari and a script would; return the outcome (in the worker)."""
    import resource

    from napari_hrtem_fft._reader import napari_get_reader
    from napari_hrtem_fft.io import MicrographReadError, read_micrographs

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"outcome": "correct", "detail": "", "hook_s": 0.0}
    t0 = time.perf_counter()
    try:
        hook = napari_get_reader(str(path))
    except Exception as exc:  # the hook must never raise
        result["hook_s"] = time.perf_counter() - t0
        result.update(outcome="escaped", detail=f"hook raised {type(exc).__name__}: {exc}")
        return result
    result["hook_s"] = time.perf_counter() - t0
    try:
        mgs = read_micrographs(path)
        for mg in mgs:
            if min(mg.data.shape) < 1:
                result.update(outcome="bad read", detail=f"empty image {mg.data.shape}")
                break
            frame = mg.data[(0,) * (mg.data.ndim - 2)]
            np.asarray(frame.compute() if hasattr(frame, "compute") else frame)
            mg.layer_kwargs()
        else:
            if outside:
                result.update(outcome="bad read", detail="read data from outside the file")
            elif hook is None and path.suffix.lower() != ".hdf5":
                result["detail"] = "hook declined a readable file"
    except MemoryError as exc:
        result.update(outcome="memory bomb", detail=f"MemoryError {exc}")
    except MicrographReadError as exc:
        if _names_file(str(exc), path):
            result.update(outcome="clean error", detail=str(exc)[:600])
        else:
            result.update(outcome="escaped", detail=f"names no file: {exc}"[:300])
    except Exception as exc:  # every other type is an escape
        result.update(outcome="escaped", detail=f"{type(exc).__name__}: {exc}"[:300])
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    if grown > BOMB_BYTES:
        result.update(outcome="memory bomb", detail=f"peak RSS grew by {grown / 2**30:.1f} GiB")
    return result


def worker() -> None:
    """Loop of a worker process: JSON case per stdin line, JSON result per stdout line."""
    import resource
    import warnings

    # Logging stays on (stderr is discarded): the TIFF reader listens to tifffile's log.
    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    # Imported before the first timed hook, as napari has the plugin imported by then.
    import napari_hrtem_fft._reader
    import napari_hrtem_fft.io  # noqa: F401

    out = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # libraries that print stay quiet
    for line in sys.stdin:
        case = json.loads(line)
        res = run_one(Path(case["path"]), case["outside"])
        out.write(json.dumps(res) + "\n")
        out.flush()


class _Worker:
    def __init__(self, pythonpath: str):
        env = {**os.environ, "PYTHONPATH": pythonpath}
        here = str(Path(__file__).resolve().parent)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {here!r}); import fuzzing; fuzzing.worker()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )

    def run(self, case: Case, timeout: float) -> dict:
        self.proc.stdin.write(json.dumps({"path": str(case.path), "outside": case.outside}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.kill()
            return {"outcome": "hang", "detail": f"no answer in {timeout} s", "hook_s": 0.0}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"outcome": "crash", "detail": f"worker exit code {code}", "hook_s": 0.0}
        return json.loads(line)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


class Sandbox:
    """One capped worker that is replaced after a hang or a crash (for hypothesis)."""

    def __init__(self, pythonpath: str = "", hook_limit: float = HOOK_LIMIT_S):
        self.pythonpath = pythonpath or os.environ.get("PYTHONPATH", "")
        self.hook_limit = hook_limit
        self.worker = _Worker(self.pythonpath)

    def run(self, case: Case, timeout: float = 30.0) -> dict:
        res = self.worker.run(case, timeout)
        if res["outcome"] in ("hang", "crash"):
            self.worker = _Worker(self.pythonpath)
        if res.get("hook_s", 0.0) > self.hook_limit:
            res["slow_hook"] = True
        return res

    def close(self):
        self.worker.close()


def run_cases(
    cases,
    *,
    workers: int = 2,
    timeout: float = 30.0,
    pythonpath: str = "",
    hook_limit: float = HOOK_LIMIT_S,
) -> list:
    """Run every case in a pool of capped workers; returns ``(case, result)`` pairs.

    A hook call slower than ``hook_limit`` seconds is flagged ``slow_hook``.
    """
    pythonpath = pythonpath or os.environ.get("PYTHONPATH", "")
    todo = list(enumerate(cases))
    results: list = [None] * len(cases)
    lock = threading.Lock()

    def loop():
        w = _Worker(pythonpath)
        while True:
            with lock:
                if not todo:
                    break
                i, case = todo.pop(0)
            res = w.run(case, timeout)
            if res["outcome"] in ("hang", "crash"):
                w = _Worker(pythonpath)
            if res.get("hook_s", 0.0) > hook_limit:
                res["slow_hook"] = True
            results[i] = (case, res)
        w.close()

    threads = [threading.Thread(target=loop) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def table(results) -> tuple[dict, str]:
    """Counts per case kind and outcome, and the table as text."""
    kinds = sorted({c.kind for c, _ in results})
    counts = {k: dict.fromkeys(OUTCOMES, 0) for k in [*kinds, "total"]}
    for case, res in results:
        for k in (case.kind, "total"):
            counts[k][res["outcome"]] += 1
            counts[k]["slow hook"] += bool(res.get("slow_hook"))
    width = max(len(k) for k in counts) + 2
    head = "case".ljust(width) + "".join(f"{o:>13}" for o in ("cases", *OUTCOMES))
    lines = [head, "-" * len(head)]
    for k, row in counts.items():
        n = sum(row[o] for o in OUTCOMES if o != "slow hook")
        lines.append(k.ljust(width) + f"{n:>13}" + "".join(f"{row[o]:>13}" for o in OUTCOMES))
    return counts, "\n".join(lines)
