"""The real lattice images of ``../shared/data`` and their maps, for the engine's tests and
``benchmarks/accuracy.py`` (one loop over files, reflections and windows for all of them).
"""

from __future__ import annotations

import numpy as np

import napari_hrtem_fft as hf

#: Crystalline throughout; spacings and traps in ``shared/data/README.md``.
REAL_FILES = [
    "ncem_emd/Acquisition_18.emd",
    "tia/16_STOimage.emi",
    "dm3/example_Se_implanted_MoS2.dm3",
    "dm3/PZO.dm3",
    "dm4/PTO100-40nm-HAADF.dm4",
]


def real_image(path):
    """The image (float32), its pixel size (nm) and its 3 strongest low-order reflections.

    The reflections are those Suggest finds (``find_reflections`` over 256-pixel windows,
    128 for images under 384 pixels), ``(3, 2)`` in nm⁻¹.
    """
    (mg, *_) = hf.read_micrographs(path)
    image = np.asarray(mg.data, dtype=np.float32)
    px = float(np.atleast_1d(mg.scale)[-1])
    window = 256 if min(image.shape) >= 384 else 128
    return image, px, hf.find_reflections(image, pixel_size=px, window=window)[:3]


def real_maps(image, px, refl, windows):
    """``(window, maps)`` per window: ``analyze`` at step 8 without strain, of the
    reflections at least 2 bins from the centre (the engine's limit); ``maps`` is ``None``
    for a window larger than 2/3 of the image.
    """
    for window in windows:
        if window > 2 / 3 * min(image.shape):
            yield window, None
            continue
        usable = np.hypot(refl[:, 0], refl[:, 1]) * window * px >= 2
        yield (
            window,
            hf.analyze(
                image, refl[usable], pixel_size=px, window=window, step=8, compute_strain=False
            ),
        )
