"""napari dock widgets: picker, lattice maps, statistics, time traces (with live), profiles.

The analysis itself is in :mod:`napari_hrtem_fft.core`; these widgets only collect the
user's choices, run it in a worker thread and show the results as layers.  Each dock
has its own module (named in ``napari.yaml``), so that opening one imports only it; the
names below are resolved on first use.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "LatticeMapWidget": ".lattice_maps",
    "LatticeStatisticsWidget": ".statistics",
    "LineProfileWidget": ".profile",
    "ReflectionPickerWidget": ".picker",
    "TimeTraceWidget": ".time_trace",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    """Import a dock's module when its class is first asked for."""
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """The dock classes."""
    return __all__
