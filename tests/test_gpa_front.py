"""GPA and reference regions through the front ends: analyze(method=...), the pipeline's
options record and ``napari-hrtem-fft analyze --method gpa --reference``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_hrtem_fft.cli import main
from napari_hrtem_fft.cli._common import EXIT_USAGE
from napari_hrtem_fft.core.engine import analyze, iter_analyze
from napari_hrtem_fft.core.gpa import analyze_gpa
from napari_hrtem_fft.core.pipeline import (
    AnalysisOptions,
    postprocess,
    reference_mask,
    run_analysis,
    run_to_end,
)
from napari_hrtem_fft.core.strain import strain
from napari_hrtem_fft.core.synthetic import pd_110_reflections, pd_core_shell_sample

tifffile = pytest.importorskip("tifffile")

PIXEL = 0.02  # nm
REFL = pd_110_reflections(10.0)[:2]
CENTRE = 7.68  # nm, centre of the 768² particle
# Shell (r from 3 to 6.5 nm) rectangle and the core's strain relative to it: 1/1.035 - 1.
SHELL = (7.38, 7.98, 2.6, 3.2)
CORE_VS_SHELL = 1 / 1.035 - 1


@pytest.fixture(scope="module")
def core_shell():
    image, _ = pd_core_shell_sample((768, 768), radius=6.5, core_radius=3.0, seed=3)
    return image


def _core(maps, radius=1.5):
    c = np.arange(maps.d_spacing.shape[-1]) * maps.map_scale
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return np.hypot(yy - CENTRE, xx - CENTRE) < radius


def test_analyze_method_gpa_is_analyze_gpa(core_shell):
    maps = analyze(core_shell, REFL, pixel_size=PIXEL, step=8, method="gpa", resolution_nm=0.8)
    ref = analyze_gpa(core_shell, REFL, pixel_size=PIXEL, step=8, resolution_nm=0.8)
    assert maps.parameters["method"] == "gpa"
    for name in ("d_spacing", "angle", "phase"):
        np.testing.assert_array_equal(getattr(maps, name), getattr(ref, name))
    # Without a resolution, GPA is matched to the window.
    matched = analyze(core_shell, REFL, pixel_size=PIXEL, window=64, step=8, method="gpa")
    np.testing.assert_array_equal(
        matched.d_spacing, analyze_gpa(core_shell, REFL, pixel_size=PIXEL, window=64).d_spacing
    )


def test_analyze_method_errors(core_shell):
    with pytest.raises(ValueError, match="method must be 'local_fft' or 'gpa'"):
        iter_analyze(core_shell, REFL, pixel_size=PIXEL, method="fft")
    with pytest.raises(ValueError, match="resolution_nm is an option of method='gpa'"):
        analyze(core_shell, REFL, pixel_size=PIXEL, resolution_nm=1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        AnalysisOptions(method="fft")
    with pytest.raises(ValueError, match="resolution_nm is an option of method 'gpa'"):
        AnalysisOptions(resolution_nm=1.0)
    with pytest.raises(ValueError, match="resolution_nm must be > 0"):
        AnalysisOptions(method="gpa", resolution_nm=-1.0)
    with pytest.raises(ValueError, match="y0 < y1"):
        AnalysisOptions(reference=(2.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="4 finite numbers"):
        AnalysisOptions(reference=(0.0, 1.0, 0.0))


def test_reference_mask_and_empty_region():
    mask = reference_mask((0.3, 0.5, 0.0, 0.2), (4, 5), 0.16)
    # Map pixel centres at 0, 0.16, 0.32, 0.48 nm: rows 2-3, columns 0-1.
    assert np.argwhere(mask).tolist() == [[2, 0], [2, 1], [3, 0], [3, 1]]
    with pytest.raises(ValueError, match="holds no map pixel centre"):
        reference_mask((0.01, 0.02, 0.0, 1.0), (4, 5), 0.16)


@pytest.mark.parametrize("method", ["local_fft", "gpa"])
def test_pipeline_reference_region(core_shell, method):
    """Strain relative to a shell rectangle: the core is compressed by 1/1.035 - 1."""
    options = AnalysisOptions(
        window=64, step=8, crystal_mask=False, method=method, reference=SHELL
    )
    maps = run_to_end(run_analysis(core_shell, REFL, pixel_size=PIXEL, options=options))
    core = _core(maps)
    # Exactly the core API's strain relative to that region of the maps.
    raw = analyze(core_shell, REFL, pixel_size=PIXEL, **options.engine_options())
    mask = reference_mask(SHELL, raw.d_spacing.shape, raw.map_scale)
    expected = strain(raw, reference=mask)
    np.testing.assert_allclose(maps.strain.exx, expected.exx, atol=1e-6)
    np.testing.assert_allclose(maps.strain.eyy, expected.eyy, atol=1e-6)
    for name in ("exx", "eyy"):
        # A 1.28 nm window in the 3.5 nm shell measures its expansion as 2.5-3.8 %
        # (both methods agree), hence the tolerance.
        value = np.nanmedian(getattr(maps.strain, name)[core])
        assert value == pytest.approx(CORE_VS_SHELL, abs=0.01), (name, value)
    assert maps.parameters["strain_reference_nm"] == list(SHELL)
    # Without the reference the core is the analysed lattice itself: no strain.
    plain = postprocess(
        analyze(core_shell, REFL, pixel_size=PIXEL, **options.engine_options()),
        None,
        AnalysisOptions(window=64, step=8, crystal_mask=False),
    )
    assert abs(np.nanmedian(plain.strain.exx[core])) < 0.003


def test_cli_gpa_with_reference(tmp_path, core_shell):
    path = tmp_path / "cs.tif"
    tifffile.imwrite(
        path,
        core_shell,
        imagej=True,
        resolution=(1 / PIXEL, 1 / PIXEL),
        metadata={"unit": "nm"},
    )
    refl = [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in REFL]
    out = tmp_path / "maps.tif"
    box = "{}:{},{}:{}".format(*SHELL)
    code = main(
        ["analyze", str(path), *refl, "--method", "gpa", "--resolution", "0.8",
         "--step", "8", "--reference", box, "--out", str(out), "-q"]
    )  # fmt: skip
    assert code == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["analysis"]["method"] == "gpa"
    assert record["analysis"]["resolution_nm"] == 0.8
    assert record["analysis"]["reference"] == list(SHELL)
    exx = tifffile.imread(tmp_path / "maps_exx.tif")
    c = np.arange(exx.shape[-1]) * 8 * PIXEL
    yy, xx = np.meshgrid(c, c, indexing="ij")
    core = np.hypot(yy - CENTRE, xx - CENTRE) < 1.5
    assert np.nanmedian(exx[core]) == pytest.approx(CORE_VS_SHELL, abs=0.01)


def test_cli_gpa_errors(tmp_path, core_shell, capsys):
    path = tmp_path / "cs.tif"
    tifffile.imwrite(path, core_shell)
    refl = [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in REFL]
    base = ["analyze", str(path), "--pixel-size", "0.02", *refl, "--out", str(tmp_path / "m.tif")]
    assert main([*base, "--resolution", "1"]) == EXIT_USAGE
    assert "resolution_nm is an option of method 'gpa'" in capsys.readouterr().err
    assert main([*base, "--method", "gpa", "--reference", "50:60,50:60"]) == EXIT_USAGE
    assert "holds no map pixel centre" in capsys.readouterr().err
    assert main([*base, "--reference", "1,2,3,4"]) == EXIT_USAGE
    assert "expected a rectangle Y0:Y1,X0:X1" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["gpa", "local_fft"])
def test_cli_phase_writes_phase_displacement_and_dislocations(tmp_path, method):
    """Three edge dislocations of known core and Burgers vector (fringe SNR 2), with the
    CLI's defaults (window 128) but step 8, by either method.  The local-FFT maps are
    NaN over each core (the window straddling it loses its fringes): the cores are
    found from the windings round those holes."""
    import csv

    from napari_hrtem_fft.core.synthetic import dislocation_sample

    image, truth = dislocation_sample(seed=3)
    path = tmp_path / "disl.tif"
    tifffile.imwrite(path, image)
    refl = [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in truth.reflections]
    out = tmp_path / "maps.tif"
    code = main(
        ["analyze", str(path), "--pixel-size", "0.02", *refl, "--method", method,
         "--step", "8", "--phase", "--out", str(out), "-q"]
    )  # fmt: skip
    assert code == 0
    record = json.loads(out.with_suffix(".json").read_text())
    written = {p.split("/")[-1] for p in record["outputs"]}
    assert {"maps_phase_g1.tif", "maps_displacement_ux.tif", "maps_dislocations.csv"} <= written
    phase = tifffile.imread(tmp_path / "maps_phase_g1.tif")
    finite = phase[np.isfinite(phase)]
    assert finite.size and np.all(np.abs(finite) <= np.pi + 1e-6)
    lines = (tmp_path / "maps_dislocations.csv").read_text().splitlines()
    assert lines[0].startswith("# dislocation cores")
    rows = list(csv.DictReader(lines[1:]))
    assert record["dislocations"]["count"] == len(rows)
    position = np.array([[float(r["y_nm"]), float(r["x_nm"])] for r in rows])
    burgers = np.array([[float(r["by_nm"]), float(r["bx_nm"])] for r in rows])
    inside = np.hypot(*(position - 10.24).T) < 8.0
    assert inside.sum() == len(truth.cores)  # no false core inside the crystal
    for core, b in zip(truth.cores, truth.burgers, strict=True):
        k = int(np.argmin(np.hypot(*(position - core).T)))
        assert np.hypot(*(position[k] - core)) < 0.5  # nm
        assert np.hypot(*burgers[k]) == pytest.approx(np.hypot(*b), rel=0.1)
    # The displacement map is the core's displacement() of the written maps (nm).
    ux = tifffile.imread(tmp_path / "maps_displacement_ux.tif")
    assert ux.shape == phase.shape and np.isfinite(ux).mean() > 0.3


def test_cli_phase_errors(tmp_path, core_shell, capsys):
    path = tmp_path / "cs.tif"
    tifffile.imwrite(path, core_shell)
    refl = [f"--reflection={float(gy)!r},{float(gx)!r}" for gy, gx in REFL]
    base = ["analyze", str(path), "--pixel-size", "0.02", *refl, "--phase"]
    assert main([*base, "--method", "gpa", "--out", str(tmp_path / "m.zarr")]) == EXIT_USAGE
    assert "--phase writes TIFF files" in capsys.readouterr().err
