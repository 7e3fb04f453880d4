"""How much real crystal the default crystal mask keeps (issue 9 item 3).

On the five real lattice images of ``../shared/data`` (crystalline throughout), each
file is analysed with :func:`napari_hrtem_fft.analyze` (defaults, step 8) at every window
of 64, 128 and 256 px that is at most 2/3 of the image's smaller side, with the
reflections :func:`napari_hrtem_fft.find_reflections` suggests (the first two).  Printed:
the fraction of map pixels with a finite d (any reflection) without and with the default
:func:`napari_hrtem_fft.crystal_mask`, and the share of the finite windows the mask keeps
(target ≥ 0.97).  Then, on the synthetic Pd core-shell particle, the distance (image
pixels) between the mask's edge and the true particle edge (target ≤ window/4).

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/crystal_mask.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

import napari_hrtem_fft as hf

FILES = [
    "ncem_emd/Acquisition_18.emd",
    "tia/16_STOimage.emi",
    "dm3/example_Se_implanted_MoS2.dm3",
    "dm3/PZO.dm3",
    "dm4/PTO100-40nm-HAADF.dm4",
]
WINDOWS = (64, 128, 256)
STEP = 8


def kept_fraction(maps, mask) -> tuple[float, float, float]:
    """Finite fraction without and with the mask, and the share of finite pixels kept."""
    finite = np.any(np.isfinite(np.asarray(maps.d_spacing)), axis=0)
    kept = finite & np.asarray(mask)
    share = kept.sum() / finite.sum() if finite.any() else float("nan")
    return float(finite.mean()), float(kept.mean()), float(share)


def edge_error(mask, particle, step: int) -> tuple[float, float]:
    """Distances (image px) between the mask's edge and the true particle edge: the
    largest either way (a symmetric Hausdorff distance) and the mean.  Map pixel
    ``(i, j)`` stands for the ``step × step`` square of image pixels centred on
    ``(i·step, j·step)``."""
    h, w = particle.shape
    half = step // 2
    full = np.repeat(np.repeat(mask, step, axis=0), step, axis=1)
    full = np.pad(full, ((0, half), (0, half)))[half : half + h, half : half + w]

    def edge(m):
        return m & ~ndimage.binary_erosion(m, border_value=1)

    def distance_to_edge(m):
        return ndimage.distance_transform_edt(~edge(m))

    a = distance_to_edge(particle)[edge(full)]
    b = distance_to_edge(full)[edge(particle)]
    both = np.concatenate([a, b])
    return float(both.max(initial=0.0)), float(both.mean()) if both.size else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    parser.add_argument("--data", type=Path, default=default, help="shared data folder")
    args = parser.parse_args()
    print(f"{'file':<36} {'win':>4} {'finite':>7} {'masked':>7} {'kept':>6}")
    shares = []
    for name in FILES:
        (mg,) = hf.read_micrographs(args.data / name)
        image = np.asarray(mg.data, dtype=np.float64)
        pixel = float(mg.scale[-1])
        for window in (w for w in WINDOWS if w <= 2 * min(image.shape) / 3):
            g = hf.find_reflections(image, pixel_size=pixel, window=window)[:2]
            maps = hf.analyze(image, g, pixel_size=pixel, window=window, step=STEP)
            try:
                mask = hf.crystal_mask(maps)
            except ValueError as err:
                print(f"{name:<36} {window:>4}  crystal_mask failed: {err}")
                continue
            finite, masked, share = kept_fraction(maps, mask)
            shares.append(share)
            print(f"{name:<36} {window:>4} {finite:>7.3f} {masked:>7.3f} {share:>6.3f}")
    print(f"\nkept share of finite windows: min {np.nanmin(shares):.3f} (target >= 0.97)")

    image, truth = hf.pd_core_shell_sample()
    print(f"\nsynthetic Pd core-shell particle {image.shape}, step {STEP}:")
    for window in WINDOWS:
        maps = hf.analyze(image, truth.reflections, pixel_size=truth.pixel_size, window=window)
        mask = np.asarray(hf.crystal_mask(maps))
        worst, mean = edge_error(mask, truth.particle, STEP)
        print(
            f"  window {window:>3}: edge error max {worst:5.1f} px, mean {mean:5.1f} px "
            f"(target <= {window / 4:.0f} px)"
        )


if __name__ == "__main__":
    main()
