"""``napari-hrtem-fft reflections``: the strongest reflections of an image region."""

from __future__ import annotations

from ._common import (
    EXIT_NOTHING_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _add_input_options,
    _first_frame,
    _load,
    _pair,
    _positive_int,
    _reflection_rows,
)


def add_parser(sub) -> None:
    """Add the ``reflections`` subcommand to the subparsers ``sub``."""
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


def _cmd_reflections(args) -> int:
    from ..core.fft import find_reflections

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

