"""Input checks of :func:`analyze` with specific messages naming the parameter.

:func:`check_image`, :func:`check_int`, :func:`check_real` and :func:`check_flag` are
also the checks of the other analysis methods (:func:`napari_hrtem_fft.core.gpa.analyze_gpa`),
exported by :mod:`napari_hrtem_fft.core.engine`, so that both give the same messages.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..reciprocal import as_reflections


def check_image(image):
    """An image ``(..., y, x)`` of real numbers with known, non-zero sizes.

    Returns
    -------
    image, shape, dtype
        ``image`` (as numpy when it had no ``shape``/``dtype``), its shape and dtype.

    Raises
    ------
    TypeError, ValueError
        With a message naming ``image``.
    """
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or dtype is None:
        try:
            image = np.asarray(image)
        except (TypeError, ValueError) as err:
            kind = type(image).__name__
            raise TypeError(f"image must be an array (..., y, x), got {kind}") from err
        shape, dtype = image.shape, image.dtype
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"image must be real-valued, got complex dtype {dtype}")
    if dtype.kind not in "iuf":
        raise TypeError(f"image must hold real numbers, got dtype {dtype}")
    if len(shape) < 2:
        raise ValueError(f"image must have at least 2 dimensions (..., y, x), got shape {shape}")
    if not all(math.isfinite(s) for s in shape):
        raise ValueError(
            f"image is a dask array of unknown chunk sizes (shape {shape}): call "
            "image.compute_chunk_sizes() first, or give it known chunks"
        )
    if 0 in shape:
        raise ValueError(f"image is empty (shape {tuple(shape)}): nothing to analyse")
    return image, tuple(int(s) for s in shape), dtype


def check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; errors name the parameter ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(value, name: str) -> float:
    """``value`` as a finite float; errors name the parameter ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_chunks(chunks, step: int, depth: int):
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        return None
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        chunks = (chunks, chunks)
    if not (isinstance(chunks, tuple | list) and len(chunks) == 2):
        raise ValueError(f"chunks must be None, 'auto', an int or (cy, cx), got {chunks!r}")
    out = []
    for c in chunks:
        c = check_int(c, "chunks", 1)
        # Multiples of the step keep every block's first window on the global grid;
        # at least the overlap depth, as dask's overlap requires.
        out.append(max(-(-c // step) * step, -(-depth // step) * step))
    return tuple(out)


def _check_numbers(arguments: dict):
    """``pixel_size``, ``window``, ``step``, ``search`` and ``min_amplitude``, checked."""
    pixel_size = check_real(arguments["pixel_size"], "pixel_size")
    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be > 0 (nm), got {pixel_size}")
    window = check_int(arguments["window"], "window", 16)
    if window % 2:
        raise ValueError(f"window must be even, got {window}")
    step = check_int(arguments["step"], "step", 1)
    search = check_real(arguments["search"], "search")
    if not 0 < search <= 0.5:
        raise ValueError(f"search must be in (0, 0.5], got {search}")
    min_amplitude = check_real(arguments["min_amplitude"], "min_amplitude")
    if min_amplitude < 0:
        raise ValueError(f"min_amplitude must be >= 0, got {min_amplitude}")
    return pixel_size, window, step, search, min_amplitude


def check_flag(flag, name: str) -> bool:
    """``flag`` as a bool (True or False only); errors name the parameter ``name``."""
    if not isinstance(flag, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {flag!r}")
    return bool(flag)


def check_reflections(reflections, *, pixel_size: float, window: int) -> np.ndarray:
    """Check reflections as :func:`analyze` does, with a message that names them.

    Front ends call this before starting a run, so that the user hears at once which
    picked reflection cannot be mapped and why.

    Parameters
    ----------
    reflections : array_like
        ``(n, 2)`` reciprocal vectors ``(gy, gx)`` in nm⁻¹.
    pixel_size : float
        Image pixel size in nm.
    window : int
        Window size in pixels.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float64 reflections in nm⁻¹.

    Raises
    ------
    TypeError, ValueError
        If ``reflections`` is not ``(n, 2)`` real and finite; if a reflection lies at or
        beyond Nyquist, or inside the central 2 bins (``1/(window·pixel_size)``) of the
        window; or if two reflections are the same, Friedel mates (``g`` and ``-g``, one
        fringe) or closer than 1 bin: their windowed coefficients would then be one and
        the same, and removing each one's leakage from the other would leave nothing.
    """
    refl = as_reflections(reflections)
    nyquist = 0.5 / pixel_size
    beyond = np.any(np.abs(refl) >= nyquist, axis=1)
    if beyond.any():
        raise ValueError(
            f"reflections {refl[beyond].tolist()} lie at or beyond Nyquist "
            f"(|gy| or |gx| >= {nyquist:.4g} 1/nm for pixel_size {pixel_size} nm)"
        )
    bins = np.hypot(refl[:, 0], refl[:, 1]) * window * pixel_size
    central = bins < 2
    if central.any():
        raise ValueError(
            f"reflections {refl[central].tolist()} lie inside the central 2 bins of a "
            f"{window}-pixel window (|g|·window·pixel_size < 2): use a larger window"
        )
    clashes = _clashes(refl, 1.0 / (window * pixel_size))
    if clashes:
        raise ValueError(
            "reflections must be distinct fringes, but "
            + "; ".join(clashes)
            + f" (1 bin = 1/(window·pixel_size) = {1 / (window * pixel_size):.4g} 1/nm "
            "for this window): remove one of each pair"
        )
    return refl


def _clashes(refl: np.ndarray, bin_size: float) -> list[str]:
    """Descriptions of the pairs that are duplicates, Friedel mates or < 1 bin apart."""
    out = []
    for i, j in zip(*np.triu_indices(len(refl), 1), strict=True):
        same, mate = (np.hypot(*(refl[i] + sign * refl[j])) for sign in (-1, 1))
        gap, what = min((same, "the same reflection"), (mate, "Friedel mates (g and -g)"))
        if gap < bin_size:
            if gap > 1e-9 * bin_size:
                what += f" to within {gap / bin_size:.2f} bin"
            out.append(
                f"reflections {i + 1} {_fmt(refl[i])} and {j + 1} {_fmt(refl[j])} are {what}"
            )
    return out


def _fmt(g) -> str:
    return f"({g[0]:.4g}, {g[1]:.4g})"
