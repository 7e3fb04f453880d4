"""Matplotlib plots in the docks, styled like napari's default dark theme.

The statistics dock (histogram) and the time-trace dock (curves) share this set-up, so
their plots look the same and neither glares next to the canvas.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

__all__ = [
    "BACKGROUND",
    "FOREGROUND",
    "HeldLayout",
    "dark_canvas",
    "legend_above",
    "style_axes",
    "style_legend",
]

# napari's default dark theme.
BACKGROUND = "#262930"
FOREGROUND = "#d1d2d4"


class HeldLayout(ConstrainedLayoutEngine):
    """Matplotlib's constrained layout, which can be held: then laid out only when asked.

    Laying a figure out measures every text of it: it takes as long as drawing it.  A
    plot drawn again and again with the same labels (a live run's) holds its layout
    (:attr:`held`) and asks for it again (:meth:`invalidate`) when its tick labels grow;
    the canvas asks when it is resized (:func:`dark_canvas`).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: Whether a draw lays the figure out only when :meth:`invalidate` was called.
        self.held = False
        self._stale = True
        #: Figures laid out so far (a measure for tests).
        self.count = 0

    def invalidate(self, *args) -> None:
        """Lay the figure out at its next draw."""
        self._stale = True

    def execute(self, fig):
        """Lay ``fig`` out unless the layout is held and nothing asked for it."""
        if self.held and not self._stale:
            return None
        self._stale = False
        self.count += 1
        return super().execute(fig)


def dark_canvas(
    figsize: tuple[float, float], *, min_height: int, tooltip: str = ""
) -> tuple[Figure, FigureCanvasQTAgg]:
    """A figure with the theme's background and its Qt canvas.

    Parameters
    ----------
    figsize : tuple of float
        Figure size in inches (the canvas stretches with the dock).
    min_height : int
        Smallest canvas height in screen pixels.
    tooltip : str
        Tooltip of the canvas.

    Returns
    -------
    (Figure, FigureCanvasQTAgg)
        The figure is laid out by a :class:`HeldLayout`, laid out again whenever the
        canvas is resized.
    """
    layout = HeldLayout()
    figure = Figure(figsize=figsize, facecolor=BACKGROUND, layout=layout)
    canvas = FigureCanvasQTAgg(figure)
    canvas.mpl_connect("resize_event", layout.invalidate)
    canvas.setMinimumHeight(min_height)
    if tooltip:
        canvas.setToolTip(tooltip)
    return figure, canvas


def style_axes(ax, *, xlabel: str = "", ylabel: str = "") -> None:
    """Clear ``ax`` and give it the theme's colours and small labels."""
    ax.clear()
    ax.set_facecolor(BACKGROUND)
    for spine in ax.spines.values():
        spine.set_color(FOREGROUND)
    ax.tick_params(colors=FOREGROUND, labelsize=8)
    ax.set_xlabel(xlabel, color=FOREGROUND, fontsize=9)
    ax.set_ylabel(ylabel, color=FOREGROUND, fontsize=9)


def style_legend(ax, *, title: str | None = None, **kwargs):
    """A frameless, small legend in the theme's text colour (None if nothing is labelled)."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    legend = ax.legend(fontsize=7, frameon=False, title=title, title_fontsize=7, **kwargs)
    texts = legend.get_texts() + ([legend.get_title()] if title else [])
    for text in texts:
        text.set_color(FOREGROUND)
    return legend


def legend_above(ax, *, title: str | None = None, ncols: int = 3):
    """A compact legend in rows above ``ax``, right-aligned, ``title`` above its entries.

    Outside the axes it covers no data, also of curves that grow while they are shown
    (a live run's: a legend placed where the data was is drawn over later).  Rows of at
    most ``ncols`` entries; None if nothing is labelled.
    """
    entries = len(ax.get_legend_handles_labels()[0])
    return style_legend(
        ax, title=title, loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.1,
        ncols=max(min(entries, ncols), 1), handlelength=1.2, handletextpad=0.4,
        columnspacing=0.8, alignment="right",
    )  # fmt: skip
