"""Post-processing of lattice maps: known answers for clean, smooth and the masks."""

import copy

import numpy as np
import pytest
from scipy import ndimage, signal

from napari_hrtem_fft.core.fft import hann_window
from napari_hrtem_fft.core.maps import LatticeMaps
from napari_hrtem_fft.core.postprocess import (
    apply_mask,
    clean,
    crystal_mask,
    intensity_mask,
    mask_to_map,
    otsu_threshold,
    smooth,
)
from napari_hrtem_fft.core.reciprocal import g_from_spacing_angle
from napari_hrtem_fft.core.strain import strain

D0 = np.array([0.2246, 0.1945])
A0 = np.array([64.7, 10.0])


def _maps(d, angle, amplitude=None, *, window=128, step=8, with_strain=False):
    d = np.asarray(d, dtype=np.float64)
    maps = LatticeMaps(
        d_spacing=d,
        angle=np.asarray(angle, dtype=np.float64),
        amplitude=np.ones_like(d) if amplitude is None else np.asarray(amplitude, float),
        d_sigma=np.full_like(d, 1e-4),
        angle_sigma=np.full_like(d, 0.05),
        reflections=g_from_spacing_angle(D0[: d.shape[0]], A0[: d.shape[0]]),
        window=window,
        step=step,
        pixel_size=0.02,
        parameters={"window": window},
    )
    if with_strain:
        maps.strain = strain(maps)
    return maps


def _uniform(shape=(10, 12)):
    d = np.broadcast_to(D0[:, None, None], (2, *shape)).copy()
    a = np.broadcast_to(A0[:, None, None], (2, *shape)).copy()
    return d, a


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


# ---------------------------------------------------------------------- clean


def test_clean_removes_spacing_and_angle_outliers_only():
    d, a = _uniform()
    d[0, 2, 3] *= 1.08  # 8 % off: rejected at 5 %
    d[0, 4, 4] *= 1.04  # 4 % off: kept
    a[1, 5, 6] += 7.0  # rejected at 5°
    a[1, 6, 6] -= 4.0  # kept
    maps = _maps(d, a, with_strain=True)
    before = copy.deepcopy(maps)
    out = clean(maps, d_tolerance=0.05, angle_tolerance=5.0)
    assert np.isnan(out.d_spacing[0, 2, 3]) and np.isnan(out.angle[0, 2, 3])
    assert np.isnan(out.d_sigma[0, 2, 3]) and np.isnan(out.angle_sigma[0, 2, 3])
    assert np.isnan(out.d_spacing[1, 5, 6])
    assert np.count_nonzero(np.isnan(out.d_spacing)) == 2
    assert out.d_spacing[0, 4, 4] == d[0, 4, 4] and out.angle[1, 6, 6] == a[1, 6, 6]
    # The amplitude stays a valid measurement.
    assert not np.any(np.isnan(out.amplitude))
    # Strain recomputed: NaN where either reflection was rejected.
    assert np.isnan(out.strain.exx[2, 3]) and np.isnan(out.strain.exx[5, 6])
    assert np.count_nonzero(np.isnan(out.strain.rotation)) == 2
    np.testing.assert_allclose(out.strain.reference, maps.strain.reference)
    # Input untouched, provenance recorded.
    for name in ("d_spacing", "angle", "d_sigma"):
        np.testing.assert_array_equal(getattr(maps, name), getattr(before, name))
    assert "postprocessing" not in maps.parameters
    assert out.parameters["postprocessing"][0]["clean"]["d_tolerance"] == 0.05
    np.testing.assert_allclose(out.parameters["postprocessing"][0]["clean"]["reference_d_nm"], D0)


def test_clean_median_reference_follows_strained_maps():
    # The whole map is 3 % expanded: relative to its own median nothing is an outlier,
    # relative to the analysed (unstrained) reflections every pixel is, at 2 %.
    d, a = _uniform()
    d *= 1.03
    maps = _maps(d, a)
    assert not np.any(np.isnan(clean(maps, d_tolerance=0.02).d_spacing))
    out = clean(maps, d_tolerance=0.02, reference=maps.reflections)
    assert np.all(np.isnan(out.d_spacing))


def test_clean_angle_wraps_at_180():
    d, a = _uniform((4, 4))
    a[0] = np.where(np.arange(16).reshape(4, 4) % 2, 179.5, -179.6)
    maps = _maps(d, a)
    maps.reflections[0] = g_from_spacing_angle(D0[0], 179.9)
    out = clean(maps, angle_tolerance=1.0)
    assert not np.any(np.isnan(out.angle))
    a[0, 0, 0] = 177.0  # 2.9° from the ±180° cluster
    out = clean(_maps(d, a), angle_tolerance=1.0)
    assert np.isnan(out.angle[0, 0, 0]) and np.count_nonzero(np.isnan(out.angle)) == 1


def test_clean_isolated_pixels():
    d, a = _uniform((7, 7))
    d[0] = np.nan
    d[0, 3, 3] = D0[0]  # alone among NaN
    d[0, 0:2, 5:7] = D0[0]  # a 2×2 block: 3 neighbours each
    out = clean(_maps(d, a), min_neighbors=2)
    assert np.isnan(out.d_spacing[0, 3, 3])
    assert np.all(np.isfinite(out.d_spacing[0, 0:2, 5:7]))
    assert np.all(np.isfinite(out.d_spacing[1]))


def test_clean_bad_options():
    d, a = _uniform()
    with pytest.raises(ValueError, match="d_tolerance"):
        clean(_maps(d, a), d_tolerance=-1)
    with pytest.raises(ValueError, match="reference"):
        clean(_maps(d, a), reference=np.ones((3, 2)))
    with pytest.raises(TypeError, match="maps"):
        clean(d)


# --------------------------------------------------------------------- smooth


def test_smooth_block_is_nan_aware_mean():
    d, a = _uniform((6, 6))
    rng = np.random.default_rng(0)
    d[0] = D0[0] * (1 + 0.01 * rng.standard_normal((6, 6)))
    d[0, 2, 3] = np.nan
    out = smooth(_maps(d, a), 3, method="block")
    # d comes back from the mean of g = 1/d (along a fixed direction): harmonic mean.
    neigh = d[0, 1:4, 1:4]  # includes the NaN at (2, 3)
    expected = 1.0 / np.nanmean(1.0 / neigh)
    assert out.d_spacing[0, 2, 2] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(out.d_spacing[0, 2, 3])
    # Corner: only the 4 in-image values count (no zero padding).
    assert out.d_spacing[0, 0, 0] == pytest.approx(1 / np.mean(1 / d[0, :2, :2]), rel=1e-12)
    np.testing.assert_allclose(out.angle[0][np.isfinite(d[0])], A0[0], atol=1e-9)
    assert np.isnan(out.angle[0, 2, 3])


def test_smooth_linear_ramp_interior_and_constant_with_holes():
    d, a = _uniform((9, 9))
    a[1] = 10.0 + 0.1 * np.arange(9)[None, :]  # small angle ramp, d constant
    d[0, ::3, ::2] = np.nan
    for method, size in (("block", 3), ("gaussian", 1.0), ("median", 3)):
        out = smooth(_maps(d, a), size, method=method)
        np.testing.assert_allclose(out.d_spacing[0][np.isfinite(d[0])], D0[0], rtol=1e-12)
        assert np.array_equal(np.isnan(out.d_spacing), np.isnan(d))
        # Symmetric filters keep a linear ramp away from the edges (to first order in the
        # angle step, since g is averaged: 1e-5 deg).
        np.testing.assert_allclose(out.angle[1, 3:6, 3:6], a[1, 3:6, 3:6], atol=1e-4)


def test_smooth_median_removes_spike_and_angles_average_across_180():
    d, a = _uniform((5, 5))
    d[0, 2, 2] *= 1.5
    a[1] = np.where(np.indices((5, 5)).sum(axis=0) % 2, 179.9, -179.9)
    out = smooth(_maps(d, a), 3, method="median")
    assert out.d_spacing[0, 2, 2] == pytest.approx(D0[0], rel=1e-12)
    out = smooth(_maps(d, a), 3, method="block")
    # The mean of ±179.9° is 180°, not 0°.
    assert np.all(np.abs(np.abs(out.angle[1, 1:4, 1:4]) - 180.0) < 0.05)


def test_smooth_recomputes_strain_and_keeps_input():
    d, a = _uniform((6, 6))
    d[:, :, 3:] *= 1.02
    maps = _maps(d, a, with_strain=True)
    out = smooth(maps, 3, method="block")
    assert out.strain is not None
    np.testing.assert_allclose(out.strain.exx[:, 0], 0.0, atol=1e-12)
    # Column 2 averages columns 1-3: g mean of (1, 1, 1/1.02) -> spacing 1/mean(g).
    expected = 1.0 / np.mean([1, 1, 1 / 1.02]) - 1.0
    np.testing.assert_allclose(out.strain.exx[1:-1, 2], expected, rtol=1e-9)
    np.testing.assert_array_equal(maps.d_spacing, d)


def test_smooth_dask_lazy():
    da = pytest.importorskip("dask.array")
    d, a = _uniform((8, 8))
    d[0, 3, 3] = np.nan
    maps = _maps(d, a)
    lazy = _maps(d, a)
    lazy.d_spacing = da.from_array(d, chunks=(1, 4, 4))
    lazy.angle = da.from_array(a, chunks=(1, 4, 4))
    out = smooth(lazy, 1.5, method="gaussian")
    assert isinstance(out.d_spacing, da.Array)
    ref = smooth(maps, 1.5, method="gaussian")
    np.testing.assert_allclose(out.d_spacing.compute(), ref.d_spacing, rtol=1e-12)


def test_smooth_bad_options():
    d, a = _uniform()
    with pytest.raises(ValueError, match="method"):
        smooth(_maps(d, a), 3, method="mean")
    with pytest.raises(ValueError, match="size"):
        smooth(_maps(d, a), 0)
    with pytest.raises(ValueError, match="size"):
        smooth(_maps(d, a), -1.0, method="gaussian")


# ---------------------------------------------------------------------- masks


def test_otsu_threshold_between_two_modes():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1, 4000), rng.normal(10, 1, 4000), [np.nan]])
    assert otsu_threshold(values) == pytest.approx(5.0, abs=0.3)
    # Unequal classes: still in the gap between the modes (3σ from each).
    values = np.concatenate([rng.normal(0, 1, 5000), rng.normal(10, 1, 3000)])
    assert 3.0 < otsu_threshold(values) < 7.0
    with pytest.raises(ValueError, match="distinct"):
        otsu_threshold(np.ones(10))


def _particle_amplitude(shape, radius, window, step, contrast, seed):
    """Peak strength of a crystal disc on film: 1 + C·f², f the Hann-weighted share of
    the window inside the crystal, with exponential (speckle) noise."""
    yy, xx = np.indices(shape)
    particle = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) <= radius
    hann = hann_window(window)
    share = signal.fftconvolve(particle.astype(float), hann / hann.sum(), mode="same")
    share = np.clip(share[::step, ::step], 0, 1)
    rng = np.random.default_rng(seed)
    amp = rng.exponential(1.0, share.shape) + contrast * share**2 * rng.gamma(20, 1 / 20)
    return particle, amp


def _edge_distance(mask, particle, step):
    """Largest distance (image px) between the map mask's edge and the particle's edge,
    either way; map pixel (i, j) stands for image pixel (i·step, j·step)."""

    def edge(m):
        return m & ~ndimage.binary_erosion(m, border_value=1)

    truth = particle[::step, ::step]
    to_truth = ndimage.distance_transform_edt(~edge(truth))[edge(mask)]
    to_mask = ndimage.distance_transform_edt(~edge(mask))[edge(truth)]
    return step * max(to_truth.max(initial=0), to_mask.max(initial=0))


@pytest.mark.parametrize("contrast", [30.0, 1000.0])
def test_crystal_mask_geometry_known_particle(contrast):
    window, step = 128, 8
    particle, amp = _particle_amplitude((768, 768), 250, window, step, contrast, seed=3)
    n = np.ones_like(amp)
    maps = _maps(n[None] * D0[0], n[None] * A0[0], amp[None], window=window, step=step)
    mask = crystal_mask(maps)
    assert mask.shape == amp.shape and mask.dtype == bool
    # The default mask is the particle: its edge within window/4 of the true edge.
    assert _iou(mask, particle[::step, ::step]) > 0.9
    assert _edge_distance(mask, particle, step) <= window / 4
    # margin=window/2 keeps only the windows wholly inside.
    inside = ndimage.distance_transform_edt(particle) > window // 2
    eroded = crystal_mask(maps, margin=window / 2)
    assert _iou(eroded, inside[::step, ::step]) > 0.9


def test_crystal_mask_keeps_a_crystal_that_fills_the_image():
    # A lattice everywhere whose peak strength varies 300-fold across the image (thickness,
    # focus) and by a factor 20 between neighbouring windows: every window is crystal.
    rng = np.random.default_rng(8)
    xx = np.indices((60, 80))[1]
    amp = 200.0 * 300.0 ** (xx / 79.0) * rng.lognormal(0.0, 0.8, xx.shape)
    amp = amp[None]
    amp[:, :, :4] = np.nan  # windows reaching beyond the image
    maps = _maps(np.full_like(amp, 0.2), np.zeros_like(amp), amp)
    mask = crystal_mask(maps)
    np.testing.assert_array_equal(mask, np.isfinite(amp[0]))


def test_crystal_mask_significance_follows_the_analysis():
    # Windows below the analysis' min_amplitude are not crystal; a small film patch of
    # weak but significant windows (no window wholly inside it) far from the crystal is
    # judged against the crystal's level.
    amp = np.ones((1, 60, 60))
    amp[0, 10:50, 5:30] = 400.0
    amp[0, 23:27, 48:52] = 14.0  # faint patch in the film
    maps = _maps(np.full_like(amp, 0.2), np.zeros_like(amp), amp, window=32, step=8)
    mask = crystal_mask(maps)
    assert mask[30, 15] and not mask[25, 50] and not mask[5, 5]
    maps.parameters["min_amplitude"] = 0.5
    assert crystal_mask(maps).all()  # every window significant: nothing to trim


def test_crystal_mask_min_reflections_threshold_and_small_objects():
    amp = np.ones((2, 30, 30))
    amp[0, 5:25, 5:25] = 100.0
    amp[1, 5:25, 5:15] = 100.0
    amp[0, 1, 1] = 100.0  # one hot pixel: removed as a small object
    maps = _maps(np.full_like(amp, 0.2), np.zeros_like(amp), amp, window=32, step=8)
    one = crystal_mask(maps, threshold=10.0, margin=0)
    expected = amp[0] > 10.0
    expected[1, 1] = False  # an object smaller than min_size (here (32/8)²/4 = 4 px)
    np.testing.assert_array_equal(one, expected)
    both = crystal_mask(maps, threshold=[10.0, 10.0], min_reflections=2, margin=0)
    np.testing.assert_array_equal(both, (amp[0] > 10) & (amp[1] > 10))
    # Erosion by margin 8 image px = 1 map px.
    eroded = crystal_mask(maps, threshold=10.0, margin=8, opening=0, closing=0)
    assert eroded.sum() == 18 * 18
    with pytest.raises(ValueError, match="min_reflections"):
        crystal_mask(maps, min_reflections=3)


def test_crystal_mask_movie_shape():
    amp = np.ones((1, 3, 20, 20))
    amp[0, :, 4:16, 4:16] = 50.0
    maps = _maps(np.full_like(amp, 0.2), np.zeros_like(amp), amp, window=16, step=4)
    mask = crystal_mask(maps, threshold=5.0, margin=0)
    assert mask.shape == (3, 20, 20)
    np.testing.assert_array_equal(mask[2], amp[0, 2] > 5)


def test_crystal_mask_on_engine_maps():
    engine = pytest.importorskip("napari_hrtem_fft.core.engine", reason="core.engine not yet")
    from napari_hrtem_fft.core.synthetic import pd_core_shell_sample

    image, truth = pd_core_shell_sample((768, 768), radius=5.0, core_radius=3.0, seed=2)
    refl = truth.reflections
    window, step = 128, 16
    maps = engine.analyze(image, refl, pixel_size=truth.pixel_size, window=window, step=step)
    mask = crystal_mask(maps)
    assert _iou(mask, truth.particle[::step, ::step]) > 0.9
    assert _edge_distance(mask, truth.particle, step) <= window / 4


@pytest.mark.parametrize(
    "name",
    [
        "ncem_emd/Acquisition_18.emd",
        "tia/16_STOimage.emi",
        "dm3/example_Se_implanted_MoS2.dm3",
        "dm3/PZO.dm3",
        "dm4/PTO100-40nm-HAADF.dm4",
    ],
)
def test_crystal_mask_keeps_real_crystal(shared_data, name):
    # Crystalline throughout: the default mask keeps >= 97 % of the windows with a
    # finite d (window 128, step 8, the suggested reflections).
    from napari_hrtem_fft.core.engine import analyze
    from napari_hrtem_fft.core.fft import find_reflections
    from napari_hrtem_fft.io import read_micrographs

    (mg,) = read_micrographs(shared_data / name)
    image = np.asarray(mg.data, dtype=np.float64)
    pixel = float(mg.scale[-1])
    g = find_reflections(image, pixel_size=pixel, window=128)[:2]
    maps = analyze(image, g, pixel_size=pixel, window=128, step=8)
    finite = np.any(np.isfinite(maps.d_spacing), axis=0)
    assert finite.mean() > 0.2  # PTO: 0 before the engine's background change
    kept = (crystal_mask(maps) & finite).sum() / finite.sum()
    assert kept >= 0.97


def test_intensity_mask_bright_and_dark_particle():
    yy, xx = np.indices((200, 240))
    disc = np.hypot(yy - 100, xx - 110) <= 60
    rng = np.random.default_rng(4)
    fringes = 0.3 * np.cos(2 * np.pi * xx / 9.0)
    image = 1.0 + 1.0 * disc + disc * fringes + 0.2 * rng.standard_normal(disc.shape)
    image[5, 5] = 1e6  # hot pixel: ignored by the percentile normalisation
    mask = intensity_mask(image, 0.5, sigma=4.0)
    assert mask.shape == image.shape
    assert _iou(mask, disc) > 0.95
    dark = intensity_mask(2.0 - image, 0.5, sigma=4.0, dark=True)
    assert _iou(dark, disc) > 0.95
    stack = intensity_mask(np.stack([image, image]), 0.5)
    np.testing.assert_array_equal(stack[1], mask)
    with pytest.raises(ValueError, match="threshold"):
        intensity_mask(image, 1.5)
    with pytest.raises(TypeError, match="image"):
        intensity_mask(image.astype(complex), 0.5)


def test_mask_to_map_and_apply_mask():
    image_mask = np.zeros((37, 50), bool)
    image_mask[8:24, 16:40] = True
    m = mask_to_map(image_mask, 8)
    assert m.shape == (5, 7)  # ceil(37/8), ceil(50/8)
    np.testing.assert_array_equal(m, image_mask[::8, ::8])
    d, a = _uniform((5, 7))
    maps = _maps(d, a, with_strain=True)
    out = apply_mask(maps, m)
    for name in ("d_spacing", "angle", "amplitude", "d_sigma", "angle_sigma"):
        values = getattr(out, name)
        assert np.all(np.isnan(values[:, ~m])) and np.all(np.isfinite(values[:, m]))
    assert np.all(np.isnan(out.strain.exx[~m])) and np.all(np.isfinite(out.strain.exx[m]))
    # Masked, not recomputed: the strain of the masked fields, value for value.
    from napari_hrtem_fft.core.strain import strain

    again = strain(out, reference=maps.strain.reference)
    for name, value in out.strain.components().items():
        np.testing.assert_array_equal(value, getattr(again, name))
        assert value.dtype == getattr(again, name).dtype
    assert np.all(np.isfinite(maps.d_spacing))
    with pytest.raises(ValueError, match="mask_to_map"):
        apply_mask(maps, image_mask)
    with pytest.raises(TypeError, match="mask"):
        apply_mask(maps, m.astype(int))


def test_crystal_level_filters_match_scipy_direct_filters():
    # The crystal mask's level is read only where it is used, through running sums and a
    # count; both must be scipy's direct filters (the sums to round-off, the percentile
    # test exactly, bounds equal to the percentile included).
    from napari_hrtem_fft.core.postprocess import (
        _disc_footprint,
        _disc_sums_at,
        _percentile_at_most_at,
        _sum_buffer,
    )

    rng = np.random.default_rng(3)
    values = rng.random((61, 47))
    where = rng.random(values.shape) > 0.4
    ys, xs = np.nonzero(where)
    for radius in (1.0, 4.0, 8.0, 16.0):
        disc = _disc_footprint(radius)
        direct = ndimage.percentile_filter(values, 90, footprint=disc, mode="nearest")
        for bound in (direct, np.nextafter(direct, 0), np.full_like(values, 0.5)):
            got = np.zeros(values.shape, dtype=bool)
            got[ys, xs] = _percentile_at_most_at(values, 90, disc, (ys, xs), bound[ys, xs])
            np.testing.assert_array_equal(got, where & (direct <= bound))
        # Two maps summed at once as the real and imaginary parts.
        pair = values + 1j * (values > 0.3)
        for v in (pair, pair[::-1]):
            direct = [
                ndimage.convolve(p, disc.astype(float), mode="constant") for p in (v.real, v.imag)
            ]
            padded, inside = _sum_buffer(v.shape, disc.shape[0] // 2)
            inside[...] = v
            got = _disc_sums_at(padded, disc, (ys, xs))
            np.testing.assert_allclose(got.real, direct[0][ys, xs], rtol=0, atol=1e-11)
            np.testing.assert_allclose(got.imag, direct[1][ys, xs], rtol=0, atol=1e-11)
        # At given pixels with one bound each.
        direct = ndimage.percentile_filter(values, 90, footprint=disc, mode="nearest")
        got = _percentile_at_most_at(values, 90, disc, (ys, xs), direct[ys, xs])
        assert got.all()
        got = _percentile_at_most_at(values, 90, disc, (ys, xs), np.nextafter(direct, 0)[ys, xs])
        assert not got.any()


def _direct_shows_crystal(amp, significant, reach):
    # The crystal mask's step 1 with scipy's direct filters, as documented: the reference
    # for the shortcuts (bounds, running sums, counts) of the fast one.
    from napari_hrtem_fft.core.postprocess import _disc_footprint

    finite = np.isfinite(amp) & (amp > 0)
    logs = np.where(finite, np.log(np.where(finite, amp, 1.0)), 0.0)
    num = ndimage.gaussian_filter(logs, 1.0, mode="constant")
    den = ndimage.gaussian_filter(finite.astype(float), 1.0, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = np.where(finite, np.exp(num / den), np.nan)
    peak = finite & (smooth > significant)
    near = ndimage.binary_dilation(finite & ~peak, structure=_disc_footprint(reach))
    edge, inner = peak & near, peak & ~near
    level_disc = _disc_footprint(2 * reach).astype(float)
    log_inner = np.where(inner, np.log(np.where(inner, smooth, 1.0)), 0.0)
    total = ndimage.convolve(log_inner, level_disc, mode="constant")
    count = ndimage.convolve(inner.astype(float), level_disc, mode="constant")
    fallback = log_inner[inner].mean() if inner.any() else np.log(np.max(smooth[peak], initial=1))
    level = np.exp(np.where(count > 0.5, total / np.maximum(count, 1), fallback))
    strong = ndimage.percentile_filter(
        np.where(peak, smooth, 0.0), 90, footprint=_disc_footprint(reach), mode="nearest"
    )
    keep = (smooth >= level / 4) & (strong <= 4 * smooth)
    return peak & (~edge | keep)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crystal_judged_as_with_direct_filters(seed):
    # Particles of several contrasts and sizes, film patches, NaN borders and holes: the
    # fast judgement (bounds settle most edge windows) is the direct one, pixel for pixel.
    from napari_hrtem_fft.core.postprocess import _shows_crystal

    rng = np.random.default_rng(seed)
    for window, step in ((128, 8), (64, 8), (256, 16), (32, 8)):
        radius = rng.integers(60, 300)
        contrast = rng.choice([20.0, 100.0, 1000.0])
        _, amp = _particle_amplitude((640, 576), radius, window, step, contrast, seed=seed)
        amp[:, : rng.integers(0, 5)] = np.nan
        amp[rng.integers(0, amp.shape[0], 6), rng.integers(0, amp.shape[1], 6)] = np.nan
        reach = window / step / 2
        np.testing.assert_array_equal(
            _shows_crystal(amp, 10.0, reach), _direct_shows_crystal(amp, 10.0, reach)
        )


def test_near_is_the_dilation_by_the_disc():
    # The crystal mask finds film within reach row by row of the disc: it must be the
    # binary dilation by the disc footprint, pixel for pixel, at any radius and density.
    from napari_hrtem_fft.core.postprocess import _disc_footprint, _near

    rng = np.random.default_rng(5)
    for radius in (0.5, 1.0, 2.67, 3.5, 8.0, 8.3, 16.0):
        for density in (0.0, 0.002, 0.05, 0.5, 1.0):
            where = rng.random((97, 131)) < density
            dilated = ndimage.binary_dilation(where, structure=_disc_footprint(radius))
            np.testing.assert_array_equal(_near(where, radius), dilated)


def test_near_of_a_stack_is_each_maps_dilation():
    from napari_hrtem_fft.core.postprocess import _disc_footprint, _near

    rng = np.random.default_rng(6)
    where = rng.random((3, 41, 57)) < np.array([0.0, 0.01, 0.3])[:, None, None]
    got = _near(where, 8.0)
    for k in range(3):
        dilated = ndimage.binary_dilation(where[k], structure=_disc_footprint(8.0))
        np.testing.assert_array_equal(got[k], dilated)


def test_square_morphology_is_scipys():
    # The default opening and closing (discs of radius 1: 3 × 3 squares) and the hole
    # filling are done with whole-array shifts and one labelling: pixel for pixel
    # ndimage's, at every size and density, borders included.
    from napari_hrtem_fft.core.postprocess import (
        _disk,
        _fill_holes,
        _square_dilation,
        _square_erosion,
    )

    square = np.ones((3, 3), bool)
    assert np.array_equal(_disk(1), square)
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (1, 6), (2, 2), (3, 7), (40, 33), (97, 64)]:
        for density in (0.0, 0.1, 0.5, 0.8, 0.97, 1.0):
            m = rng.random(shape) < density
            np.testing.assert_array_equal(
                _square_dilation(m), ndimage.binary_dilation(m, structure=square)
            )
            np.testing.assert_array_equal(
                _square_erosion(m), ndimage.binary_erosion(m, structure=square)
            )
            np.testing.assert_array_equal(_fill_holes(m), ndimage.binary_fill_holes(m))


def test_crystal_judged_the_same_in_a_stack_and_one_map_at_a_time():
    # Maps judged together (shared normalisation of the smoothing, one pass for the
    # edge test) give each map's own result; a map well above significance everywhere
    # is crystal wherever finite without being smoothed.
    from napari_hrtem_fft.core.postprocess import _shows_crystal

    window, step = 128, 8
    maps = []
    for seed, contrast in ((3, 30.0), (4, 1000.0)):
        _, amp = _particle_amplitude((512, 512), 170, window, step, contrast, seed=seed)
        maps.append(amp)
    strong = np.full_like(maps[0], 50.0)
    strong[:3] = np.nan
    maps.append(strong)
    stack = np.stack(maps)
    together = _shows_crystal(stack, 10.0, window / step / 2)
    for k, amp in enumerate(maps):
        np.testing.assert_array_equal(together[k], _shows_crystal(amp, 10.0, window / step / 2))
    np.testing.assert_array_equal(together[2], np.isfinite(strong))
    assert 0.2 < together[0].mean() < 0.6 and 0.2 < together[1].mean() < 0.6


def test_crystal_judged_on_maps_smaller_than_the_level_disc():
    # Maps fewer pixels high or wide than a window/2 or a window (small images, large
    # windows): the direct filters' answer, without index errors.
    from napari_hrtem_fft.core.postprocess import _disc_footprint, _near, _shows_crystal

    rng = np.random.default_rng(9)
    for shape in [(1, 1), (2, 9), (3, 2), (5, 40), (40, 5)]:
        where = rng.random(shape) < 0.3
        dilated = ndimage.binary_dilation(where, structure=_disc_footprint(8.0))
        np.testing.assert_array_equal(_near(where, 8.0), dilated)
        amp = np.exp(rng.normal(2.3, 2.0, shape))
        amp[rng.random(shape) < 0.2] = np.nan
        for reach in (1.0, 8.0):
            np.testing.assert_array_equal(
                _shows_crystal(amp, 10.0, reach), _direct_shows_crystal(amp, 10.0, reach)
            )


def test_smoothing_normalisation_is_the_filtered_finite_map():
    # Filtered once per distinct row neighbourhood: scipy's filter of the whole map, bit
    # for bit, for NaN borders, holes, full, empty and small maps.
    from napari_hrtem_fft.core.postprocess import _normalisation

    rng = np.random.default_rng(10)
    frame = np.ones((96, 80), bool)
    frame[:8], frame[-5:], frame[:, :8], frame[:, -3:] = False, False, False, False
    holes = frame.copy()
    holes[40, 30] = holes[41, 30] = False
    cases = [frame, holes, np.ones((50, 7), bool), np.zeros((12, 12), bool)]
    cases += [rng.random(shape) < 0.9 for shape in [(1, 1), (3, 5), (9, 9), (10, 4), (33, 31)]]
    for valid in cases:
        direct = ndimage.gaussian_filter(valid.astype(float), 1.0, mode="constant")
        np.testing.assert_array_equal(_normalisation(valid), direct)
