"""Tests of region_fft, find_reflections and refine_reflection against known lattices."""

import numpy as np
import pytest

from napari_hrtem_fft.core.fft import (
    find_reflections,
    hann_window,
    refine_reflection,
    region_fft,
)
from napari_hrtem_fft.core.reciprocal import g_angle, g_from_spacing_angle, g_spacing
from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_lattice

PIXEL = 0.02  # nm


def _match(found, truth):
    """For each truth reflection, the found one (either Friedel sign) closest to it."""
    out = []
    for g in truth:
        cands = np.concatenate([found, -found])
        out.append(cands[np.argmin(np.linalg.norm(cands - g, axis=1))])
    return np.array(out)


def _angle_diff(a, b):
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


@pytest.fixture(scope="module")
def pd_image():
    refl = pd_110_reflections(rotation=10.0)
    image, truth = synthetic_lattice((512, 512), pixel_size=PIXEL, reflections=refl)
    return image, truth.reflections


# ------------------------------------------------------------------ region_fft


def test_region_fft_peak_at_reflection_position():
    # A fringe exactly on bin (5, 12) must give the maximum at that index offset from
    # the zero-frequency index, and world position = scale·index + translate = g.
    window = 64
    g = np.array([5.0, 12.0]) / (window * PIXEL)
    image, _ = synthetic_lattice((100, 120), pixel_size=PIXEL, reflections=g)
    res = region_fft(image, (50, 60), window=window, pixel_size=PIXEL)
    assert res.data.shape == (window, window)
    assert res.data.dtype == np.float32
    assert res.scale == pytest.approx((1 / (window * PIXEL),) * 2, rel=1e-12)
    assert res.translate == pytest.approx((-(window // 2) / (window * PIXEL),) * 2, rel=1e-12)
    half = res.data[:, window // 2 + 1 :]  # positive gx only
    iy, ix = np.unravel_index(np.argmax(half), half.shape)
    world = np.array([iy, ix + window // 2 + 1]) * res.scale[0] + res.translate[0]
    np.testing.assert_allclose(world, g, atol=1e-9)
    # Friedel symmetry of a real image: the -g bin has the same amplitude.
    c = window // 2
    assert res.data[c + 5, c + 12] == pytest.approx(res.data[c - 5, c - 12], rel=1e-6)


def test_region_fft_is_hann_windowed_log_amplitude_of_mean_subtracted_patch():
    rng = np.random.default_rng(3)
    image = rng.normal(5.0, 1.0, (40, 50))
    res = region_fft(image, (20, 25), window=32, pixel_size=0.1)
    patch = image[4:36, 9:41] - image[4:36, 9:41].mean()
    expected = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(patch * hann_window(32)))))
    np.testing.assert_allclose(res.data, expected, rtol=1e-5, atol=1e-6)
    assert res.center == (20, 25)
    # Mean subtracted: the zero frequency carries no offset (only window leakage).
    assert res.data[16, 16] < np.log1p(5.0 * hann_window(32).sum()) / 2


def test_hann_is_periodic_and_separable():
    w = hann_window(8)
    np.testing.assert_allclose(w[4], 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8) * 1)
    assert w[0, 0] == 0 and w[4, 4] == pytest.approx(1.0)


def test_region_fft_clamps_window_inside_image():
    image = np.zeros((100, 80))
    res = region_fft(image, (2, 79), window=32, pixel_size=0.1)
    assert res.center == (16, 80 - 16)
    res = region_fft(image, (99.6, 0), window=32, pixel_size=0.1)
    assert res.center == (100 - 16, 16)


def test_region_fft_bad_input():
    with pytest.raises(ValueError, match="window"):
        region_fft(np.zeros((30, 100)), window=32, pixel_size=0.1)
    with pytest.raises(TypeError, match="image"):
        region_fft(np.zeros((64, 64), complex), window=32, pixel_size=0.1)
    with pytest.raises(TypeError, match="image"):
        region_fft(np.array([["a"] * 64] * 64), window=32, pixel_size=0.1)
    with pytest.raises(ValueError, match="image"):
        region_fft(np.zeros((2, 64, 64)), window=32, pixel_size=0.1)
    with pytest.raises(ValueError, match="pixel_size"):
        region_fft(np.zeros((64, 64)), window=32, pixel_size=0)
    with pytest.raises(TypeError, match="window"):
        region_fft(np.zeros((64, 64)), window=32.0, pixel_size=0.1)


# ------------------------------------------------------------- find_reflections


def test_find_reflections_recovers_noise_free_lattice(pd_image):
    # Tolerances of the brief: |g| to 0.05 %, angle to 0.05° (measured: ~1e-7, ~1e-6°).
    image, truth = pd_image
    found = find_reflections(image, pixel_size=PIXEL, window=128)
    assert found.shape == (3, 2)
    matched = _match(found, truth)
    np.testing.assert_allclose(g_spacing(matched) / g_spacing(truth), 1.0, atol=5e-4)
    np.testing.assert_allclose(_angle_diff(g_angle(matched), g_angle(truth)), 0.0, atol=0.05)
    # In fact far better than the requirement: the DTFT refinement is unbiased.
    np.testing.assert_allclose(matched, truth, atol=1e-5)


def test_find_reflections_friedel_half_plane_and_order():
    # Three fringes of decreasing amplitude, one pointing into the left half-plane.
    refl = g_from_spacing_angle([0.25, 0.3, 0.2], [120.0, 30.0, -20.0])
    image, _ = synthetic_lattice(
        (384, 384),
        pixel_size=PIXEL,
        reflections=refl,
        amplitudes=[0.3, 0.2, 0.1],
        noise=0.2,
        seed=2,
    )
    found = find_reflections(image, pixel_size=PIXEL, window=128)
    assert len(found) == 3
    angles = g_angle(found)
    assert np.all((angles > -90) & (angles <= 90))
    # 120° comes back as its Friedel mate at -60°.
    np.testing.assert_allclose(angles[0], -60.0, atol=0.1)
    np.testing.assert_allclose(g_spacing(found), [0.25, 0.3, 0.2], rtol=2e-3)


def test_find_reflections_vertical_fringe_canonical_sign():
    # Angle exactly 90°: gx = 0, canonical member has gy < 0.
    g = np.array([[-10.0 / (128 * PIXEL), 0.0]])
    image, _ = synthetic_lattice((256, 256), pixel_size=PIXEL, reflections=g)
    found = find_reflections(image, pixel_size=PIXEL, window=128)
    assert len(found) == 1
    assert found[0, 0] < 0
    np.testing.assert_allclose(g_angle(found), [90.0], atol=1e-3)


def test_find_reflections_on_pure_noise_finds_nothing():
    rng = np.random.default_rng(7)
    for shape in [(128, 128), (200, 200), (512, 512), (300, 700)]:
        for _ in range(10):
            image = rng.standard_normal(shape).astype(np.float32)
            found = find_reflections(image, pixel_size=PIXEL, window=128)
            assert found.shape == (0, 2), f"false reflection on noise {shape}"


def test_find_reflections_with_noise_and_amorphous_film():
    refl = pd_110_reflections(rotation=-25.0)
    image, _ = synthetic_lattice(
        (512, 512), pixel_size=PIXEL, reflections=refl, noise=0.5, amorphous=0.2, seed=4
    )
    found = find_reflections(image, pixel_size=PIXEL, window=128, max_count=8)
    assert len(found) == 3
    matched = _match(found, refl)
    # Noisy: 0.2 % in |g| and 0.2° (9 windows; measured about 10x better).
    np.testing.assert_allclose(g_spacing(matched) / g_spacing(refl), 1.0, atol=2e-3)
    np.testing.assert_allclose(_angle_diff(g_angle(matched), g_angle(refl)), 0.0, atol=0.2)


def test_find_reflections_max_count_min_spacing_exclude():
    image, _ = synthetic_lattice(
        (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(10.0)
    )
    assert len(find_reflections(image, pixel_size=PIXEL, max_count=2)) == 2
    # 002 (d = 0.1945 nm) is excluded by min_spacing 0.2 nm, leaving the two {111}.
    found = find_reflections(image, pixel_size=PIXEL, min_spacing=0.2)
    np.testing.assert_allclose(g_spacing(found), [0.2246, 0.2246], atol=1e-4)
    # exclude_radius larger than every peak (|g| ≈ 11.4 and 13.2 bins) leaves nothing.
    assert find_reflections(image, pixel_size=PIXEL, exclude_radius=14).shape == (0, 2)


def test_find_reflections_ignores_beyond_nyquist():
    # A fringe at bin 63.5 of 128 (just below the pixel Nyquist) is not reported.
    g = np.array([[0.0, 63.5 / (128 * PIXEL)]])
    image, _ = synthetic_lattice((256, 256), pixel_size=PIXEL, reflections=g)
    assert find_reflections(image, pixel_size=PIXEL).shape == (0, 2)


def test_find_reflections_bad_input():
    image = np.zeros((256, 256))
    with pytest.raises(ValueError, match="max_count"):
        find_reflections(image, pixel_size=PIXEL, max_count=0)
    with pytest.raises(ValueError, match="min_spacing"):
        find_reflections(image, pixel_size=PIXEL, min_spacing=-1)
    with pytest.raises(ValueError, match="window"):
        find_reflections(image, pixel_size=PIXEL, window=512)
    with pytest.raises(TypeError, match="image"):
        find_reflections(image.astype(complex), pixel_size=PIXEL)


# ------------------------------------------------------------ refine_reflection


def test_refine_reflection_snaps_to_peak(pd_image):
    image, truth = pd_image
    bin_size = 1 / (128 * PIXEL)
    clicks = truth + np.array([[1.6, -1.2], [-0.7, 1.9], [1.4, 1.4]]) * bin_size
    refined = refine_reflection(image, clicks, pixel_size=PIXEL, window=128)
    np.testing.assert_allclose(refined, truth, atol=1e-4)
    # One vector in, one vector out; the clicked (negative) half-plane is kept.
    single = refine_reflection(image, -clicks[0], pixel_size=PIXEL, window=128)
    assert single.shape == (2,)
    np.testing.assert_allclose(single, -truth[0], atol=1e-4)


def test_refine_reflection_outside_spectrum():
    with pytest.raises(ValueError, match="Nyquist"):
        refine_reflection(np.ones((128, 128)), [0.0, 80.0], pixel_size=PIXEL, window=128)


# ------------------------------------------------- suggestions a microscopist would click


def _spacings_px(found):
    return g_spacing(found) / PIXEL


def test_find_reflections_returns_lowest_order_of_parallel_planes():
    # 0.4 nm fringes, their second order (0.2 nm) three times stronger, and an
    # independent 0.3 nm fringe: the 0.4 nm plane stands for its harmonic.
    g1 = g_from_spacing_angle([0.4], [20.0])[0]
    g2 = g_from_spacing_angle([0.3], [-50.0])[0]
    refl = np.array([g1, 2 * g1, g2])
    image, _ = synthetic_lattice(
        (512, 512), pixel_size=PIXEL, reflections=refl, amplitudes=[0.1, 0.3, 0.2], noise=0.2
    )
    found = find_reflections(image, pixel_size=PIXEL, window=128)
    np.testing.assert_allclose(_match(found, [g1, g2]), [g1, g2], atol=2e-3)
    assert len(found) == 2
    # Without independence every significant peak comes back, strongest first.
    every = find_reflections(image, pixel_size=PIXEL, window=128, independent=False)
    np.testing.assert_allclose(g_spacing(every), [0.2, 0.3, 0.4], rtol=2e-3)


def test_find_reflections_friedel_mates_and_duplicates_collapse():
    refl = g_from_spacing_angle([0.25, 0.32], [35.0, -70.0])
    image, _ = synthetic_lattice((384, 384), pixel_size=PIXEL, reflections=refl, noise=0.1)
    found = find_reflections(image, pixel_size=PIXEL, window=128, max_count=8)
    # Two planes, two reflections: no -g, no second copy of a peak.
    assert len(found) == 2
    np.testing.assert_allclose(np.sort(g_spacing(found)), [0.25, 0.32], rtol=1e-3)


def test_find_reflections_ranks_by_strength_above_local_background():
    # A strong 0.5 nm reflection on the bright low-frequency background of a smooth
    # amorphous texture, and a 25x weaker 0.1 nm one (5 px) where the background is
    # almost nil: its power over the background is higher, its strength is not.
    rng = np.random.default_rng(5)
    g = g_from_spacing_angle([0.5, 0.1], [10.0, 60.0])
    image, _ = synthetic_lattice(
        (512, 512), pixel_size=PIXEL, reflections=g, amplitudes=[0.5, 0.1], noise=0.02
    )
    from scipy import ndimage

    image += ndimage.gaussian_filter(rng.standard_normal(image.shape), 6) * 10
    found = find_reflections(image, pixel_size=PIXEL, window=128)
    assert len(found) >= 1
    np.testing.assert_allclose(g_spacing(found[:1]), [0.5], rtol=2e-3)


def _scan_jitter(image, rng, strength):
    """Row offsets and row shifts as a raster scan makes them: a line of raised power
    along ky through the origin and through every reflection."""
    rows = rng.standard_normal(image.shape[0]) * strength
    return image + rows[:, None]


def test_find_reflections_never_suggests_scan_streaks():
    rng = np.random.default_rng(11)
    refl = g_from_spacing_angle([0.3, 0.3], [30.0, -60.0])
    image, _ = synthetic_lattice(
        (512, 512), pixel_size=PIXEL, reflections=refl, noise=0.1, amplitudes=0.3
    )
    image = _scan_jitter(image, rng, 0.5)
    for window in (64, 128, 256):
        found = find_reflections(image, pixel_size=PIXEL, window=window, max_count=8)
        assert len(found) == 2, window
        np.testing.assert_allclose(_match(found, refl), refl, atol=5e-3)


def test_find_reflections_keeps_a_reflection_on_the_streak_axis():
    # A lattice aligned with the scan: its vertical reflection lies on the streak.
    rng = np.random.default_rng(12)
    refl = g_from_spacing_angle([0.3, 0.25], [90.0, 0.0])
    image, _ = synthetic_lattice(
        (512, 512), pixel_size=PIXEL, reflections=refl, noise=0.1, amplitudes=0.3
    )
    image = _scan_jitter(image, rng, 0.3)
    found = find_reflections(image, pixel_size=PIXEL, window=128, max_count=8)
    assert len(found) == 2
    # The streak pulls the refined peak along it by up to a few tenths of a bin.
    matched = _match(found, refl)
    np.testing.assert_allclose(g_spacing(matched) / g_spacing(refl), 1.0, atol=0.015)
    np.testing.assert_allclose(_angle_diff(g_angle(matched), g_angle(refl)), 0.0, atol=1.0)


def _stem_srtio3(shape=(512, 512), pixel=0.02, a=0.3905, rotation=7.0, seed=0):
    """An ADF-STEM-like SrTiO3 [001] image: Gaussian Sr and Ti-O columns, rows shifted
    by a random sub-pixel scan jitter, mains interference of period 3.4 px along the
    slow-scan axis, Poisson counts."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape) * pixel
    t = np.radians(rotation)
    u = (np.cos(t) * xx - np.sin(t) * yy) / a
    v = (np.sin(t) * xx + np.cos(t) * yy) / a
    sigma = 0.05 / a
    sr = np.exp(-((u - np.round(u)) ** 2 + (v - np.round(v)) ** 2) / (2 * sigma**2))
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    ti = 0.4 * np.exp(-(du**2 + dv**2) / (2 * sigma**2))
    image = 200 * (0.2 + sr + ti)
    for i in range(shape[0]):
        image[i] = ndimage.shift(image[i], rng.normal(0, 0.6), mode="wrap", order=1)
    iy, ix = np.indices(shape)
    image += 15 * np.sin(2 * np.pi * (iy / 3.4 + ix / 90.0))
    return rng.poisson(np.clip(image, 0, None)).astype(float)


def test_find_reflections_stem_image_gives_low_orders_not_interference():
    # The strongest FFT peaks are {110} and {100} ({200} is a harmonic); the 3.4-px
    # interference peak has more power over the faint high-frequency background than
    # any of them (the former ranking put it first) but far less strength.
    a = 0.3905
    found = find_reflections(_stem_srtio3(a=a), pixel_size=PIXEL, window=128)
    d = g_spacing(found)
    np.testing.assert_allclose(np.sort(d), [a / np.sqrt(2)] * 2 + [a] * 2, rtol=2e-3)
    np.testing.assert_allclose(d[:2], a / np.sqrt(2), rtol=2e-3)


def test_find_reflections_never_below_three_pixels():
    # A strong 2.5-px fringe (d = 0.05 nm) and a weaker 10-px one.
    refl = g_from_spacing_angle([0.05, 0.2], [30.0, 100.0])
    image, _ = synthetic_lattice(
        (512, 512), pixel_size=PIXEL, reflections=refl, amplitudes=[0.5, 0.1], noise=0.05
    )
    found = find_reflections(image, pixel_size=PIXEL, window=128, max_count=8)
    assert np.all(_spacings_px(found) >= 3.0)
    np.testing.assert_allclose(g_spacing(found), [0.2], rtol=1e-3)
    # min_spacing only narrows the range further.
    assert find_reflections(image, pixel_size=PIXEL, min_spacing=0.25).shape == (0, 2)


def test_find_reflections_resolves_low_orders_in_small_windows():
    # d = 25 and 18 px: 2.6 and 3.6 bins of a 64-px window, where the main lobes of
    # the reflections and of the zero frequency merge; the detector widens the window.
    refl = g_from_spacing_angle([0.5, 0.36], [15.0, 105.0])
    image, _ = synthetic_lattice((512, 512), pixel_size=PIXEL, reflections=refl, noise=0.2)
    found = find_reflections(image, pixel_size=PIXEL, window=64)
    assert len(found) == 2
    np.testing.assert_allclose(g_spacing(_match(found, refl)) / g_spacing(refl), 1, atol=2e-3)


def test_one_nan_pixel_changes_nothing(pd_image):
    image, truth = pd_image
    holed = image.copy()
    holed[256, 256] = np.nan
    found = find_reflections(holed, pixel_size=PIXEL, window=128)
    np.testing.assert_allclose(found, find_reflections(image, pixel_size=PIXEL), atol=1e-4)
    np.testing.assert_allclose(_match(found, truth), truth, atol=1e-4)
    a = region_fft(holed, (256, 256), window=64, pixel_size=PIXEL)
    b = region_fft(image, (256, 256), window=64, pixel_size=PIXEL)
    assert np.all(np.isfinite(a.data))
    # The pixel is filled from its neighbours: the reflections' bins barely move.
    peaks = b.data >= np.sort(b.data.ravel())[-6]
    np.testing.assert_allclose(a.data[peaks], b.data[peaks], rtol=1e-3)
    # An all-NaN region has no reflection (and no NaN spectrum).
    empty = np.full((256, 256), np.nan)
    assert find_reflections(empty, pixel_size=PIXEL).shape == (0, 2)
    assert np.all(region_fft(empty, window=64, pixel_size=PIXEL).data == 0)


def test_extreme_intensities_give_the_same_reflections(pd_image):
    # Issue 11: intensities of 1e-38 or 1e150 (and beyond) must not under- or overflow.
    image, truth = pd_image
    expected = find_reflections(image, pixel_size=PIXEL)
    for scale in (1e-300, 1e-38, 1e150, 1e300):
        found = find_reflections(image * scale, pixel_size=PIXEL)
        np.testing.assert_allclose(found, expected, atol=1e-9)
        refined = refine_reflection(image * scale, truth * 1.01, pixel_size=PIXEL)
        np.testing.assert_allclose(refined, truth, atol=1e-4)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("pixel_size", True, TypeError),
        ("center", (1, 2, 3), ValueError),
        ("center", "middle", TypeError),
        ("min_spacing", "0.1", TypeError),
        ("threshold", "high", TypeError),
        ("threshold", -1.0, ValueError),
        ("min_strength", 2.0, ValueError),
        ("independent", "yes", TypeError),
        ("exclude_radius", None, TypeError),
        ("exclude_radius", -1.0, ValueError),
        ("min_strength", float("nan"), ValueError),
        ("min_spacing", float("inf"), ValueError),
    ],
)
def test_find_reflections_rejects_bad_options_by_name(option, value, error):
    kwargs = {"pixel_size": PIXEL, option: value}
    with pytest.raises(error, match=option):
        find_reflections(np.zeros((256, 256)), **kwargs)


# ------------------------------------------------------------- real instrument data

# Issue 9: low-order spacings (nm) of the real lattice images, as measured with each
# file's own calibration, as (low, high) ranges.
REAL_LATTICES = {
    "ncem_emd/Acquisition_18.emd": [(0.283, 0.293), (0.204, 0.207), (0.413, 0.413)],
    "tia/16_STOimage.emi": [(0.279, 0.290), (0.394, 0.410), (0.201, 0.205)],
    "dm3/example_Se_implanted_MoS2.dm3": [(0.252, 0.266)],
    "dm3/PZO.dm3": [(0.298, 0.301), (0.426, 0.426), (0.208, 0.213)],
    "dm4/PTO100-40nm-HAADF.dm4": [(0.2836, 0.2836), (0.3904, 0.4128), (0.1952, 0.2064)],
}


@pytest.mark.parametrize("name", sorted(REAL_LATTICES))
def test_suggestions_on_real_lattice_images(shared_data, name):
    # With defaults, at every window of 64/128/256 px up to 2/3 of the smaller side:
    # the first two suggestions are listed low-order spacings within 1.5 %, and none
    # lies below 3 pixels.
    from napari_hrtem_fft.io import read_micrographs

    (mg,) = read_micrographs(shared_data / name)
    image = np.asarray(mg.data, dtype=np.float64)
    pixel = float(mg.scale[-1])
    windows = [w for w in (64, 128, 256) if w <= 2 * min(image.shape) / 3]
    assert windows
    for window in windows:
        d = g_spacing(find_reflections(image, pixel_size=pixel, window=window))
        assert len(d) >= 2, (name, window)
        for x in d[:2]:
            assert any(lo * 0.985 <= x <= hi * 1.015 for lo, hi in REAL_LATTICES[name]), (
                name,
                window,
                d,
            )
        assert np.all(d / pixel >= 3.0), (name, window, d)


def test_find_reflections_on_real_pzo_image(shared_data):
    # README of the shared data: PbZrO3 HAADF, 0.015994541 nm/px; FFT d = 0.298 and
    # 0.299 nm (perpendicular) and 0.425 nm.
    from napari_hrtem_fft.io import read_micrographs

    (mg,) = read_micrographs(shared_data / "dm3" / "PZO.dm3")
    found = find_reflections(np.asarray(mg.data), pixel_size=mg.pixel_size, window=256)
    d = g_spacing(found)
    near_030 = found[np.abs(d - 0.2985) < 0.003]
    assert len(near_030) == 2
    between = abs(_angle_diff(*g_angle(near_030)))
    assert 88.0 < between < 92.0
    assert np.any(np.abs(d - 0.425) < 0.01)


def test_region_fft_and_find_reflections_accept_dask_and_integers(pd_image):
    da = pytest.importorskip("dask.array")
    image, truth = pd_image
    counts = np.round(1000 * image).astype(np.uint16)
    lazy = da.from_array(counts, chunks=128)
    a = region_fft(lazy, (200, 300), window=64, pixel_size=PIXEL)
    b = region_fft(counts, (200, 300), window=64, pixel_size=PIXEL)
    np.testing.assert_array_equal(a.data, b.data)
    found = find_reflections(lazy, pixel_size=PIXEL)
    # Rounding to integer counts adds noise of 1/1000 of the fringe scale only.
    np.testing.assert_allclose(_match(found, truth), truth, atol=1e-3)
