"""Why a reflection's map is NaN where it is: a record the front ends can print."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Reasons a map pixel inside the image is NaN, in the order they are tested.
REASONS = ("missing data", "below amplitude threshold", "outside search region")

_ADVICE = {
    "missing data": "its windows touch NaN/inf pixels of the image: crop or fill them",
    "below amplitude threshold": (
        "its fringes are weaker than min_amplitude times the background near g: check "
        "that the reflection is a peak of this region's FFT, try a larger window, or "
        "lower min_amplitude"
    ),
    "outside search region": (
        "the local g lies farther than `search` from the given reflection: pick it again "
        "on the FFT (or refine it), or raise search"
    ),
}


@dataclass
class Diagnosis:
    """How much of one reflection's map is NaN inside the image, and why.

    Attributes
    ----------
    index : int
        Reflection number, from 1 as shown to users.
    reflection : tuple of float
        ``(gy, gx)`` in nm⁻¹.
    nan_fraction : float
        Fraction of the map pixels whose window lies inside the image that are NaN.
    reasons : dict
        Fraction of those map pixels NaN for each reason of :data:`REASONS`.
    edge_fraction : float
        Fraction of all map pixels whose window reaches beyond the image (always NaN).
    median_amplitude : float
        Median amplitude of the windows inside the image without missing data.
    """

    index: int
    reflection: tuple[float, float]
    nan_fraction: float
    reasons: dict = field(default_factory=dict)
    edge_fraction: float = 0.0
    median_amplitude: float = float("nan")

    @property
    def dominant(self) -> str | None:
        """The reason behind most NaN pixels inside the image (None if there are none)."""
        if not self.nan_fraction:
            return None
        return max(self.reasons, key=self.reasons.get)

    def reason(self) -> str:
        """Why the map is NaN and what to try (empty when nothing inside is NaN)."""
        if self.dominant is None:
            return ""
        return (
            f"mostly {self.dominant} ({self.reasons[self.dominant]:.0%}; median "
            f"amplitude {self.median_amplitude:.3g}): {_ADVICE[self.dominant]}"
        )

    def message(self) -> str:
        """One line for a status bar, a notification or stderr."""
        g = f"({self.reflection[0]:.4g}, {self.reflection[1]:.4g}) 1/nm"
        head = f"reflection {self.index} {g}: {self.nan_fraction:.0%} of the map is NaN"
        if self.dominant is None:
            return head
        return f"{head}, {self.reason()}"


def diagnose(maps) -> list[Diagnosis]:
    """Per reflection, the NaN fraction of its map inside the image and the reasons.

    A map pixel is inside the image when its whole window is; the others are NaN by
    construction (``edge_fraction``).  Inside, a NaN pixel is *missing data* where the
    amplitude is NaN too (its window touches NaN/inf pixels), *below amplitude
    threshold* where the amplitude is under ``maps.parameters["min_amplitude"]``, and
    *outside search region* otherwise.  dask maps are computed.

    Parameters
    ----------
    maps : LatticeMaps
        Result of :func:`napari_hrtem_fft.analyze` (any number of frames).

    Returns
    -------
    list of Diagnosis
        One per reflection; :meth:`Diagnosis.message` gives a line to show.
    """
    d = np.asarray(maps.d_spacing)
    amp = np.asarray(maps.amplitude)
    threshold = float(maps.parameters.get("min_amplitude", 0.0))
    inside = _inside(maps, d.shape[-2:])
    edge = 1.0 - inside.mean() if inside.size else 0.0
    out = []
    for k in range(d.shape[0]):
        dk, ak = d[k][..., inside], amp[k][..., inside]
        n = max(dk.size, 1)
        missing = np.isnan(ak)
        weak = ~missing & (ak < threshold)
        nan = np.isnan(dk)
        reasons = dict(
            zip(
                REASONS,
                (missing.sum() / n, weak.sum() / n, (nan & ~missing & ~weak).sum() / n),
                strict=True,
            )
        )
        usable = ak[~missing]
        out.append(
            Diagnosis(
                index=k + 1,
                reflection=tuple(float(v) for v in maps.reflections[k]),
                nan_fraction=float(nan.sum() / n),
                reasons={key: float(v) for key, v in reasons.items()},
                edge_fraction=float(edge),
                median_amplitude=float(np.median(usable)) if usable.size else float("nan"),
            )
        )
    return out


def _inside(maps, map_shape) -> np.ndarray:
    """Map pixels whose window ``c - N/2 … c + N/2 - 1`` lies inside the image."""
    shape = maps.parameters.get("image_shape")
    if shape is None:
        shape = [m * maps.step for m in map_shape]
    half = maps.window // 2
    axes = []
    for m, n in zip(map_shape, shape[-2:], strict=True):
        c = np.arange(m) * maps.step
        axes.append((c - half >= 0) & (c + half <= n))
    return axes[0][:, None] & axes[1][None, :]
