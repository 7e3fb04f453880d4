"""Local lattice spacing, angle and strain maps of HRTEM images by rolling-window FFT.

The public API is importable from the package root and never imports napari or Qt::

    import napari_hrtem_fft as hf
    (mg,) = hf.read_micrographs("particle.dm4")
    g = hf.find_reflections(mg.data, pixel_size=mg.scale[-1])
    maps = hf.analyze(mg.data, g[:3], pixel_size=mg.scale[-1], window=128, step=8)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Attributes resolved on first use, so that `import napari_hrtem_fft` (done by napari
# when it discovers the plugin) stays cheap.
_PUBLIC = {
    "Micrograph": "napari_hrtem_fft.io",
    "write_tiff": "napari_hrtem_fft.io",
    "read_micrographs": "napari_hrtem_fft.io",
    "region_fft": "napari_hrtem_fft.core.fft",
    "find_reflections": "napari_hrtem_fft.core.fft",
    "refine_reflection": "napari_hrtem_fft.core.fft",
    "analyze": "napari_hrtem_fft.core.engine",
    "analyze_gpa": "napari_hrtem_fft.core.gpa",
    "matched_resolution": "napari_hrtem_fft.core.gpa",
    "displacement": "napari_hrtem_fft.core.phase",
    "find_dislocations": "napari_hrtem_fft.core.phase",
    "Dislocations": "napari_hrtem_fft.core.phase",
    "line_profile": "napari_hrtem_fft.core.profile",
    "LineProfile": "napari_hrtem_fft.core.profile",
    "iter_analyze": "napari_hrtem_fft.core.engine",
    "check_reflections": "napari_hrtem_fft.core.engine",
    "diagnose": "napari_hrtem_fft.core.engine",
    "LatticeMaps": "napari_hrtem_fft.core.maps",
    "StrainMaps": "napari_hrtem_fft.core.maps",
    "strain": "napari_hrtem_fft.core.strain",
    "clean": "napari_hrtem_fft.core.postprocess",
    "crystal_mask": "napari_hrtem_fft.core.postprocess",
    "intensity_mask": "napari_hrtem_fft.core.postprocess",
    "smooth": "napari_hrtem_fft.core.postprocess",
    "apply_mask": "napari_hrtem_fft.core.postprocess",
    "mask_to_map": "napari_hrtem_fft.core.postprocess",
    "reflection_statistics": "napari_hrtem_fft.core.statistics",
    "pd_core_shell_sample": "napari_hrtem_fft.core.synthetic",
    "synthetic_lattice": "napari_hrtem_fft.core.synthetic",
    "dislocation_sample": "napari_hrtem_fft.core.synthetic",
    "g_spacing": "napari_hrtem_fft.core.reciprocal",
    "correction_from_planes": "napari_hrtem_fft.core.calibration",
    "correct_maps": "napari_hrtem_fft.core.calibration",
    "g_angle": "napari_hrtem_fft.core.reciprocal",
    "synthetic_movie": "napari_hrtem_fft.core.synthetic",
    "register_frames": "napari_hrtem_fft.core.drift",
    "apply_drift": "napari_hrtem_fft.core.drift",
    "shift_region": "napari_hrtem_fft.core.drift",
    "shift_polygon": "napari_hrtem_fft.core.drift",
    "analyze_movie": "napari_hrtem_fft.core.movie",
    "iter_analyze_movie": "napari_hrtem_fft.core.movie",
    "MovieResult": "napari_hrtem_fft.core.movie",
    "time_trace": "napari_hrtem_fft.core.movie",
    "TimeTrace": "napari_hrtem_fft.core.movie",
    "trace_to_csv": "napari_hrtem_fft.core.movie",
    "trace_text": "napari_hrtem_fft.core.movie",
    "region_from_polygon": "napari_hrtem_fft.core.movie",
    "compute_maps": "napari_hrtem_fft.core.movie",
    "to_zarr": "napari_hrtem_fft.core.movie",
    "read_zarr_maps": "napari_hrtem_fft.core.movie",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'napari_hrtem_fft' has no attribute {name!r}")


def __dir__():
    return __all__
