"""The analysis generator the widget runs, driven headless on the sample."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from widget_sample import D_002, D_111, PIXEL_SIZE

from napari_hrtem_fft.core.pipeline import (
    AnalysisOptions,
    Progress,
    run_analysis,
    run_to_end,
)
from napari_hrtem_fft.core.synthetic import pd_110_reflections


def test_progress_then_masked_maps(sample):
    image, _ = sample
    gen = run_analysis(
        image,
        pd_110_reflections(),
        pixel_size=PIXEL_SIZE,
        options=AnalysisOptions(window=64, step=16),
    )
    steps = []
    maps = run_to_end(gen, on_step=steps.append)
    assert all(isinstance(p, Progress) for p in steps)
    assert steps[-1].done == steps[-1].total and steps[-1].message == "crystal mask"
    done = [p.done for p in steps]
    assert done == sorted(done)
    assert maps.d_spacing.shape == (3, 64, 64)
    # The crystal mask blanks the amorphous film: the image corner is NaN, the centre not.
    assert np.isnan(maps.d_spacing[:, 0, 0]).all()
    # Median over the core (map pixels within 1.5 nm of the centre): within 0.5 %.
    core = np.nanmedian(maps.d_spacing[:, 28:37, 28:37], axis=(1, 2))
    np.testing.assert_allclose(core, [D_111, D_111, D_002], rtol=5e-3)


def test_smoothing_and_intensity_mask_are_applied(sample):
    image, _ = sample
    options = AnalysisOptions(
        window=64, step=16, crystal_mask=False, intensity_mask=True, smoothing="median"
    )
    gen = run_analysis(image, pd_110_reflections(), pixel_size=PIXEL_SIZE, options=options)
    maps = run_to_end(gen)
    assert {"smooth": {"size": 3, "method": "median"}} in maps.parameters["postprocessing"]
    # The sample's particle is no brighter than the film: threshold 0.5 keeps about half.
    kept = np.isfinite(maps.amplitude[0]).mean()
    assert 0.05 < kept < 0.95


def test_cancel_event_stops_a_long_movie_quickly(sample):
    image, _ = sample
    movie = np.stack([image] * 12)  # a few seconds of work
    cancel = threading.Event()
    gen = run_analysis(
        movie,
        pd_110_reflections(),
        pixel_size=PIXEL_SIZE,
        options=AnalysisOptions(window=64, step=8),
        cancel=cancel,
    )
    for progress in gen:
        if progress.done > 0:
            break
    cancel.set()
    after = []
    result = run_to_end(gen, on_step=after.append)
    assert result is None
    # It stops at the next block: no later frame is started (a count, not a time).
    assert all(step.done <= progress.done + 1 for step in after), [s.done for s in after]


def test_invalid_options_raise_named_errors(sample):
    with pytest.raises(ValueError, match="window must be even and >= 16"):
        AnalysisOptions(window=63)
    with pytest.raises(ValueError, match="window must be even and >= 16"):
        AnalysisOptions(window=8)
    with pytest.raises(ValueError, match=r"step \(80\) must not exceed window \(64\)"):
        AnalysisOptions(window=64, step=80)
    with pytest.raises(ValueError, match=r"search must be > 0 and <= 0.5"):
        AnalysisOptions(search=0.6)
    with pytest.raises(ValueError, match="smoothing"):
        AnalysisOptions(smoothing="box")
    with pytest.raises(ValueError, match="intensity_threshold"):
        AnalysisOptions(intensity_threshold=2.0)
    with pytest.raises(TypeError, match="step"):
        AnalysisOptions(step=8.0)
    with pytest.raises(ValueError, match="larger than the image"):
        run_to_end(run_analysis(np.zeros((32, 32)), [[0, 5.0]], pixel_size=0.02))


@pytest.mark.parametrize(
    ("option", "bad", "good"),
    [("window", 14, 16), ("window", 18 + 1, 18), ("search", 0.5 + 1e-9, 0.5), ("step", 0, 1)],
)
def test_option_rules_are_the_engines(option, bad, good):
    # One rule for every front end: what the options refuse the engine refuses, and the
    # boundary value the options accept the engine accepts.
    from napari_hrtem_fft import analyze

    image = np.random.default_rng(0).normal(size=(32, 32))
    base = {"window": 16, "step": 8, "search": 0.1}
    with pytest.raises(ValueError, match=option):
        AnalysisOptions(**{**base, option: bad})
    with pytest.raises(ValueError, match=option):
        analyze(image, [[0.0, 20.0]], pixel_size=0.02, **{**base, option: bad})
    options = AnalysisOptions(**{**base, option: good})
    maps = analyze(image, [[0.0, 20.0]], pixel_size=0.02, **options.engine_options())
    assert maps.window == options.window
