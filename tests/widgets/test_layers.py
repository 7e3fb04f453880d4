"""maps_to_layers: calibration, names, colour maps and metadata of the map layers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft._napari.layers import (
    RESULT_KEY,
    contrast_limits,
    find_result_layers,
    maps_to_layers,
    result_info,
)
from napari_hrtem_fft.core.maps import LatticeMaps, StrainMaps
from napari_hrtem_fft.core.reciprocal import g_spacing


def _maps(shape=(3, 5, 7), *, strain=True, step=8, pixel_size=0.02):
    rng = np.random.default_rng(1)
    n = shape[0]
    refl = np.array([[-0.89, 5.06], [3.13, 3.16], [-4.02, 1.90]])[:n]
    ref_d = g_spacing(refl).reshape((n,) + (1,) * (len(shape) - 1))
    d = ref_d * (1 + 0.01 * rng.standard_normal(shape))
    angle = np.full(shape, 10.0) + rng.standard_normal(shape)
    exx = 0.02 * rng.standard_normal(shape[1:])
    s = (
        StrainMaps(exx=exx, eyy=exx, exy=-exx, rotation=exx * 50, reference=refl)
        if strain
        else None
    )
    return LatticeMaps(
        d_spacing=d,
        angle=angle,
        amplitude=np.abs(d) * 100,
        d_sigma=d * 1e-3,
        angle_sigma=angle * 1e-3,
        reflections=refl,
        window=64,
        step=step,
        pixel_size=pixel_size,
        strain=s,
        parameters={"search": 0.1},
    )


def test_scale_translate_put_each_map_pixel_on_its_window_centre():
    maps = _maps(step=8)
    image_scale, image_translate = (0.02, 0.02), (1.5, -3.0)
    tuples = maps_to_layers(maps, image_scale=image_scale, image_translate=image_translate)
    for data, kwargs, kind in tuples:
        assert kind == "image"
        assert kwargs["scale"] == pytest.approx((0.16, 0.16), rel=1e-12)
        assert kwargs["translate"] == image_translate
        # Map pixel (i, j) in world coordinates == image pixel (i·step, j·step).
        i, j = 3, 5
        world_map = np.asarray(kwargs["translate"]) + np.array([i, j]) * kwargs["scale"]
        world_image = np.asarray(image_translate) + np.array([i * 8, j * 8]) * image_scale
        np.testing.assert_allclose(world_map, world_image, rtol=0, atol=1e-12)
        assert data.shape == (5, 7)


def test_names_kinds_colormaps_and_visibility():
    tuples = maps_to_layers(_maps())
    names = [kw["name"] for _, kw, _ in tuples]
    # Per kind, reflections in order (d in the name), then the strain components.
    expected = [f"d-spacing {k} ({d} nm)" for k, d in ((1, 0.195), (2, 0.225), (3, 0.225))]
    expected += [f"{kind} {k}" for kind in ("angle", "amplitude") for k in (1, 2, 3)]
    assert names == [*expected, "exx", "eyy", "exy", "rotation (°)"]
    by_name = {kw["name"]: kw for _, kw, _ in tuples}
    assert by_name["d-spacing 1 (0.195 nm)"]["visible"] is True
    assert sum(kw["visible"] for _, kw, _ in tuples) == 1
    assert by_name["d-spacing 2 (0.225 nm)"]["colormap"] == "viridis"
    low, high = by_name["exx"]["contrast_limits"]
    assert low == pytest.approx(-high) and high > 0
    assert by_name["exx"]["colormap"] == "coolwarm"
    for kw in by_name.values():
        assert kw["blending"] == "translucent" and kw["opacity"] == 1.0
        assert kw["units"] == ("nm", "nm")


def test_metadata_records_every_parameter():
    tuples = maps_to_layers(_maps(), source="Pd", options={"smoothing": "none"})
    info = tuples[0][1]["metadata"][RESULT_KEY]
    assert info["kind"] == "d_spacing" and info["reflection"] == 0
    assert info["source"] == "Pd"
    assert np.asarray(info["reflections_per_nm"]).shape == (3, 2)
    # Every value once: the grid with the engine's parameters, nowhere else.
    assert info["parameters"] == {"window": 64, "step": 8, "pixel_size": 0.02, "search": 0.1}
    assert not {"window", "step", "pixel_size_nm"} & set(info)
    assert info["options"] == {"smoothing": "none"}
    assert info["version"]


def test_contrast_limits_are_robust_percentiles_and_ignore_nan():
    values = np.linspace(0, 100, 10001)
    values[:50] = np.nan
    values[-1] = 1e9  # an outlier does not stretch the range
    low, high = contrast_limits(values)
    assert low == pytest.approx(1.5, abs=0.1) and high == pytest.approx(99.0, abs=0.1)
    assert contrast_limits(np.full(10, np.nan)) == (0.0, 1.0)
    assert contrast_limits(np.array([-0.01, 0.03]), symmetric=True)[0] < 0


def test_a_map_flatter_than_hrtem_resolves_is_shown_flat_not_stretched():
    # PTO's d map varies by 0.0001 nm (0.03 %): its percentiles would stretch that
    # ripple over the whole colour map.  The range is at least 0.2 % of d, centred.
    from napari_hrtem_fft._napari.layers import _display

    ripple = 0.28365 + 0.00005 * np.sin(np.arange(1000.0))
    _, (low, high) = _display("d_spacing", ripple)
    assert high - low == pytest.approx(2e-3 * 0.28365, rel=1e-3)
    assert (low + high) / 2 == pytest.approx(0.28365, abs=1e-5)
    wide = np.linspace(0.20, 0.24, 1001)  # a 3.5 % core-shell step keeps its range
    assert _display("d_spacing", wide)[1] == pytest.approx((0.2004, 0.2396), abs=1e-4)
    assert contrast_limits(np.full(9, 1e-5), symmetric=True, min_span=2e-3) == (-1e-3, 1e-3)


def test_angle_map_small_spread_is_centred_large_spread_cyclic():
    from napari_hrtem_fft._napari.layers import _angle_display

    cmap, (low, high) = _angle_display(np.array([9.0, 10.0, 11.0, 10.5]))
    assert cmap == "coolwarm" and (low + high) / 2 == pytest.approx(10.25, abs=0.3)
    cmap, limits = _angle_display(np.linspace(-170, 170, 100))
    assert cmap == "twilight_shifted" and limits == (-180.0, 180.0)


def test_movie_maps_keep_the_time_axis_calibration():
    maps = _maps(shape=(2, 4, 5, 6), strain=False)
    tuples = maps_to_layers(maps, image_scale=(0.5, 0.02, 0.02), units=("s", "nm", "nm"))
    assert tuples[0][0].shape == (4, 5, 6)
    assert tuples[0][1]["scale"] == pytest.approx((0.5, 0.16, 0.16))
    assert tuples[0][1]["units"] == ("s", "nm", "nm")


def test_dask_maps_stay_lazy():
    da = pytest.importorskip("dask.array")
    maps = _maps()
    maps.d_spacing = da.from_array(maps.d_spacing, chunks=(1, 2, 7))
    tuples = maps_to_layers(maps, kinds=("d_spacing",))
    assert isinstance(tuples[0][0], da.Array)


def test_bad_input_is_named():
    maps = _maps()
    with pytest.raises(ValueError, match="image_scale"):
        maps_to_layers(maps, image_scale=(0.02,))
    with pytest.raises(ValueError, match="kinds"):
        maps_to_layers(maps, kinds=("d",))
    with pytest.raises(ValueError, match="opacity"):
        maps_to_layers(maps, opacity=2)
    with pytest.raises(TypeError, match="LatticeMaps"):
        maps_to_layers({"d_spacing": 1})


def test_find_result_layers_by_source():
    class FakeLayer:
        def __init__(self, metadata):
            self.metadata = metadata

    a = FakeLayer({RESULT_KEY: {"kind": "exx", "source": "A"}})
    b = FakeLayer({RESULT_KEY: {"kind": "exx", "source": "B"}})
    other = FakeLayer({"something": 1})
    assert find_result_layers([a, other, b]) == [a, b]
    assert find_result_layers([a, other, b], source="B") == [b]
    assert result_info(other) is None


def test_the_console_module_offers_every_public_name_of_the_adapter():
    # Scripts written in napari's console import from napari_hrtem_fft.layers
    # (docs/console.md); the docks use the adapter itself.
    import napari_hrtem_fft.layers as console
    from napari_hrtem_fft._napari import layers as adapter

    assert console.__all__ == adapter.__all__
    for name in adapter.__all__:
        assert getattr(console, name) is getattr(adapter, name)
