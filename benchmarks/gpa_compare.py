"""GPA against the local-FFT maps: speed, dislocations, matched-resolution comparison.

Prints the figures of ``docs/gpa.md``::

    .venv/bin/python benchmarks/gpa_compare.py [--repeat 5] [--seeds 4] [--data ../shared/data]

1. Speed: ``analyze`` and ``analyze_gpa`` on the same 2048² float32 image, step 4, three
   reflections, best of ``--repeat`` alternating runs in this process.
2. Dislocations: ``find_dislocations`` and ``displacement`` on ``dislocation_sample``
   images (two layouts × ``--seeds`` noise seeds): core position error, |b| and angle
   errors, false cores inside the crystal, displacement RMS 2 nm or more from the cores.
3. Core-shell sample at matched resolution (``matched_resolution(window)``): RMS error of
   each method against the truth away from the interface, RMS difference between the
   two, and the 10-90 % width of the interface in the dilatation averaged over 36 radii.
4. Real images (PZO.dm3, Acquisition_18.emd): RMS difference of ``d`` and strain
   between the methods at matched resolution, over the pixels valid in both.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import napari_hrtem_fft as hf
from napari_hrtem_fft.core.profile import line_profile, step_width
from napari_hrtem_fft.core.synthetic import (
    dislocation_sample,
    lattice_translations,
    pd_110_reflections,
)

PIXEL = 0.02


def speed(repeat: int) -> None:
    img, truth = hf.pd_core_shell_sample((2048, 2048))
    refl = truth.reflections
    for run in (hf.analyze, hf.analyze_gpa):  # warm-up (FFT plans, imports)
        run(img[:512, :512], refl, pixel_size=PIXEL, step=4)
    print("## Speed: 2048² float32, step 4, 3 reflections, window 128 / matched GPA")
    for strain in (True, False):
        times = {"analyze": [], "analyze_gpa": []}
        for _ in range(repeat):
            for run in (hf.analyze, hf.analyze_gpa):
                t0 = time.perf_counter()
                run(img, refl, pixel_size=PIXEL, step=4, compute_strain=strain)
                times[run.__name__].append(time.perf_counter() - t0)
        best = {k: min(v) for k, v in times.items()}
        print(f"compute_strain={strain}")
        for k, v in best.items():
            print(f"  {k:12s} best {v:.3f} s  (all: {', '.join(f'{t:.3f}' for t in times[k])})")
        print(f"  analyze / analyze_gpa = {best['analyze'] / best['analyze_gpa']:.2f}")


def _layouts():
    refl = pd_110_reflections(-37.0)
    a1, a2 = lattice_translations(refl)
    centre = np.array([10.24, 10.24])
    cores = centre + np.array([[2.13, 2.57], [-3.71, 0.43], [0.37, -4.11], [4.2, -2.9]])
    return [
        {},
        {"cores": cores, "burgers": np.stack([a1, -(a1 - a2), a1 + a2, -a2]), "rotation": -37.0},
    ]


def _angle(v):
    return np.degrees(np.arctan2(-v[..., 0], v[..., 1]))


def dislocations(seeds: int) -> None:
    print("\n## Dislocations: dislocation_sample, fringe SNR 2, film 0.1, GPA step 4, window 128")
    pos_err, b_err, ang_err, rms, false, missed = [], [], [], [], 0, 0
    for layout in _layouts():
        for seed in range(seeds):
            img, truth = dislocation_sample(seed=seed, **layout)
            maps = hf.analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=4)
            found = hf.find_dislocations(maps)
            res = maps.parameters["resolution_nm"]
            inside = np.hypot(*(found.position - 10.24).T) < 9.0 - res
            matched = set()
            for core, b in zip(truth.cores, truth.burgers, strict=True):
                dist = np.hypot(*(found.position - core).T)
                k = int(np.argmin(dist)) if dist.size else -1
                if k < 0 or dist[k] > 0.5:
                    missed += 1
                    continue
                matched.add(k)
                pos_err.append(dist[k])
                b_err.append(np.hypot(*found.burgers[k]) / np.hypot(*b) - 1)
                ang_err.append((_angle(found.burgers[k]) - _angle(b) + 180) % 360 - 180)
            false += int(sum(1 for k in np.nonzero(inside)[0] if k not in matched))
            u = hf.displacement(maps)
            true_u = truth.displacement[:, ::4, ::4]
            yy, xx = np.mgrid[: u.shape[1], : u.shape[2]] * 4 * PIXEL
            near = np.min([np.hypot(yy - c[0], xx - c[1]) for c in truth.cores], axis=0)
            far = (near > 2.0) & (np.hypot(yy - 10.24, xx - 10.24) < 9.0 - 1.5 * res)
            diff = (u - true_u)[:, far]
            basis = lattice_translations(truth.reflections)
            cyc = truth.reflections[:2] @ diff
            cyc -= np.round(cyc - np.median(cyc, axis=1, keepdims=True))
            diff = basis.T @ cyc
            diff -= np.median(diff, axis=1, keepdims=True)
            rms.append(np.sqrt(np.mean(np.sum(diff**2, axis=0))))
    pos_err, b_err, ang_err = map(np.asarray, (pos_err, b_err, ang_err))
    n = len(pos_err) + missed
    print(f"cores: {n} true, {len(pos_err)} found within 0.5 nm, {missed} missed, {false} false")
    print(f"position error: max {pos_err.max():.3f} nm, median {np.median(pos_err):.3f} nm")
    print(
        f"|b| error: max {np.abs(b_err).max() * 100:.2f} %; angle error: max "
        f"{np.abs(ang_err).max():.2f}°"
    )
    print(
        f"displacement RMS >= 2 nm from cores: max {max(rms) * 1000:.2f} pm, "
        f"mean {np.mean(rms) * 1000:.2f} pm over {len(rms)} images"
    )


def random_layouts(count: int, seed: int = 1) -> None:
    """Random orientation, 2-5 cores >= 1.8 nm apart within 7.8 nm of the centre, random
    lattice-translation Burgers vectors, random noise seed; pass = every target met."""
    from dislocations import random_layouts as draw  # the same layouts, one generator

    print(f"\n## Dislocations on {count} random layouts (seed {seed})")
    passed = 0
    for trial, (img, truth) in enumerate(draw(count, seed)):
        k = len(truth.cores)
        rot = float(np.degrees(np.arctan2(-truth.reflections[2, 0], truth.reflections[2, 1])))
        maps = hf.analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=4)
        found = hf.find_dislocations(maps)
        inside = np.hypot(*(found.position - 10.24).T) < 9.0 - maps.parameters["resolution_nm"]
        ok, matched = True, set()
        for c, b in zip(truth.cores, truth.burgers, strict=True):
            dist = np.hypot(*(found.position - c).T) if len(found) else np.array([np.inf])
            j = int(np.argmin(dist))
            got = found.burgers[j] if len(found) else np.zeros(2)
            ang = abs((_angle(got) - _angle(b) + 180) % 360 - 180)
            ok &= bool(dist[j] < 0.5 and abs(np.hypot(*got) / np.hypot(*b) - 1) < 0.1 and ang < 10)
            matched.add(j)
        ok &= not any(j not in matched for j in np.nonzero(inside)[0])
        passed += ok
        print(f"  {trial}: {k} cores, 002 at {rot:.1f}°: {'pass' if ok else 'FAIL'}")
    print(f"{passed} of {count} layouts meet every target")


def _radial_width(maps, radii=(0.5, 6.1), count=36):
    widths, steps = [], []
    profiles = []
    for deg in np.arange(count) * 360.0 / count:
        t = np.radians(deg)
        unit = np.array([-np.sin(t), np.cos(t)])
        prof = line_profile(maps, 10.24 + radii[0] * unit, 10.24 + radii[1] * unit, width=0.5)
        dil = 0.5 * (prof.values["exx"] + prof.values["eyy"])
        profiles.append(dil)
        widths.append(step_width(prof.distance, dil))
        q = dil.size // 4
        steps.append(np.nanmedian(dil[-q:]) - np.nanmedian(dil[:q]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_profile = np.nanmean(profiles, axis=0)
    return (step_width(prof.distance, mean_profile), np.nanmedian(widths), np.mean(steps))


def core_shell(window: int) -> None:
    res = hf.matched_resolution(window, PIXEL)
    print(f"\n## Core-shell sample 1024², window {window} vs GPA resolution {res:.3f} nm, step 4")
    for noise in (0.0, 0.1):
        img, truth = hf.pd_core_shell_sample((1024, 1024), noise=noise, amorphous=0.8 * noise)
        loc = hf.analyze(img, truth.reflections, pixel_size=PIXEL, step=4, window=window)
        gpa = hf.analyze_gpa(img, truth.reflections, pixel_size=PIXEL, step=4, window=window)
        yy, xx = np.mgrid[0:1024:4, 0:1024:4] * PIXEL
        rho = np.hypot(yy - 10.24, xx - 10.24)
        far = truth.interior(window)[::4, ::4] & (np.abs(rho - 4.0) > window * PIXEL / 2 + 0.3)
        far &= np.all(np.isfinite(gpa.d_spacing), axis=0)
        e_loc = truth.map_errors(loc, far)[0]
        e_gpa = truth.map_errors(gpa, far)[0]
        both = np.all(np.isfinite(loc.d_spacing) & np.isfinite(gpa.d_spacing), axis=0)
        diff = np.asarray(gpa.d_spacing)[:, both] / np.asarray(loc.d_spacing)[:, both] - 1
        dil_l = 0.5 * (loc.strain.exx + loc.strain.eyy)
        dil_g = 0.5 * (gpa.strain.exx + gpa.strain.eyy)
        w_loc = _radial_width(loc)
        w_gpa = _radial_width(gpa)
        print(f"noise {noise}: {far.sum()} map pixels away from the interface and edge")
        print(
            f"  RMS d error vs truth: local {np.sqrt(np.nanmean(e_loc**2)) * 100:.4f} %, "
            f"GPA {np.sqrt(np.nanmean(e_gpa**2)) * 100:.4f} %"
        )
        print(
            f"  RMS d difference GPA vs local (all {both.sum()} pixels valid in both): "
            f"{np.sqrt(np.mean(diff**2)) * 100:.4f} %; away from the interface: "
            f"{np.sqrt(np.nanmean((e_gpa - e_loc) ** 2)) * 100:.4f} %"
        )
        print(
            f"  RMS dilatation difference: "
            f"{np.sqrt(np.nanmean((dil_g - dil_l)[both] ** 2)) * 100:.4f} %"
        )
        print(
            f"  interface 10-90 % width of the dilatation (mean of 36 radial profiles; "
            f"median of the 36 widths): local {w_loc[0]:.3f} nm ({w_loc[1]:.3f}), "
            f"GPA {w_gpa[0]:.3f} nm ({w_gpa[1]:.3f}); step local "
            f"{w_loc[2] * 100:.3f} %, GPA {w_gpa[2] * 100:.3f} %"
        )


def planar_step(window: int) -> None:
    """A coherent planar interface: spacing along x steps by 3.5 %, no slip of the planes."""
    res = hf.matched_resolution(window, PIXEL)
    x0 = 5.12

    def mapping(y, x):
        return y, np.where(x < x0, x, x0 + (x - x0) / 1.035)

    refl = pd_110_reflections(10.0)
    print(
        f"\n## Coherent planar step of d along x (+3.5 %), 512², window {window} vs GPA "
        f"{res:.3f} nm, step 2; 10-90 % width of exx along a line across it"
    )
    expected = 0.4824 * window * PIXEL
    print(f"expected from the window shape for both: 0.482 window = {expected:.3f} nm")
    for noise in (0.0, 0.1):
        img, _ = hf.synthetic_lattice(
            (512, 512),
            pixel_size=PIXEL,
            reflections=refl,
            mapping=mapping,
            noise=noise,
            amorphous=0.8 * noise,
        )
        for run in (hf.analyze, hf.analyze_gpa):
            maps = run(img, refl, pixel_size=PIXEL, step=2, window=window)
            prof = line_profile(maps, (5.12, 2.0), (5.12, 8.24), width=4.0)
            print(
                f"  noise {noise} {run.__name__:12s}: width "
                f"{step_width(prof.distance, prof.values['exx']):.3f} nm"
            )


def real_images(data: Path, window: int) -> None:
    print(f"\n## Real images, window {window} vs matched GPA, step 4")
    for rel in ("dm3/PZO.dm3", "ncem_emd/Acquisition_18.emd"):
        path = data / rel
        if not path.exists():
            print(f"{rel}: not found")
            continue
        mg = hf.read_micrographs(path)[0]
        img = np.asarray(mg.data, dtype=np.float32)
        px = float(mg.scale[-1])
        g = hf.find_reflections(img, pixel_size=px, max_count=2)
        loc = hf.analyze(img, g, pixel_size=px, step=4, window=window)
        gpa = hf.analyze_gpa(img, g, pixel_size=px, step=4, window=window)
        both = np.all(np.isfinite(loc.d_spacing) & np.isfinite(gpa.d_spacing), axis=0)
        d_l, d_g = np.asarray(loc.d_spacing)[:, both], np.asarray(gpa.d_spacing)[:, both]
        rel_diff = d_g / d_l - 1
        spacings = [round(float(v), 4) for v in 1 / np.hypot(*g.T)]
        print(
            f"{rel}: {img.shape}, {px:.5g} nm/px, reflections d = {spacings} nm, "
            f"{both.sum()} pixels valid in both"
        )
        med_l, med_g = np.median(d_l, axis=1), np.median(d_g, axis=1)
        print(
            f"  median d local {[round(float(v), 5) for v in med_l]} nm, GPA "
            f"{[round(float(v), 5) for v in med_g]} nm"
        )

        def pct(v):
            return [round(float(x) * 100, 4) for x in v]

        print(
            f"  RMS d difference {pct(np.sqrt(np.mean(rel_diff**2, axis=1)))} %; RMS scatter "
            f"of d itself: local {pct(np.std(d_l / med_l[:, None], axis=1))} %, "
            f"GPA {pct(np.std(d_g / med_g[:, None], axis=1))} %"
        )
        for comp in ("exx", "eyy", "exy"):
            a = np.asarray(getattr(loc.strain, comp))[both]
            b = np.asarray(getattr(gpa.strain, comp))[both]
            print(
                f"  {comp}: RMS difference {np.sqrt(np.mean((a - b) ** 2)) * 100:.4f} %, "
                f"RMS local {np.std(a) * 100:.4f} %, GPA {np.std(b) * 100:.4f} %"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--random", type=int, default=8, help="random dislocation layouts")
    parser.add_argument("--only", choices=["speed", "dislocations", "core_shell", "real"])
    args = parser.parse_args()
    if args.only in (None, "speed"):
        speed(args.repeat)
    if args.only in (None, "dislocations"):
        dislocations(args.seeds)
        random_layouts(args.random)
    if args.only in (None, "core_shell"):
        core_shell(args.window)
    if args.only in (None, "core_shell"):
        planar_step(args.window)
    if args.only in (None, "real"):
        real_images(args.data, 128)


if __name__ == "__main__":
    main()
