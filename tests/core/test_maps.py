"""LatticeMaps owns its vocabulary: field names, every array by name, map geometry."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_hrtem_fft.core.maps import LatticeMaps, StrainMaps, map_geometry, map_shape
from napari_hrtem_fft.core.quantities import MAP_QUANTITIES, STRAIN_QUANTITIES
from napari_hrtem_fft.layers import KINDS, RESULT_KEY, movie_maps_from_layers


def _maps(lead=(3,), n=2, shape=(4, 5), phase=False, strain=True):
    rng = np.random.default_rng(1)
    full = (n, *lead, *shape)
    fields = {name: rng.random(full) for name in MAP_QUANTITIES}
    comps = {c: rng.random((*lead, *shape)) for c in STRAIN_QUANTITIES}
    refl = np.array([[1.0, -5.0], [2.5, 4.0]])
    return LatticeMaps(
        **fields,
        reflections=refl,
        window=64,
        step=8,
        pixel_size=0.02,
        strain=StrainMaps(**comps, reference=refl) if strain else None,
        phase=rng.uniform(-np.pi, np.pi, full) if phase else None,
        parameters={"a": 1},
    )


def test_one_field_list_everywhere():
    assert LatticeMaps.FIELDS == (*MAP_QUANTITIES, "phase")
    assert LatticeMaps.OPTIONAL == ("phase",)
    assert StrainMaps.FIELDS == tuple(STRAIN_QUANTITIES)
    assert KINDS == (*LatticeMaps.FIELDS, "strain")


def test_arrays_names_every_map_and_skips_absent_optional_ones():
    maps = _maps()
    arrays = maps.arrays()
    assert list(arrays) == [*MAP_QUANTITIES, *STRAIN_QUANTITIES]
    assert arrays["d_sigma"] is maps.d_sigma and arrays["exy"] is maps.strain.exy
    with_phase = _maps(phase=True, strain=False)
    assert list(with_phase.arrays()) == [*MAP_QUANTITIES, "phase"]


def test_with_arrays_replaces_by_name_and_keeps_the_rest():
    maps = _maps(phase=True)
    new = {name: np.zeros_like(a) for name, a in maps.arrays().items()}
    copy = maps.with_arrays(new)
    for name, a in copy.arrays().items():
        assert a is new[name]
    assert copy.strain.reference is maps.strain.reference
    assert copy.parameters == maps.parameters and copy.parameters is not maps.parameters
    partial = maps.with_arrays({"angle_sigma": new["angle_sigma"]})
    assert partial.angle_sigma is new["angle_sigma"] and partial.d_spacing is maps.d_spacing
    with pytest.raises(ValueError, match="unknown map names"):
        maps.with_arrays({"d": new["d_spacing"]})
    with pytest.raises(ValueError, match="no strain"):
        _maps(strain=False).with_arrays({"exx": new["exx"]})


def test_map_shape_has_one_pixel_per_step_up_to_the_last_image_pixel():
    # 37 pixels at step 8: windows centred on 0, 8, 16, 24, 32 -> 5; 40 pixels: 0..32 -> 5.
    assert map_shape((37, 40), 8) == (5, 5)
    assert map_shape((41, 1), 8) == (6, 1)
    assert map_shape((12, 3, 256, 255), 8) == (12, 3, 32, 32)  # leading axes kept
    assert map_shape(np.zeros((7, 9)).shape, 1) == (7, 9)
    with pytest.raises(ValueError, match="step >= 1"):
        map_shape((10, 10), 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., h, w\)"):
        map_shape((10,), 2)


def test_geometry_of_image_maps_and_of_a_movie_on_some_frames():
    # Map pixel (i, j) sits on image pixel (i·step, j·step): scale × step, same translate.
    g = map_geometry((0.05, 0.02, 0.02), (10.0, 1.0, 2.0), 8)
    assert g == {"scale": (0.05, 0.16, 0.16), "translate": (10.0, 1.0, 2.0)}
    # Frames 4, 7, 10: the time axis starts at frame 4 and steps by 3 frames.
    g = map_geometry((0.05, 0.02, 0.02), (10.0, 1.0, 2.0), 8, frames=range(4, 12, 3))
    assert g["scale"] == pytest.approx((0.15, 0.16, 0.16))
    assert g["translate"] == pytest.approx((10.2, 1.0, 2.0))
    maps = _maps()
    assert maps.geometry() == {"scale": (1.0, 0.16, 0.16), "translate": (0.0, 0.0, 0.0)}
    with pytest.raises(ValueError, match="one value per image axis"):
        map_geometry((0.02, 0.02), (0.0,), 8)
    with pytest.raises(ValueError, match="no time axis"):
        map_geometry((0.02, 0.02), (0.0, 0.0), 8, frames=range(3))
    with pytest.raises(ValueError, match="finite"):
        map_geometry((np.inf, 0.02), (0.0, 0.0), 8)


def _layer(data, kind, reflection, maps):
    info = {
        "kind": kind,
        "reflection": reflection,
        "reflections_per_nm": maps.reflections.tolist(),
        "window": maps.window,
        "step": maps.step,
        "pixel_size_nm": maps.pixel_size,
    }
    return SimpleNamespace(
        data=data,
        metadata={RESULT_KEY: info},
        scale=(1.0, 0.16, 0.16),
        translate=(0.0, 0.0, 0.0),
        units=("s", "nm", "nm"),
    )


def test_maps_rebuilt_from_movie_layers_keep_sigma_maps():
    maps = _maps()
    layers = [
        _layer(getattr(maps, kind)[k], kind, k, maps)
        for kind in ("d_spacing", "angle", "d_sigma", "angle_sigma")
        for k in range(maps.n_reflections)
    ]
    rebuilt, _, _ = movie_maps_from_layers(layers)
    np.testing.assert_array_equal(rebuilt.d_sigma, maps.d_sigma)
    np.testing.assert_array_equal(rebuilt.angle_sigma, maps.angle_sigma)
    assert np.all(np.isnan(rebuilt.amplitude))  # no amplitude layers: NaN, not 0
    assert rebuilt.phase is None and rebuilt.strain is None
