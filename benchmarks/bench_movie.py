"""Benchmark of in-situ movie analysis: accuracy, throughput, memory, drift.

(a) A synthetic movie (default 100 frames of 1024², Pd [110] particle on a film) whose
    lattice expands linearly by 3.5 %: median d per frame inside the particle against
    the truth (target: within 0.05 % at every frame), and the time per frame of a
    tracked and of an untracked movie analysis against one 1024² image analysed alone
    with the same parameters (target: within 20 %).
(b) Peak resident memory of analysing a 200-frame 2048² movie (3.4 GB float32) read
    lazily from an MRC stack on disk, in a fresh process (target: below 2 GB): lazily
    (dask) into a zarr store, and frame by frame with tracking, streamed to a store;
    for comparison, one ``analyze`` graph over the whole stack into the store.
(c) Drift recovery: random steps up to 20 px between frames (target: every frame
    within 0.1 px).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_movie.py            # full run, ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_movie.py --quick    # fewer frames, ~2 min
    .venv/bin/python benchmarks/bench_movie.py --plot docs/images/movie_time_trace.png

The memory part writes the movie to a temporary directory (``--workdir``, default the
system temporary directory) and removes it afterwards; it checks the free space first.
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

from napari_hrtem_fft.core.drift import register_frames
from napari_hrtem_fft.core.engine import analyze
from napari_hrtem_fft.core.movie import (
    analyze_movie,
    read_zarr_maps,
    time_trace,
    to_zarr,
)
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

PIXEL = 0.02  # nm
WINDOW, STEP, SEARCH = 128, 8, 0.1
EXPANSION = 0.035
REFL = pd_110_reflections(10.0)
AMPLITUDES = [0.2, 0.2, 0.12]


def _particle_region(shape, radius_nm, step, window, center_nm):
    """Map pixels whose whole window lies inside the particle (from the truth)."""
    my, mx = -(-shape[0] // step), -(-shape[1] // step)
    yy, xx = np.mgrid[:my, :mx] * (step * PIXEL)
    half_diag = window / 2 * PIXEL * np.sqrt(2)
    return np.hypot(yy - center_nm[0], xx - center_nm[1]) <= radius_nm - half_diag


def _movie(n_frames, size, *, lazy, **kw):
    options = dict(
        pixel_size=PIXEL,
        reflections=REFL,
        amplitudes=AMPLITUDES,
        expansion_total=EXPANSION,
        radius=0.35 * size * PIXEL,
        amorphous=0.08,
        noise=0.1,
        seed=7,
        lazy=lazy,
    )
    options.update(kw)
    return synthetic_movie(n_frames, (size, size), **options)


# --------------------------------------------------------------------------- (a)


def bench_accuracy(n_frames: int, size: int = 1024) -> dict:
    stack, truth = _movie(n_frames, size, lazy=False)
    region = _particle_region(stack.shape[1:], truth.radius, STEP, WINDOW, truth.center)
    options = dict(pixel_size=PIXEL, window=WINDOW, step=STEP, search=SEARCH)

    analyze(stack[0], REFL, **options)  # warm-up (imports, FFT plans)
    single = []
    # Best of several frames: other processes on a shared machine only slow things down.
    for k in np.linspace(0, n_frames - 1, 5).astype(int):
        t0 = time.perf_counter()
        analyze(stack[k], REFL, **options)
        single.append(time.perf_counter() - t0)
    t_single = float(np.min(single))

    def timed(**kw):
        # Best of two runs, like the best single frame above.
        best = np.inf
        for _ in range(2):
            t0 = time.perf_counter()
            result = analyze_movie(stack, REFL, **options, **kw)
            best = min(best, (time.perf_counter() - t0) / n_frames)
        return result, best

    tracked, t_tracked = timed(track=True, region=region)
    fixed, t_fixed = timed(track=False)

    out = {"frames": n_frames, "size": size, "t_single": t_single}
    for name, result, per_frame in (("tracked", tracked, t_tracked), ("fixed", fixed, t_fixed)):
        trace = time_trace(result, region)
        err = trace["d_median"] / truth.d_spacing - 1
        out[name] = {
            "t_frame": per_frame,
            "max_err": float(np.nanmax(np.abs(err))) if np.isfinite(err).any() else np.nan,
            "missing": int(np.count_nonzero(~np.isfinite(err))),
            "d_median": trace["d_median"],
            "count_min": int(trace["d_count"].min()),
        }
    out["truth_d"] = truth.d_spacing
    return out


# --------------------------------------------------------------------------- (b)


def _write_mrc(path: Path, n_frames: int, size: int) -> float:
    """Render the movie frame by frame into an MRC stack (voxel 0.2 Å); seconds taken."""
    import mrcfile

    stack, _ = _movie(n_frames, size, lazy=True)
    t0 = time.perf_counter()
    with mrcfile.new_mmap(path, shape=(n_frames, size, size), mrc_mode=2, overwrite=True) as mrc:
        mrc.voxel_size = PIXEL * 10.0  # Å
        mrc.header.ispg = 0  # image stack
        for k in range(n_frames):
            mrc.data[k] = stack[k].compute()
            if k % 20 == 19:
                mrc.flush()
    return time.perf_counter() - t0


def _child_memory(path: str, mode: str, workdir: str) -> None:
    """Run in a fresh process: analyse the MRC stack lazily, print JSON with ru_maxrss."""
    from napari_hrtem_fft.io import read_micrographs

    t0 = time.perf_counter()
    (mg,) = read_micrographs(path)
    stack = mg.data
    pixel = float(mg.scale[-1])
    size = stack.shape[-1]
    n_frames = stack.shape[0]
    options = dict(pixel_size=pixel, window=WINDOW, step=STEP, search=SEARCH)
    _, truth = _movie(n_frames, size, lazy=True)
    region = _particle_region(stack.shape[1:], truth.radius, STEP, WINDOW, truth.center)
    if mode in ("lazy", "engine"):
        if mode == "lazy":
            maps = analyze_movie(stack, REFL, track=False, **options)
        else:  # one analyze() graph over the whole stack
            maps = analyze(stack, REFL, **options)
        store = Path(workdir) / "maps.zarr"
        to_zarr(maps, store, overwrite=True)
        trace = time_trace(read_zarr_maps(store), region)
    else:
        # Frames written to the store as they are analysed: memory independent of t.
        store = Path(workdir) / "tracked.zarr"
        result = analyze_movie(
            stack, REFL, track=True, region=region, store=store, overwrite=True, **options
        )
        trace = time_trace(result, region)
    err = trace["d_median"] / truth.d_spacing - 1
    # VmHWM is the peak of this process image; ru_maxrss is kept across execve on Linux
    # and so also counts the parent's memory at the fork.
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
    hwm_mb = _vm_hwm_mb()
    print(
        json.dumps(
            {
                "mode": mode,
                "lazy_input": type(stack).__module__.startswith("dask"),
                "pixel_nm": pixel,
                "seconds": time.perf_counter() - t0,
                "maxrss_mb": rss_mb,
                "vmhwm_mb": hwm_mb,
                "max_err": float(np.nanmax(np.abs(err))),
            }
        )
    )


def _vm_hwm_mb() -> float:
    """Peak resident set size of this process (VmHWM, Linux), MB; NaN elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def bench_memory(n_frames: int, size: int, workdir: str | None) -> dict:
    need = n_frames * size * size * 4
    root = Path(workdir or tempfile.gettempdir())
    free = shutil.disk_usage(root).free
    if free < 1.5 * need + 2**30:
        return {"skipped": f"needs {need / 2**30:.1f} GB free in {root}, has {free / 2**30:.1f}"}
    tmp = Path(tempfile.mkdtemp(prefix="bench_movie_", dir=root))
    try:
        path = tmp / "movie.mrcs"
        # Written by another process, so that this one stays small for the forks below.
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--child-write", str(path), str(n_frames), str(size)],
            check=True,
        )
        t_write = time.perf_counter() - t0
        out = {"frames": n_frames, "size": size, "file_gb": path.stat().st_size / 2**30}
        out["t_write"] = t_write
        for mode in ("lazy", "tracked", "engine"):
            cmd = [sys.executable, __file__, "--child-memory", str(path), mode, str(tmp)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                out[mode] = {"error": done.stderr.strip().splitlines()[-1:]}
                continue
            out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- (c)


def bench_drift(n_frames: int, size: int = 1024) -> dict:
    stack, truth = _movie(n_frames, size, lazy=False, drift=20.0, rotation_total=2.0)
    steps = np.hypot(*np.diff(truth.drift, axis=0).T)
    out = {"frames": n_frames, "size": size, "max_step": float(steps.max())}
    for reference in (0, "previous"):
        t0 = time.perf_counter()
        shifts = register_frames(stack, reference=reference)
        elapsed = (time.perf_counter() - t0) / n_frames
        err = np.hypot(*(shifts - truth.drift).T)
        out[str(reference)] = {
            "t_frame": elapsed,
            "max_err": float(err.max()),
            "rms_err": float(np.sqrt(np.mean(err**2))),
            "shifts": shifts,
        }
    out["truth"] = truth.drift
    return out


# --------------------------------------------------------------------------- report


def _plot(path: Path, acc: dict, drift: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = np.arange(acc["frames"])
    truth = acc["truth_d"] * 10.0  # Å
    measured = acc["tracked"]["d_median"] * 10.0
    panels = 3 if drift is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(7.0, 2.6 * panels + 0.6), sharex=False)
    labels = ["(1-11)", "(-111)", "(002)"]
    colours = ["tab:blue", "tab:orange", "tab:green"]
    markers = ["o", "x", "s"]
    ax = axes[0]
    for k in range(truth.shape[1]):
        ax.plot(frames, truth[:, k], "-", color=colours[k], lw=1.2, label=f"{labels[k]} true")
        ax.plot(
            frames[::2],
            measured[::2, k],
            markers[k],
            ms=4,
            mfc="none",
            color=colours[k],
            label=f"{labels[k]} measured",
        )
    ax.set_ylabel("d (Å)")
    ax.set_title(
        f"Synthetic Pd movie, {acc['frames']} frames of {acc['size']}², lattice +3.5 %: "
        "median d in the particle",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=3, loc="center right")
    ax = axes[1]
    err = (acc["tracked"]["d_median"] / acc["truth_d"] - 1) * 100
    for k in range(err.shape[1]):
        ax.plot(frames, err[:, k], "-", color=colours[k], lw=1, label=labels[k])
    ax.axhspan(-0.05, 0.05, color="0.9", zorder=0, label="±0.05 % target")
    ax.set_ylabel("d error (%)")
    ax.set_ylim(-0.08, 0.08)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    for a in axes[:2]:
        a.set_xlabel("frame")
    if drift is not None:
        ax = axes[2]
        f = np.arange(drift["frames"])
        true = drift["truth"]
        got = drift["0"]["shifts"]
        ax.plot(f, true[:, 1], "-", color="tab:purple", lw=1.2, label="dx true")
        ax.plot(f, got[:, 1], "o", ms=3, color="tab:purple", label="dx registered")
        ax.plot(f, true[:, 0], "-", color="tab:brown", lw=1.2, label="dy true")
        ax.plot(f, got[:, 0], "s", ms=3, color="tab:brown", label="dy registered")
        ax.set_ylabel("drift (px)")
        ax.set_xlabel("frame")
        ax.set_title(
            f"Drift: steps up to {drift['max_step']:.0f} px, max error "
            f"{drift['0']['max_err']:.3f} px",
            fontsize=9,
        )
        ax.margins(y=0.3)
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(name, value, target, ok):
    print(f"  {name:<48s} {value:>16s}   target {target:<14s} {'PASS' if ok else 'FAIL'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames (smoke run)")
    parser.add_argument("--plot", type=Path, help="write the time-trace figure (PNG) here")
    parser.add_argument("--workdir", help="directory for the temporary movie file")
    parser.add_argument("--skip-memory", action="store_true", help="skip part (b)")
    parser.add_argument("--child-memory", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-write", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        _child_memory(*args.child_memory)
        return 0
    if args.child_write:
        _write_mrc(Path(args.child_write[0]), int(args.child_write[1]), int(args.child_write[2]))
        return 0

    n_a, n_b, n_c = (20, 20, 10) if args.quick else (100, 200, 50)
    print(f"cores: {os.cpu_count()}, numpy {np.__version__}")
    # Memory first, while this process is small (its memory is copied at each fork).
    mem = None if args.skip_memory else bench_memory(n_b, 2048, args.workdir)
    acc = bench_accuracy(n_a)
    drift = bench_drift(n_c)

    print(f"\n(a) {acc['frames']} frames {acc['size']}², window {WINDOW}, step {STEP}, +3.5 %")
    for name in ("tracked", "fixed"):
        r = acc[name]
        _row(
            f"{name}: max |median d error| over frames",
            f"{r['max_err'] * 100:.4f} %",
            "< 0.05 %",
            r["max_err"] < 5e-4 and r["missing"] == 0,
        )
        ratio = r["t_frame"] / acc["t_single"]
        _row(
            f"{name}: s/frame (single image {acc['t_single']:.3f} s)",
            f"{r['t_frame']:.3f} s = {ratio:.2f}×",
            "<= 1.20×",
            ratio <= 1.2,
        )
    if mem is not None:
        if "skipped" in mem:
            print(f"\n(b) skipped: {mem['skipped']}")
        else:
            print(
                f"\n(b) {mem['frames']} frames {mem['size']}² from an MRC stack "
                f"({mem['file_gb']:.2f} GB, written in {mem['t_write']:.0f} s)"
            )
            for mode in ("lazy", "tracked", "engine"):
                r = mem[mode]
                if "error" in r:
                    print(f"  {mode}: FAILED {r['error']}")
                    continue
                _row(
                    f"{mode}: peak RSS, VmHWM ({r['seconds']:.0f} s)",
                    f"{r['vmhwm_mb']:.0f} MB",
                    "< 2048 MB",
                    r["vmhwm_mb"] < 2048,
                )
                extra = f"ru_maxrss {r['maxrss_mb']:.0f} MB, input lazy: {r['lazy_input']}"
                print(f"  {'':<48s} {extra}")
                _row(f"{mode}: max |median d error|", f"{r['max_err'] * 100:.4f} %", "< 0.05 %",
                     r["max_err"] < 5e-4)  # fmt: skip
    print(
        f"\n(c) drift: {drift['frames']} frames {drift['size']}², "
        f"steps up to {drift['max_step']:.1f} px"
    )
    r = drift["0"]
    _row(
        f"reference=0: max |error| (rms {r['rms_err']:.3f} px)",
        f"{r['max_err']:.3f} px",
        "< 0.1 px",
        r["max_err"] < 0.1,
    )
    r = drift["previous"]
    print(
        f"  reference='previous' (errors accumulate): max {r['max_err']:.3f} px, "
        f"rms {r['rms_err']:.3f} px"
    )
    print(
        f"  time per frame: {drift['0']['t_frame']:.3f} s (reference=0), "
        f"{r['t_frame']:.3f} s (previous)"
    )
    if args.plot:
        _plot(args.plot, acc, drift)
        print(f"\nfigure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
