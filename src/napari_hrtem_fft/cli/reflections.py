"""``napari-hrtem-fft reflections``: the strongest reflections of an image region."""

from __future__ import annotations

from . import _common as cli

HELP = "list the strongest reflections of an image region"

DESCRIPTION = (
    "Print the strongest reflections (one of each Friedel pair) with "
    "their spacing and angle, ready to paste as --reflection options."
)


def configure(parser) -> None:
    """Add the subcommand's arguments to its ``parser``."""
    cli.add_input_options(parser)
    parser.add_argument(
        "--center", type=cli.pair, metavar="Y,X", help="region centre in pixels (default: middle)"
    )
    parser.add_argument("--max-count", type=cli.positive_int, default=8, metavar="N")


def run(args) -> int:
    """Run the subcommand; return the exit code."""
    mg, _, pixel_size, _ = cli.load(args)
    g = cli.suggest(args, cli.first_frame(mg.data), pixel_size, args.max_count, "", args.center)
    print(f"# {mg.name}: pixel {pixel_size:.6g} nm, window {args.window} px")
    print(f"{'#':>2} {'gy (1/nm)':>10} {'gx (1/nm)':>10} {'d (nm)':>9} {'angle':>8}")
    from ..core.export import reflection_rows

    for row in reflection_rows(g):
        gy, gx = row["g_inv_nm"]
        print(
            f"{row['index']:>2} {gy:>10.4f} {gx:>10.4f} {row['d_nm']:>9.5f} "
            f"{row['angle_deg']:>7.2f}°"
        )
    print(" ".join(f"--reflection={gy:.5f},{gx:.5f}" for gy, gx in g))
    return cli.EXIT_OK
