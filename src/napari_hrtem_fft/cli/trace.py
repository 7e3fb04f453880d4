"""``napari-hrtem-fft trace``: the time trace of maps in a zarr store inside a region."""

from __future__ import annotations

import sys
from pathlib import Path

from . import _common as cli

HELP = "time trace of maps (median d, strain per frame) inside a region"

DESCRIPTION = (
    "Mean, median, standard deviation and count of d (nm), the angle "
    "(degrees) and strain per frame of maps written with --out maps.zarr (or by "
    "napari_hrtem_fft.to_zarr), inside a rectangle, the crystal mask or everywhere, "
    "as CSV."
)


def configure(parser) -> None:
    """Add the subcommand's arguments to its ``parser``."""
    parser.add_argument("maps", help="maps.zarr written by 'analyze --out maps.zarr'")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--region",
        type=cli.rectangle,
        metavar="Y0:Y1,X0:X1",
        help="rectangle in nm (world coordinates of the maps, as in napari); map pixels "
        "whose centres lie inside are used (default: every valid map pixel)",
    )
    where.add_argument(
        "--crystal",
        action="store_true",
        help="use the crystal mask of each frame (automatic threshold on the peak strength)",
    )
    parser.add_argument(
        "--reference",
        type=cli.rectangle,
        metavar="Y0:Y1,X0:X1",
        help="strain relative to the median lattice inside this rectangle (nm, world "
        "coordinates as --region), in each frame, instead of the maps' own reference",
    )
    parser.add_argument("--out", required=True, metavar="PATH", help="trace.csv")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")


def run(args) -> int:
    """Run the subcommand; return the exit code."""
    import dataclasses

    import numpy as np

    from ..core.movie import read_zarr_maps, region_from_polygon, time_trace, trace_to_csv
    from ..io import axis_times

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise cli.CliError(f"output exists: {out} (use --overwrite to replace)", cli.EXIT_OUTPUT)
    path = Path(args.maps)
    if not path.exists():
        raise cli.CliError(f"{str(path)!r} does not exist", cli.EXIT_INPUT)
    try:
        import zarr

        maps = read_zarr_maps(path)
        root = zarr.open_group(str(path), mode="r")
        attrs = dict(root["d_spacing"].attrs)
        record = dict(root.attrs.get("napari_hrtem_fft", {}))
    except ImportError:
        raise cli.CliError("reading .zarr needs the zarr package", cli.EXIT_INPUT) from None
    except (ValueError, KeyError, OSError, zarr.errors.BaseZarrError) as err:
        raise cli.CliError(f"cannot read maps from {str(path)!r}: {err}", cli.EXIT_INPUT) from None
    shape = tuple(int(s) for s in maps.d_spacing.shape)
    t = shape[1] if len(shape) == 4 else 1
    map_shape = shape[-2:]
    scale = [float(v) for v in attrs.get("scale", [1.0] * len(shape))]
    translate = [float(v) for v in attrs.get("translate", [0.0] * len(shape))]
    units = [str(u) for u in attrs.get("units", [""] * len(shape))]

    def rectangle_mask(rect, option):
        """Map pixels whose centres lie inside a world rectangle (nm)."""
        y0, y1, x0, x1 = rect
        vertices = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
        mask = region_from_polygon(vertices, map_shape, scale[-2:], translate[-2:])
        if not mask.any():
            ys = (translate[-2], translate[-2] + (map_shape[0] - 1) * scale[-2])
            xs = (translate[-1], translate[-1] + (map_shape[1] - 1) * scale[-1])
            raise cli.CliError(
                f"{option} holds no map pixel centre: the maps cover y {ys[0]:.4g} to "
                f"{ys[1]:.4g} nm and x {xs[0]:.4g} to {xs[1]:.4g} nm",
                cli.EXIT_USAGE,
            )
        return mask

    region, where = None, "every valid map pixel"
    if args.crystal:
        region, where = "crystal", "the crystal mask of each frame"
    elif args.region is not None:
        y0, y1, x0, x1 = args.region
        region = rectangle_mask(args.region, "--region")
        where = f"y {y0:g} to {y1:g} nm, x {x0:g} to {x1:g} nm ({int(region.sum())} map pixels)"
    if args.reference is not None:
        from ..core.strain import relative_to_region

        try:
            maps = relative_to_region(
                maps, rectangle_mask(args.reference, "--reference"), record=list(args.reference)
            )
        except ValueError as err:
            raise cli.CliError(f"--reference: {err}", cli.EXIT_USAGE) from None
        where += ", strain relative to y {:g} to {:g} nm, x {:g} to {:g} nm".format(
            *args.reference
        )
    times = None
    if len(shape) == 4:
        times = axis_times(t, scale=scale[1], translate=translate[1], unit=units[1])
    try:
        trace = time_trace(maps, region, times=times)
    except ValueError as err:
        raise cli.CliError(f"cannot compute the trace: {err}", cli.EXIT_USAGE) from None
    frames = (record.get("analysis") or {}).get("frames")
    if frames is None:
        frames = (record.get("movie") or {}).get("frames")
    if frames is not None and len(frames) == t:
        trace = dataclasses.replace(trace, frames=np.asarray(frames, dtype=int))
    from ..io import atomic_path

    try:
        # Written under a temporary name, renamed when complete (no half CSV left).
        with atomic_path(out, overwrite=args.overwrite) as tmp:
            trace_to_csv(trace, tmp)
    except FileExistsError as err:
        raise cli.CliError(f"{err} (use --overwrite to replace)", cli.EXIT_OUTPUT) from None
    except OSError as err:
        raise cli.CliError(f"cannot write {str(out)!r}: {err}", cli.EXIT_OUTPUT) from None
    if not args.quiet:
        _print_trace(trace, where)
        print(str(out))
    return cli.EXIT_OK


def _print_trace(trace, where: str) -> None:
    """Median d (nm) per frame and reflection on stderr."""
    n = trace.reflections.shape[0]
    print(f"# median d (nm) inside {where}", file=sys.stderr)
    head = f"{'frame':>6}" + (f" {'t (s)':>9}" if trace.times is not None else "")
    print(head + "".join(f" {f'g{k + 1}':>8} {'n':>6}" for k in range(n)), file=sys.stderr)
    for i, frame in enumerate(trace.frames):
        line = f"{int(frame):>6}" + (f" {trace.times[i]:>9.4g}" if trace.times is not None else "")
        for k in range(n):
            line += f" {trace['d_median'][i, k]:>8.5f} {int(trace['d_count'][i, k]):>6}"
        print(line, file=sys.stderr)
