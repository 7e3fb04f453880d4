"""napari dock widgets: reflection picker, lattice maps, statistics, time traces, line
profiles.

The analysis itself is in :mod:`napari_hrtem_fft.core`; these widgets only collect the
user's choices, run it in a worker thread and show the results as layers.
"""

from .lattice_maps import LatticeMapWidget
from .live import LiveWidget
from .picker import ReflectionPickerWidget
from .profile import LineProfileWidget
from .statistics import LatticeStatisticsWidget
from .time_trace import TimeTraceWidget

__all__ = [
    "LatticeMapWidget",
    "LatticeStatisticsWidget",
    "LineProfileWidget",
    "LiveWidget",
    "ReflectionPickerWidget",
    "TimeTraceWidget",
]
