"""Synthetic Pd [110] lattices shared by the engine's tests and ``benchmarks/accuracy.py``."""

from __future__ import annotations

from napari_hrtem_fft.core import synthetic as syn

PX = 0.02  # nm per pixel
REFL = syn.pd_110_reflections(10.0)  # (1-11), (-111), (002) of Pd [110]


def ellipse(shape, fraction=0.45):
    """A particle filling ``fraction`` of the image along each axis (``(y, x)`` in nm)."""
    cy, cx = shape[0] * PX / 2, shape[1] * PX / 2
    ry, rx = fraction * shape[0] * PX, fraction * shape[1] * PX
    return lambda y, x: ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def noisy_particle(shape, seed=3):
    """Image and truth of the elliptic particle with fringes of amplitude 0.2 in white
    noise of std 0.2 (SNR 1 per pixel), on an amorphous film of std 0.1."""
    return syn.synthetic_lattice(
        shape,
        pixel_size=PX,
        reflections=REFL,
        amplitudes=0.2,
        noise=0.2,
        amorphous=0.1,
        particle=ellipse(shape),
        seed=seed,
    )
