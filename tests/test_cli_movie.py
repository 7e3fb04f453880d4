"""The command line on movies: frames, tracking, a dask.distributed cluster, time traces.

A synthetic movie (a Pd lattice expanding by 3.5 % over 6 frames, 0.5 s apart) is
written as a multi-page ImageJ TIFF with its calibration and analysed through
``napari_hrtem_fft.cli.main`` as a user would run it.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_hrtem_fft.cli import main
from napari_hrtem_fft.core.reciprocal import g_spacing
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")

PIXEL = 0.02  # nm
FRAMES = 6
INTERVAL = 0.5  # s between frames
EXPANSION = 0.035  # reached in the last frame
REFL = pd_110_reflections(0.0)
# A rectangle well inside the 5.12 nm frame; map pixels are centred on multiples of
# 0.16 nm, none on its border: 18 x 18 of them.
REGION = "1.05:3.95,1.05:3.95"
REGION_PIXELS = 18 * 18


def true_d(frames) -> np.ndarray:
    """True spacing (nm) of every reflection in the given frames, ``(t, n)``."""
    expansion = EXPANSION * np.asarray(frames, dtype=float) / (FRAMES - 1)
    return g_spacing(REFL)[None, :] * (1.0 + expansion[:, None])


@pytest.fixture(scope="module")
def movie_tiff(tmp_path_factory):
    stack, _ = synthetic_movie(
        FRAMES,
        (256, 256),
        pixel_size=PIXEL,
        reflections=REFL,
        expansion_total=EXPANSION,
        noise=0.1,
        lazy=False,
    )
    path = tmp_path_factory.mktemp("movie") / "loading.tif"
    tifffile.imwrite(
        path,
        stack.astype(np.float32),
        imagej=True,
        resolution=(1 / PIXEL, 1 / PIXEL),
        metadata={"unit": "nm", "axes": "TYX", "finterval": INTERVAL},
    )
    return path


def _analyze(movie, out, *extra):
    refl = [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in REFL]
    args = ["analyze", str(movie), *refl, "--window", "64", "--step", "8", "-q"]
    return main([*args, "--out", str(out), *extra])


def _read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _stores_equal(a, b) -> None:
    ra, rb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    names = sorted(ra.array_keys())
    assert names == sorted(rb.array_keys())
    assert {"d_spacing", "angle", "amplitude", "exx", "eyy", "exy", "rotation"} <= set(names)
    for name in names:
        np.testing.assert_array_equal(ra[name][...], rb[name][...], err_msg=name)


def test_cluster_gives_the_same_maps_and_the_trace_matches_the_lattice(
    movie_tiff, tmp_path, capsys
):
    distributed = pytest.importorskip("distributed")
    local = tmp_path / "local.zarr"
    assert _analyze(movie_tiff, local) == 0
    with distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as cluster:
        remote = tmp_path / "cluster.zarr"
        assert _analyze(movie_tiff, remote, "--scheduler", cluster.scheduler_address) == 0
        remote_tif = tmp_path / "tif" / "cluster.tif"
        assert _analyze(movie_tiff, remote_tif, "--scheduler", cluster.scheduler_address) == 0
    # The same computation on the cluster: identical maps.
    _stores_equal(local, remote)
    d3 = tifffile.imread(tmp_path / "tif" / "cluster_d_spacing_g3.tif")
    np.testing.assert_array_equal(d3, zarr.open_group(str(local))["d_spacing"][2])

    # The store carries the movie's time axis and opens with read_zarr_maps.
    root = zarr.open_group(str(remote), mode="r")
    d = root["d_spacing"]
    assert d.shape == (3, FRAMES, 32, 32) and d.chunks[1] == 1
    assert d.attrs["scale"] == pytest.approx([1.0, INTERVAL, 8 * PIXEL, 8 * PIXEL])
    assert d.attrs["units"] == ["", "s", "nm", "nm"]
    record = json.loads((tmp_path / "cluster.json").read_text())
    assert record["analysis"]["scheduler"] == cluster.scheduler_address
    assert record["analysis"]["track"] is False

    capsys.readouterr()
    trace = tmp_path / "trace.csv"
    assert main(["trace", str(remote), "--region", REGION, "--out", str(trace)]) == 0
    printed = capsys.readouterr()
    assert str(trace) in printed.out
    rows = _read_csv(trace)
    # stderr shows the median d in nm, as the CSV (one unit for d).
    assert printed.err.startswith("# median d (nm)")
    first = printed.err.splitlines()[2].split()
    assert float(first[2]) == pytest.approx(float(rows[0]["d_median_g1_nm"]), abs=6e-6)
    assert [int(r["frame"]) for r in rows] == list(range(FRAMES))
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], np.arange(FRAMES) * INTERVAL)
    truth = true_d(range(FRAMES))
    for k in range(3):
        median = [float(r[f"d_median_g{k + 1}_nm"]) for r in rows]
        # This noisy lattice is read to better than 0.05 %; 0.1 % is the bound.
        np.testing.assert_allclose(median, truth[:, k], rtol=1e-3)
        assert all(int(r[f"d_count_g{k + 1}"]) == REGION_PIXELS for r in rows)
    exx = [float(r["exx_median"]) for r in rows]
    np.testing.assert_allclose(exx, EXPANSION * np.arange(FRAMES) / (FRAMES - 1), atol=1e-3)

    # The trace never replaces a file without --overwrite.
    stamp = trace.stat().st_mtime_ns
    assert main(["trace", str(remote), "--out", str(trace), "-q"]) == 4
    assert trace.stat().st_mtime_ns == stamp
    assert main(["trace", str(remote), "--out", str(trace), "-q", "--overwrite"]) == 0
    everywhere = _read_csv(trace)
    assert int(everywhere[0]["d_count_g1"]) > REGION_PIXELS


def test_frames_and_tracking_follow_the_lattice(movie_tiff, tmp_path):
    # ±2 % search: the reflections of frame 0 miss frame 5 (+3.5 %) unless tracked.
    fixed = tmp_path / "fixed.zarr"
    assert _analyze(movie_tiff, fixed, "--frames", "2:6", "--search", "0.02") == 0
    tracked = tmp_path / "tracked.zarr"
    assert _analyze(movie_tiff, tracked, "--frames", "2:6", "--search", "0.02", "--track") == 0

    d_fixed = zarr.open_group(str(fixed))["d_spacing"]
    d_tracked = zarr.open_group(str(tracked))["d_spacing"]
    assert d_fixed.shape == d_tracked.shape == (3, 4, 32, 32)
    # The maps start at frame 2: 1 s into the movie.
    assert d_tracked.attrs["translate"] == pytest.approx([0.0, 2 * INTERVAL, 0.0, 0.0])
    assert d_tracked.attrs["scale"][1] == pytest.approx(INTERVAL)
    assert np.isnan(d_fixed[0, -1]).all()

    out = tmp_path / "trace.csv"
    assert main(["trace", str(tracked), "--region", REGION, "--out", str(out), "-q"]) == 0
    rows = _read_csv(out)
    assert [int(r["frame"]) for r in rows] == [2, 3, 4, 5]
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], [1.0, 1.5, 2.0, 2.5])
    truth = true_d([2, 3, 4, 5])
    for k in range(3):
        median = [float(r[f"d_median_g{k + 1}_nm"]) for r in rows]
        np.testing.assert_allclose(median, truth[:, k], rtol=1e-3)

    record = json.loads((tmp_path / "tracked.json").read_text())
    assert record["analysis"]["frames"] == [2, 3, 4, 5] and record["analysis"]["track"]
    found = np.asarray(record["movie"]["found_per_frame_inv_nm"])  # (t, n, 2)
    np.testing.assert_allclose(g_spacing(found[-1]), truth[-1], rtol=1e-3)
    # The tracked store was written frame by frame and opens like any other.
    from napari_hrtem_fft import read_zarr_maps

    maps = read_zarr_maps(tracked)
    np.testing.assert_allclose(maps.reflections, REFL)
    assert maps.strain is not None and maps.strain.exx.shape == (4, 32, 32)


def test_movie_option_errors(movie_tiff, tmp_path, capsys):
    out = tmp_path / "m.zarr"
    assert _analyze(movie_tiff, out, "--track", "--scheduler", "tcp://127.0.0.1:8786") == 2
    assert "--track" in capsys.readouterr().err
    assert _analyze(movie_tiff, out, "--frames", "4:2") == 2
    err = capsys.readouterr().err
    assert "selects no frame" in err and "Traceback" not in err
    assert _analyze(movie_tiff, out, "--frames", "a:b") == 2
    assert _analyze(movie_tiff, out, "--scheduler", "somewhere") == 2
    assert not out.exists()

    still = tmp_path / "still.tif"
    frame = tifffile.imread(movie_tiff)[0]
    tifffile.imwrite(
        still, frame, imagej=True, resolution=(1 / PIXEL, 1 / PIXEL), metadata={"unit": "nm"}
    )
    capsys.readouterr()
    assert _analyze(still, out, "--frames", "0:1") == 2
    assert "needs a movie" in capsys.readouterr().err

    # trace: missing store, not maps, a region outside the maps.
    assert main(["trace", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "t.csv")]) == 3
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    assert main(["trace", str(tmp_path / "other.zarr"), "--out", str(tmp_path / "t.csv")]) == 3
    assert _analyze(movie_tiff, out, "--frames", "0:2") == 0
    capsys.readouterr()
    rc = main(["trace", str(out), "--region", "20:30,20:30", "--out", str(tmp_path / "t.csv")])
    assert rc == 2 and "holds no map pixel" in capsys.readouterr().err
    assert main(["trace", str(out), "--region", "3:1,0:1", "--out", str(tmp_path / "t.csv")]) == 2
    assert not (tmp_path / "t.csv").exists()


def test_trace_refuses_an_interrupted_store(movie_tiff, tmp_path, capsys):
    good = tmp_path / "good.zarr"
    assert _analyze(movie_tiff, good) == 0
    # Interrupt the writing of the same maps after frame 0 (an injected disk error).

    from napari_hrtem_fft.core.movie import read_zarr_maps, to_zarr

    def fail_after_frame_0(block, block_id=None):
        if block_id[1] > 0:
            raise OSError("No space left on device (injected)")
        return block

    maps = read_zarr_maps(good)
    broken = maps.with_arrays(
        {"d_spacing": maps.d_spacing.map_blocks(fail_after_frame_0, dtype="f4")}
    )
    store = tmp_path / "interrupted.zarr"
    with pytest.raises(OSError, match="injected"):
        to_zarr(broken, store, scheduler="synchronous")
    capsys.readouterr()
    out = tmp_path / "trace.csv"
    assert main(["trace", str(store), "--out", str(out), "-q"]) == 3
    err = capsys.readouterr().err
    assert "interrupted.zarr" in err and "incomplete" in err
    assert not out.exists()
    assert main(["trace", str(good), "--out", str(out), "-q"]) == 0
