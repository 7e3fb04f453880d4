"""Precision of ``analyze`` in a two-phase image (issue 10): each phase demodulated at its own
frequency, so that the minority phase is as precise as the majority one.

The lattice: Pd [110] everywhere, the right part dilated by 3.5 % about the interface line
(0.40 bin of a 128-pixel window for the 002), fringes 0.2 in white noise 0.2 (SNR 1).
Windows more than half a window + 0.3 nm from the interface are compared, per region,
with the truth and with the periodogram-peak reference of the same windows.
"""

from __future__ import annotations

import numpy as np
import pytest
from real_images import REAL_FILES, real_image, real_maps
from reference import periodogram_peak

from napari_hrtem_fft.core import synthetic as syn
from napari_hrtem_fft.core.engine import analyze

PX = 0.02
REFL = syn.pd_110_reflections(10.0)
WINDOW, STEP = 128, 16
SHAPE = (384, 832)
X0 = 352 * PX  # the interface: 29 % of the image core, 71 % shell (the majority)

# Issue 10's target is 0.9 over 8 seeds x ~450 windows (benchmarks/accuracy.py --only
# two_phase: 0.82-0.84 after, 1.00-1.07 in the minority region before).  Here one seed and
# 40 windows per region: the ratio of the two estimators' RMS scatters by about ±0.04
# (their errors share the noise), hence 0.92.
RATIO_TOL = 0.92


def _two_phase(seed=0):
    def mapping(y, x):
        shell = x > X0
        y_ref = np.where(shell, (y - SHAPE[0] * PX / 2) / 1.035 + SHAPE[0] * PX / 2, y)
        return y_ref, np.where(shell, X0 + (x - X0) / 1.035, x)

    return syn.synthetic_lattice(
        SHAPE, pixel_size=PX, reflections=REFL, amplitudes=0.2, noise=0.2, mapping=mapping,
        seed=seed,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_phase():
    image, truth = _two_phase()
    maps = analyze(image, REFL, pixel_size=PX, window=WINDOW, step=STEP, compute_strain=False)
    return image, truth, maps


def test_each_phase_gets_its_own_demodulation(two_phase):
    _, _, maps = two_phase
    first = np.asarray(maps.parameters["demodulation"])
    second = np.array(maps.parameters["second_demodulation"], dtype=float)
    # The majority (shell, 3.5 % smaller g) first, the core second, for every reflection.
    np.testing.assert_allclose(first, REFL / 1.035, rtol=0.004)
    np.testing.assert_allclose(second, REFL, rtol=0.004)


def test_both_regions_beat_the_periodogram_peak(two_phase):
    image, truth, maps = two_phase
    inside = truth.interior(WINDOW)[::STEP, ::STEP]
    x = np.arange(inside.shape[1]) * STEP * PX
    margin = WINDOW / 2 * PX + 0.3
    rng = np.random.default_rng(1)
    for region in (x < X0 - margin, x > X0 + margin):
        rows, cols = np.nonzero(inside & region[None, :])
        pick = rng.choice(rows.size, 40, replace=False)
        rows, cols = rows[pick], cols[pick]
        g_true = truth.g[:, ::STEP, ::STEP][:, rows, cols]
        g_fast = np.asarray(maps.g, dtype=np.float64)[:, rows, cols]
        for k, g in enumerate(REFL):
            g_ref = np.array(
                [
                    periodogram_peak(image, (r * STEP, c * STEP), g, pixel_size=PX, window=WINDOW)
                    for r, c in zip(rows, cols, strict=True)
                ]
            )
            rms_ref = np.sqrt(np.mean(np.sum((g_ref - g_true[k]) ** 2, axis=-1)))
            rms_fast = np.sqrt(np.mean(np.sum((g_fast[k] - g_true[k]) ** 2, axis=-1)))
            assert rms_fast <= RATIO_TOL * rms_ref, (k, rms_fast / rms_ref)


def test_one_phase_image_keeps_a_single_demodulation():
    image, _ = syn.synthetic_lattice(
        (384, 512), pixel_size=PX, reflections=REFL, amplitudes=0.2, noise=0.2, seed=2
    )
    maps = analyze(image, REFL, pixel_size=PX, window=WINDOW, step=STEP, compute_strain=False)
    assert "second_demodulation" not in maps.parameters


def test_dask_input_gives_the_same_two_phase_maps(two_phase):
    import dask.array as da

    image, _, _ = two_phase
    kwargs = dict(pixel_size=PX, window=WINDOW, step=STEP, compute_strain=False)
    chunks = (192, 416)
    ref = analyze(image, REFL, chunks=chunks, **kwargs)
    lazy = analyze(da.from_array(image, chunks=chunks), REFL, chunks=chunks, **kwargs)
    assert "second_demodulation" in ref.parameters
    # The same block layout: the same survey, modes and maps.
    for name in ("d_spacing", "angle", "amplitude"):
        np.testing.assert_array_equal(getattr(lazy, name).compute(), getattr(ref, name))


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_one_phase_images_keep_a_single_demodulation(shared_data, name):
    # One phase each: the survey's scatter of a weak reflection (PZO's 0.426 nm one at
    # window 64 spreads 0.11 bin, enough to put 5 % of its power 0.25 bin from the
    # median) must not split it into two modes.
    image, px, refl = real_image(shared_data / name)
    for window, maps in real_maps(image, px, refl, (64, 128)):
        assert "second_demodulation" not in maps.parameters, window
