"""The sections of the reflection picker dock: region, picking, table and calibration.

Each section only builds its controls; the picker (:mod:`.picker`) connects them and
acts.  The sections are labelled forms; the dock stacks them at full width, with the
FFT canvas and the reflections table between them.
"""

from __future__ import annotations

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView

from ..core.calibration import MATERIALS, material_planes
from ..core.pipeline import OPTION_LIMITS, AnalysisOptions
from ._common import (
    button_row,
    max_window,
    pixel_size_field,
    read_only_table,
    suggest_count_field,
)

__all__ = ["CalibrateSection", "PickSection", "RegionSection", "reflection_table"]

TABLE_COLUMNS = ["#", "gy (nm⁻¹)", "gx (nm⁻¹)", "d (nm)", "angle (°)"]


class RegionSection(Container):
    """Image, calibration, window size and place, and the 'Show FFT' button."""

    def __init__(self) -> None:
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)
        self._init_widgets()
        self.extend(
            [self.image, self.calibration, self.pixel_size, self.window, self.region, self.show]
        )

    def _init_widgets(self) -> None:
        self.image = create_widget(
            annotation=Image,
            label="image",
            options={"tooltip": "Image layer whose region FFT is shown (one frame of a movie)."},
        )
        self.calibration = Label(
            label="calibration", tooltip="Pixel size read from the layer's scale and units."
        )
        self.pixel_size = pixel_size_field(
            "nm per pixel, used only when the image layer has no calibration "
            "(units px/pixel, or scale 1)."
        )
        self.window = SpinBox(
            label="window (px)",
            value=AnalysisOptions.window,
            min=OPTION_LIMITS["window"]["min"],
            max=max_window(None),
            step=OPTION_LIMITS["window"]["multiple"],
            tooltip=(
                "Side of the square FFT window in pixels (even). Larger windows resolve "
                "reflections more finely but average over a larger area."
            ),
        )
        self.region = ComboBox(
            label="region",
            choices=[("'FFT region' point", "point"), ("centre of view", "view")],
            value="point",
            tooltip=(
                "Where the window is: at the point of the 'FFT region' layer (drag it on "
                "the image), or at the centre of the current view."
            ),
        )
        self.show = PushButton(
            text="Show FFT",
            tooltip="Compute the FFT of the window and show it below, calibrated in 1/nm.",
        )


class PickSection(Container):
    """'Suggest', snapping, and the point-editing buttons of the FFT canvas."""

    def __init__(self) -> None:
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)
        self._init_widgets()
        self.extend([self.max_count, self.suggest, self.snap, self.buttons])

    def _init_widgets(self) -> None:
        self.max_count = suggest_count_field(
            "suggest up to",
            "How many reflections 'Suggest' places (strongest first, one per ±g pair).",
        )
        self.suggest = PushButton(
            text="Suggest reflections",
            tooltip="Replace the points with the strongest reflections of the region.",
        )
        self.snap = CheckBox(
            text="snap clicks to the nearest peak",
            value=True,
            tooltip=(
                "Move a clicked or dragged point onto the spectrum peak within ±2 bins, "
                "with sub-bin precision."
            ),
        )
        self.add = PushButton(
            text="Add", tooltip="Click on the FFT to add reflections (napari 'add' mode)."
        )
        self.select = PushButton(
            text="Select/move", tooltip="Select points to drag them or delete them (Delete key)."
        )
        self.delete = PushButton(text="Delete selected", tooltip="Remove the selected points.")
        self.clear = PushButton(text="Clear", tooltip="Remove all reflections.")
        self.buttons = button_row(self.add, self.select, self.delete, self.clear)


def _known_lattice_choices() -> list[tuple[str, tuple]]:
    """(label, (material, hkl)) of every listed plane of the built-in materials."""
    return [
        (f"{name} {plane['label']}  d = {plane['d']:#.4g} nm", (name, plane["hkl"]))
        for name in MATERIALS
        for plane in material_planes(name)
    ]


class CalibrateSection(Container):
    """True spacing of reflections 1 (and 2), and the button that corrects the scale."""

    def __init__(self) -> None:
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)
        self._init_widgets()
        self.extend([self.known, self.true_d, self.calibrate])

    def _init_widgets(self) -> None:
        self.known = ComboBox(
            label="known lattice",
            choices=_known_lattice_choices(),
            value=None,
            nullable=True,
            tooltip=(
                "Material and plane of reflections 1 (and 2): their true spacing "
                "calibrates the image. Empty: type the true d below."
            ),
        )
        self.true_d = FloatSpinBox(
            label="true d (nm)",
            max=10.0,
            step=0.0001,
            tooltip="True spacing of reflections 1 (and 2) in nm, when no lattice is chosen.",
        )
        self.calibrate = PushButton(
            text="Calibrate scale from reflections 1–2",
            tooltip=(
                "Correct the image's scale so that the picked reflections have their true "
                "spacing: isotropic from one reflection, affine (scan distortion) from two."
            ),
        )


def reflection_table():
    """The read-only table of picked reflections, its columns sharing the dock's width."""
    table = read_only_table(
        TABLE_COLUMNS,
        tooltip="The picked reflections: reciprocal vector, spacing and angle.",
        min_height=130,
    )
    native = table.native
    native.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    # Every column in view: they share the width, with no horizontal scroll bar.
    native.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return table
