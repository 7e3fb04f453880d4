"""Dislocation cores and displacement by both methods at every window and step.

Prints one table row per method × window/step × image set::

    .venv/bin/python benchmarks/dislocations.py [--seeds 8] [--close-seeds 4] [--random 24]

Image sets (``dislocation_sample``, Pd [110], 1024² at 0.02 nm/pixel, particle radius
9 nm on an amorphous film 0.1, fringes 0.2/0.2/0.12):

* ``3 cores``: the default layout (3 cores 5.9-6.7 nm apart), fringe SNR 2, noise seeds
  ``0 … seeds-1``;
* ``4 cores``: the layout at -37° of ``tests/core/test_dislocations.py`` (4 cores
  4.6-6.7 nm apart, other Burgers vectors), SNR 2, seeds ``0 … close_seeds-1``;
* ``close SNR 2`` / ``close SNR 1``: 4 cores 2.2-3.1 nm apart (one winding the 002
  phase twice), white noise 0.1 / 0.2, seeds ``0 … close_seeds-1``.

Methods: ``analyze`` (local FFT, Hann window) and ``analyze_gpa`` at the matched
resolution (``matched_resolution(window)``), on the same map grid; both then
``find_dislocations`` and ``displacement`` with the true reflections, and
``displacement`` again with the reflections ``find_reflections`` picks from the image's
FFT (0.5-2.7 % off the true ones), once relative to them (the default) and once relative
to the median local ``g`` (``reference="median"``).

Columns: cores found within 0.5 nm of a true core (one found core per true core) /
expected; false cores (found more than 0.5 nm from every true core, inside the crystal:
more than half a window from its edge); the largest position error, ``|b|`` error and
angle error of the found cores; the largest displacement RMS over the images, over map
pixels more than ``max(2 nm, 0.75 window)`` from every core and ``0.75 window`` inside
the particle, after removing the constant and reducing modulo lattice vectors (no
ramp is removed: a reference lattice off the true one shows as a linear error).  A set is
marked ``*`` when its closest cores are nearer than the window (the window cannot
separate them; the cores are then reported as one with the summed Burgers vector).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import napari_hrtem_fft as hf
from napari_hrtem_fft.core.synthetic import (
    dislocation_sample,
    lattice_translations,
    pd_110_reflections,
)

PIXEL = 0.02
CENTRE = 10.24  # nm, centre of the 1024² particle
RADIUS = 9.0  # nm
SETTINGS = [(64, 4), (64, 8), (64, 16), (128, 4), (128, 8), (128, 16), (256, 8)]


def _layout_4():
    refl = pd_110_reflections(-37.0)
    a1, a2 = lattice_translations(refl)
    cores = CENTRE + np.array([[2.13, 2.57], [-3.71, 0.43], [0.37, -4.11], [4.2, -2.9]])
    return {"cores": cores, "burgers": np.stack([a1, -(a1 - a2), a1 + a2, -a2]), "rotation": -37.0}


def _layout_close():
    refl = pd_110_reflections(25.0)
    a1, a2 = lattice_translations(refl)
    cores = np.array([[10.24, 9.14], [10.24, 11.34], [7.5, 12.8], [12.6, 7.6]])
    burgers = np.stack([a1 + a2, a1 - a2, -(a1 + a2), a2])
    return {"cores": cores, "burgers": burgers, "rotation": 25.0}


def image_sets(seeds: int, close_seeds: int) -> dict[str, list]:
    """``{name: [(image, truth), ...]}``."""
    sets = {
        "3 cores": [dislocation_sample(seed=s) for s in range(seeds)],
        "4 cores": [dislocation_sample(seed=s, **_layout_4()) for s in range(close_seeds)],
    }
    for snr, noise in ((2, 0.1), (1, 0.2)):
        sets[f"close SNR {snr}"] = [
            dislocation_sample(seed=s, noise=noise, **_layout_close()) for s in range(close_seeds)
        ]
    return sets


def _angle(v):
    return np.degrees(np.arctan2(-v[..., 0], v[..., 1]))


def _match(found, truth, tol=0.5):
    """Greedy one-to-one matching of found to true cores by distance (nm)."""
    pairs = []
    if len(found):
        dist = np.hypot(*(found.position[:, None, :] - truth.cores[None, :, :]).transpose(2, 0, 1))
        order = np.dstack(np.unravel_index(np.argsort(dist, axis=None), dist.shape))[0]
        used_f, used_t = set(), set()
        for f, t in order:
            if dist[f, t] > tol:
                break
            if f in used_f or t in used_t:
                continue
            used_f.add(f)
            used_t.add(t)
            pairs.append((f, t, dist[f, t]))
    return pairs


def displacement_rms(u, truth, step, window_nm, map_scale):
    """RMS (nm) of ``u`` minus the truth far from the cores, modulo lattice vectors."""
    true_u = truth.displacement[:, ::step, ::step][:, : u.shape[1], : u.shape[2]]
    yy, xx = np.mgrid[: u.shape[1], : u.shape[2]] * map_scale
    near = np.min([np.hypot(yy - c[0], xx - c[1]) for c in truth.cores], axis=0)
    far = (near > max(2.0, 0.75 * window_nm)) & (
        np.hypot(yy - CENTRE, xx - CENTRE) < RADIUS - 0.75 * window_nm
    )
    if far.sum() < 50:
        return float("nan"), 0.0
    diff = (u - true_u)[:, far]
    valid = np.all(np.isfinite(diff), axis=0)
    diff = diff[:, valid]
    basis = lattice_translations(truth.reflections)
    cyc = truth.reflections[:2] @ diff
    # Centred on the circular mean (the constant may be near half a cycle).
    mean = np.angle(np.mean(np.exp(2j * np.pi * cyc), axis=1, keepdims=True)) / (2 * np.pi)
    cyc -= np.round(cyc - mean)
    diff = basis.T @ cyc
    diff -= np.median(diff, axis=1, keepdims=True)
    return float(np.sqrt(np.mean(np.sum(diff**2, axis=0)))), float(1 - valid.mean())


def run(method, window, step, images):
    """Figures of one method and setting over a list of images."""
    window_nm = window * PIXEL
    out = {"found": 0, "expected": 0, "false": 0, "pos": [0.0], "b": [0.0], "ang": [0.0]}
    out["rms"], out["rms_picked"], out["rms_median"], out["nan"] = [], [], [], []
    for img, truth in images:
        kw = {"pixel_size": PIXEL, "window": window, "step": step}
        analyze = hf.analyze_gpa if method == "gpa" else hf.analyze
        maps = analyze(img, truth.reflections, **kw)
        found = hf.find_dislocations(maps)
        pairs = _match(found, truth)
        out["expected"] += len(truth.cores)
        out["found"] += len(pairs)
        matched = {f for f, _, _ in pairs}
        inside = np.hypot(*(found.position - CENTRE).T) < RADIUS - window_nm / 2
        out["false"] += int(sum(1 for k in np.nonzero(inside)[0] if k not in matched))
        for f, t, d in pairs:
            b, got = truth.burgers[t], found.burgers[f]
            out["pos"].append(d)
            out["b"].append(abs(np.hypot(*got) / np.hypot(*b) - 1) * 100)
            out["ang"].append(abs((_angle(got) - _angle(b) + 180) % 360 - 180))
        rms, nan = displacement_rms(hf.displacement(maps), truth, step, window_nm, maps.map_scale)
        out["rms"].append(rms)
        out["nan"].append(nan)
        picked = hf.find_reflections(img, pixel_size=PIXEL, max_count=3)
        picked = _same_order(picked, truth.reflections)
        maps_p = analyze(img, picked, **kw)
        for key, ref in (("rms_picked", None), ("rms_median", "median")):
            u = hf.displacement(maps_p, reference=ref)
            out[key].append(displacement_rms(u, truth, step, window_nm, maps_p.map_scale)[0])
    return out


def _same_order(picked, reflections):
    """The picked reflections in the order (and sign) of the true ones."""
    picked = np.asarray(picked, dtype=np.float64)
    picked = np.concatenate([picked, -picked])
    return np.array([picked[np.argmin(np.hypot(*(picked - g).T))] for g in reflections])


def min_spacing(truth):
    c = truth.cores
    d = np.hypot(*(c[:, None] - c[None]).transpose(2, 0, 1))
    return float(d[np.triu_indices(len(c), 1)].min())


def random_layouts(count: int, seed: int = 1) -> list:
    """``count`` random images: orientation uniform in ±90°, 2-5 cores at least 1.8 nm
    apart within 7.8 nm of the particle's centre, Burgers vectors drawn from ±a₁, ±a₂,
    ±(a₁ - a₂), ±(a₁ + a₂), random noise seed, SNR 2 (as ``gpa_compare.py``)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        rot = rng.uniform(-90, 90)
        a1, a2 = lattice_translations(pd_110_reflections(rot))
        choices = [a1, a2, a1 - a2, a1 + a2]
        k = int(rng.integers(2, 6))
        cores = []
        while len(cores) < k:
            r, t = 7.8 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            c = np.array([CENTRE + r * np.sin(t), CENTRE + r * np.cos(t)])
            if all(np.hypot(*(c - o)) > 1.8 for o in cores):
                cores.append(c)
        burgers = np.array([choices[rng.integers(4)] * rng.choice([-1, 1]) for _ in range(k)])
        images.append(
            dislocation_sample(
                cores=np.array(cores), burgers=burgers, rotation=rot, seed=int(rng.integers(1000))
            )
        )
    return images


def layout_passes(method, window, step, images):
    """Layouts meeting every target: each core more than half a window inside the
    crystal found within 0.5 nm with |b| within 10 % and its direction within 10°, no
    false core there; layouts whose closest cores are nearer than the window are left
    out.  Returns (passed, tried, cores found, cores expected)."""
    passed = tried = found_all = expected_all = 0
    window_nm = window * PIXEL
    for img, truth in images:
        if min_spacing(truth) < window_nm:
            continue
        tried += 1
        analyze = hf.analyze_gpa if method == "gpa" else hf.analyze
        maps = analyze(img, truth.reflections, pixel_size=PIXEL, window=window, step=step)
        found = hf.find_dislocations(maps)
        interior = RADIUS - window_nm / 2
        expected = np.hypot(*(truth.cores - CENTRE).T) < interior
        pairs = _match(found, truth)
        good = {
            t
            for f, t, _ in pairs
            if abs(np.hypot(*found.burgers[f]) / np.hypot(*truth.burgers[t]) - 1) < 0.1
            and abs((_angle(found.burgers[f]) - _angle(truth.burgers[t]) + 180) % 360 - 180) < 10
        }
        matched = {f for f, _, _ in pairs}
        inside = np.hypot(*(found.position - CENTRE).T) < interior
        false = sum(1 for k in np.nonzero(inside)[0] if k not in matched)
        hits = sum(1 for t in np.nonzero(expected)[0] if t in good)
        found_all += hits
        expected_all += int(expected.sum())
        passed += hits == expected.sum() and false == 0
    return passed, tried, found_all, expected_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="noise seeds of the 3-core set")
    parser.add_argument("--close-seeds", type=int, default=4, help="seeds of the other sets")
    parser.add_argument("--methods", default="local_fft,gpa")
    parser.add_argument(
        "--settings", default=",".join(f"{w}/{s}" for w, s in SETTINGS), help="window/step,..."
    )
    parser.add_argument(
        "--random", type=int, default=0, help="also this many random layouts (seed 1)"
    )
    args = parser.parse_args()
    settings = [tuple(int(v) for v in s.split("/")) for s in args.settings.split(",")]
    if args.random:
        layouts = random_layouts(args.random)
        print(f"Random layouts ({args.random}, seed 1): passing every target / tried")
        for method in args.methods.split(","):
            for window, step in settings:
                p, t, f, e = layout_passes(method, window, step, layouts)
                print(f"  {method:9s} {window:3d}/{step:<2d}  {p}/{t} layouts, cores {f}/{e}")
        print()
    sets = image_sets(args.seeds, args.close_seeds)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(
        "| method | window/step | images | found / expected | false | max pos. err. nm "
        "| max \\|b\\| err. % | max angle err. ° | u RMS pm | u RMS pm, picked g "
        "| same, median g |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    totals = {}
    for method in args.methods.split(","):
        for window, step in settings:
            for name, images in sets.items():
                r = run(method, window, step, images)
                unresolved = min_spacing(images[0][1]) < window * PIXEL
                key = (method, window, step)
                t = totals.setdefault(key, [0, 0, 0])
                if not unresolved:
                    t[0] += r["found"]
                    t[1] += r["expected"]
                    t[2] += r["false"]
                rms, rmsp, rmsm = (
                    np.nanmax(r[k]) * 1000 if np.isfinite(r[k]).any() else np.nan
                    for k in ("rms", "rms_picked", "rms_median")
                )
                print(
                    f"| {method} | {window}/{step} | {name}{' *' if unresolved else ''} "
                    f"({len(images)}) | {r['found']}/{r['expected']} | {r['false']} "
                    f"| {max(r['pos']):.2f} | {max(r['b']):.1f} | {max(r['ang']):.1f} "
                    f"| {rms:.2f} | {rmsp:.1f} | {rmsm:.1f} |",
                    flush=True,
                )
    print("\nTotals over the sets the window resolves (found / expected, false):")
    for (method, window, step), (f, e, fa) in totals.items():
        print(f"  {method:9s} {window:3d}/{step:<2d}  {f}/{e}  false {fa}")


if __name__ == "__main__":
    main()
