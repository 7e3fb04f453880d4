"""Benchmark: opening and scrolling a large movie must not load it.

Writes a large float32 movie to a temporary directory (default ~4 GB; multi-page BigTIFF
or MRC stack, written frame by frame), then, each in a fresh process:

1. ``read_micrographs`` + the napari layer keyword arguments (contrast limits from one
   frame), then 20 random frames read as napari's slider would (one ``compute`` each);
2. a headless napari viewer (under ``xvfb-run`` when available) that opens the file
   through the plugin and steps the time slider through 20 random frames.

For each it reports the peak resident memory (``resource.getrusage`` ``ru_maxrss``), the
peak growth over the process's memory just before opening, and the times. Frames are
read with plain file reads, so the page cache (not counted in RSS) is what holds the
file; the growth stays at a few frames whatever the file size.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_open_movie.py                  # 4 GB TIFF
    .venv/bin/python benchmarks/bench_open_movie.py --format mrc --size-gb 8
    .venv/bin/python benchmarks/bench_open_movie.py --size-gb 0.5     # quick

The movie is deleted at the end (``--keep`` keeps it). The free space of the temporary
directory is checked first and the size reduced if needed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PIXEL_NM = 0.02
FRAME_INTERVAL_S = 0.1
N_READS = 20


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss not inherited at exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_movie(path: Path, n: int, side: int, fmt: str) -> None:
    """Write ``n`` float32 frames of ``side``² to ``path``, one frame in memory at a time."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((side, side)).astype(np.float32)

    def frames():
        for k in range(n):
            yield base + np.float32(k)  # frame k has mean ≈ k: reads are checkable

    if fmt == "tiff":
        import tifffile

        tifffile.imwrite(
            path,
            data=frames(),
            shape=(n, side, side),
            dtype=np.float32,
            bigtiff=True,
            metadata={"axes": "TYX"},
        )
    else:
        import mrcfile

        mrc = mrcfile.new_mmap(path, shape=(n, side, side), mrc_mode=2, overwrite=True)
        mrc.set_image_stack()
        mrc.voxel_size = PIXEL_NM * 10  # Å
        for k, frame in enumerate(frames()):
            mrc.data[k] = frame
            if k % 16 == 15:
                mrc.flush()
        mrc.close()


def _warm_up_file(path: str) -> str:
    """A 3-frame movie of the same format beside ``path``, opened first so that imports
    and one-off set-up are in the baseline, not in the growth."""
    tiny = Path(path).with_name("warmup" + Path(path).suffix)
    if not tiny.exists():
        write_movie(tiny, 3, 64, "tiff" if tiny.suffix == ".tif" else "mrc")
    return str(tiny)


def child_read(path: str, seed: int) -> dict:
    """Open with read_micrographs and read N_READS random frames; report memory/time."""
    from napari_hrtem_fft.io import read_micrographs

    (warm,) = read_micrographs(_warm_up_file(path))
    warm.layer_kwargs()
    warm.data[1].compute()
    del warm
    before, hwm_before = _rss_peak_mib(), _hwm_mib()
    t0 = time.perf_counter()
    (mg,) = read_micrographs(path)
    kwargs = mg.layer_kwargs()  # contrast limits: one frame
    t_open = time.perf_counter() - t0
    n = mg.shape[0]
    picks = np.random.default_rng(seed).choice(n, size=min(N_READS, n), replace=False)
    t0 = time.perf_counter()
    for k in picks:
        frame = mg.data[int(k)].compute()
        if abs(float(frame.mean()) - k) > 0.1:
            raise AssertionError(f"frame {k} has mean {frame.mean()}, expected ≈ {k}")
        del frame
    t_read = (time.perf_counter() - t0) / len(picks)
    return {
        "step": f"read_micrographs + {len(picks)} random frames",
        "shape": list(mg.shape),
        "chunks": str(mg.data.chunksize),
        "lazy": type(mg.data).__module__.startswith("dask"),
        "contrast_limits": kwargs.get("contrast_limits"),
        "rss_before_mib": before,
        "rss_peak_mib": _rss_peak_mib(),
        "hwm_growth_mib": _hwm_mib() - hwm_before,
        "open_s": t_open,
        "per_frame_s": t_read,
    }


def child_napari(path: str, seed: int, *, napari_cache: bool = False) -> dict:
    """Open in a headless napari viewer through the plugin and step the time slider.

    ``napari_cache=True`` adds the layer with napari's dask cache switched on (napari's
    default for dask data; the plugin's reader switches it off).
    """
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_hrtem_fft._reader import read_layers

    def open_layer(p):
        if not napari_cache:
            return viewer.open(p, plugin="napari-hrtem-fft")
        return [viewer.add_image(d, **{**kw, "cache": True}) for d, kw, _ in read_layers(p)]

    viewer = napari.Viewer(show=False)
    open_layer(_warm_up_file(path))
    viewer.dims.set_point(0, 0)
    QApplication.processEvents()
    viewer.layers.clear()
    QApplication.processEvents()
    before, hwm_before = _rss_peak_mib(), _hwm_mib()
    t0 = time.perf_counter()
    (layer,) = open_layer(path)
    QApplication.processEvents()
    t_open = time.perf_counter() - t0
    n = layer.data.shape[0]
    picks = np.random.default_rng(seed).choice(n, size=min(N_READS, n), replace=False)
    t0 = time.perf_counter()
    for k in picks:
        viewer.dims.set_point(0, float(k) * layer.scale[0] + layer.translate[0])
        QApplication.processEvents()
        shown = np.asarray(layer._slice.image.raw)
        if abs(float(shown.mean()) - k) > 0.1:
            raise AssertionError(f"napari shows mean {shown.mean()} for frame {k}")
    t_read = (time.perf_counter() - t0) / len(picks)
    result = {
        "step": (
            f"napari viewer.open + {len(picks)} slider steps"
            if not napari_cache
            else f"same, napari dask cache on (napari's default) + {len(picks)} steps"
        ),
        "shape": list(layer.data.shape),
        "lazy": type(layer.data).__module__.startswith("dask"),
        "rss_before_mib": before,
        "rss_peak_mib": _rss_peak_mib(),
        "hwm_growth_mib": _hwm_mib() - hwm_before,
        "open_s": t_open,
        "per_frame_s": t_read,
    }
    viewer.close()
    return result


def run_child(kind: str, path: Path, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(path), "--seed", str(seed)]
    env = dict(os.environ)
    if kind.startswith("napari"):
        if shutil.which("xvfb-run") and not env.get("DISPLAY"):
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", *cmd]
        elif not env.get("DISPLAY"):
            env["QT_QPA_PLATFORM"] = "offscreen"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{out.stdout}\n{out.stderr}")
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=4.0, help="movie size (GB, 1e9 B)")
    parser.add_argument("--format", choices=("tiff", "mrc"), default="tiff")
    parser.add_argument("--side", type=int, default=2048, help="frame side in pixels")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the movie file")
    parser.add_argument("--skip-napari", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, path = args.child
        if kind == "write":
            write_movie(Path(path), args.frames, args.side, args.format)
            return 0
        if kind == "read":
            result = child_read(path, args.seed)
        else:
            result = child_napari(path, args.seed, napari_cache=kind == "napari-cache")
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    frame_bytes = args.side * args.side * 4
    wanted = int(args.size_gb * 1e9)
    free = shutil.disk_usage(args.workdir).free
    margin = 2 * 2**30
    if wanted > free - margin:
        wanted = max(free - margin, 0)
        sys.stdout.write(
            f"only {free / 1e9:.1f} GB free in {args.workdir}: movie reduced to "
            f"{wanted / 1e9:.1f} GB\n"
        )
    n = wanted // frame_bytes
    if n < N_READS:
        sys.stdout.write("not enough disk space for a meaningful movie\n")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench_open_movie_", dir=args.workdir))
    path = workdir / ("movie.tif" if args.format == "tiff" else "movie.mrcs")
    try:
        t0 = time.perf_counter()
        # In a child process: ru_maxrss is inherited at exec, so the parent must stay
        # small (writing an MRC through a memory map makes the writer's RSS huge).
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "write",
                str(path),
                "--frames",
                str(int(n)),
                "--side",
                str(args.side),
                "--format",
                args.format,
            ],
            check=True,
        )
        size = path.stat().st_size
        sys.stdout.write(
            f"wrote {path.name}: {n} frames of {args.side}² float32, {size / 1e9:.2f} GB "
            f"in {time.perf_counter() - t0:.0f} s\n\n"
        )
        rows = [run_child("read", path, args.seed)]
        if not args.skip_napari:
            rows.append(run_child("napari", path, args.seed))
            rows.append(run_child("napari-cache", path, args.seed))
    finally:
        if args.keep:
            sys.stdout.write(f"kept {path}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    frame_mib = frame_bytes / 2**20
    sys.stdout.write(
        f"file {size / 2**30:.2f} GiB, frame {frame_mib:.0f} MiB, format {args.format}\n\n"
    )
    head = (
        "| step | lazy | open (s) | per frame (s) | ru_maxrss before open (MiB) "
        "| ru_maxrss peak (MiB) | growth (MiB) | growth / file | VmHWM growth (MiB) |"
    )
    sys.stdout.write(head + "\n|" + "---|" * 9 + "\n")
    for r in rows:
        growth = r["rss_peak_mib"] - r["rss_before_mib"]
        sys.stdout.write(
            f"| {r['step']} | {r['lazy']} | {r['open_s']:.2f} | {r['per_frame_s']:.3f} | "
            f"{r['rss_before_mib']:.0f} | {r['rss_peak_mib']:.0f} | {growth:.0f} | "
            f"{growth / (size / 2**20):.2%} | {r['hwm_growth_mib']:.0f} |\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
