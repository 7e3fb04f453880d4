"""The command line: arguments, errors and exit codes, calibrated outputs, the record."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_hrtem_fft.cli import main
from napari_hrtem_fft.core.maps import LatticeMaps
from napari_hrtem_fft.core.reciprocal import g_angle, g_spacing
from napari_hrtem_fft.core.strain import strain
from napari_hrtem_fft.core.synthetic import (
    dilatation_mapping,
    pd_110_reflections,
    synthetic_lattice,
)

tifffile = pytest.importorskip("tifffile")

PIXEL = 0.02  # nm
REFL = pd_110_reflections(10.0)


def _write_imagej_tiff(path, image, pixel_size=PIXEL):
    """A TIFF as ImageJ/Fiji saves it, with its pixel size in nm."""
    if pixel_size is None:
        tifffile.imwrite(path, image.astype(np.float32))
    else:
        tifffile.imwrite(
            path,
            image.astype(np.float32),
            imagej=True,
            resolution=(1 / pixel_size, 1 / pixel_size),
            metadata={"unit": "nm"},
        )
    return path


@pytest.fixture
def lattice_tiff(tmp_path):
    image, _ = synthetic_lattice((160, 192), pixel_size=PIXEL, reflections=REFL, seed=1)
    return _write_imagej_tiff(tmp_path / "lattice.tif", image)


def _reflection_args(refl=REFL):
    return [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in refl]


def _analyze(image, *options) -> int:
    """Exit code of ``napari-hrtem-fft analyze IMAGE OPTIONS...``."""
    return main(["analyze", str(image), *options])


# A stand-in for core.engine.analyze with exactly known maps, so that the writing and
# calibration are tested on their own (the real engine is exercised further below).
def _fake_analyze(
    image, reflections, *, pixel_size, window=128, step=8, search=0.1, refine=True, **_
):
    import dask.array as da

    refl = np.asarray(reflections, dtype=np.float64)
    my, mx = -(-image.shape[-2] // step), -(-image.shape[-1] // step)
    ramp = 1.0 + 1e-3 * np.arange(mx)[None, :] + np.zeros((my, 1))
    d = g_spacing(refl)[:, None, None] * ramp
    angle = np.broadcast_to(g_angle(refl)[:, None, None], d.shape).copy()
    d[0, 0, 0] = np.nan
    maps = LatticeMaps(
        d_spacing=da.from_array(d, chunks=(1, my, mx)),
        angle=da.from_array(angle, chunks=(1, my, mx)),
        amplitude=da.from_array(np.full(d.shape, 50.0), chunks=(1, my, mx)),
        d_sigma=np.full(d.shape, 1e-4),
        angle_sigma=np.full(d.shape, 0.01),
        reflections=refl,
        window=window,
        step=step,
        pixel_size=pixel_size,
        parameters={"window": window, "step": step, "search": search, "fake": True},
    )
    return maps


@pytest.fixture
def fake_engine(monkeypatch):
    from napari_hrtem_fft.core import engine

    monkeypatch.setattr(engine, "analyze", _fake_analyze)
    return engine


# ------------------------------------------------------------------- help


def test_help_works_without_napari():
    code = (
        "import sys\n"
        "from napari_hrtem_fft.cli import main\n"
        "rc = main(['--help'])\n"
        "assert rc == 0, rc\n"
        "assert main(['analyze', '--help']) == 0\n"
        "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'magicgui', 'dask') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "analyze" in result.stdout and "--reflection" in result.stdout


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "napari_hrtem_fft", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("napari-hrtem-fft 0.")


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "analyze" in capsys.readouterr().err


# --------------------------------------------------------- outputs (fake engine)


def test_tiff_outputs_calibrated_with_record(tmp_path, lattice_tiff, fake_engine, capsys):
    from napari_hrtem_fft.io import read_micrographs

    out = tmp_path / "res" / "maps.tif"
    rc = _analyze(
        lattice_tiff, *_reflection_args(), "--window", "64", "--step", "16", "--out", str(out)
    )
    assert rc == 0, capsys.readouterr().err
    expected = _fake_analyze(np.zeros((160, 192)), REFL, pixel_size=PIXEL, window=64, step=16)
    s = strain(expected)
    # One float32 TIFF per map: 5 quantities x 3 reflections + 4 strain components.
    tifs = sorted(p.name for p in out.parent.glob("*.tif"))
    assert len(tifs) == 19
    for k in range(3):
        path = out.parent / f"maps_d_spacing_g{k + 1}.tif"
        data = tifffile.imread(path)
        assert data.dtype == np.float32 and data.shape == (10, 12)
        np.testing.assert_allclose(data, expected.d_spacing[k].compute(), rtol=1e-6)
        (mg,) = read_micrographs(path)
        assert mg.units == ("nm", "nm")
        assert mg.scale == pytest.approx((16 * PIXEL, 16 * PIXEL), rel=1e-9)
        with tifffile.TiffFile(path) as tf:
            xres = tf.pages[0].tags["XResolution"].value
            assert xres[1] / xres[0] == pytest.approx(16 * PIXEL, rel=1e-6)
            assert tf.imagej_metadata["unit"] == "nm"
    assert np.isnan(tifffile.imread(out.parent / "maps_d_spacing_g1.tif")[0, 0])
    exx = tifffile.imread(out.parent / "maps_exx.tif")
    np.testing.assert_allclose(exx, s.exx, atol=1e-6, equal_nan=True)
    angle = tifffile.imread(out.parent / "maps_angle_g2.tif")
    np.testing.assert_allclose(angle, g_angle(REFL[1]), atol=1e-4)

    record = json.loads((out.parent / "maps.json").read_text())
    assert record["calibration"]["pixel_size_nm"] == pytest.approx(PIXEL)
    assert record["calibration"]["source"] == "file"
    assert record["analysis"]["window"] == 64 and record["analysis"]["step"] == 16
    assert record["analysis"]["search"] == 0.1
    assert record["analysis"]["engine_parameters"]["fake"] is True
    r1 = record["reflections"][0]
    assert r1["g_inv_nm"] == pytest.approx(REFL[0].tolist())
    assert r1["d_nm"] == pytest.approx(g_spacing(REFL[0]))
    assert "d_angstrom" not in r1  # one unit for d: nm
    assert r1["angle_deg"] == pytest.approx(g_angle(REFL[0]))
    assert record["input"]["path"] == str(lattice_tiff.resolve())
    assert record["maps"]["scale"] == pytest.approx([16 * PIXEL] * 2)
    assert record["versions"]["numpy"] == np.__version__
    # A TIFF and its sidecar per map, the statistics and the record itself.
    assert len(record["outputs"]) == 2 * 19 + 2
    # The sidecar of each TIFF says what its values are.
    side = json.loads((out.parent / "maps_angle_sigma_g3.json").read_text())
    assert side["metadata"]["value_unit"] == "deg"
    assert side["metadata"]["reflection"]["index"] == 3


def test_zarr_output(tmp_path, lattice_tiff, fake_engine):
    zarr = pytest.importorskip("zarr")
    out = tmp_path / "maps.zarr"
    rc = _analyze(
        lattice_tiff,
        *_reflection_args(),
        "--window",
        "64",
        "--step",
        "16",
        "--out",
        str(out),
        "--quiet",
    )
    assert rc == 0
    root = zarr.open_group(str(out), mode="r")
    expected = _fake_analyze(np.zeros((160, 192)), REFL, pixel_size=PIXEL, window=64, step=16)
    d = root["d_spacing"]
    assert d.shape == (3, 10, 12)
    np.testing.assert_allclose(d[...], expected.d_spacing.compute(), rtol=1e-6, equal_nan=True)
    assert d.attrs["scale"] == pytest.approx([1.0, 16 * PIXEL, 16 * PIXEL])
    assert d.attrs["units"] == ["", "nm", "nm"] and d.attrs["value_unit"] == "nm"
    assert root["rotation"].shape == (10, 12) and root["rotation"].attrs["value_unit"] == "deg"
    assert root.attrs["napari_hrtem_fft"]["analysis"]["window"] == 64
    assert (tmp_path / "maps.json").exists()


def test_never_overwrites_without_flag(tmp_path, lattice_tiff, fake_engine, capsys):
    out = tmp_path / "maps.tif"
    args = ["analyze", str(lattice_tiff), *_reflection_args(), "--window", "64", "-q"]
    assert main([*args, "--out", str(out)]) == 0
    before = (tmp_path / "maps_exx.tif").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 4
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and "Traceback" not in err
    assert (tmp_path / "maps_exx.tif").stat().st_mtime_ns == before
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    # zarr the same way.
    pytest.importorskip("zarr")
    assert main([*args, "--out", str(tmp_path / "m.zarr")]) == 0
    assert main([*args, "--out", str(tmp_path / "m.zarr")]) == 4
    assert main([*args, "--out", str(tmp_path / "m.zarr"), "--overwrite"]) == 0


def test_uncalibrated_file_needs_pixel_size(tmp_path, fake_engine, capsys):
    image, _ = synthetic_lattice((128, 128), pixel_size=PIXEL, reflections=REFL)
    path = _write_imagej_tiff(tmp_path / "raw.tif", image, pixel_size=None)
    out = tmp_path / "maps.tif"
    args = ["analyze", str(path), *_reflection_args(), "--window", "64", "--out", str(out)]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "--pixel-size" in err and "Traceback" not in err
    assert main([*args, "--pixel-size", "0.025", "-q"]) == 0
    record = json.loads((tmp_path / "maps.json").read_text())
    assert record["calibration"]["source"] == "--pixel-size"
    assert record["calibration"]["pixel_size_nm"] == 0.025
    assert record["calibration"]["file_calibrated"] is False
    from napari_hrtem_fft.io import read_micrographs

    (mg,) = read_micrographs(tmp_path / "maps_exx.tif")
    assert mg.scale == pytest.approx((8 * 0.025, 8 * 0.025))


def test_collinear_reflections_give_no_strain(tmp_path, lattice_tiff, fake_engine):
    out = tmp_path / "maps.tif"
    refl = np.array([REFL[0], 2 * REFL[0]])
    assert (
        _analyze(lattice_tiff, *_reflection_args(refl), "--window", "64", "--out", str(out), "-q")
        == 0
    )
    assert (tmp_path / "maps_d_spacing_g2.tif").exists()
    assert not (tmp_path / "maps_exx.tif").exists()


def test_negative_values_and_short_option(tmp_path, lattice_tiff, fake_engine):
    out = tmp_path / "maps.tif"
    rc = _analyze(
        lattice_tiff,
        "--reflection",
        "-4.02667521,1.9003397",
        "-r",
        "-0.89279269,5.06327894",
        "--window",
        "64",
        "--out",
        str(out),
        "-q",
    )
    assert rc == 0
    record = json.loads((tmp_path / "maps.json").read_text())
    assert record["reflections"][0]["g_inv_nm"] == pytest.approx([-4.02667521, 1.9003397])
    assert record["command"][:2] == ["napari-hrtem-fft", "analyze"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--reflection", "1,2,3"], 2, "two numbers"),
        (["--reflection", "abc"], 2, "two numbers"),
        ([], 2, "--auto"),
        (["--reflection=1,2", "--auto", "2"], 2, "either"),
        (["--reflection=1,2", "--window", "0"], 2, "window must be even and >= 16"),
        (["--reflection=1,2", "--window", "65"], 2, "window must be even"),
        (["--reflection=1,2", "--search", "0.6"], 2, "search must be > 0 and <= 0.5"),
        (["--reflection=1,2", "--step", "300"], 2, "step (300) must not exceed window (128)"),
        (["--reflection=1,2", "--pixel-size", "-1"], 2, "positive number"),
    ],
)
def test_bad_arguments(tmp_path, lattice_tiff, capsys, args, code, message):
    rc = _analyze(lattice_tiff, *args, "--out", str(tmp_path / "m.tif"))
    assert rc == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_output_suffix_and_missing_input(tmp_path, lattice_tiff, capsys):
    assert _analyze(lattice_tiff, "-r", "1,2", "--out", str(tmp_path / "m.h5")) == 2
    assert ".zarr" in capsys.readouterr().err
    missing = tmp_path / "nope.dm4"
    assert _analyze(missing, "-r", "1,2", "--out", str(tmp_path / "m.tif")) == 3
    assert "nope.dm4" in capsys.readouterr().err
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    assert _analyze(junk, "-r", "1,2", "--out", str(tmp_path / "m.tif")) == 3
    assert "junk.tif" in capsys.readouterr().err


def test_auto_uses_find_reflections(tmp_path, lattice_tiff, fake_engine):
    out = tmp_path / "maps.tif"
    assert _analyze(lattice_tiff, "--auto", "3", "--window", "64", "--out", str(out), "-q") == 0
    record = json.loads((tmp_path / "maps.json").read_text())
    d = sorted(r["d_nm"] for r in record["reflections"])
    np.testing.assert_allclose(d, sorted(g_spacing(REFL)), rtol=1e-3)
    assert {r["source"] for r in record["reflections"]} == {"--auto"}


def test_auto_on_noise_exits_5(tmp_path, capsys):
    noise = np.random.default_rng(0).standard_normal((128, 128))
    path = _write_imagej_tiff(tmp_path / "noise.tif", noise)
    assert _analyze(path, "--auto", "3", "--window", "64", "--out", str(tmp_path / "m.tif")) == 5
    assert "no significant reflection" in capsys.readouterr().err


def test_reflections_command_prints_table(lattice_tiff, capsys):
    assert main(["reflections", str(lattice_tiff), "--window", "128"]) == 0
    out = capsys.readouterr().out
    assert "d (nm)" in out.splitlines()[1] and "Å" not in out  # one unit for d: nm
    paste = out.strip().splitlines()[-1].split()
    assert len(paste) == 3 and all(p.startswith("--reflection=") for p in paste)
    for row in out.splitlines()[2:5]:
        d_nm = float(row.split()[3])
        assert min(abs(d_nm - g_spacing(REFL))) < 2e-4


# ----------------------------------------------------------- with the real engine


def test_end_to_end_dilated_lattice(tmp_path):
    pytest.importorskip("napari_hrtem_fft.core.engine", reason="core.engine not written yet")
    from napari_hrtem_fft.io import read_micrographs

    image, _ = synthetic_lattice(
        (256, 256), pixel_size=PIXEL, reflections=REFL, mapping=dilatation_mapping(1.02)
    )
    path = _write_imagej_tiff(tmp_path / "dilated.tif", image)
    out = tmp_path / "maps.tif"
    rc = _analyze(
        path, *_reflection_args(), "--window", "64", "--step", "16", "--out", str(out), "-q"
    )
    assert rc == 0
    (d1,) = read_micrographs(tmp_path / "maps_d_spacing_g1.tif")
    assert d1.scale == pytest.approx((16 * PIXEL, 16 * PIXEL))
    inner = np.asarray(d1.data)[2:-2, 2:-2]
    np.testing.assert_allclose(inner, 1.02 * g_spacing(REFL[0]), rtol=2e-3)
    exx = tifffile.imread(tmp_path / "maps_exx.tif")[2:-2, 2:-2]
    assert math.isclose(float(np.nanmedian(exx)), 0.02, abs_tol=2e-3)


def test_auto_skips_higher_orders(tmp_path, fake_engine):
    # g, its second order 2g (both stronger than g2) and g2: --auto 2 skips one of g, 2g.
    g1 = np.array([-1.0, 3.0])
    g2 = np.array([-3.2, -0.4])
    image, _ = synthetic_lattice(
        (256, 256),
        pixel_size=PIXEL,
        reflections=[g1, 2 * g1, g2],
        amplitudes=[0.3, 0.2, 0.1],
    )
    path = _write_imagej_tiff(tmp_path / "harmonics.tif", image)
    out = tmp_path / "maps.tif"
    args = ["analyze", str(path), "--auto", "2", "--window", "64", "--out", str(out), "-q"]
    assert main(args) == 0
    record = json.loads((tmp_path / "maps.json").read_text())
    found = np.array([r["g_inv_nm"] for r in record["reflections"]])
    # The first is g or 2g (whichever stands out more), the second g2, not the other order.
    assert len(found) == 2
    assert np.linalg.norm(found[0] / np.linalg.norm(found[0]) - g1 / np.linalg.norm(g1)) < 1e-3
    np.testing.assert_allclose(found[1], -g2, atol=2e-3)  # canonical half-plane
    assert (tmp_path / "maps_exx.tif").exists()


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def test_real_pzo_file_end_to_end(tmp_path):
    # README of the shared data: PbZrO3, 0.015994541 nm/px, d = 0.298 and 0.299 nm
    # (perpendicular); a single unstrained crystal, so the strain is near zero.
    pytest.importorskip("napari_hrtem_fft.core.engine", reason="core.engine not written yet")
    path = SHARED / "dm3" / "PZO.dm3"
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    out = tmp_path / "pzo.tif"
    rc = _analyze(path, "--auto", "2", "--window", "128", "--step", "16", "--out", str(out), "-q")
    assert rc == 0
    from napari_hrtem_fft.io import read_micrographs

    (d1,) = read_micrographs(tmp_path / "pzo_d_spacing_g1.tif")
    assert d1.scale == pytest.approx((16 * 0.015994541,) * 2, rel=1e-6)
    d = [np.nanmedian(tifffile.imread(tmp_path / f"pzo_d_spacing_g{k}.tif")) for k in (1, 2)]
    np.testing.assert_allclose(sorted(d), [0.298, 0.299], atol=0.002)
    exx = tifffile.imread(tmp_path / "pzo_exx.tif")
    assert abs(np.nanmedian(exx)) < 2e-3


def test_movie_keeps_time_axis_and_calibration(tmp_path):
    # Three frames dilated by 0, 1 and 2 %; reflections from frame 0, so exx = eyy = 0,
    # 0.01, 0.02 frame by frame, and the time axis (0.5 s) is kept in the maps.
    pytest.importorskip("napari_hrtem_fft.core.engine", reason="core.engine not written yet")
    from napari_hrtem_fft.io import read_micrographs, write_tiff

    frames = [
        synthetic_lattice(
            (192, 192),
            pixel_size=PIXEL,
            reflections=REFL,
            mapping=dilatation_mapping(f),
            noise=0.05,
            seed=i,
        )[0]
        for i, f in enumerate([1.0, 1.01, 1.02])
    ]
    movie = tmp_path / "movie.tif"
    write_tiff(movie, np.stack(frames), scale=(0.5, PIXEL, PIXEL), units=("s", "nm", "nm"))
    out = tmp_path / "maps" / "m.tif"
    args = ["analyze", str(movie), "--auto", "3", "--window", "64", "--step", "16"]
    assert main([*args, "--out", str(out), "-q"]) == 0
    (exx,) = read_micrographs(tmp_path / "maps" / "m_exx.tif")
    assert exx.shape == (3, 12, 12)
    assert exx.units == ("s", "nm", "nm")
    assert exx.scale == pytest.approx((0.5, 16 * PIXEL, 16 * PIXEL))
    per_frame = np.nanmedian(np.asarray(exx.data).reshape(3, -1), axis=1)
    np.testing.assert_allclose(per_frame, [0.0, 0.01, 0.02], atol=1e-3)


def test_anisotropic_pixels_refused(tmp_path, capsys):
    from napari_hrtem_fft.io import write_tiff

    path = tmp_path / "aniso.tif"
    write_tiff(path, np.zeros((128, 128)), scale=(0.02, 0.03), units=("nm", "nm"))
    assert _analyze(path, "-r", "1,2", "--out", str(tmp_path / "m.tif")) == 3
    assert "anisotropic" in capsys.readouterr().err
