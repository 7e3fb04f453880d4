"""Statistics dock: d-spacing and angle per reflection and region, table and histogram.

Reads the result layers of one analysed image (as the lattice-map widget made them)
and, optionally, a Labels layer of regions (e.g. 1 = core, 2 = shell painted on the
image).  Updates itself when result layers are added, replaced or removed and when the
regions are painted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Label, PushButton
from napari.layers import Labels
from napari.utils.notifications import show_info
from qtpy.QtGui import QGuiApplication

from .._napari.layers import find_result_layers, result_stacks
from .._napari.phase import cores_text
from .._napari.regions import watch_edits
from ..core.statistics import COLUMNS, labels_on_map, reflection_statistics, statistics_text
from ._common import (
    ResultSourceDock,
    fill_table,
    layer_combo,
    maps_source_combo,
    read_only_table,
    span_label_column,
)
from ._plot import dark_canvas, style_axes, style_legend

if TYPE_CHECKING:
    import napari

__all__ = ["LatticeStatisticsWidget"]

# Table headers: the CSV keeps the descriptive column names; the dock is narrow, so the
# reflection and its region share a column and the units go on a second header line.
_HEADERS = (
    "#\nregion",
    "n",
    "d mean\nnm",
    "d med.\nnm",
    "d std\nnm",
    "∠ mean\n°",
    "∠ med.\n°",
    "∠ std\n°",
)


def _region_names(labels) -> dict[int, str]:
    """Label → name from a Labels layer's features (columns ``index`` and ``name``)."""
    features = getattr(labels, "features", None)
    if features is None or "name" not in features or "index" not in features:
        return {}
    return {int(i): str(n) for i, n in zip(features["index"], features["name"], strict=True)}


class LatticeStatisticsWidget(ResultSourceDock):
    """Per-reflection statistics of lattice maps, with a histogram of d (nm).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer holding the result layers.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.rows: list[dict] = []
        self._build(viewer)

    # ------------------------------------------------------------------ set-up

    def _init_widgets(self) -> None:
        self._source = maps_source_combo(
            self._source_choices, "The analysed image whose result layers are summarised."
        )
        self._regions = layer_combo(
            Labels,
            "regions",
            "Optional Labels layer (e.g. paint 1 = core, 2 = shell on the image): "
            "statistics per label. None: every valid map pixel.",
        )
        self._table = read_only_table(
            _HEADERS,
            tooltip="Inside the crystal mask (NaN pixels are left out); d in nm, angles in °.",
            min_height=235,
        )
        self._copy = PushButton(
            text="Copy table", tooltip="Copy the statistics as tab-separated text (for Excel)."
        )
        self._status = Label(label="", value="")
        self._cores = Label(label="", value="")
        self._cores.tooltip = (
            "Dislocation cores of the maps (lattice maps › Phase & dislocations): "
            "position (y, x) in nm and Burgers vector length and direction."
        )
        self._figure, self._canvas = dark_canvas(
            (4.0, 2.6),
            min_height=220,
            tooltip="Histogram of the local lattice spacing d (nm) per reflection.",
        )
        self._axes = self._figure.add_subplot()

    def _init_layout(self) -> None:
        self.extend(
            [self._source, self._regions, self._table, self._copy, self._status, self._cores]
        )
        # The table takes the full width (with the compact headers, its columns fit
        # the dock's usual width without sideways scrolling).
        for wide in (self._table, self._status, self._cores):
            span_label_column(wide)
        self.native.layout().addWidget(self._canvas, 1)
        self.native.setMinimumWidth(480)

    def _connect_events(self) -> None:
        self._regions.changed.connect(self._on_regions_changed)
        self._copy.clicked.connect(self._on_copy)

    # --------------------------------------------------------------- choices

    # ----------------------------------------------------------------- events

    def _on_regions_changed(self, event=None) -> None:
        self._watched = watch_edits(self._watched, self._regions.value, self._schedule)
        self._schedule()

    def _on_copy(self, event=None) -> None:
        QGuiApplication.clipboard().setText(self.copy_text())
        show_info(f"Copied {len(self.rows)} rows of statistics.")

    # ---------------------------------------------------------------- compute

    def copy_text(self) -> str:
        """The table as tab-separated text with a header line."""
        return statistics_text(self.rows, delimiter="\t")

    def _recompute(self) -> None:
        self.update_statistics()

    def update_statistics(self) -> None:
        """Recompute the table and the histogram from the current layers."""
        source = self._source.value
        layers = find_result_layers(self._viewer.layers, source=source) if source else []
        self.rows = []
        d = regions = None
        try:
            if layers:
                d, angle, geometry = result_stacks(layers)
                labels = self._regions.value
                if labels is not None:
                    regions = labels_on_map(
                        labels.data,
                        labels_scale=labels.scale,
                        labels_translate=labels.translate,
                        map_shape=geometry["shape"],
                        map_scale=geometry["scale"],
                        map_translate=geometry["translate"],
                    )
                self.rows = reflection_statistics(
                    d, angle, regions=regions, region_names=_region_names(labels)
                )
        except ValueError as exc:
            self._status.value = str(exc)
            d = None
        else:
            self._status.value = (
                f"{source}: {len(self.rows)} rows"
                if layers
                else "no lattice maps yet: run the analysis"
            )
        self._fill_table()
        self._cores.value = cores_text(self._viewer.layers, source)
        self._draw_histogram(d, regions)

    def _fill_table(self) -> None:
        def cell(column, value):
            if not isinstance(value, float):
                return value
            return f"{value:.5f}" if column.startswith("d ") else f"{value:.2f}"

        rows = [
            [f"{row['reflection']} {row['region']}"] + [cell(c, row[c]) for c in COLUMNS[2:]]
            for row in self.rows
        ]
        fill_table(self._table, rows, _HEADERS)

    def _draw_histogram(self, d, regions) -> None:
        ax = self._axes
        style_axes(ax, xlabel="d (nm)", ylabel="map pixels")
        if d is not None:
            finite = d[np.isfinite(d)]
            if finite.size:
                lo, hi = np.percentile(finite, (0.5, 99.5))
                bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 80)
                masks = {"": np.ones(d.shape[1:], dtype=bool)}
                if regions is not None:
                    names = _region_names(self._regions.value)
                    masks = {
                        f" · {names.get(int(v), int(v))}": regions == v
                        for v in np.unique(regions)
                        if v > 0
                    }
                for k in range(d.shape[0]):
                    for suffix, mask in masks.items():
                        values = d[k][mask]
                        values = values[np.isfinite(values)]
                        if values.size:
                            ax.hist(values, bins=bins, histtype="step", label=f"{k + 1}{suffix}")
                style_legend(ax, title="reflection")
        self._canvas.draw_idle()
