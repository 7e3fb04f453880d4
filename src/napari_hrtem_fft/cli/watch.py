"""``napari-hrtem-fft watch``: lattice maps and a time trace while a movie is recorded."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from . import _common as cli

HELP = "live: maps and time trace of an acquisition while it is being written"

DESCRIPTION = (
    "Follow a folder where the acquisition writes numbered frames (TIFF, MRC, DM3/DM4) "
    "or a growing multi-frame TIFF/MRC file: every new frame is registered against the "
    "previous one (drift), analysed with the lattice found in the previous frame, "
    "appended to a zarr store and to the time trace; one line per frame (frame, time, "
    "median d per reflection, everywhere and in each --region, which follows the drift; "
    "with --reference, strain relative to the lattice in that rectangle in each frame). "
    "When the analysis is slower than the acquisition it "
    "skips to the newest frame and says which frames it skipped. Ctrl-C ends the run "
    "with a complete store."
)


def configure(parser) -> None:
    """Add the subcommand's arguments to its ``parser``."""
    parser.add_argument(
        "source", help="folder of frames, or a multi-frame .tif/.mrc file being written"
    )
    parser.add_argument(
        "--pixel-size",
        type=cli._positive_float,
        metavar="NM",
        help="pixel size in nm; overrides the files' calibration (required if they have none)",
    )
    cli.add_analysis_options(parser, "--window")
    cli.add_reflection_options(parser, of="the first frame")
    parser.add_argument("--out", required=True, metavar="PATH", help="live.zarr (maps store)")
    parser.add_argument(
        "--region",
        type=cli.rectangle,
        action="append",
        default=[],
        metavar="Y0:Y1,X0:X1",
        help="trace region: a rectangle in nm on the first frame (world coordinates, as in "
        "napari); it follows the drift; repeatable (region1, region2, ...)",
    )
    parser.add_argument(
        "--reference",
        type=cli.rectangle,
        metavar="Y0:Y1,X0:X1",
        help="strain and phase relative to the median lattice inside this rectangle (nm on "
        "the first frame, as --region; it follows the drift), in each frame, instead of "
        "the reflections of the first frame; recorded in the store",
    )
    parser.add_argument(
        "--trace",
        metavar="PATH",
        help="trace.csv: statistics per frame, one row per frame, of every valid pixel; "
        "each --region k in PATH_regionk.csv",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--renamed",
        action="store_true",
        help="the acquisition renames finished files into place: read each at first sight",
    )
    parser.add_argument(
        "--every-frame",
        action="store_true",
        help="analyse every frame even when behind (default: skip to the newest)",
    )
    parser.add_argument(
        "--poll", type=cli._positive_float, default=0.05, metavar="S", help="seconds (0.05)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no messages on stderr")


def _first_frames(source, interval: float, args) -> list:
    """Wait for the first complete frame(s)."""
    cli.log(args, f"waiting for frames in {args.source} (Ctrl-C to stop)")
    while True:
        frames = source.poll()
        if frames:
            return frames
        time.sleep(interval)


def _region_names(args) -> list[str]:
    """Trace names: every valid pixel, then each ``--region``."""
    return ["all"] + [f"region{k + 1}" for k in range(len(args.region))]


def _outputs(args) -> tuple[Path, dict[str, Path]]:
    """The store and the trace CSV of each trace name (none without ``--trace``)."""
    out = Path(args.out)
    traces = {}
    if args.trace is not None:
        base = Path(args.trace)
        for name in _region_names(args):
            traces[name] = base if name == "all" else base.with_name(
                f"{base.stem}_{name}{base.suffix or '.csv'}"
            )  # fmt: skip
    for path in (out, *traces.values()):
        if path.exists() and not args.overwrite:
            raise cli.CliError(
                f"output exists: {path} (use --overwrite to replace)", cli.EXIT_OUTPUT
            )
    return out, traces


def _polygon(rectangle) -> list[list[float]]:
    """A rectangle ``(y0, y1, x0, x1)`` in nm as the polygon of its corners ``(y, x)``."""
    y0, y1, x0, x1 = rectangle
    return [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]


def _rectangles(args) -> dict[str, list[list[float]]]:
    """The ``--region`` rectangles as polygons ``(y, x)`` in nm, by trace name."""
    return {
        name: _polygon(rectangle)
        for name, rectangle in zip(_region_names(args)[1:], args.region, strict=True)
    }


def _reference_record(args) -> list[float] | None:
    """How ``--reference`` was given, for the store's record (as ``trace --reference``)."""
    return None if args.reference is None else [float(v) for v in args.reference]


def run(args) -> int:
    """Run the subcommand; return the exit code."""
    from ..core.live import LiveControl, Prepended, iter_live, regions_on_grid
    from ..core.reciprocal import as_reflections
    from ..io import MicrographReadError, watch_source

    if bool(args.reflection) == (args.auto is not None):
        raise cli.CliError(
            "give reflections with --reflection GY,GX or --auto N (one of the two)",
            cli.EXIT_USAGE,
        )
    out, trace_paths = _outputs(args)
    path = Path(args.source)
    try:
        options = {"renamed": True} if args.renamed and path.is_dir() else {}
        source = watch_source(path, **options)
    except (ValueError, OSError) as err:
        raise cli.CliError(str(err), cli.EXIT_INPUT) from None
    try:
        first = _first_frames(source, args.poll, args)
    except MicrographReadError as err:
        raise cli.CliError(str(err), cli.EXIT_INPUT) from None
    pixel_size = args.pixel_size or first[0].pixel_size
    if pixel_size is None:
        raise cli.CliError(
            f"{first[0].name} has no pixel-size calibration (use --pixel-size NM)", cli.EXIT_INPUT
        )
    if args.reflection:
        refl = as_reflections(args.reflection, name="--reflection")
    else:
        refl = cli.suggest(args, first[0].data, pixel_size, args.auto, "--auto: ")
    from ..core.export import reflection_rows

    for row in reflection_rows(refl):
        cli.log(
            args,
            f"g{row['index']} = ({row['g_inv_nm'][0]:.4f}, {row['g_inv_nm'][1]:.4f}) 1/nm: "
            f"d = {row['d_nm']:.4f} nm, angle = {row['angle_deg']:.2f} deg",
        )
    try:
        regions = regions_on_grid(
            _rectangles(args), first[0].data.shape, pixel_size=pixel_size, step=args.step
        )
    except ValueError as err:
        raise cli.CliError(f"--region: {err}", cli.EXIT_USAGE) from None
    reference = None
    if args.reference is not None:
        try:
            reference = regions_on_grid(
                {"reference": _polygon(args.reference)}, first[0].data.shape,
                pixel_size=pixel_size, step=args.step,
            )["reference"]  # fmt: skip
        except ValueError as err:
            raise cli.CliError(f"--reference: {err}", cli.EXIT_USAGE) from None
    control = LiveControl()
    previous = signal.signal(signal.SIGINT, lambda *_: control.stop())
    try:
        live = iter_live(
            Prepended(first, source), refl, pixel_size=pixel_size, store=out,
            overwrite=args.overwrite, skip=not args.every_frame, control=control,
            poll_interval=args.poll, trace_regions={"all": None, **regions},
            reference=reference, reference_record=_reference_record(args),
            window=args.window, step=args.step, search=args.search, refine=args.refine,
        )  # fmt: skip
        result = _follow(live, refl, trace_paths, args)
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.movie is None:
        cli.log(args, "stopped before any frame was analysed: nothing written")
        return cli.EXIT_OK
    traces = ", ".join(str(p) for p in trace_paths.values())
    cli.log(
        args,
        f"stopped: {result.movie.n_frames} frame(s) analysed, {len(result.skipped)} skipped; "
        f"maps in {out}" + (f", traces in {traces}" if traces else ""),
    )
    return cli.EXIT_OK


def _follow(live, refl, trace_paths: dict[str, Path], args):
    """Print one line per analysed frame and append it to the trace CSVs; the result."""
    import math

    import numpy as np

    from ..core.live_process import last_row
    from ..core.movie import trace_text, trace_to_csv

    names = _region_names(args)
    columns = [
        f"{'' if name == 'all' else name + '_'}d_median_g{k + 1}_nm"
        for name in names
        for k in range(len(refl))
    ]
    print("frame\ttime_s\t" + "\t".join(columns), flush=True)
    while True:
        try:
            update = next(live)
        except StopIteration as end:
            return end.value
        if update.kind != "frame":
            continue
        if update.skipped:
            cli.log(args, update.message)
        d = np.concatenate([update.traces[name]["d_median"][-1] for name in names])
        values = "\t".join("nan" if math.isnan(v) else f"{v:.5f}" for v in d)
        print(f"{update.frame}\t{update.time:.3f}\t{values}", flush=True)
        for name, path in trace_paths.items():
            trace = update.traces[name]
            if len(trace.frames) == 1:
                trace_to_csv(trace, path, overwrite=True)
            else:
                # The new row only, below the rows written: trace_text's row under its header.
                with path.open("a", encoding="utf-8", newline="") as fh:
                    fh.write(trace_text(last_row(trace)).split("\n", 1)[1])
