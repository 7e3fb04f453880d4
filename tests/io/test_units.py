"""Unit spellings from instrument files map onto nm, 1/nm, s or px with the right factor."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hrtem_fft.io import parse_unit


@pytest.mark.parametrize(
    "unit, kind, factor",
    [
        ("nm", "length", 1.0),
        ("n_m", "length", 1.0),  # Berkeley EMD
        ("[n_m]", "length", 1.0),  # Prismatic
        ("nanometer", "length", 1.0),  # pint, as napari passes layer units
        ("A", "length", 0.1),  # DigitalMicrograph's Ångström
        ("\u00c5", "length", 0.1),  # Å, letter
        ("\u212b", "length", 0.1),  # Å, Ångström sign
        ("angstrom", "length", 0.1),
        ("pm", "length", 1e-3),
        ("\u00b5m", "length", 1e3),  # micro sign
        ("\u03bcm", "length", 1e3),  # Greek mu
        ("um", "length", 1e3),
        ("micron", "length", 1e3),  # ImageJ
        ("m", "length", 1e9),
        ("1/nm", "reciprocal", 1.0),
        ("1 / nm", "reciprocal", 1.0),  # Velox via rsciio
        ("1 / nanometer", "reciprocal", 1.0),
        ("nm^-1", "reciprocal", 1.0),
        ("1/m", "reciprocal", 1e-9),
        ("1/\u00c5", "reciprocal", 10.0),
        ("1/A", "reciprocal", 10.0),
        ("1/pm", "reciprocal", 1e3),
        ("s", "time", 1.0),
        ("ms", "time", 1e-3),
        ("", "none", 1.0),
        (None, "none", 1.0),
        ("pixel", "none", 1.0),
        ("px", "none", 1.0),
        (b"nm", "length", 1.0),
    ],
)
def test_parse_unit(unit, kind, factor):
    info = parse_unit(unit)
    assert info.kind == kind
    assert info.factor == pytest.approx(factor, rel=1e-15)
    assert (
        info.canonical == {"length": "nm", "reciprocal": "1/nm", "time": "s", "none": "px"}[kind]
    )


def test_unknown_units_are_kept_not_guessed():
    for unit in ("mrad", "eV", "counts"):
        info = parse_unit(unit)
        assert (info.kind, info.factor, info.canonical) == ("unknown", 1.0, unit)


def test_axis_times_in_seconds_only_for_a_time_axis():
    from napari_hrtem_fft.io import axis_times

    np.testing.assert_allclose(
        axis_times(4, scale=500.0, translate=1000.0, unit="ms"), [1.0, 1.5, 2.0, 2.5], rtol=1e-15
    )
    assert axis_times(3, scale=0.02, translate=0.0, unit="nm") is None
    assert axis_times(3, scale=1.0, translate=0.0, unit=None) is None
