"""Shared parts of the command line: exit codes, errors, argument types, input.

Standard library only at import time: ``--help`` stays instant and free of napari, Qt
and numpy; the analysis modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

PROG = "napari-hrtem-fft"

# Exit codes (also in docs/cli.md).
EXIT_OK = 0
EXIT_USAGE = 2  # bad option values, impossible analysis parameters
EXIT_INPUT = 3  # input missing, unreadable, not a real-space image, no calibration
EXIT_OUTPUT = 4  # output exists (no --overwrite) or cannot be written
EXIT_NOTHING_FOUND = 5  # --auto found no significant reflection
EXIT_SCHEDULER = 6  # the dask scheduler cannot be reached

# dask's own schedulers, accepted by --scheduler besides a distributed address.
LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


class CliError(Exception):
    """A user error: reported as one line on stderr, with an exit code, no traceback."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def pair(text: str) -> tuple[float, float]:
    parts = text.replace(";", ",").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected two numbers 'A,B', got {text!r}")
    return values


def _positive(convert, what: str):
    """An argparse type: ``convert(text)``, finite and above 0, else an error naming ``what``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        # Compared, not converted: a huge integer is fine, NaN and infinity are not.
        if value is None or not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_float = _positive(float, "a positive number")
positive_int = _positive(int, "a positive integer")


def option(name: str, convert):
    """An argparse type checking an analysis option with the pipeline's own rules.

    The rules are :func:`napari_hrtem_fft.core.pipeline.check_option`, imported when
    used so that ``--help`` stays free of numpy.
    """

    def parse(text: str):
        from ..core.pipeline import check_option

        try:
            return check_option(name, convert(text))
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def frames_slice(text: str) -> slice:
    """``START:STOP[:STEP]`` (Python slice, any part may be empty) or a single ``K``."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            k = int(parts[0])
            return slice(k, None if k == -1 else k + 1)
        if len(parts) in (2, 3):
            values = [int(p) if p.strip() else None for p in parts]
            if len(values) == 3 and values[2] is not None and values[2] < 1:
                raise ValueError
            return slice(*values)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"expected frames START:STOP or START:STOP:STEP (Python slice), got {text!r}"
    )


def scheduler(text: str) -> str:
    if "://" in text or text in LOCAL_SCHEDULERS:
        return text
    raise argparse.ArgumentTypeError(
        f"expected a scheduler address like tcp://host:8786 or one of "
        f"{', '.join(LOCAL_SCHEDULERS)}, got {text!r}"
    )


def rectangle(text: str) -> tuple[float, float, float, float]:
    """``Y0:Y1,X0:X1`` in nm."""
    try:
        ys, xs = text.split(",")
        y0, y1 = (float(v) for v in ys.split(":"))
        x0, x1 = (float(v) for v in xs.split(":"))
    except ValueError:
        y0 = y1 = x0 = x1 = float("nan")
    values = (y0, y1, x0, x1)
    if not all(math.isfinite(v) for v in values) or y1 <= y0 or x1 <= x0:
        raise argparse.ArgumentTypeError(
            f"expected a rectangle Y0:Y1,X0:X1 in nm with Y0 < Y1 and X0 < X1, got {text!r}"
        )
    return values


_PAIR_OPTIONS = ("--reflection", "-r", "--center")


def join_negative_pairs(argv: list[str]) -> list[str]:
    """Let ``--reflection -1.5,2`` work: argparse would take ``-1.5,2`` for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in _PAIR_OPTIONS and i + 1 < len(argv):
            nxt = argv[i + 1]
            if re.fullmatch(r"-[\d.][^,]*,.*", nxt):
                out.append(f"{tok}={nxt}")
                i += 2
                continue
        out.append(tok)
        i += 1
    return out


# Options the pipeline checks with its own rules (core.pipeline.check_option):
# flag -> (option name, conversion, default, metavar, help).
_ANALYSIS_OPTIONS = {
    "--window": (
        "window",
        int,
        128,
        "PX",
        "FFT window in pixels, even, at least 16 (default 128)",
    ),
    "--step": ("step", int, 8, "PX", "map step, pixels, at most the window (default 8)"),
    "--search": (
        "search",
        float,
        0.1,
        "R",
        "peak search radius relative to |g|, in (0, 0.5] (default 0.1)",
    ),
    "--smooth": (
        "smoothing_size",
        int,
        None,
        "N",
        "NaN-aware N×N block average of the maps (last, after the mask)",
    ),
    "--resolution": (
        "resolution_nm",
        float,
        None,
        "NM",
        "--method gpa: resolution (FWHM of the Gaussian mask's point-spread function) in "
        "nm; default: matched to --window",
    ),
}


def add_analysis_options(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Add options checked by the pipeline's rules (see ``_ANALYSIS_OPTIONS``)."""
    for flag in flags:
        name, convert, default, metavar, text = _ANALYSIS_OPTIONS[flag]
        parser.add_argument(
            flag, type=option(name, convert), default=default, metavar=metavar, help=text
        )


def add_reflection_options(parser: argparse.ArgumentParser, *, of: str = "the image") -> None:
    """``--reflection GY,GX`` (repeatable) and ``--auto N``; ``of`` names the image searched."""
    parser.add_argument(
        "-r",
        "--reflection",
        type=pair,
        action="append",
        default=[],
        metavar="GY,GX",
        help=f"reflection (gy, gx) in 1/nm of {of}; repeat for several",
    )
    parser.add_argument(
        "--auto",
        type=positive_int,
        metavar="N",
        help=f"use the N strongest reflections of the centre of {of}, one per lattice-plane "
        "direction (higher orders are skipped)",
    )
    add_analysis_options(parser, "--step", "--search")
    parser.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="demodulate at the lattice found by a survey of each frame (default: on)",
    )


def add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="micrograph file (DM3/DM4, EMD, TIA, MRC, HSPY, TIFF)")
    p.add_argument(
        "--image-index",
        type=int,
        default=None,
        metavar="I",
        help="which image of a multi-image file (default: the first; the others are listed)",
    )
    p.add_argument(
        "--pixel-size",
        type=_positive_float,
        metavar="NM",
        help="pixel size in nm; overrides the file's calibration (required if it has none)",
    )
    add_analysis_options(p, "--window")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")


def log(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def load(args):
    """The selected micrograph and its pixel size (nm) with the calibration record."""
    from ..io import MicrographReadError, read_micrographs

    try:
        images = read_micrographs(args.image)
    except FileNotFoundError as err:
        raise CliError(str(err), EXIT_INPUT) from None
    except (MicrographReadError, OSError, ValueError) as err:
        raise CliError(f"cannot read {args.image!r}: {err}", EXIT_INPUT) from None
    if not images:
        raise CliError(f"{args.image!r} holds no image", EXIT_INPUT)
    index = 0 if args.image_index is None else args.image_index
    if not 0 <= index < len(images):
        raise CliError(
            f"--image-index {index} is out of range: {args.image!r} holds {len(images)} image(s)",
            EXIT_USAGE,
        )
    if len(images) > 1 and args.image_index is None:
        names = ", ".join(f"{i}: {m.name}" for i, m in enumerate(images))
        log(args, f"note: {len(images)} images in the file ({names}); using 0")
    mg = images[index]
    if mg.reciprocal:
        raise CliError(
            f"{mg.name!r} is a reciprocal-space image (diffraction pattern, units "
            f"{mg.units[-1]}); lattice maps need a real-space image",
            EXIT_INPUT,
        )
    cal = {
        "file_scale": list(mg.scale[-2:]),
        "file_units": list(mg.units[-2:]),
        "file_calibrated": mg.calibrated,
        "file_pixel_size_source": mg.metadata.get("pixel_size_source"),
    }
    if args.pixel_size is not None:
        pixel_size = float(args.pixel_size)
        cal["source"] = "--pixel-size"
    else:
        sy, sx = mg.scale[-2:]
        if mg.calibrated and not math.isclose(sy, sx, rel_tol=1e-6):
            raise CliError(
                f"{mg.name!r} has anisotropic pixels (y {sy:.6g} {mg.units[-2]}, x {sx:.6g} "
                f"{mg.units[-1]}); the analysis needs square pixels: resample the image, "
                "or force a pixel size with --pixel-size NM",
                EXIT_INPUT,
            )
        try:
            pixel_size = float(mg.pixel_size)
        except ValueError as err:
            raise CliError(f"{err} (use --pixel-size NM)", EXIT_INPUT) from None
        cal["source"] = "file"
    cal["pixel_size_nm"] = pixel_size
    return mg, index, pixel_size, cal


def first_frame(data):
    import numpy as np

    frame = data[(0,) * (len(data.shape) - 2)]
    return np.asarray(frame.compute() if hasattr(frame, "compute") else frame)


def suggest(args, frame, pixel_size: float, max_count: int, what: str, center=None):
    """The strongest reflections of ``frame``, or a clear error when there is none.

    :func:`napari_hrtem_fft.find_reflections`, the call behind the picker's Suggest.
    ``what`` names the option in the error (``"--auto"``), ``center`` is in pixels.
    """
    from ..core.fft import find_reflections

    try:
        g = find_reflections(
            frame, pixel_size=pixel_size, window=args.window, center=center, max_count=max_count
        )
    except (TypeError, ValueError) as err:
        raise CliError(str(err), EXIT_USAGE) from None
    if len(g) == 0:
        raise CliError(f"{what}no significant reflection found", EXIT_NOTHING_FOUND)
    return g
