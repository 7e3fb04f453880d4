"""``napari-hrtem-fft watch``: one line per frame, Ctrl-C ends with a complete store."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tifffile

from napari_hrtem_fft.cli import main
from napari_hrtem_fft.core.movie import read_zarr_maps
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

PIXEL = 0.02  # nm
REFL = pd_110_reflections(10.0)


def _frames(n):
    stack, truth = synthetic_movie(
        n, (256, 256), pixel_size=PIXEL, reflections=REFL, noise=0.05, amorphous=0.1,
        expansion_total=0.03, lazy=False,
    )  # fmt: skip
    return stack, truth


def _write(folder, k, frame):
    # Written under a temporary name and renamed, as acquisition software does.
    part = folder / f"frame_{k:04d}.tif.part"
    tifffile.imwrite(part, frame)
    part.rename(folder / f"frame_{k:04d}.tif")


def _read_line(proc, timeout=120.0) -> str:
    start = time.monotonic()
    line = proc.stdout.readline()
    assert line, f"watch ended early: {proc.stderr.read()}"
    assert time.monotonic() - start < timeout
    return line


def test_watch_prints_a_line_per_frame_and_ends_cleanly_on_sigint(tmp_path):
    stack, truth = _frames(5)
    folder = tmp_path / "acq"
    folder.mkdir()
    for k in range(3):
        _write(folder, k, stack[k])
    out, trace = tmp_path / "live.zarr", tmp_path / "trace.csv"
    refl = [f"--reflection={g[0]},{g[1]}" for g in REFL]
    cmd = [
        sys.executable, "-m", "napari_hrtem_fft", "watch", str(folder), *refl,
        "--pixel-size", str(PIXEL), "--window", "64", "--step", "8", "--out", str(out),
        "--trace", str(trace), "--every-frame", "--renamed", "--poll", "0.02",
        "--region", "1.8:3.3,1.8:3.3", "--reference", "2.2:2.9,2.2:2.9",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        header = _read_line(proc).rstrip("\n").split("\t")
        assert header == [
            "frame", "time_s", "d_median_g1_nm", "d_median_g2_nm", "d_median_g3_nm",
            "region1_d_median_g1_nm", "region1_d_median_g2_nm", "region1_d_median_g3_nm",
        ]  # fmt: skip
        rows = [_read_line(proc).split("\t") for _ in range(3)]
        for k in (3, 4):  # frames written while it watches
            _write(folder, k, stack[k])
            rows.append(_read_line(proc).split("\t"))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: 5 frame(s) analysed, 0 skipped" in err
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    d = np.array([[float(v) for v in r[2:5]] for r in rows])
    np.testing.assert_allclose(d, truth.d_spacing, rtol=2e-3)
    # The region (inside the particle) sees the same expanding lattice; 81 map pixels
    # of 64-pixel windows: within 0.5 %.
    d_region = np.array([[float(v) for v in r[5:]] for r in rows])
    np.testing.assert_allclose(d_region, truth.d_spacing, rtol=5e-3)
    maps = read_zarr_maps(out)  # complete store
    assert maps.d_spacing.shape == (3, 5, 32, 32)
    assert maps.parameters["movie"]["frames"] == [0, 1, 2, 3, 4]
    with trace.open() as fh:
        table = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert [int(r["frame"]) for r in table] == [0, 1, 2, 3, 4]
    # The printed line rounds d to 1e-5 nm; the CSV holds it exactly.
    np.testing.assert_allclose([float(r["d_median_g1_nm"]) for r in table], d[:, 0], atol=5e-6)
    with (tmp_path / "trace_region1.csv").open() as fh:
        region = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    np.testing.assert_allclose(
        [float(r["d_median_g1_nm"]) for r in region], d_region[:, 0], atol=5e-6
    )
    # A 1.5 nm square on a 0.16 nm map grid: 9 × 9 map pixels, not the whole map.
    counts = [int(r["d_count_g1"]) for r in region]
    assert all(50 <= c <= 81 for c in counts), counts
    assert all(c < int(r["d_count_g1"]) for c, r in zip(counts, table, strict=True))
    # --reference: strain relative to the lattice in the particle's centre in each
    # frame, so the region around it stays near 0 while the lattice expands by 3 %.
    recorded = maps.parameters["reference"]
    assert recorded["region"] == [2.2, 2.9, 2.2, 2.9]
    assert np.isfinite(np.asarray(recorded["reflections"], dtype=float)).all()
    assert np.shape(recorded["reflections"]) == (5, 3, 2)
    exx = np.array([float(r["exx_median"]) for r in region])
    np.testing.assert_allclose(exx, 0, atol=3e-3)


def test_watch_usage_errors(tmp_path, capsys):
    folder = tmp_path / "acq"
    folder.mkdir()
    out = tmp_path / "live.zarr"
    assert main(["watch", str(folder), "--out", str(out)]) == 2
    assert "--reflection GY,GX or --auto N" in capsys.readouterr().err
    out.mkdir()
    assert main(["watch", str(folder), "--auto", "2", "--out", str(out)]) == 4
    assert "output exists" in capsys.readouterr().err
    assert main(["watch", str(tmp_path / "x.dm4"), "--auto", "2", "--out", "n.zarr"]) == 3
    assert "neither a folder" in capsys.readouterr().err


def test_watch_region_outside_the_frame_is_a_usage_error(tmp_path, capsys):
    folder = tmp_path / "acq"
    folder.mkdir()
    tifffile.imwrite(folder / "f_0.tif", np.zeros((64, 64), np.float32))
    refl = [f"--reflection={g[0]},{g[1]}" for g in REFL]
    code = main(["watch", str(folder), *refl, "--pixel-size", "0.02", "--window", "32",
                 "--out", str(tmp_path / "o.zarr"), "--region", "10:11,10:11"])  # fmt: skip
    assert code == 2
    assert "--region: region 'region1' holds no map pixel of the frame" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()
    code = main(["watch", str(folder), *refl, "--pixel-size", "0.02", "--window", "32",
                 "--out", str(tmp_path / "o.zarr"), "--reference", "10:11,10:11"])  # fmt: skip
    assert code == 2
    assert "--reference: region 'reference' holds no map pixel" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_watch_without_calibration_needs_a_pixel_size(tmp_path, capsys):
    folder = tmp_path / "acq"
    folder.mkdir()
    tifffile.imwrite(folder / "f_0.tif", np.zeros((64, 64), np.float32))
    code = main(["watch", str(folder), "--auto", "2", "--out", str(tmp_path / "o.zarr"),
                 "--poll", "0.01"])  # fmt: skip
    assert code == 3
    assert "f_0.tif has no pixel-size calibration (use --pixel-size NM)" in capsys.readouterr().err
