"""Strain maps from exactly known local reciprocal vectors (core/synthetic.py truth)."""

import dataclasses

import numpy as np
import pytest

from napari_hrtem_fft.core.maps import LatticeMaps
from napari_hrtem_fft.core.reciprocal import g_angle, g_from_spacing_angle, g_spacing
from napari_hrtem_fft.core.strain import reference_from_maps, strain, strain_from_g
from napari_hrtem_fft.core.synthetic import (
    dilatation_mapping,
    gradient_mapping,
    pd_110_reflections,
    rotation_mapping,
    synthetic_lattice,
)

PIXEL = 0.02
STEP = 8
TOL = 1e-9  # the truth g comes from central differences of the mapping: ~1e-11


def _fake_maps(g, reflections, dtype=np.float64):
    """LatticeMaps whose local g is exactly ``g`` (n, ..., my, mx, 2)."""
    d = g_spacing(g).astype(dtype)
    return LatticeMaps(
        d_spacing=d,
        angle=g_angle(g).astype(dtype),
        amplitude=np.ones_like(d),
        d_sigma=np.zeros_like(d),
        angle_sigma=np.zeros_like(d),
        reflections=np.asarray(reflections, dtype=np.float64),
        window=128,
        step=STEP,
        pixel_size=PIXEL,
    )


def _truth_maps(mapping, reflections=None, shape=(96, 128)):
    refl = pd_110_reflections(10.0) if reflections is None else reflections
    _, truth = synthetic_lattice(shape, pixel_size=PIXEL, reflections=refl, mapping=mapping)
    return _fake_maps(truth.g[:, ::STEP, ::STEP], truth.reflections)


def _linear_mapping(f):
    """Mapping of a homogeneous deformation a = F a_ref, F in (y, x) order."""
    inv = np.linalg.inv(np.asarray(f, dtype=np.float64))

    def mapping(y, x):
        return inv[0, 0] * y + inv[0, 1] * x, inv[1, 0] * y + inv[1, 1] * x

    return mapping


def _assert_uniform(s, exx, eyy, exy, rotation, tol=TOL):
    np.testing.assert_allclose(s.exx, exx, atol=tol)
    np.testing.assert_allclose(s.eyy, eyy, atol=tol)
    np.testing.assert_allclose(s.exy, exy, atol=tol)
    np.testing.assert_allclose(s.rotation, rotation, atol=tol)


def test_dilatation_two_percent_is_exact():
    s = strain(_truth_maps(dilatation_mapping(1.02, center=(1.0, 1.2))))
    assert s.exx.shape == (12, 16)
    _assert_uniform(s, 0.02, 0.02, 0.0, 0.0)


def test_rotation_counter_clockwise_on_screen_is_positive():
    s = strain(_truth_maps(rotation_mapping(1.0, center=(0.9, 1.3))))
    _assert_uniform(s, 0.0, 0.0, 0.0, 1.0)
    s = strain(_truth_maps(rotation_mapping(-12.5)))
    _assert_uniform(s, 0.0, 0.0, 0.0, -12.5)


def test_rotation_agrees_with_reflection_angles():
    # Independent check of the sign: every local angle grows by the rotation.
    maps = _truth_maps(rotation_mapping(3.0))
    dang = (maps.angle - g_angle(maps.reflections)[:, None, None] + 180) % 360 - 180
    np.testing.assert_allclose(dang, 3.0, atol=1e-9)
    np.testing.assert_allclose(strain(maps).rotation, 3.0, atol=TOL)


def test_uniaxial_along_x_and_along_y():
    s = strain(_truth_maps(_linear_mapping([[1.0, 0.0], [0.0, 1.03]])))
    _assert_uniform(s, 0.03, 0.0, 0.0, 0.0)
    s = strain(_truth_maps(_linear_mapping([[0.985, 0.0], [0.0, 1.0]])))
    _assert_uniform(s, 0.0, -0.015, 0.0, 0.0)
    # The spacing of planes normal to x grows by 3 %: check d directly for a 2-reflection
    # lattice along the axes.
    refl = np.array([[0.0, 4.0], [3.0, 0.0]])
    maps = _truth_maps(_linear_mapping([[1.0, 0.0], [0.0, 1.03]]), refl)
    np.testing.assert_allclose(maps.d_spacing[0], 0.25 * 1.03, rtol=1e-10)
    np.testing.assert_allclose(maps.d_spacing[1], 1 / 3.0, rtol=1e-10)
    _assert_uniform(strain(maps), 0.03, 0.0, 0.0, 0.0)


def test_pure_shear():
    s = strain(_truth_maps(_linear_mapping([[1.0, 0.01], [0.01, 1.0]])))
    _assert_uniform(s, 0.0, 0.0, 0.01, 0.0)


def test_rotated_stretch_polar_decomposition():
    # F = V R: stretch 2 % along image x after rotating by 4°.  Finite strain V - I,
    # rotation exactly 4°, no strain leaked from the rotation.
    t = np.radians(4.0)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # (y, x) order
    v = np.diag([1.0, 1.02])
    s = strain(_truth_maps(_linear_mapping(v @ rot)))
    _assert_uniform(s, 0.02, 0.0, 0.0, 4.0)
    # Stretch along a direction at 30° counter-clockwise on screen: V = Q diag Qᵀ.
    q = np.array([[np.cos(np.radians(30)), -np.sin(np.radians(30))], [0, 0]])
    q[1] = [np.sin(np.radians(30)), np.cos(np.radians(30))]
    v = q @ np.diag([1.0, 1.02]) @ q.T
    s = strain(_truth_maps(_linear_mapping(v)))
    _assert_uniform(s, v[1, 1] - 1, v[0, 0] - 1, v[0, 1], 0.0)


def test_small_simple_shear_matches_linearised_convention():
    # Simple shear F = I + [[0, γ], [0, 0]]: ε = γ/2 off-diagonal and |ω| = γ/2 to
    # first order; the finite values differ by O(γ²).
    gamma = 1e-4
    s = strain(_truth_maps(_linear_mapping([[1.0, gamma], [0.0, 1.0]])))
    _assert_uniform(s, 0.0, 0.0, gamma / 2, -np.degrees(gamma / 2), tol=1e-8)


def test_gradient_strain_per_pixel():
    # Local spacing along x is d_ref (1 + k x): exx = k·x exactly at each map pixel.
    k = 0.01
    maps = _truth_maps(gradient_mapping(k, axis=1))
    s = strain(maps)
    x = np.arange(16) * STEP * PIXEL
    np.testing.assert_allclose(s.exx, np.broadcast_to(k * x, (12, 16)), atol=TOL)
    np.testing.assert_allclose(s.eyy, 0.0, atol=TOL)


def test_least_squares_with_three_reflections_equals_any_two():
    maps = _truth_maps(_linear_mapping([[1.01, 0.002], [0.003, 0.995]]))
    assert maps.n_reflections == 3
    s3 = strain(maps)
    maps2 = _fake_maps(maps.g[:2], maps.reflections[:2])
    s2 = strain(maps2)
    for name in ("exx", "eyy", "exy", "rotation"):
        np.testing.assert_allclose(getattr(s3, name), getattr(s2, name), atol=TOL)


def test_reference_region_mask_and_explicit():
    # Left half dilated by 1 %, right half by 3 %: relative to the left half, the right
    # half is strained by 1.03/1.01 - 1.
    base = _truth_maps(dilatation_mapping(1.01))
    more = _truth_maps(dilatation_mapping(1.03))
    g = base.g.copy()
    g[:, :, 8:] = more.g[:, :, 8:]
    maps = _fake_maps(g, base.reflections)
    expected = np.where(np.arange(16) < 8, 0.0, 1.03 / 1.01 - 1.0)
    mask = np.zeros((12, 16), bool)
    mask[2:10, 1:6] = True
    for ref in (mask, (slice(2, 10), slice(1, 6)), base.g[:, 0, 0]):
        s = strain(maps, reference=ref)
        np.testing.assert_allclose(s.exx, np.broadcast_to(expected, (12, 16)), atol=TOL)
        np.testing.assert_allclose(s.eyy, s.exx, atol=TOL)
        np.testing.assert_allclose(s.reference, base.g[:, 0, 0], atol=TOL)
    np.testing.assert_allclose(reference_from_maps(maps, mask), base.g[:, 0, 0], atol=TOL)


def test_reference_median_ignores_nan_and_outliers():
    maps = _truth_maps(dilatation_mapping(1.02))
    g = maps.g.copy()
    g[0, 0, 0] = np.nan
    g[1, 0, 1] *= 1.5
    maps = _fake_maps(g, maps.reflections)
    ref = reference_from_maps(maps, (slice(0, 3), slice(0, 3)))
    np.testing.assert_allclose(ref, maps.reflections / 1.02, atol=TOL)


def test_nan_in_any_reflection_gives_nan():
    maps = _truth_maps(dilatation_mapping(1.02))
    maps.d_spacing[1, 3, 4] = np.nan
    maps.angle[2, 5, 6] = np.nan
    s = strain(maps)
    for comp in s.components().values():
        assert np.isnan(comp[3, 4]) and np.isnan(comp[5, 6])
        assert np.count_nonzero(np.isnan(comp)) == 2


def test_movie_maps_and_float32():
    maps = _truth_maps(dilatation_mapping(1.02))
    g = np.stack([maps.g, _truth_maps(dilatation_mapping(0.99)).g], axis=1)  # (n, t, my, mx, 2)
    movie = _fake_maps(g, maps.reflections, dtype=np.float32)
    s = strain(movie)
    assert s.exx.shape == (2, 12, 16) and s.exx.dtype == np.float32
    np.testing.assert_allclose(s.exx[0], 0.02, atol=1e-6)
    np.testing.assert_allclose(s.exx[1], -0.01, atol=1e-6)


def test_dask_stays_lazy_and_matches():
    da = pytest.importorskip("dask.array")
    maps = _truth_maps(rotation_mapping(2.0))
    lazy = dataclasses.replace(
        maps,
        d_spacing=da.from_array(maps.d_spacing, chunks=(3, 6, 8)),
        angle=da.from_array(maps.angle, chunks=(3, 6, 8)),
    )
    s = strain(lazy)
    assert isinstance(s.rotation, da.Array)
    np.testing.assert_allclose(s.rotation.compute(), 2.0, atol=TOL)
    s = strain(lazy, reference=(slice(0, 4), slice(0, 4)))
    np.testing.assert_allclose(s.rotation.compute(), 0.0, atol=TOL)


def test_collinear_or_single_reflection_raises():
    maps = _truth_maps(None, reflections=np.array([[0.0, 4.0], [0.0, 8.0]]))
    with pytest.raises(ValueError, match="reflections"):
        strain(maps)
    one = _truth_maps(None, reflections=np.array([[1.0, 4.0]]))
    with pytest.raises(ValueError, match="reflections"):
        strain(one)
    near = g_from_spacing_angle([0.2, 0.21], [10.0, 12.0])
    with pytest.raises(ValueError, match="collinear"):
        strain(_truth_maps(None, reflections=near))


def test_bad_reference():
    maps = _truth_maps(dilatation_mapping(1.02))
    with pytest.raises(ValueError, match="reference"):
        strain(maps, reference=np.ones((2, 2)))
    with pytest.raises(ValueError, match="reference"):
        strain(maps, reference=np.zeros((12, 16), bool))
    # Zero or collinear reference vectors are refused by name (they gave all-NaN maps).
    with pytest.raises(ValueError, match=r"^reference are zero or \(nearly\) collinear"):
        strain(maps, reference=[[0.0, 0.0]] * 3)
    with pytest.raises(ValueError, match=r"^reference are zero or \(nearly\) collinear"):
        strain(maps, reference=[[0.0, 4.0], [0.0, 8.0], [0.0, -4.0]])
    with pytest.raises(ValueError, match="reference"):
        strain(maps, reference=np.ones((5, 5), bool))
    with pytest.raises(TypeError, match="maps"):
        strain({"d_spacing": 1})


def test_strain_from_g_direct():
    ref = np.array([[0.0, 5.0], [-4.0, 0.0]])
    local = ref / 1.05
    out = strain_from_g(local[:, 0, None], local[:, 1, None], ref)
    np.testing.assert_allclose([out["exx"][0], out["eyy"][0]], [0.05, 0.05], atol=1e-12)


def test_independence_rule_is_five_degrees_either_sign():
    from napari_hrtem_fft.core.strain import (
        MIN_RECIPROCAL_ANGLE,
        check_independent,
        has_two_directions,
    )

    assert MIN_RECIPROCAL_ANGLE == 5.0
    # Equal lengths: the singular-value rule is exactly the angle rule.
    for angles, expected in (
        ([0.0, 90.0], True),
        ([0.0, 5.5], True),
        ([0.0, 4.5], False),
        ([0.0, 184.5], False),  # g and -g are one direction
        ([0.0, 174.5], True),
        ([0.0, 0.0, 60.0], True),
    ):
        g = g_from_spacing_angle(np.full(len(angles), 0.2), angles)
        assert has_two_directions(g) is expected, angles
        if expected:
            check_independent(g)
        else:
            with pytest.raises(ValueError, match="collinear"):
                check_independent(g)
    assert has_two_directions([[1.0, 4.0]]) is False
    with pytest.raises(ValueError, match="--reflection: strain needs at least two"):
        check_independent([[1.0, 4.0]], name="--reflection")
    with pytest.raises(ValueError, match="finite"):
        has_two_directions([[np.nan, 1.0], [1.0, 0.0]])


def test_movie_reference_region_applies_per_frame():
    """Frame 0 is the reference lattice, frame 1 dilated by 1 % everywhere (a change of
    magnification): relative to a region, each frame has zero strain, whatever the
    frame's own lattice; the reference reflections are one set per frame."""
    maps = _truth_maps(dilatation_mapping(1.0))
    g = np.stack([maps.g, _truth_maps(dilatation_mapping(1.01)).g], axis=1)
    movie = _fake_maps(g, maps.reflections)
    region = np.zeros((12, 16), bool)
    region[2:5, 3:7] = True
    s = strain(movie, reference=region)
    assert s.reference.shape == (2, 3, 2)
    np.testing.assert_allclose(s.exx, 0.0, atol=TOL)
    np.testing.assert_allclose(s.reference[1], s.reference[0] / 1.01, rtol=1e-9)
    # Pooled over the frames instead, the median of both: the frames differ by 1 %.
    pooled = strain(movie, reference=reference_from_maps(movie, region))
    assert abs(pooled.exx[1].mean() - pooled.exx[0].mean()) == pytest.approx(0.01, rel=0.01)
    # A frame whose region holds nothing valid gives NaN in that frame only.
    d = movie.d_spacing.copy()
    d[:, 1][:, region] = np.nan
    blank = dataclasses.replace(movie, d_spacing=d)
    s = strain(blank, reference=region)
    assert np.isnan(s.exx[1]).all() and np.isfinite(s.exx[0]).all()


def test_relative_to_region_core_shell():
    """Core–shell lattice (core 3.5 % denser, analytic truth, no noise) referred to the
    shell: the core reads 1/1.035 - 1 = -3.38 %, the phase is flat in the region."""
    from napari_hrtem_fft.core.engine import analyze
    from napari_hrtem_fft.core.pipeline import reference_mask
    from napari_hrtem_fft.core.strain import relative_to_region
    from napari_hrtem_fft.core.synthetic import pd_core_shell_sample

    img, truth = pd_core_shell_sample((768, 768), radius=6.5, core_radius=3.0, seed=3)
    maps = analyze(img, truth.reflections[:2], pixel_size=PIXEL, window=64, step=8)
    shell = (7.38, 7.98, 2.6, 3.2)  # nm: y, x in the shell (r 3-6.5 nm)
    mask = reference_mask(shell, maps.d_spacing.shape, maps.map_scale)
    rel = relative_to_region(maps, mask, record=list(shell))
    c = np.arange(maps.d_spacing.shape[-1]) * maps.map_scale
    yy, xx = np.meshgrid(c, c, indexing="ij")
    core = np.hypot(yy - 7.68, xx - 7.68) < 1.5
    # Measured: exx -3.51 %, eyy -2.82 % (a 1.28 nm window in the 3.5 nm shell).
    for name in ("exx", "eyy"):
        assert np.nanmedian(getattr(rel.strain, name)[core]) == pytest.approx(
            1 / 1.035 - 1, abs=0.01
        )
    # Flat and zero-mean in the region (measured std 0.011 rad), relative to g_ref.
    for p in rel.phase:
        assert abs(np.angle(np.exp(1j * p[mask]).mean())) < 1e-6
        assert np.std(p[mask]) < 0.05
    record = rel.parameters["reference"]
    assert record["region"] == list(shell) and record["map_pixels"] == int(mask.sum())
    np.testing.assert_allclose(record["reflections"], rel.strain.reference, atol=1e-8)
    # The phase's gradient is 2π (g - g_ref), g the local lattice: in the core, the
    # measured core lattice (3.5 % denser, read 2.8-3.5 % through the window).
    g_core = np.nanmedian(maps.g[:, core], axis=1)
    inner = core[:-1, :-1]
    for j, p in enumerate(rel.phase):
        dy = np.angle(np.exp(1j * np.diff(p, axis=0)))[:, :-1] / maps.map_scale
        dx = np.angle(np.exp(1j * np.diff(p, axis=1)))[:-1] / maps.map_scale
        grad = np.array([np.nanmedian(dy[inner]), np.nanmedian(dx[inner])])
        expected = 2 * np.pi * (g_core[j] - rel.strain.reference[j])  # rad/nm, ~0.8
        np.testing.assert_allclose(grad, expected, atol=0.1 * np.hypot(*expected))


@pytest.mark.parametrize("method", ["local_fft", "gpa"])
def test_shell_annulus_reference_gives_the_true_core_strain(method):
    """Referred to the whole shell (an annulus, as a painted label would be), the core of
    the core–shell sample reads its true strain -3.38 % in both directions."""
    from napari_hrtem_fft.core.engine import analyze
    from napari_hrtem_fft.core.strain import relative_to_region
    from napari_hrtem_fft.core.synthetic import pd_core_shell_sample

    img, truth = pd_core_shell_sample((768, 768), radius=6.5, core_radius=3.0, seed=3)
    maps = analyze(img, truth.reflections[:2], pixel_size=PIXEL, window=64, step=8, method=method)
    c = np.arange(maps.d_spacing.shape[-1]) * maps.map_scale
    yy, xx = np.meshgrid(c, c, indexing="ij")
    rho = np.hypot(yy - 7.68, xx - 7.68)
    rel = relative_to_region(maps, (rho > 4.3) & (rho < 5.8))
    core = rho < 1.5
    # Measured: local FFT exx -3.51 %, eyy -3.36 %; GPA -3.49 %, -3.40 %.
    for name in ("exx", "eyy"):
        value = np.nanmedian(getattr(rel.strain, name)[core])
        assert value == pytest.approx(1 / 1.035 - 1, abs=0.002), (name, value)


def test_relative_to_region_per_frame_region():
    """A (t, my, mx) region gives each frame its own reference.  Left half dilated by
    1 %, right half by 3 %, in both frames; the region is the left half in frame 0 and
    the right half in frame 1: the right half reads 1.03/1.01 - 1 in frame 0 and the
    left half 1.01/1.03 - 1 in frame 1, exactly (the maps hold the analytic g)."""
    from napari_hrtem_fft.core.strain import relative_to_region

    base = _truth_maps(dilatation_mapping(1.01))
    more = _truth_maps(dilatation_mapping(1.03))
    g = base.g.copy()
    g[:, :, 8:] = more.g[:, :, 8:]
    movie = _fake_maps(np.stack([g, g], axis=1), base.reflections)  # (n, 2, 12, 16, 2)
    region = np.zeros((2, 12, 16), bool)
    region[0, 2:10, 1:6] = True  # left half
    region[1, 2:10, 10:15] = True  # right half
    rel = relative_to_region(movie, region, record="painted per frame")
    left = np.arange(16) < 8
    expected = np.stack(
        [np.where(left, 0.0, 1.03 / 1.01 - 1), np.where(left, 1.01 / 1.03 - 1, 0.0)]
    )
    np.testing.assert_allclose(
        rel.strain.exx, np.broadcast_to(expected[:, None], (2, 12, 16)), atol=TOL
    )
    np.testing.assert_allclose(rel.strain.eyy, rel.strain.exx, atol=TOL)
    record = rel.parameters["reference"]
    assert record["map_pixels"] == [40, 40] and record["region"] == "painted per frame"
    np.testing.assert_allclose(record["reflections"][0], base.reflections / 1.01, atol=TOL)
    np.testing.assert_allclose(record["reflections"][1], base.reflections / 1.03, atol=TOL)
    # A frame without any region pixel is an error naming it (not NaN maps in silence).
    region[1] = False
    with pytest.raises(ValueError, match=r"no map pixel in frame\(s\) \[1\]"):
        relative_to_region(movie, region)
