"""The displayed spectrum: finer than the FFT bins, peaks at their g, contrast and framing."""

import numpy as np
import pytest

from napari_hrtem_fft.core.fft import region_fft
from napari_hrtem_fft.core.fft_display import blank_spectrum, display_size, display_spectrum
from napari_hrtem_fft.core.synthetic import synthetic_lattice

PIXEL = 0.02  # nm


def _world(spectrum, index):
    return np.asarray(index, float) * spectrum.scale[0] + spectrum.translate[0]


@pytest.mark.parametrize(
    ("window", "size"), [(16, 512), (64, 512), (128, 512), (200, 600), (1024, 1024)]
)
def test_display_size_is_a_whole_multiple_of_the_window(window, size):
    assert display_size(window) == size


def test_off_bin_reflection_peaks_at_its_g_on_the_finer_grid():
    # A fringe at (5.25, 12.5) FFT bins falls between bins: the FFT's own maximum is
    # up to half a bin off, the 4× finer display puts it within 1/8 bin.
    window = 128
    bins = np.array([5.25, 12.5])
    g = bins / (window * PIXEL)
    image, _ = synthetic_lattice((200, 220), pixel_size=PIXEL, reflections=g)
    s = display_spectrum(image, (100, 110), window=window, pixel_size=PIXEL)
    assert s.data.shape == (512, 512) and s.data.dtype == np.float32
    assert s.scale == pytest.approx((1 / (512 * PIXEL),) * 2, rel=1e-12)
    assert s.bin == pytest.approx(1 / (window * PIXEL), rel=1e-12)
    # The zero frequency at the world origin.
    assert _world(s, 256) == pytest.approx(0.0, abs=1e-12)
    half = s.data[:, 257:]
    iy, ix = np.unravel_index(np.argmax(half), half.shape)
    peak = _world(s, [iy, ix + 257])
    assert np.all(np.abs(peak - g) <= s.bin / 8 + 1e-12)
    # Same window and centre as region_fft, whose bins it samples.
    assert s.center == region_fft(image, (100, 110), window=window, pixel_size=PIXEL).center


def test_contrast_spans_background_to_peak_and_framing_holds_the_reflection():
    window = 128
    g = np.array([[0.0, 16.0], [16.0, 0.0]]) / (window * PIXEL)  # d = 0.16 nm
    image, _ = synthetic_lattice((256, 256), pixel_size=PIXEL, reflections=g)
    rng = np.random.default_rng(0)
    image = image + 0.05 * rng.standard_normal(image.shape)
    s = display_spectrum(image, window=window, pixel_size=PIXEL)
    low, high = s.contrast_limits
    peak = s.data[256 + 4 * 16, 256]
    assert low < high
    assert peak == pytest.approx(high, abs=0.05 * (high - low))
    # The framed radius: 2.2 × |g| of the strongest reflection, below Nyquist.
    assert s.radius == pytest.approx(2.2 * 16 * s.bin, rel=1e-9)
    assert s.radius < 0.5 / PIXEL


def test_flat_window_gives_a_finite_display_and_bad_input_a_clear_error():
    s = display_spectrum(np.ones((64, 64)), window=64, pixel_size=PIXEL)
    assert np.all(np.isfinite(s.data)) and s.contrast_limits[1] > s.contrast_limits[0]
    with pytest.raises(ValueError, match="larger than the image"):
        display_spectrum(np.ones((32, 32)), window=64, pixel_size=PIXEL)
    with pytest.raises(ValueError, match="pixel_size"):
        display_spectrum(np.ones((64, 64)), window=64, pixel_size=0)


def test_blank_spectrum_has_the_shape_and_calibration_of_the_spectrum():
    image = np.random.default_rng(0).normal(size=(300, 300))
    for window in (64, 128, 256):
        blank = blank_spectrum(window, 0.05)
        real = display_spectrum(image, window=window, pixel_size=0.05)
        assert blank.data.shape == real.data.shape and blank.data.dtype == real.data.dtype
        assert not blank.data.any()
        assert blank.scale == real.scale and blank.translate == real.translate
        assert blank.bin == real.bin
    with pytest.raises(ValueError, match="pixel_size"):
        blank_spectrum(128, 0.0)
