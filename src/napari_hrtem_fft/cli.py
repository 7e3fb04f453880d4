"""Command line: lattice maps of a micrograph or movie without napari.

``napari-hrtem-fft analyze IMAGE --reflection GY,GX ... --out maps.tif`` (or ``--auto N``)
writes calibrated maps and a JSON record of every parameter; ``napari-hrtem-fft
reflections IMAGE`` lists the strongest reflections to choose from.  Movies: ``--frames
START:STOP``, ``--track`` (follow the lattice frame by frame), ``--scheduler ADDRESS``
(compute on a ``dask.distributed`` cluster, blocks written straight to ``maps.zarr``);
``napari-hrtem-fft trace MAPS.zarr --out trace.csv`` reduces maps to a time trace.
See docs/cli.md.

Only the standard library is imported at start-up, so ``--help`` is instant and
never imports napari or Qt; the analysis modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import platform
import re
import sys
from pathlib import Path

from .core.quantities import MAP_QUANTITIES as _QUANTITIES
from .core.quantities import STRAIN_QUANTITIES as _STRAIN

__all__ = ["main"]

PROG = "napari-hrtem-fft"

# Exit codes (also in docs/cli.md).
EXIT_OK = 0
EXIT_USAGE = 2  # bad option values, impossible analysis parameters
EXIT_INPUT = 3  # input missing, unreadable, not a real-space image, no calibration
EXIT_OUTPUT = 4  # output exists (no --overwrite) or cannot be written
EXIT_NOTHING_FOUND = 5  # --auto found no significant reflection
EXIT_SCHEDULER = 6  # the dask scheduler cannot be reached

# dask's own schedulers, accepted by --scheduler besides a distributed address.
_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


class CliError(Exception):
    """A user error: reported as one line on stderr, with an exit code, no traceback."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------- parsing


def _pair(text: str) -> tuple[float, float]:
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
_positive_int = _positive(int, "a positive integer")


def _option(name: str, convert):
    """An argparse type checking an analysis option with the pipeline's own rules
    (:func:`napari_hrtem_fft.core.pipeline.check_option`), imported when used so that
    ``--help`` stays free of numpy."""

    def parse(text: str):
        from .core.pipeline import check_option

        try:
            return check_option(name, convert(text))
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _frames_slice(text: str) -> slice:
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


def _scheduler(text: str) -> str:
    if "://" in text or text in _LOCAL_SCHEDULERS:
        return text
    raise argparse.ArgumentTypeError(
        f"expected a scheduler address like tcp://host:8786 or one of "
        f"{', '.join(_LOCAL_SCHEDULERS)}, got {text!r}"
    )


def _rectangle(text: str) -> tuple[float, float, float, float]:
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


def _join_negative_pairs(argv: list[str]) -> list[str]:
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


def _add_input_options(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--window",
        type=_option("window", int),
        default=128,
        metavar="PX",
        help="FFT window in pixels, even, at least 16 (default 128)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Local lattice spacing, angle and strain maps of HRTEM images "
        "by rolling-window FFT.",
        epilog="Exit codes: 0 success, 2 bad options, 3 input problem, 4 output exists or "
        "cannot be written, 5 no reflection found, 6 dask scheduler unreachable. "
        "Reflections are reciprocal vectors "
        "(gy, gx) in 1/nm, y pointing down; write a negative first value as "
        "--reflection=-1.5,2.3 or --reflection -1.5,2.3.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    an = sub.add_parser(
        "analyze",
        help="compute lattice maps and write them",
        description="Compute local spacing, angle, peak strength and (with two or more "
        "non-collinear reflections) strain maps, and write them calibrated, with a JSON "
        "record of all parameters beside the output.",
    )
    _add_input_options(an)
    an.add_argument(
        "-r",
        "--reflection",
        type=_pair,
        action="append",
        default=[],
        metavar="GY,GX",
        help="reflection (gy, gx) in 1/nm; repeat for several",
    )
    an.add_argument(
        "--auto",
        type=_positive_int,
        metavar="N",
        help="use the N strongest reflections of the image centre, one per lattice-plane "
        "direction (higher orders are skipped)",
    )
    an.add_argument(
        "--step",
        type=_option("step", int),
        default=8,
        metavar="PX",
        help="map step, pixels, at most the window (default 8)",
    )
    an.add_argument(
        "--search",
        type=_option("search", float),
        default=0.1,
        metavar="R",
        help="peak search radius relative to |g|, in (0, 0.5] (default 0.1)",
    )
    an.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="demodulate at the lattice found by a survey of each frame (default: on)",
    )
    an.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="maps.tif (one calibrated TIFF per map) or maps.zarr (one store)",
    )
    an.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    an.add_argument(
        "--clean",
        action="store_true",
        help="set outliers (spacing > 5 %% or angle > 5° from the median) to NaN (first)",
    )
    an.add_argument(
        "--crystal-mask",
        action="store_true",
        help="NaN outside the crystal (automatic threshold on the peak strength; after "
        "--clean)",
    )
    an.add_argument(
        "--smooth",
        type=_option("smoothing_size", int),
        metavar="N",
        help="NaN-aware N×N block average of the maps (last, after the mask)",
    )
    movie = an.add_argument_group("movies (t, y, x)")
    movie.add_argument(
        "--frames",
        type=_frames_slice,
        metavar="START:STOP",
        help="analyse frames START to STOP-1 (Python slice; START:STOP:STEP and open ends "
        "such as 10: work); the maps' time axis starts at frame START",
    )
    movie.add_argument(
        "--track",
        action="store_true",
        help="follow the lattice from frame to frame: each frame is demodulated at the "
        "lattice found in the previous one (changes larger than --search over the movie "
        "are followed); frame by frame in this process",
    )
    movie.add_argument(
        "--scheduler",
        type=_scheduler,
        metavar="ADDRESS",
        help="compute on a dask.distributed scheduler (tcp://host:8786), or with a local "
        "dask scheduler (threads, processes, synchronous); with --out maps.zarr the "
        "workers write the blocks straight to the store",
    )
    an.set_defaults(func=_cmd_analyze)

    tr = sub.add_parser(
        "trace",
        help="time trace of maps (median d, strain per frame) inside a region",
        description="Mean, median, standard deviation and count of d (nm), the angle "
        "(degrees) and strain per frame of maps written with --out maps.zarr (or by "
        "napari_hrtem_fft.to_zarr), inside a rectangle, the crystal mask or everywhere, "
        "as CSV.",
    )
    tr.add_argument("maps", help="maps.zarr written by 'analyze --out maps.zarr'")
    where = tr.add_mutually_exclusive_group()
    where.add_argument(
        "--region",
        type=_rectangle,
        metavar="Y0:Y1,X0:X1",
        help="rectangle in nm (world coordinates of the maps, as in napari); map pixels "
        "whose centres lie inside are used (default: every valid map pixel)",
    )
    where.add_argument(
        "--crystal",
        action="store_true",
        help="use the crystal mask of each frame (automatic threshold on the peak strength)",
    )
    tr.add_argument("--out", required=True, metavar="PATH", help="trace.csv")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    tr.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    tr.set_defaults(func=_cmd_trace)

    rf = sub.add_parser(
        "reflections",
        help="list the strongest reflections of an image region",
        description="Print the strongest reflections (one of each Friedel pair) with "
        "their spacing and angle, ready to paste as --reflection options.",
    )
    _add_input_options(rf)
    rf.add_argument(
        "--center", type=_pair, metavar="Y,X", help="region centre in pixels (default: middle)"
    )
    rf.add_argument("--max-count", type=_positive_int, default=8, metavar="N")
    rf.set_defaults(func=_cmd_reflections)
    return parser


# --------------------------------------------------------------------- input


def _log(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _load(args):
    """The selected micrograph and its pixel size (nm) with the calibration record."""
    from .io import MicrographReadError, read_micrographs

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
        _log(args, f"note: {len(images)} images in the file ({names}); using 0")
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


def _first_frame(data):
    import numpy as np

    frame = data[(0,) * (len(data.shape) - 2)]
    return np.asarray(frame.compute() if hasattr(frame, "compute") else frame)


def _reflection_rows(g) -> list[dict]:
    from .core.reciprocal import g_angle, g_spacing

    d = g_spacing(g)
    angle = g_angle(g)
    return [
        {
            "index": k + 1,
            "g_inv_nm": [float(g[k, 0]), float(g[k, 1])],
            "d_nm": float(d[k]),
            "d_angstrom": float(10 * d[k]),
            "angle_deg": float(angle[k]),
        }
        for k in range(len(g))
    ]


# ----------------------------------------------------------------- commands


def _cmd_reflections(args) -> int:
    from .core.fft import find_reflections

    mg, _, pixel_size, _ = _load(args)
    frame = _first_frame(mg.data)
    try:
        g = find_reflections(
            frame,
            pixel_size=pixel_size,
            window=args.window,
            center=args.center,
            max_count=args.max_count,
        )
    except (TypeError, ValueError) as err:
        raise CliError(str(err), EXIT_USAGE) from None
    if len(g) == 0:
        raise CliError("no significant reflection found", EXIT_NOTHING_FOUND)
    print(f"# {mg.name}: pixel {pixel_size:.6g} nm, window {args.window} px")
    print(f"{'#':>2} {'gy (1/nm)':>10} {'gx (1/nm)':>10} {'d (nm)':>9} {'d (Å)':>8} {'angle':>8}")
    for row in _reflection_rows(g):
        gy, gx = row["g_inv_nm"]
        print(
            f"{row['index']:>2} {gy:>10.4f} {gx:>10.4f} {row['d_nm']:>9.5f} "
            f"{row['d_angstrom']:>8.4f} {row['angle_deg']:>7.2f}°"
        )
    print(" ".join(f"--reflection={gy:.5f},{gx:.5f}" for gy, gx in g))
    return EXIT_OK


def _distinct_directions(g, count: int, min_angle: float = 5.0):
    """The ``count`` strongest reflections, skipping any parallel (within ``min_angle``
    degrees, either sign) to a stronger one: higher orders of the same planes add no
    information and would make the strain undefined."""
    import numpy as np

    from .core.reciprocal import g_angle

    chosen: list[int] = []
    angles = g_angle(g)
    for i in range(len(g)):
        diffs = [abs((angles[i] - angles[j] + 90.0) % 180.0 - 90.0) for j in chosen]
        if all(d >= min_angle for d in diffs):
            chosen.append(i)
        if len(chosen) == count:
            break
    return np.asarray(g)[chosen].reshape(-1, 2)


def _output_plan(out: Path, n: int, with_strain: bool) -> dict:
    """Every file the analysis will write, by layer name (TIFF) or the store (zarr)."""
    suffix = out.suffix.lower()
    record = out.with_suffix(".json")
    if suffix in (".tif", ".tiff"):
        layers = {}
        for q in _QUANTITIES:
            for k in range(n):
                layers[f"{q}_g{k + 1}"] = out.with_name(f"{out.stem}_{q}_g{k + 1}{out.suffix}")
        if with_strain:
            for c in _STRAIN:
                layers[c] = out.with_name(f"{out.stem}_{c}{out.suffix}")
        return {"kind": "tiff", "layers": layers, "record": record}
    if suffix == ".zarr":
        return {"kind": "zarr", "store": out, "record": record}
    raise CliError(f"--out must end in .tif, .tiff or .zarr, got {out.name!r}", EXIT_USAGE)


def _existing(plan: dict) -> list[Path]:
    from .io import sidecar_path

    if plan["kind"] == "tiff":
        paths = [p for t in plan["layers"].values() for p in (t, sidecar_path(t))]
    else:
        paths = [plan["store"]]
    return [p for p in [*paths, plan["record"]] if p.exists()]


def _versions() -> dict:
    from importlib import metadata

    from . import __version__

    out = {"napari-hrtem-fft": __version__, "python": platform.python_version()}
    for dist in ("numpy", "scipy", "dask", "tifffile", "zarr", "rosettasciio"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _checked_plan(args, out: Path, refl):
    """Output plan for these reflections; error if an output exists (no --overwrite)."""
    from .core.strain import MIN_RECIPROCAL_ANGLE, has_two_directions

    with_strain = has_two_directions(refl)
    if not with_strain and len(refl) > 1:
        _log(args, f"note: no strain: the reflections are not {MIN_RECIPROCAL_ANGLE:g}° apart")
    plan = _output_plan(out, len(refl), with_strain)
    existing = _existing(plan)
    if existing and not args.overwrite:
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise CliError(f"output exists: {names} (use --overwrite to replace)", EXIT_OUTPUT)
    return plan, with_strain


def _cmd_analyze(args) -> int:
    from .core.reciprocal import as_reflections

    if not args.reflection and args.auto is None:
        raise CliError("give reflections with --reflection GY,GX or use --auto N", EXIT_USAGE)
    if args.reflection and args.auto is not None:
        raise CliError("use either --reflection or --auto, not both", EXIT_USAGE)
    options = _options(args)
    if args.track and args.scheduler is not None:
        raise CliError(
            "--track analyses the frames one after the other in this process (each starts "
            "from the lattice found in the previous one) and cannot use --scheduler; "
            "drop one of them",
            EXIT_USAGE,
        )
    out = Path(args.out)
    # Validate the output kind, and refuse existing outputs, before the (long) analysis.
    _output_plan(out, 1, False)
    if args.reflection:
        refl = as_reflections(args.reflection, name="--reflection")
        source = "--reflection"
        plan, with_strain = _checked_plan(args, out, refl)
    mg, index, pixel_size, cal = _load(args)
    frames = _movie_frames(args, mg)

    if args.auto is not None:
        from .core.fft import find_reflections

        first = mg.data if frames is None else mg.data[frames.start : frames.start + 1]
        try:
            candidates = find_reflections(
                _first_frame(first),
                pixel_size=pixel_size,
                window=args.window,
                max_count=max(8, 3 * args.auto),
            )
        except (TypeError, ValueError) as err:
            raise CliError(str(err), EXIT_USAGE) from None
        refl = _distinct_directions(candidates, args.auto)
        if len(refl) == 0:
            raise CliError("--auto: no significant reflection found", EXIT_NOTHING_FOUND)
        if len(refl) < args.auto:
            _log(args, f"note: --auto {args.auto}: only {len(refl)} significant reflection(s)")
        source = "--auto"
        plan, with_strain = _checked_plan(args, out, refl)
    for row in _reflection_rows(refl):
        gy, gx = row["g_inv_nm"]
        _log(
            args,
            f"g{row['index']}: ({gy:.4f}, {gx:.4f}) 1/nm, d = {row['d_nm']:.5f} nm "
            f"({row['d_angstrom']:.4f} Å), angle {row['angle_deg']:.2f}°",
        )

    with _compute_on(args) as scheduler, _progress_bar(args):
        try:
            maps, movie, stored = _run_analysis(
                args, options, mg, refl, pixel_size, with_strain, frames
            )
        except (TypeError, ValueError) as err:
            raise CliError(f"analysis failed: {err}", EXIT_USAGE) from None
        geometry = _map_geometry(mg, maps, frames)
        record = _analysis_record(
            args, options, mg, index, cal, refl, source, maps, geometry, frames
        )
        if movie is not None:
            record["movie"] = movie
        try:
            if plan["kind"] == "tiff":
                written = _write_tiffs(plan, maps, geometry, record, args.overwrite, scheduler)
            else:
                written = _write_zarr(
                    plan, maps, geometry, record, args.overwrite, scheduler, stored=stored
                )
            record["outputs"] = written
            from .io import jsonable

            mode = "w" if args.overwrite else "x"
            with open(plan["record"], mode, encoding="utf-8") as f:
                json.dump(jsonable(record), f, indent=1, ensure_ascii=False, allow_nan=False)
        except FileExistsError as err:
            raise CliError(f"{err} (use --overwrite to replace)", EXIT_OUTPUT) from None
        except OSError as err:
            raise CliError(f"cannot write the output: {err}", EXIT_OUTPUT) from None
        except (TypeError, ValueError) as err:
            # Lazy maps are computed while they are written: engine errors surface here.
            raise CliError(f"analysis failed: {err}", EXIT_USAGE) from None
    _log(args, f"wrote {len(written)} file(s) and {plan['record']}")
    if not args.quiet:
        print("\n".join([*written, str(plan["record"])]))
    return EXIT_OK


def _movie_frames(args, mg) -> range | None:
    """Frame numbers selected by --frames (all with --track), None for no selection."""
    if args.frames is None and not args.track:
        return None
    option = "--track" if args.frames is None else "--frames"
    if len(mg.shape) != 3:
        raise CliError(
            f"{option} needs a movie (t, y, x); {mg.name!r} has shape {tuple(mg.shape)}",
            EXIT_USAGE,
        )
    t = int(mg.shape[0])
    frames = range(t) if args.frames is None else range(*args.frames.indices(t))
    if len(frames) == 0:
        s = args.frames
        text = ":".join("" if v is None else str(v) for v in (s.start, s.stop, s.step))
        raise CliError(
            f"--frames {text.rstrip(':')} selects no frame of the {t} frames (0 to {t - 1})",
            EXIT_USAGE,
        )
    return frames


@contextlib.contextmanager
def _compute_on(args):
    """Where lazy maps are computed: None (dask's default), a local scheduler name, or
    a ``distributed.Client`` set as default for the run (post-processing that needs a
    global value, such as the crystal mask's threshold, also computes there)."""
    if args.scheduler is None:
        yield None
        return
    import dask

    if args.scheduler in _LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=args.scheduler):
            yield args.scheduler
        return
    try:
        from distributed import Client
    except ImportError:
        raise CliError(
            "--scheduler ADDRESS needs the distributed package: pip install distributed",
            EXIT_USAGE,
        ) from None
    try:
        client = Client(args.scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as err:
        raise CliError(
            f"cannot reach the dask scheduler {args.scheduler}: {err}", EXIT_SCHEDULER
        ) from None
    try:
        workers = client.scheduler_info().get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        _log(args, f"computing on {args.scheduler}: {len(workers)} worker(s), {threads} threads")
        yield client
    finally:
        client.close()


def _progress_bar(args):
    """dask's progress bar on stderr for local computations (not on a cluster)."""
    if args.quiet or (args.scheduler is not None and args.scheduler not in _LOCAL_SCHEDULERS):
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr, minimum=0.5)


def _options(args):
    """The pipeline's options of the command line (checked once, by the pipeline)."""
    from .core.pipeline import AnalysisOptions

    try:
        return AnalysisOptions(
            window=args.window,
            step=args.step,
            search=args.search,
            refine=bool(args.refine),
            clean=bool(args.clean),
            crystal_mask=bool(args.crystal_mask),
            smoothing="block" if args.smooth else "none",
            smoothing_size=args.smooth or AnalysisOptions.smoothing_size,
        )
    except (TypeError, ValueError) as err:
        raise CliError(str(err), EXIT_USAGE) from None


def _run_analysis(args, options, mg, refl, pixel_size, with_strain, frames):
    """The maps with the chosen post-processing, lazy where the input is.

    Returns
    -------
    maps : LatticeMaps
        dask arrays for lazy input (computed when written), numpy otherwise.
    movie : dict or None
        Frames and per-frame reflections of a tracked analysis.
    stored : bool
        True if the maps were already written frame by frame to the zarr output.
    """
    from .core.pipeline import postprocess
    from .core.strain import strain

    stored = False
    movie = None
    if args.track:
        maps, movie, stored = _run_tracked(
            args, options, mg, refl, pixel_size, with_strain, frames
        )
    else:
        from .core.engine import analyze

        data = mg.data
        if frames is not None:
            data = data[frames.start : frames.stop : frames.step]
        if args.scheduler is not None and not hasattr(data, "dask"):
            import dask.array as da

            # A lazy graph, so that the scheduler computes it (numpy would be analysed
            # here, before the scheduler is asked).
            lead = (1,) * (len(data.shape) - 2)
            data = da.from_array(data, chunks=(*lead, -1, -1))
        maps = analyze(data, refl, pixel_size=pixel_size, **options.engine_options())
    if with_strain and maps.strain is None:
        maps.strain = strain(maps)
    # The command line has no intensity mask: the image is not needed.
    maps = postprocess(maps, None, options)
    return maps, movie, stored


def _run_tracked(args, options, mg, refl, pixel_size, with_strain, frames):
    """analyze_movie(track=True), streamed to the zarr output when nothing follows."""
    from .core.movie import analyze_movie

    out = Path(args.out)
    post = options.clean or options.crystal_mask or options.smoothing != "none"
    store = out if out.suffix.lower() == ".zarr" and not post else None

    # One line rewritten in place on a terminal, one line per frame in a log file.
    tty = sys.stderr.isatty()

    def progress(done, total):
        if not args.quiet:
            text = f"tracking: frame {frames[done - 1]} ({done} of {total})"
            if tty:
                print(f"\r{text}", end="\n" if done == total else "", file=sys.stderr, flush=True)
            else:
                print(text, file=sys.stderr)

    result = analyze_movie(
        mg.data,
        refl,
        pixel_size=pixel_size,
        **options.engine_options(),
        track=True,
        frames=frames,
        progress=progress,
        store=store,
        overwrite=args.overwrite,
    )
    movie = {
        "frames": list(frames),
        "tracked": True,
        "reflections_per_frame_inv_nm": result.reflections,
        "found_per_frame_inv_nm": result.found,
    }
    return result.maps, movie, store is not None


def _map_geometry(mg, maps, frames: range | None) -> dict:
    """Scale, units and translate of the maps; the time axis starts at the first frame."""
    lead = len(mg.shape) - 2
    image_scale = (*mg.scale[:lead], maps.pixel_size, maps.pixel_size)
    geometry = maps.geometry(image_scale, mg.translate, frames=frames)
    return {**geometry, "units": (*mg.units[:lead], "nm", "nm")}


def _analysis_record(args, options, mg, index, cal, refl, source, maps, geometry, frames) -> dict:
    import numpy as np

    return {
        "program": f"{PROG} analyze",
        "command": [PROG, *args.argv],
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "input": {
            "path": str(Path(args.image).resolve()),
            "image_index": index,
            "name": mg.name,
            "shape": list(mg.shape),
            "dtype": str(mg.data.dtype),
            "format": mg.metadata.get("format"),
        },
        "calibration": cal,
        "reflections": [dict(r, source=source) for r in _reflection_rows(refl)],
        "analysis": {
            **options.as_dict(),
            "frames": None if frames is None else list(frames),
            "track": bool(args.track),
            "scheduler": args.scheduler,
            "engine_parameters": maps.parameters,
        },
        "maps": {
            "shape": list(np.shape(maps.d_spacing)[1:]),
            **geometry,
            "map_pixel": "map pixel (i, j) is the window centred on image pixel (i*step, j*step)",
        },
        "strain_reference_inv_nm": (
            maps.strain.reference.tolist() if maps.strain is not None else None
        ),
        "versions": _versions(),
    }


def _write_tiffs(plan, maps, geometry, record, overwrite, scheduler=None) -> list[str]:
    import numpy as np

    from .core.movie import compute_maps
    from .io import write_tiff

    # Every map in one pass over the data (on the scheduler), then written here.
    arrays = compute_maps(maps, scheduler=scheduler).arrays()
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in arrays.items()}
    written = []
    common = {"analysis": record["analysis"], "input": record["input"]}
    for name, path in plan["layers"].items():
        if name in _STRAIN:
            data, unit, what, extra = arrays[name], *_STRAIN[name], {}
        else:
            quantity, _, label = name.rpartition("_")
            k = int(label[1:]) - 1
            data = arrays[quantity][k]
            unit, what = _QUANTITIES[quantity]
            extra = {"reflection": record["reflections"][k]}
        meta = {"quantity": name, "value_unit": unit, "description": what, **extra, **common}
        written += write_tiff(
            path,
            data,
            scale=geometry["scale"],
            units=geometry["units"],
            translate=geometry["translate"],
            metadata=meta,
            name=path.stem,
            overwrite=overwrite,
        )
    return written


def _write_zarr(
    plan, maps, geometry, record, overwrite, scheduler=None, *, stored: bool = False
) -> list[str]:
    """Write the maps with :func:`napari_hrtem_fft.to_zarr` (lazy maps block by block, by
    the scheduler's workers), then give every array the maps' calibration and the group
    the record of the run.

    The group attribute ``napari_hrtem_fft`` is the record of the run merged into what
    ``to_zarr`` writes, so that :func:`napari_hrtem_fft.read_zarr_maps` opens the store:
    ``reflections`` holds the ``(gy, gx)`` pairs and ``reflection_rows`` the rows of the
    JSON record.  ``stored``: the arrays were already written (tracked, frame by frame).
    """
    try:
        import zarr
    except ImportError:
        raise CliError(
            "writing .zarr needs the zarr package: pip install 'napari-hrtem-fft[zarr]'",
            EXIT_OUTPUT,
        ) from None
    from .core.movie import to_zarr, write_zarr_geometry
    from .io import jsonable

    store = str(plan["store"])
    if stored:
        write_zarr_geometry(store, geometry)
    else:
        to_zarr(maps, store, overwrite=overwrite, scheduler=scheduler, geometry=geometry)
    root = zarr.open_group(store, mode="r+")
    written = dict(root.attrs.get("napari_hrtem_fft", {}))
    merged = {**written, **jsonable(record)}
    merged["reflections"] = written.get("reflections")
    merged["reflection_rows"] = jsonable(record["reflections"])
    root.attrs.update({"napari_hrtem_fft": merged})
    return [store]


# ---------------------------------------------------------------------- trace


def _cmd_trace(args) -> int:
    import dataclasses

    import numpy as np

    from .core.movie import read_zarr_maps, region_from_polygon, time_trace, trace_to_csv
    from .io import axis_times

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CliError(f"output exists: {out} (use --overwrite to replace)", EXIT_OUTPUT)
    path = Path(args.maps)
    if not path.exists():
        raise CliError(f"{str(path)!r} does not exist", EXIT_INPUT)
    try:
        import zarr

        maps = read_zarr_maps(path)
        root = zarr.open_group(str(path), mode="r")
        attrs = dict(root["d_spacing"].attrs)
        record = dict(root.attrs.get("napari_hrtem_fft", {}))
    except ImportError:
        raise CliError("reading .zarr needs the zarr package", EXIT_INPUT) from None
    except (ValueError, KeyError, OSError, zarr.errors.BaseZarrError) as err:
        raise CliError(f"cannot read maps from {str(path)!r}: {err}", EXIT_INPUT) from None
    shape = tuple(int(s) for s in maps.d_spacing.shape)
    t = shape[1] if len(shape) == 4 else 1
    map_shape = shape[-2:]
    scale = [float(v) for v in attrs.get("scale", [1.0] * len(shape))]
    translate = [float(v) for v in attrs.get("translate", [0.0] * len(shape))]
    units = [str(u) for u in attrs.get("units", [""] * len(shape))]

    region, where = None, "every valid map pixel"
    if args.crystal:
        region, where = "crystal", "the crystal mask of each frame"
    elif args.region is not None:
        y0, y1, x0, x1 = args.region
        vertices = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
        region = region_from_polygon(vertices, map_shape, scale[-2:], translate[-2:])
        if not region.any():
            ys = (translate[-2], translate[-2] + (map_shape[0] - 1) * scale[-2])
            xs = (translate[-1], translate[-1] + (map_shape[1] - 1) * scale[-1])
            raise CliError(
                f"--region holds no map pixel centre: the maps cover y {ys[0]:.4g} to "
                f"{ys[1]:.4g} nm and x {xs[0]:.4g} to {xs[1]:.4g} nm",
                EXIT_USAGE,
            )
        where = f"y {y0:g} to {y1:g} nm, x {x0:g} to {x1:g} nm ({int(region.sum())} map pixels)"
    times = None
    if len(shape) == 4:
        times = axis_times(t, scale=scale[1], translate=translate[1], unit=units[1])
    try:
        trace = time_trace(maps, region, times=times)
    except ValueError as err:
        raise CliError(f"cannot compute the trace: {err}", EXIT_USAGE) from None
    frames = (record.get("analysis") or {}).get("frames")
    if frames is None:
        frames = (record.get("movie") or {}).get("frames")
    if frames is not None and len(frames) == t:
        trace = dataclasses.replace(trace, frames=np.asarray(frames, dtype=int))
    try:
        trace_to_csv(trace, out, overwrite=args.overwrite)
    except FileExistsError as err:
        raise CliError(f"{err} (use --overwrite to replace)", EXIT_OUTPUT) from None
    except OSError as err:
        raise CliError(f"cannot write {str(out)!r}: {err}", EXIT_OUTPUT) from None
    if not args.quiet:
        _print_trace(trace, where)
        print(str(out))
    return EXIT_OK


def _print_trace(trace, where: str) -> None:
    """Median d (Å) per frame and reflection on stderr."""
    n = trace.reflections.shape[0]
    print(f"# median d (Å) inside {where}", file=sys.stderr)
    head = f"{'frame':>6}" + (f" {'t (s)':>9}" if trace.times is not None else "")
    print(head + "".join(f" {f'g{k + 1}':>8} {'n':>6}" for k in range(n)), file=sys.stderr)
    for i, frame in enumerate(trace.frames):
        line = f"{int(frame):>6}" + (f" {trace.times[i]:>9.4g}" if trace.times is not None else "")
        for k in range(n):
            line += f" {10 * trace['d_median'][i, k]:>8.4f} {int(trace['d_count'][i, k]):>6}"
        print(line, file=sys.stderr)


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 success, 2 bad options, 3 input problem, 4 output problem,
        5 no reflection found, 6 dask scheduler unreachable.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        args = parser.parse_args(_join_negative_pairs(argv))
    except SystemExit as exit_:  # --help, --version, or an argparse error (already printed)
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.argv = argv
    try:
        return args.func(args)
    except CliError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
