"""npe2 sample data: a synthetic Pd core-shell nanoparticle with a known lattice."""

from __future__ import annotations

import inspect

import numpy as np


def make_core_shell_sample() -> list[tuple]:
    """Synthetic HRTEM image of a Pd [110] particle whose shell is expanded by 3.5 %.

    Made on the spot by :func:`napari_hrtem_fft.core.synthetic.pd_core_shell_sample`
    (seeded, no download): float32, 1024 × 1024 px at 0.02 nm/px. The layer metadata
    holds the generator parameters and the ground truth: reference reflections
    (nm⁻¹), their d-spacings and angles in the core and in the shell.

    Returns
    -------
    list of (data, kwargs, "image")
    """
    from napari_hrtem_fft.core.reciprocal import g_angle, g_spacing
    from napari_hrtem_fft.core.synthetic import PD_LATTICE_CONSTANT, pd_core_shell_sample
    from napari_hrtem_fft.io import Micrograph

    defaults = {
        name: p.default
        for name, p in inspect.signature(pd_core_shell_sample).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    image, truth = pd_core_shell_sample()
    expansion = float(defaults["expansion"])
    d_core = g_spacing(truth.reflections)
    ground_truth = {
        "lattice": "Pd fcc, zone axis [110]",
        "lattice_constant_core_nm": PD_LATTICE_CONSTANT,
        "lattice_constant_shell_nm": PD_LATTICE_CONSTANT * (1 + expansion),
        "reflections": ["1-11", "-111", "002"],
        "reference_g_per_nm": truth.reflections.tolist(),
        "angles_deg": g_angle(truth.reflections).tolist(),
        "d_core_nm": d_core.tolist(),
        "d_shell_nm": (d_core * (1 + expansion)).tolist(),
        "shell_strain": expansion,
        "particle_pixels": int(np.count_nonzero(truth.particle)),
    }
    mg = Micrograph(
        data=image,
        scale=(truth.pixel_size, truth.pixel_size),
        translate=(0.0, 0.0),
        units=("nm", "nm"),
        calibrated=True,
        reciprocal=False,
        name="Pd core-shell (synthetic)",
        metadata={
            "format": "synthetic",
            "source_path": None,
            "pixel_size_source": "synthetic generator (exact)",
            "generator": "napari_hrtem_fft.core.synthetic.pd_core_shell_sample",
            "parameters": {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()},
            "ground_truth": ground_truth,
            "original_metadata": {},
        },
    )
    return [(mg.data, mg.layer_kwargs(), "image")]
