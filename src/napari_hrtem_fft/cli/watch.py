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
    "median d per reflection). When the analysis is slower than the acquisition it "
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
        "--trace", metavar="PATH", help="trace.csv: statistics per frame, one row per frame"
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


def _outputs(args) -> tuple[Path, Path | None]:
    out = Path(args.out)
    trace = None if args.trace is None else Path(args.trace)
    for path in (out, trace):
        if path is not None and path.exists() and not args.overwrite:
            raise cli.CliError(
                f"output exists: {path} (use --overwrite to replace)", cli.EXIT_OUTPUT
            )
    return out, trace


def run(args) -> int:
    """Run the subcommand; return the exit code."""
    from ..core.live import LiveControl, Prepended, iter_live
    from ..core.reciprocal import as_reflections
    from ..io import MicrographReadError
    from ..io._watch import watch_source

    if bool(args.reflection) == (args.auto is not None):
        raise cli.CliError(
            "give reflections with --reflection GY,GX or --auto N (one of the two)",
            cli.EXIT_USAGE,
        )
    out, trace_path = _outputs(args)
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
        refl = cli.suggest(args, first[-1].data, pixel_size, args.auto, "--auto: ")
    from ..core.export import reflection_rows

    for row in reflection_rows(refl):
        cli.log(
            args,
            f"g{row['index']} = ({row['g_inv_nm'][0]:.4f}, {row['g_inv_nm'][1]:.4f}) 1/nm: "
            f"d = {row['d_nm']:.4f} nm, angle = {row['angle_deg']:.2f} deg",
        )
    control = LiveControl()
    previous = signal.signal(signal.SIGINT, lambda *_: control.stop())
    try:
        live = iter_live(
            Prepended(first, source), refl, pixel_size=pixel_size, store=out,
            overwrite=args.overwrite, skip=not args.every_frame, control=control,
            poll_interval=args.poll, window=args.window, step=args.step, search=args.search,
            refine=args.refine,
        )  # fmt: skip
        result = _follow(live, refl, trace_path, args)
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.movie is None:
        cli.log(args, "stopped before any frame was analysed: nothing written")
        return cli.EXIT_OK
    cli.log(
        args,
        f"stopped: {result.movie.n_frames} frame(s) analysed, {len(result.skipped)} skipped; "
        f"maps in {out}" + (f", trace in {trace_path}" if trace_path else ""),
    )
    return cli.EXIT_OK


def _follow(live, refl, trace_path: Path | None, args):
    """Print one line per analysed frame and append it to the trace CSV; the result."""
    import math

    from ..core.movie import trace_text, trace_to_csv

    header = "frame\ttime_s\t" + "\t".join(f"d_median_g{k + 1}_nm" for k in range(len(refl)))
    print(header, flush=True)
    while True:
        try:
            update = next(live)
        except StopIteration as end:
            return end.value
        if update.kind != "frame":
            continue
        if update.skipped:
            cli.log(args, update.message)
        trace = update.traces["all"]
        d = trace["d_median"][-1]
        values = "\t".join("nan" if math.isnan(v) else f"{v:.5f}" for v in d)
        print(f"{update.frame}\t{update.time:.3f}\t{values}", flush=True)
        if trace_path is None:
            continue
        if len(trace.frames) == 1:
            trace_to_csv(trace, trace_path, overwrite=True)
        else:
            # The new row only, below the rows written: trace_text's row under its header.
            with trace_path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(trace_text(_last_row(trace)).split("\n", 1)[1])


def _last_row(trace):
    """The time trace of the newest frame only."""
    import dataclasses

    last = slice(-1, None)
    return dataclasses.replace(
        trace,
        frames=trace.frames[last],
        times=None if trace.times is None else trace.times[last],
        stats={k: v[last] for k, v in trace.stats.items()},
    )
