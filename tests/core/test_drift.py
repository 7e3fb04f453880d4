"""Drift registration and correction, and the synthetic movie they are checked on."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_hrtem_fft.core.drift import (
    PreviousFrameRegistration,
    apply_drift,
    register_frames,
    shift_polygon,
    shift_region,
)
from napari_hrtem_fft.core.reciprocal import g_angle, g_spacing
from napari_hrtem_fft.core.synthetic import pd_110_reflections, random_walk_drift, synthetic_movie

PIXEL = 0.02  # nm


def _movie(n=6, size=256, **kw):
    options = dict(
        pixel_size=PIXEL,
        reflections=pd_110_reflections(10.0),
        radius=size * PIXEL * 0.25,
        amorphous=0.1,
    )
    options.update(kw)
    return synthetic_movie(n, (size, size), **options)


# ------------------------------------------------------------------ synthetic movie


def test_synthetic_movie_is_lazy_per_frame_and_matches_eager():
    stack, truth = _movie(n=4, size=128, drift=3.0, noise=0.05, expansion_total=0.02)
    assert isinstance(stack, da.Array)
    assert stack.shape == (4, 128, 128) and stack.dtype == np.float32
    assert stack.chunks[0] == (1, 1, 1, 1)
    eager, _ = _movie(n=4, size=128, drift=3.0, noise=0.05, expansion_total=0.02, lazy=False)
    np.testing.assert_array_equal(stack.compute(), eager)
    # frame 2 alone equals frame 2 of the whole movie (per-frame seeds)
    np.testing.assert_array_equal(stack[2].compute(), eager[2])
    assert truth.drift.shape == (4, 2) and np.all(truth.drift[0] == 0)


def test_synthetic_movie_truth_expansion_rotation_and_local_g():
    refl = pd_110_reflections(10.0)
    _, truth = _movie(n=5, size=128, expansion_total=0.04, rotation_total=3.0, drift=2.0)
    np.testing.assert_allclose(truth.expansion, [0, 0.01, 0.02, 0.03, 0.04], atol=1e-15)
    np.testing.assert_allclose(
        truth.d_spacing, g_spacing(refl)[None] * (1 + truth.expansion)[:, None]
    )
    np.testing.assert_allclose(
        truth.angle - g_angle(refl)[None], truth.rotation[:, None] + 0 * refl[:, 0]
    )
    # The exact local g at the (drifted) particle centre is the tabulated one (1e-9 relative).
    k = 4
    cy, cx = np.rint(np.array(truth.center) / PIXEL + truth.drift[k]).astype(int)
    np.testing.assert_allclose(truth.local_g(k)[:, cy, cx], truth.g[k], rtol=1e-9)
    assert truth.particle(k)[cy, cx] and not truth.particle(k)[0, 0]


def test_synthetic_movie_drift_is_an_exact_shift():
    # Integer drift: frame 1 is frame 0 moved by (3, -5) px, lattice, particle and film alike.
    drift = np.array([[0.0, 0.0], [3.0, -5.0]])
    stack, _ = _movie(n=2, size=128, drift=drift, expansion_total=0.0, lazy=False)
    moved, still = stack[1][3:, :-5], stack[0][:-3, 5:]
    np.testing.assert_allclose(moved, still, atol=1e-5)


def test_synthetic_movie_bad_input():
    with pytest.raises(ValueError, match="n_frames"):
        synthetic_movie(0, (64, 64), pixel_size=PIXEL, reflections=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="drift"):
        synthetic_movie(
            3, (64, 64), pixel_size=PIXEL, reflections=[[1.0, 2.0]], drift=np.ones((2, 2))
        )
    with pytest.raises(ValueError, match="pixel_size"):
        synthetic_movie(3, (64, 64), pixel_size=0, reflections=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="max_step"):
        random_walk_drift(3, -1.0)


# ------------------------------------------------------------------ registration


def test_register_frames_recovers_20px_steps_to_a_tenth_of_a_pixel():
    # The figure of docs/movies.md: 20 frames, random steps up to 20 px, an expanding
    # (3.5 %) and rotating (3°) particle on a noisy film; tolerance 0.1 px on every frame.
    stack, truth = _movie(
        n=20,
        size=512,
        drift=20.0,
        expansion_total=0.035,
        rotation_total=3.0,
        noise=0.05,
        seed=3,
    )
    steps = np.hypot(*np.diff(truth.drift, axis=0).T)
    assert steps.max() > 15  # the movie really has large steps
    shifts = register_frames(stack, reference=0)
    err = np.abs(shifts - truth.drift)
    assert err.max() < 0.1, err.max()


@pytest.mark.parametrize("reference", ["previous", "mean", 3])
def test_register_frames_reference_modes(reference):
    stack, truth = _movie(n=6, size=256, drift=8.0, expansion_total=0.01, seed=1, lazy=False)
    shifts = register_frames(stack, reference=reference)
    expected = truth.drift - (truth.drift[reference] if isinstance(reference, int) else 0.0)
    np.testing.assert_allclose(shifts, expected, atol=0.1)


def test_register_frames_tolerates_nan_and_computes_one_frame_at_a_time():
    stack, truth = _movie(n=5, size=256, drift=6.0, seed=2, lazy=False)
    stack = stack.copy()
    stack[2, :40, :] = np.nan  # e.g. a blanked detector strip
    stack[4, 100:120, 100:140] = np.nan
    computed = []

    def frame(block, block_info=None):
        computed.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(stack, chunks=(1, 256, 256)).map_blocks(frame, dtype=stack.dtype)
    shifts = register_frames(lazy, reference=0, max_shift=40)
    np.testing.assert_allclose(shifts, truth.drift, atol=0.1)
    # each frame computed once, one at a time: the stack is never loaded whole
    assert sorted(computed) == list(range(5))


def test_register_frames_without_window_and_all_nan_frame():
    stack, truth = _movie(
        n=3, size=128, drift=np.array([[0, 0], [1.5, -2.25], [0, 0]]), lazy=False
    )
    stack = stack.copy()
    stack[2] = np.nan
    with pytest.warns(UserWarning, match="frame 2 has no finite pixels"):
        shifts = register_frames(stack, window=None)
    np.testing.assert_allclose(shifts[:2], truth.drift[:2], atol=0.1)
    assert np.all(np.isnan(shifts[2]))


def test_previous_frame_registration_of_binned_frames_follows_the_drift():
    # The live run's registration: 1024² frames binned by 2 (the Pd fringes, 0.103
    # cycles/pixel with the 10 % search margin, stay below the binned Nyquist), each
    # frame against the one before; steps up to ~6 px, an expanding particle.
    stack, truth = _movie(
        n=6, size=1024, drift=6.0, expansion_total=0.03, noise=0.05, seed=4, lazy=False
    )
    fringes = 1.1 * PIXEL / g_spacing(pd_110_reflections(10.0)).min()
    register = PreviousFrameRegistration(size=512, max_frequency=fringes)
    assert register.factor(stack.shape[1:]) == 2
    steps = np.array([register(np.clip(10000 * f, 0, 65535).astype(np.uint16)) for f in stack])
    assert np.all(np.isnan(steps[0]))  # nothing before the first frame
    drift = np.cumsum(np.nan_to_num(steps), axis=0)
    # Errors add up frame after frame: within 0.1 px after five steps.
    np.testing.assert_allclose(drift, truth.drift - truth.drift[0], atol=0.1)


def test_previous_frame_registration_never_bins_fringes_into_aliases():
    # 0.2 cycles/pixel fringes: bins of 3 pixels would put them at 0.6 cycles per
    # binned pixel, past Nyquist (aliased to 0.4); bins of 2 keep them at 0.4.
    register = PreviousFrameRegistration(size=256, max_frequency=0.2)
    assert register.factor((2048, 2048)) == 2
    assert PreviousFrameRegistration(size=256).factor((2048, 2048)) == 8
    assert PreviousFrameRegistration(max_frequency=0.25).factor((4096, 4096)) == 1


def test_previous_frame_registration_skips_an_empty_frame_and_refuses_bad_options():
    stack, truth = _movie(n=3, size=128, drift=np.array([[0, 0], [0, 0], [1.5, -2.25]]),
                          lazy=False)  # fmt: skip
    register = PreviousFrameRegistration()
    register(stack[0])
    assert np.all(np.isnan(register(np.full((128, 128), np.nan))))
    # The next frame is registered against the last frame with pixels.
    np.testing.assert_allclose(register(stack[2]), truth.drift[2], atol=0.1)
    for bad in (dict(size=1), dict(upsample=0), dict(max_frequency=0), dict(max_shift=-1)):
        with pytest.raises(ValueError):
            PreviousFrameRegistration(**bad)


def test_register_frames_bad_input():
    stack = np.zeros((3, 32, 32))
    with pytest.raises(ValueError, match="3 dimensions"):
        register_frames(np.zeros((32, 32)))
    with pytest.raises(ValueError, match="reference must be"):
        register_frames(stack, reference="first")
    with pytest.raises(ValueError, match="out of range"):
        register_frames(stack, reference=3)
    with pytest.raises(TypeError, match="reference must be an int"):
        register_frames(stack, reference=1.0)
    with pytest.raises(ValueError, match="upsample"):
        register_frames(stack, upsample=0)
    with pytest.raises(ValueError, match="max_shift"):
        register_frames(stack, max_shift=-2)
    with pytest.raises(ValueError, match="window must be one of"):
        register_frames(stack, window="gauss")
    with pytest.raises(ValueError, match="frame shape"):
        register_frames(stack, window=np.ones((4, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        register_frames(stack.astype(complex))


# ------------------------------------------------------------------ correction


def test_apply_drift_stills_the_movie_numpy_and_dask():
    drift = np.array([[0.0, 0.0], [2.4, -3.7], [-5.1, 1.3]])
    stack, _ = _movie(n=3, size=128, drift=drift, expansion_total=0.0, lazy=False)
    fixed = apply_drift(stack, drift)
    assert fixed.shape == stack.shape and fixed.dtype == np.float32
    inner = (slice(12, -12), slice(12, -12))
    # cubic-spline resampling of a band-limited image: a few 1e-3 of a 0.3 contrast
    for k in (1, 2):
        np.testing.assert_allclose(fixed[k][inner], stack[0][inner], atol=0.01)
    # content that came from outside the frame is NaN, never a made-up value
    assert np.all(np.isnan(fixed[1, -2:, :])) and np.all(np.isnan(fixed[1, :, :3]))
    assert not np.any(np.isnan(fixed[0]))
    lazy = apply_drift(da.from_array(stack, chunks=(2, 64, 128)), drift)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), fixed)


def test_apply_drift_on_maps_with_step_and_nan():
    maps = np.arange(2 * 3 * 10 * 12, dtype=np.float64).reshape(2, 3, 10, 12) % 7
    maps[0, 1, 5, 5] = np.nan
    drift = np.array([[0.0, 0.0], [16.0, -8.0], [0.0, 8.0]])  # image px; step 8 → (2, -1), (0, 1)
    out = apply_drift(maps, drift, step=8, order=1)
    np.testing.assert_array_equal(out[:, 1, :-2, 1:], maps[:, 1, 2:, :-1])
    assert np.isnan(out[0, 1, 3, 6]) and np.all(np.isnan(out[:, 1, -2:, :]))
    np.testing.assert_array_equal(out[:, 2, :, :-1], maps[:, 2, :, 1:])


def test_shift_region_and_polygon_follow_the_drift():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:9, 6:12] = True
    drift = np.array([[0.0, 0.0], [8.0, 16.0], [np.nan, np.nan]])  # image px, step 4
    moved = shift_region(mask, drift, step=4)
    assert moved.shape == (3, 20, 20)
    np.testing.assert_array_equal(moved[0], mask)
    np.testing.assert_array_equal(moved[1], np.roll(np.roll(mask, 2, 0), 4, 1))
    assert not moved[2].any()
    verts = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0]])
    tracked = shift_polygon(verts, drift[:2], pixel_size=0.5)
    np.testing.assert_allclose(tracked[1], verts + np.array([4.0, 8.0]))
    with pytest.raises(ValueError, match="mask must be a 2-D"):
        shift_region(np.zeros((2, 3, 3), bool), drift)
    with pytest.raises(ValueError, match="shifts must have shape"):
        apply_drift(np.zeros((2, 4, 4)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="step"):
        apply_drift(np.zeros((2, 4, 4)), np.zeros((2, 2)), step=0)
