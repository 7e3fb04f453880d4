"""The gallery of real results: docs/gallery.md and its screenshots, from the Plugins menu.

For each real lattice image of ``shared/data`` the script does what a user does: opens
the file with the plugin's reader (``viewer.open(path, plugin="napari-hrtem-fft")``),
opens the picker and the lattice-maps docks from the menu
(``viewer.window.add_plugin_dock_widget``), lets Suggest pick the reflections in a
128-px window at the image centre, runs the maps with the dock's defaults and takes
1920×1080 screenshots of the window: the suggestions on the FFT, the d map of the first
reflection and the ``exx`` map, each with its colour bar and the scale bar.  The region
medians (whole image) go into the table of docs/gallery.md.

:func:`analyse` computes the same numbers without napari (``tests/test_gallery.py``
asserts them against the low-order spacings of each file, and that the page shows them).

Run::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/gallery.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
IMAGES = REPO / "docs" / "images" / "gallery"
PAGE = REPO / "docs" / "gallery.md"
WINDOW = 128  # px, the picker's window and the maps' window (the docks' default)
MAX_COUNT = 3

#: key → (file under shared/data, what it is, low-order spacings in nm (issue 9 item 1)).
FILES = {
    "Acquisition_18": (
        "ncem_emd/Acquisition_18.emd",
        "SrTiO3 [001], HAADF, TEAM 0.5",
        {"{110}": (0.283, 0.293), "{200}": (0.204, 0.207), "{100}": (0.413, 0.413)},
    ),
    "16_STOimage": (
        "tia/16_STOimage.emi",
        "SrTiO3 [001], STEM, Titan",
        {"{110}": (0.279, 0.290), "{100}": (0.394, 0.410), "{200}": (0.201, 0.205)},
    ),
    "MoS2": (
        "dm3/example_Se_implanted_MoS2.dm3",
        "monolayer MoS2, ADF-STEM",
        {"{100}": (0.252, 0.266)},
    ),
    "PZO": (
        "dm3/PZO.dm3",
        "PbZrO3, HAADF",
        {"a": (0.298, 0.301), "b": (0.426, 0.426), "c": (0.208, 0.213)},
    ),
    "PTO": (
        "dm4/PTO100-40nm-HAADF.dm4",
        "PbTiO3 [100], HAADF simulation",
        {"(101)": (0.2836, 0.2836), "a": (0.3904, 0.4128), "c": (0.1952, 0.2064)},
    ),
}


def nearest_plane(d: float, spacings: dict) -> tuple[str, float]:
    """The listed plane nearest ``d`` (nm) and the relative distance to its range."""
    best = ("", np.inf)
    for name, (lo, hi) in spacings.items():
        off = 0.0 if lo <= d <= hi else min(abs(d - lo) / lo, abs(d - hi) / hi)
        if off < best[1]:
            best = (name, off)
    return best


def analyse(key: str, data_dir: Path = DATA) -> dict:
    """Suggested reflections and region medians of one file, without napari.

    The same calls as the docks: ``find_reflections`` in a ``WINDOW`` window at the
    image centre (Suggest) and :func:`~napari_hrtem_fft.core.pipeline.run_analysis`
    with the default options (Run).

    Returns
    -------
    dict
        ``g`` (n, 2) in nm⁻¹, ``d_suggested`` (n,) nm, ``d_median`` (n,) nm over the
        image, ``valid`` (n,) fraction of finite map pixels, ``exx``/``eyy`` medians
        (NaN without strain), ``pixel_size`` nm, ``shape``.
    """
    import napari_hrtem_fft as hf
    from napari_hrtem_fft.core.pipeline import AnalysisOptions, run_analysis, run_to_end

    path, _, _ = FILES[key]
    mg = hf.read_micrographs(data_dir / path)[0]
    image = np.asarray(mg.data, dtype=np.float32)
    pixel = mg.pixel_size
    center = (image.shape[0] // 2, image.shape[1] // 2)
    g = hf.find_reflections(image, pixel_size=pixel, window=WINDOW, center=center, max_count=3)
    maps = run_to_end(
        run_analysis(image, g, pixel_size=pixel, options=AnalysisOptions(window=WINDOW))
    )
    d = np.asarray(maps.d_spacing).reshape(len(g), -1)
    finite = np.isfinite(d)
    with np.errstate(all="ignore"):
        medians = np.array(
            [np.median(row[ok]) if ok.any() else np.nan for row, ok in zip(d, finite, strict=True)]
        )
    strain = {}
    for name in ("exx", "eyy"):
        values = np.asarray(getattr(maps.strain, name)) if maps.strain is not None else np.nan
        strain[name] = float(np.nanmedian(values)) if np.isfinite(values).any() else np.nan
    return {
        "g": np.asarray(g),
        "d_suggested": hf.g_spacing(g),
        "d_median": medians,
        "valid": finite.mean(axis=1),
        "pixel_size": pixel,
        "shape": image.shape,
        **strain,
    }


def _fmt(value: float, digits: int = 4) -> str:
    return "—" if not np.isfinite(value) else f"{value:.{digits}f}"


def table_rows(key: str, result: dict) -> list[str]:
    """Markdown rows of one file: one per suggested reflection."""
    spacings = FILES[key][2]
    rows = []
    for i, (ds, dm, ok) in enumerate(
        zip(result["d_suggested"], result["d_median"], result["valid"], strict=True)
    ):
        plane, off = nearest_plane(dm if np.isfinite(dm) else ds, spacings)
        rows.append(
            f"| {key} | g{i + 1} | {_fmt(ds)} | {_fmt(dm)} | {100 * ok:.0f} % | {plane} "
            f"({100 * off:.1f} % off) |"
        )
    return rows


def screenshots(key: str, out: Path) -> dict:
    """Open one file through the Plugins menu path, run, and save the three screenshots.

    Each file gets a fresh 1920×1080 viewer, as a user opening it would (no
    notifications or docks left from the previous file).  The dock in use gets most of
    the column, as a user drags the bar between the docks.
    """
    import napari

    from napari_hrtem_fft._widgets.demo import (
        MAPS,
        PICKER,
        PLUGIN,
        SCREEN,
        focus_dock,
        open_dock,
        screenshot,
        settle,
    )

    viewer = napari.Viewer()
    viewer.window.resize(*SCREEN)
    path = (DATA / FILES[key][0]).resolve()
    (image,) = viewer.open(str(path), plugin=PLUGIN)[:1]
    picker = open_dock(viewer, PICKER)
    maps = open_dock(viewer, MAPS)
    picker.reset_choices()
    picker._image.value = image
    picker._window.value = WINDOW
    picker._max_count.value = MAX_COUNT
    viewer.reset_view()
    picker.suggest()
    focus_dock(viewer, picker)
    settle()
    shots = {}
    shots["suggest"] = out / f"{key}_suggest.png"
    screenshot(viewer, shots["suggest"])
    maps.choose_inputs(image, window=WINDOW)
    maps.run_blocking()  # one layer, showing d-spacing 1
    focus_dock(viewer, maps, show=maps._status)
    available = [key for _, key in maps._map_choices()]
    for what, shown in (("d", ("d_spacing", 0)), ("exx", ("exx", None))):
        if shown not in available:
            continue
        maps._map.value = shown  # the dock's "map" chooser, as a user flips maps
        settle()
        shots[what] = out / f"{key}_{what}.png"
        screenshot(viewer, shots[what])
    viewer.close()
    return shots


def write_page(results: dict, shots: dict) -> None:
    lines = [
        "# Gallery: real images through the Plugins menu",
        "",
        "Each file of `shared/data` with a lattice, opened with **File › Open** (the",
        "*napari-hrtem-fft* reader), the **Reflection picker (FFT)** and **Lattice maps**",
        f"docks from **Plugins › HRTEM lattice FFT maps**: Suggest in a {WINDOW}-px window at",
        "the image centre, then Run with the dock's defaults. Made by `scripts/gallery.py`;",
        "`tests/test_gallery.py` checks the medians below against the low-order spacings",
        "measured in each file with its own calibration (issue 9, item 1).",
        "",
        "Medians are over the whole image (the region), in nm; *valid* is the fraction of",
        "map pixels with a finite d.",
        "",
        "| file | reflection | d suggested (nm) | median d (nm) | valid | nearest listed plane |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, result in results.items():
        lines += table_rows(key, result)
    for key, result in results.items():
        path, what, _ = FILES[key]
        lines += [
            "",
            f"## {key}: {what}",
            "",
            f"`{path}`, {result['shape'][0]}×{result['shape'][1]} px of "
            f"{result['pixel_size']:.5f} nm. Median strain exx {_fmt(result['exx'], 5)}, "
            f"eyy {_fmt(result['eyy'], 5)} (relative to the suggested reflections).",
            "",
        ]
        for shot, caption in (
            ("suggest", "suggested reflections"),
            ("d", "d map of g1"),
            ("exx", "exx"),
        ):
            image = shots.get(key, {}).get(shot, IMAGES / f"{key}_{shot}.png")
            if image.exists():
                rel = image.relative_to(PAGE.parent)
                lines.append(f"![{key}: {caption}]({rel.as_posix()})")
                lines.append("")
    PAGE.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-screenshots", action="store_true", help="only the table")
    args = parser.parse_args()
    results = {key: analyse(key) for key in FILES}
    shots: dict = {}
    if not args.no_screenshots:
        IMAGES.mkdir(parents=True, exist_ok=True)
        for key in FILES:
            shots[key] = screenshots(key, IMAGES)
    write_page(results, shots)


if __name__ == "__main__":
    main()
