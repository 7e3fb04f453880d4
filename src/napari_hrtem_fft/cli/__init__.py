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
One module per subcommand (:mod:`.analyze`, :mod:`.trace`, :mod:`.reflections`), each
with ``add_parser`` and its command; shared parts in :mod:`._common`.
"""

from __future__ import annotations

import argparse
import sys

from . import analyze, reflections, trace, watch
from ._common import EXIT_USAGE, PROG, CliError, join_negative_pairs

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    from .. import __version__

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
    # Each subcommand module: HELP (its line in --help), DESCRIPTION (its own --help),
    # configure(parser) (its arguments) and run(args) (its exit code).
    for command in (analyze, trace, reflections, watch):
        name = command.__name__.rpartition(".")[2]
        parser_ = sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.configure(parser_)
        parser_.set_defaults(func=command.run)
    return parser


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
        args = parser.parse_args(join_negative_pairs(argv))
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
