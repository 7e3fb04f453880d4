"""Calibration of an image's scale from a lattice of known spacing (core.calibration)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import napari_hrtem_fft as hf
from napari_hrtem_fft.core import calibration as cal
from napari_hrtem_fft.core.reciprocal import g_angle, g_from_spacing_angle, g_spacing


def test_material_table_spacings():
    # Textbook spacings (nm): Si {111} a/sqrt3, Pd {200} a/2, MoS2 {100} a*sqrt3/2,
    # graphite {002} c/2, SrTiO3 {110} a/sqrt2.
    assert cal.plane_spacing("Si", (1, 1, 1)) == pytest.approx(0.5431021 / np.sqrt(3), rel=1e-9)
    assert cal.plane_spacing("Pd", (2, 0, 0)) == pytest.approx(0.38907 / 2, rel=1e-9)
    assert cal.plane_spacing("MoS2", (1, 0, 0)) == pytest.approx(0.2737, abs=5e-5)
    assert cal.plane_spacing("graphite", (0, 0, 2)) == pytest.approx(0.33555, rel=1e-9)
    assert cal.plane_spacing("SrTiO3", (1, 1, 0)) == pytest.approx(0.3905 / np.sqrt(2), rel=1e-9)
    for name, material in cal.MATERIALS.items():
        assert material.source, name
        assert [p["d"] for p in cal.material_planes(name)] == sorted(
            (p["d"] for p in cal.material_planes(name)), reverse=True
        )


def test_plane_angles():
    np.testing.assert_allclose(cal.plane_angles("MoS2", (1, 0, 0), (1, 0, 0)), [60, 120])
    np.testing.assert_allclose(cal.plane_angles("Pd", (2, 0, 0), (2, 0, 0)), [90])
    np.testing.assert_allclose(
        cal.plane_angles("Au", (1, 1, 1), (2, 0, 0)), [54.735610, 125.264390], atol=1e-5
    )


def test_unknown_material_is_named():
    with pytest.raises(ValueError, match=r"unknown material 'Unobtainium'.*Pd"):
        cal.plane_spacing("Unobtainium", (1, 1, 1))


def test_isotropic_correction_recovers_scale():
    # An image whose nominal pixel size is 4 % small: Pd {111} measures 0.2246/1.04.
    d_true = cal.plane_spacing("Pd", (1, 1, 1))
    g = g_from_spacing_angle(d_true / 1.04, 25.0)
    corr = cal.correction_from_planes([g], "Pd", [(1, 1, 1)], pixel_size=0.02)
    assert corr.kind == "isotropic"
    assert corr.scale_factor == pytest.approx(1.04, rel=1e-12)
    np.testing.assert_allclose(corr.scale, np.eye(2) * 0.0208, rtol=1e-12)
    assert g_spacing(cal.correct_g(g, corr)) == pytest.approx(d_true, rel=1e-12)
    assert g_angle(cal.correct_g(g, corr)) == pytest.approx(25.0, abs=1e-9)
    assert "Pd (111)" in corr.source and "Wyckoff" in corr.source


def test_affine_correction_undoes_scan_distortion():
    # A square lattice (0.4 nm) seen through a scan distortion D (r_nominal = D r_true):
    # measured g = D^-T g_true.  The symmetric fit must restore every reflection.
    distortion = np.array([[1.05, 0.02], [0.02, 0.97]])
    g_true = np.array([[0, 2.5], [-2.5, 0], [-2.5, 2.5], [2.5, 5.0]])
    g_meas = g_true @ np.linalg.inv(distortion)  # rows: (D^-T g)^T = g^T D^-1
    corr = cal.affine_correction(
        g_meas[:2], [0.4, 0.4], pixel_size=(0.01, 0.01), angle_true=90.0, source="test"
    )
    np.testing.assert_allclose(cal.correct_g(g_meas, corr), g_true, atol=1e-12)
    np.testing.assert_allclose(corr.scale, np.linalg.inv(distortion) * 0.01, atol=1e-15)
    record = json.loads(json.dumps(corr.to_metadata()))
    again = cal.ScaleCorrection.from_metadata(record)
    np.testing.assert_allclose(again.matrix, corr.matrix)
    assert again.source == "test" and record["angle_true_deg"] == 90.0


def test_affine_correction_refuses_parallel_reflections():
    with pytest.raises(ValueError, match="parallel"):
        cal.affine_correction([[0, 2.5], [0, 5.0]], [0.4, 0.2], pixel_size=0.01)
    with pytest.raises(ValueError, match="one plane per reflection"):
        cal.correction_from_planes([[0, 2.5]], "Pd", [(1, 1, 1), (2, 0, 0)], pixel_size=0.01)


def test_correct_maps_of_a_distorted_synthetic_lattice():
    # A square 0.4 nm lattice scanned 5 % too fast along x: with the nominal pixel size
    # the x fringes read 0.4/1.05 nm.  After the affine correction d is the true 0.4 nm
    # on both axes and the strain of the uniform lattice is zero.
    g_seen = np.array([[0, 2.5 * 1.05], [-2.5, 0]])
    image, _ = hf.synthetic_lattice((256, 256), pixel_size=0.02, reflections=g_seen)
    maps = hf.analyze(image, g_seen, pixel_size=0.02, window=64, step=16)
    corr = cal.affine_correction(
        maps.reflections, [0.4, 0.4], pixel_size=0.02, angle_true=90.0, source="test"
    )
    fixed = cal.correct_maps(maps, corr)
    np.testing.assert_allclose(np.nanmedian(fixed.d_spacing, axis=(1, 2)), [0.4, 0.4], rtol=1e-3)
    np.testing.assert_allclose(fixed.reflections, [[0, 2.5], [-2.5, 0]], atol=1e-9)
    np.testing.assert_allclose(corr.scale, np.diag([0.02, 0.021]), rtol=1e-12)
    assert fixed.parameters["calibration"]["kind"] == "affine"
    assert "calibration" not in maps.parameters
    assert abs(np.nanmedian(fixed.strain.exx)) < 1e-3
    assert abs(np.nanmedian(fixed.strain.eyy)) < 1e-3


def test_mos2_affine_correction_to_0_2737(shared_data):
    # Issue 9 item 5: MoS2 {100} measure 0.252–0.266 nm with the nominal, distorted scale;
    # after an affine correction from two of them to 0.2737 nm all three are within 0.5 %.
    (mg, *_) = hf.read_micrographs(shared_data / "dm3" / "example_Se_implanted_MoS2.dm3")
    pixel = float(mg.scale[-1])
    g = hf.find_reflections(mg.data, pixel_size=pixel)[:3]
    assert np.all(np.abs(g_spacing(g) / 0.2737 - 1) > 0.02)  # visibly off before
    corr = cal.correction_from_planes(g[:2], "MoS2", [(1, 0, 0), (0, 1, 0)], pixel_size=mg.scale)
    assert corr.angle_true == 60.0
    np.testing.assert_allclose(g_spacing(cal.correct_g(g, corr)), 0.2737, rtol=5e-3)
    # The maps (window medians rather than the region's peak) follow within 1 %.
    maps = cal.correct_maps(hf.analyze(mg.data, g, pixel_size=pixel, window=128, step=16), corr)
    np.testing.assert_allclose(np.nanmedian(maps.d_spacing, axis=(1, 2)), 0.2737, rtol=1e-2)


def test_layer_geometry_and_residual_reproduce_the_full_correction():
    # A layer shown with the mean corrected pixel size and the residual affine, and maps
    # measured with that pixel size then corrected by the residual, give the true g.
    distortion = np.array([[1.05, 0.02], [0.02, 0.97]])
    g_true = np.array([[0, 2.5], [-2.5, 0], [-2.5, 2.5]])
    g_nominal = g_true @ np.linalg.inv(distortion)
    corr = cal.affine_correction(g_nominal[:2], [0.4, 0.4], pixel_size=0.01, angle_true=90.0)
    geometry = cal.layer_geometry(corr)
    assert abs(np.linalg.det(geometry["affine"])) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(geometry["pixel_size"] * geometry["affine"], corr.scale)
    g_measured = g_nominal * 0.01 / geometry["pixel_size"]
    residual = cal.residual_correction(corr)
    np.testing.assert_allclose(cal.correct_g(g_measured, residual), g_true, atol=1e-12)
    iso = cal.isotropic_correction([[0, 2.6]], 0.4, pixel_size=0.01)
    assert cal.residual_correction(iso) is None
    np.testing.assert_allclose(cal.layer_geometry(iso)["affine"], np.eye(2))
