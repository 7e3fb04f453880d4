"""Accuracy figures of ``analyze`` on synthetic lattices with an exactly known local g.

Prints a Markdown table (the one in docs/method.md).  The scenarios are those of
tests/core/test_engine.py, which asserts the targets; this script prints the values
reached.  Map pixel (i, j) is compared with the truth at image pixel (i·step, j·step),
over windows lying wholly inside the particle.

Run:  .venv/bin/python benchmarks/accuracy.py      (about a minute on 2 cores)
      .venv/bin/python benchmarks/accuracy.py --only two_phase [--seeds 8]   (~3 min)

The two-phase section (issue 10) compares, on the same images, the engine with one
demodulation per reflection and frame ("before": the survey's single power-weighted
median, as up to this change) and with the survey's two modes ("after"), per region
(core, shell) and reflection, against the periodogram-peak reference; then the 10-90 %
width of the interface against GPA at matched resolution.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from napari_hrtem_fft import analyze, analyze_gpa
from napari_hrtem_fft.core import synthetic as syn
from napari_hrtem_fft.core.engine import _survey
from napari_hrtem_fft.core.profile import line_profile, step_width

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
from lattices import PX, REFL, ellipse, noisy_particle
from real_images import REAL_FILES, real_image, real_maps
from reference import periodogram_peak


def clean_row(label, shape, window, step=8, mapping=None, where=None, px=PX, **kw):
    image, truth = syn.synthetic_lattice(
        shape,
        pixel_size=px,
        reflections=REFL,
        mapping=mapping,
        particle=kw.pop("particle", ellipse(shape)),
    )
    maps = analyze(
        image, REFL, pixel_size=px, window=window, step=step, compute_strain=False, **kw
    )
    sel = truth.interior(window)[::step, ::step]
    if where is not None:
        sel &= where(maps, step, px)
    d_err, a_err = truth.map_errors(maps, sel)
    nan = int(np.isnan(d_err).sum())
    return (
        f"| {label} | {window} | {sel.sum()} | {np.nanmax(np.abs(d_err)) * 100:.1e} % | "
        f"{np.nanmax(np.abs(a_err)):.1e}° | {nan} |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["two_phase"])
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the two-phase lattice")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.only == "two_phase":
        two_phase(args.seeds)
        print(f"\n({time.perf_counter() - t0:.0f} s)")
        return
    print("Noise-free lattices (3 reflections, Pd [110]); max |error| over interior windows:\n")
    print("| case | window | windows | max d error | max angle error | NaN |")
    print("|---|---|---|---|---|---|")
    for window, shape in ((64, (448, 384)), (128, (384, 512)), (256, (640, 576))):
        print(clean_row("unstrained", shape, window))
    print(clean_row("rotated 1°", (512, 400), 96, mapping=syn.rotation_mapping(1.0, (3.0, 3.0))))
    print(
        clean_row("dilated +2 %", (512, 400), 96, mapping=syn.dilatation_mapping(1.02, (3.0, 3.0)))
    )
    print(clean_row("gradient 0.2 %/nm", (512, 400), 96, mapping=syn.gradient_mapping(0.002)))

    px, shape, core = 0.025, (864, 864), 4.5
    center = (shape[0] * px / 2, shape[1] * px / 2)

    def away(maps, step, px_):
        yy, xx = np.mgrid[: maps.d_spacing.shape[1], : maps.d_spacing.shape[2]] * step * px_
        rho = np.hypot(yy - center[0], xx - center[1])
        return np.abs(rho - core) > 64 / 2 * px_ * np.sqrt(2) + 2.8

    print(
        clean_row(
            "core-shell +3.5 %, away from interface",
            shape,
            64,
            px=px,
            mapping=syn.core_shell_mapping(center, core, 0.035, 0.3),
            where=away,
            search=0.2,
            particle=lambda y, x: np.hypot(y - center[0], x - center[1]) <= 10.2,
        )
    )

    print(
        "\nWith noise: fringe amplitude 0.2 = white-noise std 0.2 (SNR 1 per pixel) on an "
        "amorphous film (std 0.1); 3 reflections.\nRMS of |g - g_true| against the "
        "periodogram-peak reference (tests/core/reference.py) on 60 windows x 3 "
        "reflections; bias over all interior windows:\n"
    )
    print(
        "| window | windows | RMS d error | ours / reference RMS | mean d bias | mean angle bias |"
    )
    print("|---|---|---|---|---|---|")
    for window in (64, 128):
        shape = (768, 1024)
        image, truth = noisy_particle(shape, seed=3)
        maps = analyze(image, REFL, pixel_size=PX, window=window, step=8, compute_strain=False)
        inside = truth.interior(window)[::8, ::8]
        d_err, a_err = truth.map_errors(maps, inside)
        rows, cols = np.nonzero(inside)
        pick = np.random.default_rng(0).choice(rows.size, 60, replace=False)
        g_true = truth.g[:, ::8, ::8][:, rows[pick], cols[pick]]
        ratios = []
        for k in range(3):
            g_ref = np.array(
                [
                    periodogram_peak(image, (r * 8, c * 8), REFL[k], pixel_size=PX, window=window)
                    for r, c in zip(rows[pick], cols[pick], strict=True)
                ]
            )
            g_fast = np.asarray(maps.g[k][rows[pick], cols[pick]], dtype=float)
            rms = [
                np.sqrt(np.nanmean(np.sum((g - g_true[k]) ** 2, axis=-1))) for g in (g_fast, g_ref)
            ]
            ratios.append(rms[0] / rms[1])
        print(
            f"| {window} | {inside.sum()} | {np.sqrt(np.nanmean(d_err**2)) * 100:.3f} % | "
            f"{', '.join(f'{r:.2f}' for r in ratios)} | "
            f"{np.nanmean(d_err) * 100:+.4f} % | {np.nanmean(a_err):+.4f}° |"
        )

    print(
        "\nPredicted vs observed scatter, white noise only (std 0.4, fringes 0.2), "
        "window 64: RMS(error) / RMS(sigma) per reflection:\n"
    )
    shape = (640, 768)
    image, truth = syn.synthetic_lattice(
        shape, pixel_size=PX, reflections=REFL, noise=0.4, particle=ellipse(shape), seed=5
    )
    maps = analyze(image, REFL, pixel_size=PX, window=64, step=8, compute_strain=False)
    inside = truth.interior(64)[::8, ::8]
    d_err, a_err = truth.map_errors(maps, inside)
    rd = np.sqrt(np.nanmean(d_err**2, axis=1)) / np.sqrt(
        np.nanmean(((maps.d_sigma / maps.d_spacing)[:, inside]) ** 2, axis=1)
    )
    ra = np.sqrt(np.nanmean(a_err**2, axis=1)) / np.sqrt(
        np.nanmean(maps.angle_sigma[:, inside] ** 2, axis=1)
    )
    print(f"d: {', '.join(f'{r:.2f}' for r in rd)};  angle: {', '.join(f'{r:.2f}' for r in ra)}")

    no_lattice()
    real_images()
    two_phase(args.seeds)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


# The analytic core-shell lattice of issue 10: Pd [110] everywhere, core of radius
# TWO_PHASE_CORE nm about the image centre, shell dilated by 3.5 % (sharp interface, with
# the misfit slip of the planes), fringes 0.2, white noise 0.2 (fringe SNR 1).
TWO_PHASE_CORE = 4.5


def two_phase_lattice(shape, seed, noise=0.2):
    """The two-phase lattice and its truth; the centre in nm."""
    center = (shape[0] * PX / 2, shape[1] * PX / 2)
    image, truth = syn.synthetic_lattice(
        shape,
        pixel_size=PX,
        reflections=REFL,
        amplitudes=0.2,
        noise=noise,
        mapping=syn.core_shell_mapping(center, TWO_PHASE_CORE, 0.035, 0.02),
        seed=seed,
    )
    return image, truth, center


def two_phase_regions(truth, center, window, step):
    """Interior windows of the core and of the shell, ``window/2·√2 + 0.3`` nm or more
    from the interface."""
    inside = truth.interior(window)[::step, ::step]
    yy, xx = np.mgrid[: inside.shape[0], : inside.shape[1]] * step * PX
    rho = np.hypot(yy - center[0], xx - center[1])
    margin = window / 2 * PX * np.sqrt(2) + 0.3
    return {
        "core": inside & (rho < TWO_PHASE_CORE - margin),
        "shell": inside & (rho > TWO_PHASE_CORE + margin),
    }


def one_demodulation():
    """A context in which the survey gives one mode per reflection (the engine before the
    two-phase change: the power-weighted median of every window)."""

    class _One:
        def __enter__(self):
            self.saved = _survey._MODE_SHARE
            _survey._MODE_SHARE = np.inf

        def __exit__(self, *exc):
            _survey._MODE_SHARE = self.saved

    return _One()


def two_phase(seeds: int):
    """Per-region RMS against the periodogram-peak reference, and the interface width."""
    shape, window, step = (768, 768), 128, 16
    print(
        f"\nTwo-phase lattice {shape[0]}², core radius {TWO_PHASE_CORE} nm, shell +3.5 %, "
        f"fringes 0.2, white noise 0.2 (SNR 1), window {window}, step {step}, {seeds} seeds: "
        "RMS |g - g_true| per reflection, and its ratio to the periodogram-peak reference "
        "(target <= 0.9 in every region):\n"
    )
    sq = {}
    counts = {}
    for seed in range(seeds):
        image, truth, center = two_phase_lattice(shape, seed)
        regions = two_phase_regions(truth, center, window, step)
        maps = {}
        with one_demodulation():
            maps["before"] = analyze(
                image, REFL, pixel_size=PX, window=window, step=step, compute_strain=False
            )
        maps["after"] = analyze(
            image, REFL, pixel_size=PX, window=window, step=step, compute_strain=False
        )
        for region, sel in regions.items():
            rows, cols = np.nonzero(sel)
            counts[region] = counts.get(region, 0) + rows.size
            g_true = truth.g[:, ::step, ::step][:, rows, cols]
            for label, m in maps.items():
                g = np.asarray(m.g)[:, rows, cols]
                sq.setdefault((label, region), []).append(np.sum((g - g_true) ** 2, axis=-1))
            ref = np.array(
                [
                    [
                        periodogram_peak(
                            image, (r * step, c * step), g, pixel_size=PX, window=window
                        )
                        for r, c in zip(rows, cols, strict=True)
                    ]
                    for g in REFL
                ]
            )
            sq.setdefault(("reference", region), []).append(np.sum((ref - g_true) ** 2, axis=-1))
    print(
        "| region | windows | reflection | reference RMS | before: RMS (ratio) "
        "| after: RMS (ratio) |"
    )
    print("|---|---|---|---|---|---|")
    for region in ("core", "shell"):
        rms = {
            label: np.sqrt(np.nanmean(np.concatenate(sq[(label, region)], axis=1), axis=1))
            for label in ("reference", "before", "after")
        }
        for k in range(len(REFL)):
            cells = [
                f"{rms[label][k] * 1e3:.2f}·10⁻³ nm⁻¹ ({rms[label][k] / rms['reference'][k]:.2f})"
                for label in ("before", "after")
            ]
            print(
                f"| {region} | {counts[region]} | {k} | {rms['reference'][k] * 1e3:.2f}·10⁻³ nm⁻¹ "
                f"| {' | '.join(cells)} |"
            )
    interface_width(window, seeds)


def _radial_width(maps, center, radii, count=36):
    """10-90 % width of the dilatation's mean profile over ``count`` radial lines (and the
    median of the single widths)."""
    profiles, widths = [], []
    for deg in np.arange(count) * 360.0 / count:
        unit = np.array([-np.sin(np.radians(deg)), np.cos(np.radians(deg))])
        prof = line_profile(maps, center + radii[0] * unit, center + radii[1] * unit, width=0.5)
        dil = 0.5 * (prof.values["exx"] + prof.values["eyy"])
        profiles.append(dil)
        widths.append(step_width(prof.distance, dil))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(profiles, axis=0)
    return step_width(prof.distance, mean), float(np.nanmedian(widths))


def interface_width(window: int, seeds: int):
    """Interface 10-90 % width of the dilatation: local FFT before/after, matched GPA."""
    shape, step, radii = (1024, 1024), 4, (1.0, 8.0)
    print(
        f"\nInterface 10-90 % width of the dilatation on the same lattice ({shape[0]}², step "
        f"{step}): mean profile of 36 radial lines {radii[0]}-{radii[1]} nm (median of the "
        f"36 single widths), window {window} against GPA at the matched resolution:\n"
    )
    print("| noise | local FFT before | local FFT after | GPA | after / GPA |")
    print("|---|---|---|---|---|")
    for noise, n_seeds in ((0.0, 1), (0.2, max(1, min(seeds, 4)))):
        found = {"before": [], "after": [], "gpa": []}
        for seed in range(n_seeds):
            image, _, center = two_phase_lattice(shape, seed, noise)
            center = np.array(center)
            options = dict(pixel_size=PX, window=window, step=step)
            with one_demodulation():
                before = analyze(image, REFL, **options)
            found["before"].append(_radial_width(before, center, radii))
            found["after"].append(_radial_width(analyze(image, REFL, **options), center, radii))
            found["gpa"].append(_radial_width(analyze_gpa(image, REFL, **options), center, radii))
        mean = {k: np.mean(v, axis=0) for k, v in found.items()}
        cells = [f"{mean[k][0]:.3f} nm ({mean[k][1]:.3f})" for k in ("before", "after", "gpa")]
        print(
            f"| {noise} ({n_seeds} seed{'s' if n_seeds > 1 else ''}) | {' | '.join(cells)} | "
            f"{mean['after'][0] / mean['gpa'][0]:.2f} |"
        )
    planar_width(window, seeds)


def planar_width(window: int, seeds: int):
    """10-90 % width of exx across a coherent planar two-phase interface (no slip)."""
    shape, step = (640, 1024), 4
    x0 = shape[1] * PX / 2

    def mapping(y, x):
        return y, np.where(x < x0, x, x0 + (x - x0) / 1.035)

    expected = 0.4824 * window * PX
    print(
        f"\nCoherent planar interface ({shape[0]}×{shape[1]}, d along x +3.5 % on the right, "
        f"planes continuous), window {window}, step {step}: 10-90 % width of exx along a "
        f"line across it (3 nm wide); the window's own step response is {expected:.3f} nm:\n"
    )
    print("| noise | local FFT before | local FFT after | GPA | after / GPA |")
    print("|---|---|---|---|---|")
    for noise, n_seeds in ((0.0, 1), (0.2, max(1, min(seeds, 4)))):
        found = {"before": [], "after": [], "gpa": []}
        for seed in range(n_seeds):
            image, _ = syn.synthetic_lattice(
                shape, pixel_size=PX, reflections=REFL, mapping=mapping, amplitudes=0.2,
                noise=noise, seed=seed,
            )  # fmt: skip
            options = dict(pixel_size=PX, window=window, step=step)
            with one_demodulation():
                before = analyze(image, REFL, **options)
            runs = {
                "before": before,
                "after": analyze(image, REFL, **options),
                "gpa": analyze_gpa(image, REFL, **options),
            }
            yc = shape[0] * PX / 2
            for label, maps in runs.items():
                prof = line_profile(maps, (yc, x0 - 4.0), (yc, x0 + 4.0), width=3.0)
                found[label].append(step_width(prof.distance, prof.values["exx"]))
        mean = {k: float(np.mean(v)) for k, v in found.items()}
        cells = [f"{mean[k]:.3f} nm" for k in ("before", "after", "gpa")]
        print(
            f"| {noise} ({n_seeds} seed{'s' if n_seeds > 1 else ''}) | {' | '.join(cells)} | "
            f"{mean['after'] / mean['gpa']:.3f} |"
        )


def no_lattice():
    """Windows without lattice that pass the default amplitude test, 3 seeds of 768²."""
    print(
        "\nWindows without lattice accepted (default min_amplitude, search 0.1), 768², "
        "3 seeds x 3 reflections: range of the fraction, and mean amplitude:\n"
    )
    print("| image | window 64 | window 128 | window 256 |")
    print("|---|---|---|---|")
    for label, kw in (
        ("white noise", dict(noise=0.3)),
        ("amorphous film 0.3 + noise 0.1", dict(noise=0.1, amorphous=0.3)),
    ):
        cells = []
        for window in (64, 128, 256):
            valid, mean = [], []
            for seed in range(3):
                image, _ = syn.synthetic_lattice(
                    (768, 768), pixel_size=PX, reflections=REFL,
                    particle=np.zeros((768, 768), bool), seed=seed, **kw,
                )  # fmt: skip
                maps = analyze(
                    image, REFL, pixel_size=PX, window=window, step=8, compute_strain=False
                )
                amp = maps.amplitude[:, np.isfinite(maps.amplitude[0])]
                valid.extend(
                    np.isfinite(maps.d_spacing[:, np.isfinite(maps.amplitude[0])]).mean(1)
                )
                mean.append(amp.mean())
            cells.append(
                f"{min(valid) * 100:.3f}–{max(valid) * 100:.3f} % (mean A {np.mean(mean):.2f})"
            )
        print(f"| {label} | {' | '.join(cells)} |")


def real_images():
    """Amplitude test on the real lattice images of ../shared/data (skipped if absent)."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not data.is_dir():
        print(f"\n(real images: {data} not found, skipped)")
        return

    print(
        "\nReal lattice images, crystalline throughout: windows inside the image that pass "
        "the default amplitude test, per reflection (the 3 strongest low-order ones from "
        "find_reflections), and median amplitude; step 8:\n"
    )
    print("| file | d (nm) | window 64 | window 128 | window 256 |")
    print("|---|---|---|---|---|")
    for name in REAL_FILES:
        image, px, refl = real_image(data / name)
        cells = []
        for _, maps in real_maps(image, px, refl, (64, 128, 256)):
            if maps is None:
                cells.append("—")
                continue
            amp = maps.amplitude[:, np.isfinite(maps.amplitude[0])]
            passed = ", ".join(f"{v * 100:.1f}" for v in np.mean(amp >= 10, axis=1))
            cells.append(f"{passed} % (A {np.median(amp):.3g})")
        d = ", ".join(f"{v:.3f}" for v in 1 / np.hypot(refl[:, 0], refl[:, 1]))
        print(f"| {name.split('/')[-1]} | {d} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
