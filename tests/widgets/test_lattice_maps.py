"""Lattice-map and statistics widgets end to end on the sample particle."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from widget_sample import D_111, PIXEL_SIZE, SHELL_EXPANSION

from napari_hrtem_fft._widgets import (
    LatticeMapWidget,
    LatticeStatisticsWidget,
    ReflectionPickerWidget,
)
from napari_hrtem_fft._widgets.demo import core_shell_regions
from napari_hrtem_fft._widgets.lattice_maps import PICKED
from napari_hrtem_fft.core.picked import PickedReflections
from napari_hrtem_fft.core.reciprocal import g_spacing
from napari_hrtem_fft.layers import (
    MAPS_KEY,
    PICKER_KEY,
    find_result_layers,
    result_info,
    result_maps,
)

# Every name carries the analysed image ("Pd"), so that two images' maps differ.
EXPECTED_NAMES = {
    f"{name} · Pd"
    for name in (
        "angle 1",
        "angle 2",
        "angle 3",
        "amplitude 1",
        "amplitude 2",
        "amplitude 3",
        "exx",
        "eyy",
        "exy",
        "rotation (°)",
    )
}
N_MAPS = 3 + len(EXPECTED_NAMES)  # the three d-spacing maps and the rest


def _map(viewer, name):
    """The result map named ``name`` (e.g. ``"exx · Pd"``), a layer or in a record."""
    return next(m for m in result_maps(viewer.layers) if m.name == name)


@pytest.fixture
def docked(viewer_with_sample):
    """Picker (with suggested reflections), map widget and statistics dock."""
    viewer, image = viewer_with_sample
    picker = ReflectionPickerWidget(viewer)
    maps = LatticeMapWidget(viewer)
    stats = LatticeStatisticsWidget(viewer)
    for widget in (picker, maps, stats):
        viewer.window.add_dock_widget(widget)
    picker._image.value = image
    picker._window.value = 64
    picker._suggest.clicked.emit()
    maps.choose_inputs(image, window=64, step=8)
    return viewer, image, picker, maps, stats


def _reflection_numbers(picker, *, d_min, d_max):
    """1-based numbers of the picked reflections with d (nm) in [d_min, d_max]."""
    d = g_spacing(picker.reflections)
    return [k + 1 for k in range(len(d)) if d_min <= d[k] <= d_max]


def _run(qtbot, widget, timeout=30_000):
    widget._run.clicked.emit()
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_picker_reflections_are_handed_over_with_the_image_and_the_window_follows(docked):
    _, image, picker, maps, _ = docked
    # The picks travel in the image layer's metadata, not through the docks.
    record = PickedReflections.from_metadata(image.metadata)
    np.testing.assert_array_equal(record.g, picker.reflections)
    assert record.window == 64 and record.pixel_size == pytest.approx(PIXEL_SIZE)
    assert maps._reflections.value == PICKED
    np.testing.assert_array_equal(maps._inputs()["reflections"], record.g)
    assert maps._window.value == 64  # taken from the picked record
    # Points layers of g in the main viewer are offered too; the picker's own are not.
    choices = [value for _, value in maps._reflection_choices()]
    assert choices[0] == PICKED
    assert not any(getattr(value, "metadata", {}).get(PICKER_KEY) for value in choices)


def test_run_adds_one_calibrated_layer_and_rerun_replaces_it(docked, qtbot):
    viewer, image, _, maps, _ = docked
    n_layers = len(viewer.layers)
    _run(qtbot, maps)
    # One layer for the image; every map of the run is in its record.
    (layer,) = find_result_layers(viewer.layers, source="Pd")
    assert len(viewer.layers) == n_layers + 1
    every = result_maps(viewer.layers, source="Pd")
    names = {m.name for m in every}
    d_names = sorted(n for n in names if n.startswith("d-spacing"))
    assert len(d_names) == 3 and len(every) == N_MAPS
    for k, name in enumerate(d_names, start=1):
        assert re.fullmatch(rf"d-spacing {k} \(0\.(19[45]|22[45]) nm\) · Pd", name), name
    assert names - set(d_names) == EXPECTED_NAMES
    for m in every:
        assert m.data.shape == (128, 128)  # ceil(1024 / 8)
        info = result_info(m)
        assert info["parameters"]["window"] == 64 and info["parameters"]["step"] == 8
        assert info["source"] == "Pd"
        assert info["options"]["reflections_layer"] == "picked on 'Pd'"
        assert info["options"]["crystal_mask"] is True
        # Every value once: the window is in the parameters only.
        assert "window" not in info and "window" not in info["options"]
    np.testing.assert_allclose(layer.scale, [8 * PIXEL_SIZE] * 2)
    np.testing.assert_allclose(layer.translate, image.translate)
    assert str(layer.units[-1]) == "nanometer"
    # The first d-spacing map is shown, selected, with its colour bar.
    assert viewer.layers.selection.active is layer
    assert layer.name == d_names[0] and layer.visible and layer.colorbar.visible
    assert maps._map.value == ("d_spacing", 0)
    assert "done" in maps._status.value

    # The chooser swaps the map in place: data, colour map, range, name, title.
    combo = maps._map.native
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert d_names[0].removesuffix(" · Pd") in labels and "exx" in labels
    assert len([label for label in labels if label.strip("-")]) == N_MAPS
    maps._map.value = ("exx", None)
    assert len(viewer.layers) == n_layers + 1
    assert layer.name == "exx · Pd" and result_info(layer)["kind"] == "exx"
    np.testing.assert_array_equal(layer.data, _map(viewer, "exx · Pd").data)
    assert layer.colormap.name == "coolwarm"
    low, high = layer.contrast_limits
    assert low == pytest.approx(-high) and high > 0
    assert viewer.canvas.overlays["text"].text == "exx · Pd [dimensionless]"
    assert layer.visible and layer.colorbar.visible

    # A re-run updates the same layer, still showing exx.
    maps._step.value = 16
    _run(qtbot, maps)
    assert find_result_layers(viewer.layers, source="Pd") == [layer]
    assert layer.name == "exx · Pd" and layer.data.shape == (64, 64)
    np.testing.assert_allclose(layer.scale, [16 * PIXEL_SIZE] * 2)
    assert all(m.data.shape == (64, 64) for m in result_maps(viewer.layers, source="Pd"))

    # Every map as a layer of its own on request; a re-run updates them in place.
    maps._add_all.clicked.emit()
    layers = find_result_layers(viewer.layers, source="Pd")
    assert len(layers) == N_MAPS and {la.name for la in layers} == names | {"exx · Pd"}
    assert [la for la in layers if la.visible] == [layer]
    assert sum(MAPS_KEY in la.metadata for la in layers) == 1
    singles = {la.name: la for la in layers if la is not layer}
    maps._step.value = 8
    _run(qtbot, maps)
    again = find_result_layers(viewer.layers, source="Pd")
    assert len(again) == N_MAPS
    for la in again[1:]:
        assert singles[la.name] is la and la.data.shape == (128, 128)
    d1 = singles[d_names[0]]
    np.testing.assert_array_equal(d1.data, _map(viewer, d_names[0]).data)


def test_cancel_stops_the_run_and_adds_nothing(docked, qtbot):
    da = pytest.importorskip("dask.array")
    viewer, image, _, maps, _ = docked
    movie = viewer.add_image(
        da.stack([da.from_array(image.data)] * 40),  # ~10 s of work
        name="movie",
        scale=(1.0, PIXEL_SIZE, PIXEL_SIZE),
        units=("s", "nm", "nm"),
    )
    maps._image.value = movie
    maps._reflections.value = image  # the reflections picked on the still image
    n_layers = len(viewer.layers)
    maps._run.clicked.emit()
    qtbot.waitUntil(lambda: maps._progress.value > 0, timeout=10_000)
    maps._cancel.clicked.emit()
    # The 5 s wait is a hang guard: the 40 frames take ~10 s on a quiet machine.
    qtbot.waitUntil(lambda: not maps.running, timeout=5_000)
    assert maps._progress.value < maps._progress.max  # stopped before the end
    assert len(viewer.layers) == n_layers
    assert "cancelled" in maps._status.value
    assert maps._run.enabled and not maps._cancel.enabled
    # The viewer and the widget are usable: a new (short) run completes.
    maps._image.value = image
    _run(qtbot, maps)
    assert len(result_maps(viewer.layers, source="Pd")) == N_MAPS


def test_errors_become_notifications(docked, qtbot, monkeypatch):
    viewer, _, picker, maps, _ = docked
    shown = []
    monkeypatch.setattr("napari_hrtem_fft._widgets.lattice_maps.show_error", shown.append)
    picker._on_clear()
    maps._run.clicked.emit()
    assert len(shown) == 1 and "reflection" in shown[0] and not maps.running

    # An error inside the worker (a reflection beyond Nyquist) becomes a notification
    # too, and the widget is ready again.
    picker._snap.value = False
    picker.reflections_layer.add([0.0, 30.0])  # Nyquist is 25 1/nm at 0.02 nm
    _run(qtbot, maps)
    assert len(shown) == 2 and "Nyquist" in shown[1]
    assert maps._status.value.startswith("failed") and maps._run.enabled
    assert find_result_layers(viewer.layers) == []


def test_statistics_match_the_core_and_shell_of_the_sample(docked, qtbot):
    viewer, image, picker, maps, stats = docked
    k111 = _reflection_numbers(picker, d_min=0.22, d_max=0.23)
    assert len(k111) == 2
    regions = viewer.add_labels(
        core_shell_regions(image.data.shape, pixel_size=PIXEL_SIZE, core=3.0, shell=(5.0, 6.3)),
        name="regions",
        scale=image.scale,
        units="nm",
    )
    _run(qtbot, maps)
    stats.reset_choices()
    stats._regions.value = regions
    stats.update_statistics()
    rows = {(r["reflection"], r["region"]): r for r in stats.rows}
    assert set(rows) == {(k, region) for k in (1, 2, 3) for region in ("1", "2")}
    # The statistics are those of the layers' data (exactly) ...
    d_layer = next(
        m for m in result_maps(viewer.layers) if m.name.startswith(f"d-spacing {k111[0]} ")
    )
    y, x = np.indices(d_layer.data.shape) * 8
    r = np.hypot(y - 512, x - 512) * PIXEL_SIZE
    core = r < 3.0
    assert rows[(k111[0], "1")]["d median (nm)"] == pytest.approx(
        np.nanmedian(d_layer.data[core]), rel=1e-6
    )
    # ... and match the sample: {111} spacing 0.2246 nm in the core, +3.5 % in the shell.
    # The estimator reads 0.2-0.4 % high on this sample (window 64), hence 0.5 % per
    # reflection and 0.3 % for the two {111} reflections together.
    shell_d = D_111 * (1 + SHELL_EXPANSION)
    for k in k111:
        assert rows[(k, "1")]["d median (nm)"] == pytest.approx(D_111, rel=5e-3)
        assert rows[(k, "2")]["d median (nm)"] == pytest.approx(shell_d, rel=5e-3)
    d111 = [
        m.data
        for m in result_maps(viewer.layers)
        if any(m.name.startswith(f"d-spacing {k} ") for k in k111)
    ]
    pooled = {
        region: np.nanmedian(np.concatenate([d[mask] for d in d111]))
        for region, mask in (("core", core), ("shell", (r >= 5.0) & (r < 6.3)))
    }
    assert pooled["core"] == pytest.approx(D_111, rel=3e-3)
    assert pooled["shell"] == pytest.approx(shell_d, rel=3e-3)
    # The TSV copy has a header and one line per row; the histogram has one curve per row.
    text = stats.copy_text().strip().split("\n")
    assert text[0].startswith("reflection\tregion\tcount") and len(text) == 7
    assert len(stats._axes.patches) == 6


def test_statistics_follow_the_result_layers(docked, qtbot):
    viewer, _, _, maps, stats = docked
    assert stats.rows == []
    _run(qtbot, maps)
    qtbot.waitUntil(lambda: len(stats.rows) == 3, timeout=5_000)
    assert stats._source.value == "Pd" and stats.rows[0]["region"] == "all"
    for layer in find_result_layers(viewer.layers):
        viewer.layers.remove(layer)
    qtbot.waitUntil(lambda: stats.rows == [], timeout=5_000)


def _reject(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_export_writes_calibrated_files_and_never_overwrites(docked, qtbot, tmp_path, monkeypatch):
    from napari_hrtem_fft import read_micrographs

    viewer, _, _, maps, _ = docked
    _run(qtbot, maps)
    out = tmp_path / "export"
    maps._export_dir.value = out
    maps._export.clicked.emit()
    names = sorted(p.name for p in out.iterdir())
    assert "Pd_d_spacing_g1.tif" in names and "Pd_exx.tif" in names
    assert "Pd_statistics.csv" in names and "Pd.json" in names

    (mg,) = read_micrographs(out / "Pd_d_spacing_g2.tif")
    layer = next(m for m in result_maps(viewer.layers) if m.name.startswith("d-spacing 2 "))
    np.testing.assert_allclose(mg.scale[-2:], layer.scale, rtol=1e-6)
    np.testing.assert_allclose(mg.translate[-2:], layer.translate, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(mg.data), layer.data)

    with open(out / "Pd_statistics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["reflection"] for r in rows] == ["1", "2", "3"]
    # Statistics over every valid map pixel: the median of the layer data, in nm.
    assert float(rows[1]["d median (nm)"]) == pytest.approx(np.nanmedian(layer.data), rel=1e-5)
    record = json.loads((out / "Pd.json").read_text(encoding="utf-8"), parse_constant=_reject)
    assert record["input"]["layer"] == "Pd" and record["input"]["pixel_size_nm"] == PIXEL_SIZE
    assert record["analysis"]["window"] == 64 and record["analysis"]["crystal_mask"] is True
    assert record["reflections"][0]["source"] == "picked on 'Pd'"

    # A second export into the same folder is refused, with a notification.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    shown = []
    monkeypatch.setattr("napari_hrtem_fft._widgets.lattice_maps.show_error", shown.append)
    maps._export.clicked.emit()
    assert len(shown) == 1 and "output exists" in shown[0] and "nothing was" in shown[0]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_progress_is_shown_from_a_second_after_the_click(qtbot, monkeypatch):
    # Every repaint composes the whole napari window: a run shorter than a second shows
    # "running…" until its result, a longer one its progress from 1 s on, every 0.4 s.
    from types import SimpleNamespace

    from napari_hrtem_fft._widgets import _map_sections as sections
    from napari_hrtem_fft.core.pipeline import Progress

    now = [64.0]  # a clock the test moves (seconds)
    monkeypatch.setattr(sections, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    runner = sections.RunSection()
    runner.say("a warning long enough to wrap over several lines " * 4)
    runner.native.resize(300, 200)
    runner.native.show()
    qtbot.addWidget(runner.native)
    tall = runner.status.native.height()
    runner.started()
    # The status line keeps its height while the run goes (no second layout pass).
    assert runner.status.native.minimumHeight() == tall
    now[0] += 0.5
    runner.show_progress(Progress(3, 8, "maps: block 3 of 8"))
    assert runner.progress.value == 0 and runner.status.value == "running…"
    assert runner._timer.isActive() and 490 <= runner._timer.interval() <= 500
    runner.finished(complete=True)  # done before 1 s: the report waiting is dropped
    assert not runner._timer.isActive() and runner.status.value == "running…"
    assert runner.progress.value == runner.progress.max
    runner.set_running(False)  # the worker's end: the height is free again
    assert runner.status.native.minimumHeight() == 0

    runner.started()
    now[0] += 1.0
    runner.show_progress(Progress(1, 8, "survey: block 1 of 8"))
    assert (runner.progress.value, runner.progress.max) == (1, 8)
    assert runner.status.value == "survey: block 1 of 8" and not runner._timer.isActive()
    now[0] += 0.25
    runner.show_progress(Progress(2, 8, "survey: block 2 of 8"))
    assert runner.progress.value == 1 and 140 <= runner._timer.interval() <= 150
