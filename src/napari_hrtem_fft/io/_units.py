"""Unit strings found in electron-microscopy files, normalised to nm, nm⁻¹ and s.

Instrument software spells the same unit many ways: DigitalMicrograph writes ``µm``
(micro sign), ``um`` or ``A``; ImageJ ``micron``; the Berkeley EMD convention ``n_m``
or ``[n_m]``; Velox ``1/m``; pint ``1 / nanometer``. :func:`parse_unit` maps all of
them onto the few canonical units the plugin works in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["NM", "PX", "RECIPROCAL_NM", "SECOND", "UnitInfo", "axis_times", "parse_unit"]

NM = "nm"
RECIPROCAL_NM = "1/nm"
PX = "px"
SECOND = "s"
FRAME = "frame"

# Length units in nm. Keys are lower-case, without spaces, brackets or underscores.
_LENGTH_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "å": 0.1,  # U+00C5 and U+212B both lower-case to U+00E5
    "a": 0.1,  # DigitalMicrograph writes Å as a plain "A"
    "ang": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "ångström": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometers": 1e-3,
    "picometre": 1e-3,
    "µm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "meters": 1e9,
    "metre": 1e9,
    "metres": 1e9,
}

_TIME_S = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "µs": 1e-6,
    "us": 1e-6,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "ns": 1e-9,
    "nanosecond": 1e-9,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}

# Strings that mean "no physical calibration".
_NONE = {
    "",
    "px",
    "pix",
    "pixel",
    "pixels",
    "csspixel",
    "none",
    "<undefined>",
    "undefined",
    "<auto>",
    "unknown",
    "dimensionless",
}

_RECIPROCAL = (
    re.compile(r"^1/(?P<u>.+)$"),
    re.compile(r"^(?P<u>.+?)\^?\(?-1\)?$"),
    re.compile(r"^(?P<u>.+?)⁻¹$"),
)


@dataclass(frozen=True)
class UnitInfo:
    """What a unit string means.

    Attributes
    ----------
    kind : str
        ``"length"``, ``"reciprocal"``, ``"time"``, ``"none"`` (no calibration) or
        ``"unknown"`` (a unit we do not convert, e.g. ``mrad`` or ``eV``).
    factor : float
        Multiply a value in the original unit by this to get it in ``canonical``.
    canonical : str
        ``"nm"``, ``"1/nm"``, ``"s"``, ``"px"``, or the original string when unknown.
    """

    kind: str
    factor: float
    canonical: str


def _clean(unit: str) -> str:
    # Greek mu (U+03BC) and micro sign (U+00B5) both occur; the Ångström sign (U+212B)
    # lower-cases to å like the letter Å, so it needs no special case.
    s = unit.strip().replace("\u03bc", "\u00b5")
    s = s.strip("[]()").strip()
    s = s.replace(" ", "").replace("_", "").replace("**", "^")
    return s.lower()


def parse_unit(unit) -> UnitInfo:
    """Interpret a unit string from a file.

    Parameters
    ----------
    unit : str, bytes or None
        The unit as stored, e.g. ``"µm"``, ``"A"``, ``"n_m"``, ``"[n_m]"``, ``"1 / nm"``,
        ``"1/m"``, ``"micron"``, ``"nanometer"`` (pint), ``""`` or ``None``.

    Returns
    -------
    UnitInfo
        Kind, conversion factor and canonical unit (nm for lengths, 1/nm for reciprocal
        lengths, s for times, px for none).

    Examples
    --------
    >>> parse_unit("A")
    UnitInfo(kind='length', factor=0.1, canonical='nm')
    >>> parse_unit("1/m").factor
    1e-09
    """
    if unit is None:
        return UnitInfo("none", 1.0, PX)
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", errors="replace")
    if not isinstance(unit, str):
        unit = str(unit)
    s = _clean(unit)
    if s in _NONE:
        return UnitInfo("none", 1.0, PX)
    if s in _LENGTH_NM:
        return UnitInfo("length", _LENGTH_NM[s], NM)
    if s in _TIME_S:
        return UnitInfo("time", _TIME_S[s], SECOND)
    for pattern in _RECIPROCAL:
        match = pattern.match(s)
        base = match["u"].strip("[]()") if match else None
        if base in _LENGTH_NM:
            # A value per Å is ten times a value per nm.
            return UnitInfo("reciprocal", 1.0 / _LENGTH_NM[base], RECIPROCAL_NM)
    return UnitInfo("unknown", 1.0, unit.strip())


def axis_times(n: int, *, scale: float, translate: float, unit) -> np.ndarray | None:
    """Times of the ``n`` samples of a (movie's time) axis, or None if it is no time axis.

    Parameters
    ----------
    n : int
        Number of samples (frames) along the axis.
    scale, translate : float
        The axis calibration: sample ``k`` is at ``translate + k·scale`` in ``unit``.
    unit : str or None
        Unit of the axis, e.g. ``"s"``, ``"ms"``; anything but a time gives None.

    Returns
    -------
    numpy.ndarray or None
        ``(n,)`` times in s.
    """
    info = parse_unit(unit)
    if info.kind != "time":
        return None
    return (translate + np.arange(int(n)) * scale) * info.factor
