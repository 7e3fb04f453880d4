"""Atomic outputs (issue 11): nothing half-written under the final name, no overwrite."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import tifffile

from napari_hrtem_fft._writer import write_calibrated_tiff
from napari_hrtem_fft.io import (
    atomic_directory,
    atomic_path,
    read_micrographs,
    sidecar_path,
    write_tiff,
)
from napari_hrtem_fft.io._atomic import PARTIAL_MARK


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if PARTIAL_MARK in p.name)


def _disk_full_after(monkeypatch, nbytes):
    """tifffile.imwrite writes ``nbytes`` of the file, then the disk is full."""
    real = tifffile.imwrite

    def imwrite(path, *args, **kwargs):
        real(path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(nbytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile, "imwrite", imwrite)


def test_failed_tiff_write_leaves_nothing_and_a_rerun_succeeds(tmp_path, monkeypatch):
    path = tmp_path / "map.tif"
    data = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    _disk_full_after(monkeypatch, 1000)
    with pytest.raises(OSError, match=r"No space left on device.*map\.tif") as info:
        write_tiff(path, data, scale=(0.1, 0.1), units=("nm", "nm"))
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no TIFF, no sidecar, no .partial
    monkeypatch.undo()
    write_tiff(path, data, scale=(0.1, 0.1), units=("nm", "nm"))  # no "output exists"
    (mg,) = read_micrographs(path)
    assert np.array_equal(mg.data, data)


def test_failed_overwrite_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "map.tif"
    old = np.ones((16, 16), np.float32)
    write_tiff(path, old, scale=(0.1, 0.1), units=("nm", "nm"))
    before = path.read_bytes(), sidecar_path(path).read_bytes()
    _disk_full_after(monkeypatch, 100)
    with pytest.raises(OSError):
        write_tiff(path, old * 2, scale=(0.2, 0.2), units=("nm", "nm"), overwrite=True)
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before
    assert _leftovers(tmp_path) == []


def test_atomic_path_renames_on_success_and_never_overwrites(tmp_path):
    target = tmp_path / "maps.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
        assert not target.exists()  # nothing under the final name while writing
    assert target.read_text() == "{}"
    with pytest.raises(FileExistsError, match=r"maps\.json"):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "{}"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt  # Ctrl-C during the write phase
    assert target.read_text() == "{}" and _leftovers(tmp_path) == []


def _zarr_like(path):
    return (path / ".zattrs").exists() or (path / "zarr.json").exists()


def test_atomic_directory_replaces_only_what_it_may(tmp_path):
    out = tmp_path / "maps.zarr"
    with atomic_directory(out) as tmp:
        (tmp / "zarr.json").write_text("{}")
    assert (out / "zarr.json").exists()
    # A failure while writing leaves the previous store as it was.
    with pytest.raises(RuntimeError):
        with atomic_directory(out, overwrite=True, replaceable=_zarr_like) as tmp:
            (tmp / "zarr.json").write_text("partial")
            raise RuntimeError("worker died")
    assert (out / "zarr.json").read_text() == "{}" and _leftovers(tmp_path) == []
    with atomic_directory(out, overwrite=True, replaceable=_zarr_like) as tmp:
        (tmp / "zarr.json").write_text("new")
    assert (out / "zarr.json").read_text() == "new"
    # A folder that is not a store is never deleted, even with overwrite.
    mine = tmp_path / "thesis.zarr"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not an output of this kind"):
        with atomic_directory(mine, overwrite=True, replaceable=_zarr_like) as tmp:
            (tmp / "zarr.json").write_text("{}")
    assert (mine / "chapter1.tex").read_text() == "precious"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "data, kwargs, error, message",
    [
        (np.ones((8, 8), np.complex64), {}, TypeError, r"bad\.tif.*complex"),
        (np.ones((0, 5), np.float32), {"scale": (1, 1)}, ValueError, r"bad\.tif.*empty"),
        (np.ones((8, 8)), {"translate": (np.nan, 0.0)}, ValueError, r"bad\.tif.*translate"),
        (np.ones((8, 8)), {"scale": (np.inf, np.inf)}, ValueError, r"bad\.tif.*finite"),
    ],
)
def test_bad_layers_are_refused_naming_the_file(tmp_path, data, kwargs, error, message):
    kwargs = {"scale": (0.1, 0.1), "units": ("nm", "nm"), **kwargs}
    with pytest.raises(error, match=message):
        write_tiff(tmp_path / "bad.tif", data, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_npe2_writer_refuses_a_complex_layer(tmp_path):
    meta = {"scale": (0.1, 0.1), "translate": (0.0, 0.0), "units": ("nm", "nm")}
    with pytest.raises(TypeError, match=r"fft\.tif.*complex.*abs\(data\)"):
        write_calibrated_tiff(str(tmp_path / "fft"), np.ones((8, 8), np.complex128), meta)
    assert list(tmp_path.iterdir()) == []


# --- the CLI's write phase ------------------------------------------------------------

PIXEL = 0.02  # nm


@pytest.fixture
def lattice_tiff(tmp_path):
    from napari_hrtem_fft.core.synthetic import synthetic_lattice

    image, _ = synthetic_lattice(
        (128, 128), pixel_size=PIXEL, reflections=[(0.0, 4.0), (4.0, 0.0)]
    )
    path = tmp_path / "in" / "lattice.tif"
    path.parent.mkdir()
    write_tiff(path, image.astype(np.float32), scale=(PIXEL, PIXEL), units=("nm", "nm"))
    return path


def _cli_args(lattice_tiff, out, *extra) -> list[str]:
    refl = ["--reflection", "0,4", "--reflection", "4,0"]
    size = ["--window", "64", "--step", "32"]
    return ["analyze", str(lattice_tiff), *refl, *size, "--out", str(out), "-q", *extra]


def _cli(lattice_tiff, out, *extra):
    from napari_hrtem_fft.cli import main

    return main(_cli_args(lattice_tiff, out, *extra))


def _fail_on_call(monkeypatch, n, exc):
    """tifffile.imwrite succeeds n - 1 times, then writes part of a file and raises."""
    real, calls = tifffile.imwrite, []

    def imwrite(path, *args, **kwargs):
        calls.append(path)
        real(path, *args, **kwargs)
        if len(calls) == n:
            with open(path, "r+b") as f:
                f.truncate(200)
            raise exc

    monkeypatch.setattr(tifffile, "imwrite", imwrite)


@pytest.mark.parametrize(
    "exc", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), KeyboardInterrupt()]
)
def test_cli_write_failure_leaves_no_output_and_the_rerun_works(
    tmp_path, lattice_tiff, monkeypatch, exc
):
    out_dir = tmp_path / "out"
    out = out_dir / "maps.tif"
    _fail_on_call(monkeypatch, 3, exc)  # two maps complete, the third cut: disk full / Ctrl-C
    # Ctrl-C: 130 ("interrupted"); disk full: 4 (EXIT_OUTPUT, "cannot write the output").
    assert _cli(lattice_tiff, out) == (130 if isinstance(exc, KeyboardInterrupt) else 4)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    monkeypatch.undo()
    assert _cli(lattice_tiff, out) == 0  # no "output exists" from a leftover
    (mg,) = read_micrographs(out_dir / "maps_d_spacing_g1.tif")
    assert mg.calibrated and (out_dir / "maps.json").exists()
    assert _leftovers(out_dir) == []


def test_cli_overwrite_never_deletes_a_folder_that_is_not_a_store(tmp_path, lattice_tiff):
    pytest.importorskip("zarr")
    mine = tmp_path / "thesis.zarr"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    assert _cli(lattice_tiff, mine, "--overwrite") == 4
    assert (mine / "chapter1.tex").read_text() == "precious"
    store = tmp_path / "maps.zarr"
    assert _cli(lattice_tiff, store) == 0
    assert _cli(lattice_tiff, store, "--overwrite") == 0  # a store is replaced
    assert _leftovers(tmp_path) == []


def test_cli_killed_by_sigterm_while_writing_leaves_no_output(tmp_path, lattice_tiff):
    import signal
    import subprocess
    import sys
    import time

    out_dir = tmp_path / "out"
    # Each TIFF takes 0.5 s to write, so the signal lands in the write phase.
    script = (
        "import sys, time, tifffile\n"
        "real = tifffile.imwrite\n"
        "def slow(*a, **k):\n"
        "    real(*a, **k); time.sleep(0.5)\n"
        "tifffile.imwrite = slow\n"
        "from napari_hrtem_fft.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = _cli_args(lattice_tiff, out_dir / "maps.tif")
    proc = subprocess.Popen([sys.executable, "-c", script, *args])
    deadline = time.monotonic() + 120
    staged = []
    while time.monotonic() < deadline and proc.poll() is None:
        staged = list(out_dir.glob(f".outputs{PARTIAL_MARK}*/*.tif")) if out_dir.exists() else []
        if staged:
            break
        time.sleep(0.05)
    assert staged, "the write phase was not reached"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    # Only the hidden staging folder is left: no output under a final name.
    assert [p.name for p in out_dir.iterdir() if PARTIAL_MARK not in p.name] == []
    assert _cli(lattice_tiff, out_dir / "maps.tif") == 0  # the rerun works ...
    assert _leftovers(out_dir) == []  # ... and removes the dead run's staging folder
    assert (out_dir / "maps.json").exists()


def test_cli_trace_failure_leaves_no_csv_and_the_rerun_works(tmp_path, monkeypatch):
    pytest.importorskip("zarr")
    from napari_hrtem_fft.cli import main
    from napari_hrtem_fft.core import movie
    from napari_hrtem_fft.core.synthetic import synthetic_lattice

    image, _ = synthetic_lattice((128, 128), pixel_size=PIXEL, reflections=[(0.0, 4.0)])
    stack = tmp_path / "movie.tif"
    write_tiff(
        stack,
        np.stack([image] * 3).astype(np.float32),
        scale=(1.0, PIXEL, PIXEL),
        units=("s", "nm", "nm"),
    )
    store = tmp_path / "maps.zarr"
    analyze = ["analyze", str(stack), "--reflection", "4,0", "--window", "64", "-q"]
    assert main([*analyze, "--out", str(store)]) == 0
    real = movie.trace_to_csv

    def cut(trace, path, **kwargs):
        real(trace, path, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(10)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(movie, "trace_to_csv", cut)
    csv = tmp_path / "trace.csv"
    assert main(["trace", str(store), "--out", str(csv), "-q"]) == 4
    assert not csv.exists() and _leftovers(tmp_path) == []
    monkeypatch.undo()
    assert main(["trace", str(store), "--out", str(csv), "-q"]) == 0
    assert csv.read_text().startswith("# napari-hrtem-fft time trace")
