"""Geometric phase analysis (core/gpa.py) on synthetic lattices with a known answer."""

import dask.array as da
import numpy as np
import pytest

from napari_hrtem_fft.core.engine import analyze
from napari_hrtem_fft.core.gpa import analyze_gpa, gpa_window, matched_resolution
from napari_hrtem_fft.core.synthetic import (
    dilatation_mapping,
    pd_110_reflections,
    pd_core_shell_sample,
    rotation_mapping,
    synthetic_lattice,
)

PIXEL = 0.02
REFL = pd_110_reflections(10.0)


def _lattice(mapping=None, shape=(384, 384), **kw):
    return synthetic_lattice(
        shape, pixel_size=PIXEL, reflections=REFL, mapping=mapping, dtype=np.float32, **kw
    )


@pytest.mark.parametrize(
    ("mapping", "exx", "rotation"),
    [(None, 0.0, 0.0), (dilatation_mapping(1.02), 0.02, 0.0), (rotation_mapping(1.0), 0.0, 1.0)],
)
def test_uniform_lattices_exact(mapping, exx, rotation):
    img, truth = _lattice(mapping)
    maps = analyze_gpa(img, REFL, pixel_size=PIXEL, step=4, resolution_nm=0.8)
    d_err, a_err = truth.map_errors(maps)
    valid = np.isfinite(d_err)
    # Every pixel 1.5 resolutions from the edges is valid, the others NaN.
    margin = 60  # 1.5 · 0.8 nm / 0.02 nm
    centres = np.arange(0, 384, 4)
    inside = (centres >= margin) & (centres <= 383 - margin)
    assert np.array_equal(valid, np.broadcast_to(inside[:, None] & inside[None, :], valid.shape))
    # The lattice wrapped round from the opposite edge reaches the pixels 1.5 FWHM from
    # it with a weight of ~1e-4 (measured up to 1.0e-4 in d); 2.5 FWHM (100 pixels) in,
    # only float32 round-off is left.
    assert np.nanmax(np.abs(d_err)) < 2e-4
    assert np.nanmax(np.abs(a_err)) < 1e-2
    deep = slice(25, 71)  # map pixels 100 ... 283
    assert np.max(np.abs(d_err[:, deep, deep])) < 2e-6
    assert np.max(np.abs(a_err[:, deep, deep])) < 2e-4
    s = maps.strain
    np.testing.assert_allclose(np.nanmedian(s.exx), exx, atol=2e-6)
    np.testing.assert_allclose(np.nanmedian(s.eyy), exx, atol=2e-6)
    np.testing.assert_allclose(np.nanmedian(s.rotation), rotation, atol=1e-4)
    assert maps.parameters["method"] == "gpa"
    assert maps.parameters["resolution_nm"] == 0.8
    assert maps.window == gpa_window(0.8, PIXEL) == 2 * margin
    for field in ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma", "phase"):
        assert getattr(maps, field).dtype == np.float32
        assert getattr(maps, field).shape == (3, 96, 96)


def test_phase_follows_a_rigid_shift():
    """P_g = -2π g·u: a lattice moved by u has its phase moved by -2π g·u (mod 2π)."""
    u = np.array([0.031, -0.047])  # nm, (uy, ux)
    phases = np.array([0.3, -1.2, 2.0])
    img0, _ = _lattice(phases=phases)
    img1, _ = _lattice(phases=phases - 2 * np.pi * REFL @ u)
    m0 = analyze_gpa(img0, REFL, pixel_size=PIXEL, step=8, resolution_nm=0.8)
    m1 = analyze_gpa(img1, REFL, pixel_size=PIXEL, step=8, resolution_nm=0.8)
    diff = np.angle(np.exp(1j * (m1.phase - m0.phase)))
    expected = np.angle(np.exp(-2j * np.pi * REFL @ u))
    for k in range(3):
        np.testing.assert_allclose(np.nanmedian(diff[k]), expected[k], atol=1e-4)
    # The phase of an unshifted lattice is the fringe's own phase, relative to the image
    # origin (cos(2π g·r + φ) gives P = φ), within (-π, π].
    np.testing.assert_allclose(np.nanmedian(m0.phase, axis=(1, 2)), phases, atol=1e-4)
    assert np.nanmax(m0.phase) <= np.pi and np.nanmin(m0.phase) > -np.pi


def test_core_shell_accuracy_and_noise():
    """Away from the interface GPA at matched resolution is as accurate as analyze()."""
    img, truth = pd_core_shell_sample((768, 768), noise=0.2, amorphous=0.1, seed=1)
    gpa = analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=8, window=128)
    loc = analyze(img, truth.reflections, pixel_size=PIXEL, step=8, window=128)
    yy, xx = np.mgrid[0:768:8, 0:768:8] * PIXEL
    far = truth.interior(128)[::8, ::8] & (np.abs(np.hypot(yy - 7.68, xx - 7.68) - 4.0) > 2.0)
    assert far.sum() > 400
    rms = [np.sqrt(np.nanmean(truth.map_errors(m, far)[0] ** 2)) for m in (gpa, loc)]
    bias = np.nanmean(truth.map_errors(gpa, far)[0])
    # Measured 0.21 % and 0.28 % (fringes 0.2, white noise 0.2, film 0.1).
    assert rms[0] < 0.003
    assert rms[0] < 1.2 * rms[1]
    assert abs(bias) < 3e-4
    # Predicted sigmas follow the observed scatter within a factor of two (white noise
    # model, the amorphous film adds coloured noise).
    d_err = truth.map_errors(gpa, far)[0] * truth.d_spacing[:, ::8, ::8][:, far]
    ratio = np.sqrt(np.nanmean(d_err**2)) / np.sqrt(
        np.nanmean(np.asarray(gpa.d_sigma)[:, far] ** 2)
    )
    assert 0.5 < ratio < 2.0
    # The shell is 3.5 % larger: median of the strain in the shell ring.
    rho = np.hypot(yy - 7.68, xx - 7.68)
    shell = (rho > 5.2) & (rho < 6.0)
    np.testing.assert_allclose(np.nanmedian(gpa.strain.exx[shell]), 0.035, atol=0.002)


def test_dask_blocks_match_numpy():
    img, truth = pd_core_shell_sample((768, 768), noise=0.1, seed=2)
    ref = analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=8, window=128)
    lazy = analyze_gpa(
        da.from_array(img, chunks=384),
        truth.reflections,
        pixel_size=PIXEL,
        step=8,
        window=128,
        chunks=384,
    )
    assert isinstance(lazy.d_spacing, da.Array)
    d = lazy.d_spacing.compute()
    assert d.shape == ref.d_spacing.shape
    strong = np.asarray(ref.amplitude) > 100
    assert strong.sum() > 1000
    np.testing.assert_allclose(d[strong], ref.d_spacing[strong], rtol=1e-4)
    dphi = np.angle(np.exp(1j * (lazy.phase.compute() - ref.phase)))
    assert np.max(np.abs(dphi[strong])) < 1e-3
    np.testing.assert_array_equal(np.isnan(lazy.amplitude.compute()), np.isnan(ref.amplitude))
    # A stack whose last block would be thinner than the overlap (512 = 344 + 168 < 176):
    # it is merged into the previous block.
    stack = da.from_array(np.stack([img[:512, :512], img[:512, :512]]), chunks=(1, 256, 256))
    small = analyze_gpa(stack, truth.reflections, pixel_size=PIXEL, step=8, window=128, chunks=256)
    assert small.d_spacing.chunks[-2:] == ((64,), (64,))
    one = analyze_gpa(img[:512, :512], truth.reflections, pixel_size=PIXEL, step=8, window=128)
    strong = np.asarray(one.amplitude) > 100
    for t in range(2):
        np.testing.assert_allclose(
            small.d_spacing[:, t].compute()[strong], one.d_spacing[strong], rtol=1e-4
        )


def test_stack_and_missing_pixels():
    img, _ = _lattice(shape=(256, 256))
    holed = img.copy()
    holed[100, 120] = np.nan
    maps = analyze_gpa(np.stack([img, holed]), REFL, pixel_size=PIXEL, step=8, resolution_nm=0.6)
    assert maps.d_spacing.shape == (3, 2, 32, 32)
    margin = 45  # 1.5 · 0.6 nm / 0.02 nm
    near = (np.abs(np.arange(32)[:, None] * 8 - 100) <= margin) & (
        np.abs(np.arange(32)[None, :] * 8 - 120) <= margin
    )
    assert np.all(np.isnan(maps.phase[:, 1][:, near]))
    assert np.all(np.isfinite(maps.phase[:, 0][:, near]))
    far = ~near & np.isfinite(maps.d_spacing[0, 0])
    np.testing.assert_allclose(
        maps.d_spacing[:, 1][:, far], maps.d_spacing[:, 0][:, far], rtol=1e-4
    )


def test_matched_resolution_and_weak_regions():
    # A Hann window's 10-90 % step width is 0.482 N, a Gaussian's 1.088 FWHM.
    assert matched_resolution(128, 0.02) == pytest.approx(128 * 0.02 * 0.4824 / 1.0884, rel=1e-3)
    img, _ = pd_core_shell_sample((768, 768), radius=3.0, core_radius=1.5)
    maps = analyze_gpa(img, REFL, pixel_size=PIXEL, step=8)
    # On the film, 1.5 nm beyond the particle, the amplitude is at its noise level (mean
    # 1 for white noise; measured 1.1-1.3 on the film): d is NaN there, amplitude and
    # phase stay finite where the image has data.
    yy, xx = np.mgrid[0:768:8, 0:768:8] * PIXEL
    film = (np.hypot(yy - 7.68, xx - 7.68) > 4.5) & np.isfinite(maps.amplitude[0])
    assert film.sum() > 3000
    assert np.all(np.nanmean(maps.amplitude[:, film], axis=1) < 1.5)
    assert np.mean(np.isnan(maps.d_spacing[:, film])) > 0.99
    assert np.all(np.isfinite(maps.phase[:, film]))


def test_errors():
    img = np.zeros((256, 256), np.float32)
    with pytest.raises(ValueError, match="not both"):
        analyze_gpa(img, REFL, pixel_size=PIXEL, resolution_nm=1.0, window=64)
    with pytest.raises(ValueError, match="too fine"):
        analyze_gpa(img, REFL, pixel_size=PIXEL, resolution_nm=0.2)
    with pytest.raises(ValueError, match="Nyquist"):
        analyze_gpa(img, [[0, 30.0]], pixel_size=PIXEL)
    with pytest.raises(ValueError, match="edges"):
        analyze_gpa(img[:64], REFL, pixel_size=PIXEL, resolution_nm=1.0)
    with pytest.raises(ValueError, match="pixel_size"):
        analyze_gpa(img, REFL, pixel_size=-1)
    with pytest.raises(TypeError, match="step"):
        analyze_gpa(img, REFL, pixel_size=PIXEL, step=2.5)
    with pytest.raises(TypeError, match="real"):
        analyze_gpa(img.astype(complex), REFL, pixel_size=PIXEL)
    with pytest.raises(ValueError, match="search"):
        analyze_gpa(img, REFL, pixel_size=PIXEL, search=0.0)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        analyze_gpa(img, [1.0, 2.0, 3.0], pixel_size=PIXEL)


def test_coarse_step_is_the_fine_maps_subsampled():
    """Map pixel (i, j) is image pixel (i·step, j·step) for any step: at step 32 the
    masked spectrum is wider than the map grid and folds onto itself (aliases summed)."""
    img, truth = pd_core_shell_sample((512, 512), noise=0.1)
    fine = analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=4, resolution_nm=0.6)
    coarse = analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=32, resolution_nm=0.6)
    assert coarse.d_spacing.shape == (3, 16, 16)
    np.testing.assert_allclose(coarse.d_spacing, fine.d_spacing[:, ::8, ::8], rtol=1e-5)
    dphi = np.angle(np.exp(1j * (coarse.phase - fine.phase[:, ::8, ::8])))
    assert np.nanmax(np.abs(dphi)) < 1e-5


def test_real_image_matches_local_fft(shared_data):
    """PZO.dm3 (HAADF, 0.016 nm/px): GPA at matched resolution agrees with analyze()."""
    from napari_hrtem_fft.core.fft import find_reflections
    from napari_hrtem_fft.core.phase import displacement, find_dislocations
    from napari_hrtem_fft.io import read_micrographs

    (mg,) = read_micrographs(shared_data / "dm3" / "PZO.dm3")
    img = np.asarray(mg.data, dtype=np.float32)
    px = float(mg.scale[-1])
    g = find_reflections(img, pixel_size=px, max_count=2)
    gpa = analyze_gpa(img, g, pixel_size=px, step=4, window=128)
    loc = analyze(img, g, pixel_size=px, step=4, window=128)
    both = np.all(np.isfinite(gpa.d_spacing) & np.isfinite(loc.d_spacing), axis=0)
    assert both.sum() > 5000
    ratio = np.asarray(gpa.d_spacing)[:, both] / np.asarray(loc.d_spacing)[:, both]
    # Measured: medians equal within 1e-4, RMS difference 0.03-0.04 % against a scatter
    # of d itself of 0.14-0.16 %.
    np.testing.assert_allclose(np.median(ratio, axis=1), 1.0, atol=2e-4)
    assert np.all(np.sqrt(np.mean((ratio - 1) ** 2, axis=1)) < 1e-3)
    # A perfect crystal: no dislocation core, and a continuous displacement.
    assert len(find_dislocations(gpa)) == 0
    u = displacement(gpa)
    assert np.nanmax(np.hypot(*np.diff(u, axis=-1))) < 0.02


def test_sigmas_follow_the_scatter_under_white_noise():
    img, truth = _lattice(shape=(768, 768), noise=0.4, seed=3)
    maps = analyze_gpa(img, REFL, pixel_size=PIXEL, step=8, window=64)
    d_err, a_err = truth.map_errors(maps)
    d_err = d_err * truth.d_spacing[:, ::8, ::8]

    def rms(v):
        return np.sqrt(np.nanmean(np.square(v), axis=(1, 2)))

    # Measured 0.98-1.03 (d) and 0.95-0.97 (angle).
    assert np.all(np.abs(rms(d_err) / rms(maps.d_sigma) - 1) < 0.1)
    assert np.all(np.abs(rms(a_err) / rms(maps.angle_sigma) - 1) < 0.1)
