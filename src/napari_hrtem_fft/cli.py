"""Command line: lattice maps of a micrograph without napari.

``napari-hrtem-fft analyze IMAGE --reflection GY,GX ... --out maps.tif`` (or ``--auto N``)
writes calibrated maps and a JSON record of every parameter; ``napari-hrtem-fft
reflections IMAGE`` lists the strongest reflections to choose from.  See docs/cli.md.

Only the standard library is imported at start-up, so ``--help`` is instant and
never imports napari or Qt; the analysis modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import re
import sys
from pathlib import Path

__all__ = ["main"]

PROG = "napari-hrtem-fft"

# Exit codes (also in docs/cli.md).
EXIT_OK = 0
EXIT_USAGE = 2  # bad option values, impossible analysis parameters
EXIT_INPUT = 3  # input missing, unreadable, not a real-space image, no calibration
EXIT_OUTPUT = 4  # output exists (no --overwrite) or cannot be written
EXIT_NOTHING_FOUND = 5  # --auto found no significant reflection

_QUANTITIES = {
    # name: (unit of the values, description)
    "d_spacing": ("nm", "local lattice spacing"),
    "angle": ("deg", "local angle of g, counter-clockwise on screen"),
    "amplitude": ("1", "peak power over the local background"),
    "d_sigma": ("nm", "standard deviation of d_spacing"),
    "angle_sigma": ("deg", "standard deviation of angle"),
}
_STRAIN = {
    "exx": ("1", "strain along x (finite, Biot)"),
    "eyy": ("1", "strain along y (finite, Biot)"),
    "exy": ("1", "shear strain"),
    "rotation": ("deg", "lattice rotation, counter-clockwise on screen"),
}


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
        type=_positive_int,
        default=128,
        metavar="PX",
        help="FFT window in pixels (default 128)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Local lattice spacing, angle and strain maps of HRTEM images "
        "by rolling-window FFT.",
        epilog="Exit codes: 0 success, 2 bad options, 3 input problem, 4 output exists or "
        "cannot be written, 5 no reflection found. Reflections are reciprocal vectors "
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
        "--step", type=_positive_int, default=8, metavar="PX", help="map step, pixels (default 8)"
    )
    an.add_argument(
        "--search",
        type=_positive_float,
        default=0.1,
        metavar="R",
        help="peak search radius passed to the engine (default 0.1)",
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
        help="set outliers (spacing > 5 %% or angle > 5° from the median) to NaN",
    )
    an.add_argument(
        "--smooth",
        type=_positive_int,
        metavar="N",
        help="NaN-aware N×N block average of the maps (after --clean)",
    )
    an.add_argument(
        "--crystal-mask",
        action="store_true",
        help="NaN outside the crystal (automatic threshold on the peak strength)",
    )
    an.set_defaults(func=_cmd_analyze)

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
    from .core.strain import MIN_RECIPROCAL_ANGLE, _check_basis

    try:
        _check_basis(refl, "reflections")
        with_strain = True
    except ValueError:
        with_strain = False
        if len(refl) > 1:
            _log(args, f"note: no strain: the reflections are not {MIN_RECIPROCAL_ANGLE:g}° apart")
    plan = _output_plan(out, len(refl), with_strain)
    existing = _existing(plan)
    if existing and not args.overwrite:
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise CliError(f"output exists: {names} (use --overwrite to replace)", EXIT_OUTPUT)
    return plan, with_strain


def _cmd_analyze(args) -> int:
    import numpy as np

    from .core.reciprocal import as_reflections

    if not args.reflection and args.auto is None:
        raise CliError("give reflections with --reflection GY,GX or use --auto N", EXIT_USAGE)
    if args.reflection and args.auto is not None:
        raise CliError("use either --reflection or --auto, not both", EXIT_USAGE)
    if args.step > args.window:
        raise CliError(
            f"--step ({args.step}) must not exceed --window ({args.window})", EXIT_USAGE
        )
    out = Path(args.out)
    # Validate the output kind, and refuse existing outputs, before the (long) analysis.
    _output_plan(out, 1, False)
    if args.reflection:
        refl = as_reflections(args.reflection, name="--reflection")
        source = "--reflection"
        plan, with_strain = _checked_plan(args, out, refl)
    mg, index, pixel_size, cal = _load(args)

    if args.auto is not None:
        from .core.fft import find_reflections

        try:
            candidates = find_reflections(
                _first_frame(mg.data),
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

    maps = _run_analysis(args, mg, refl, pixel_size, with_strain)

    map_scale = maps.map_scale
    lead = len(mg.shape) - 2
    geometry = {
        "scale": [*mg.scale[:lead], map_scale, map_scale],
        "units": [*mg.units[:lead], "nm", "nm"],
        "translate": [*mg.translate[:lead], *mg.translate[-2:]],
    }
    record = {
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
            "window": args.window,
            "step": args.step,
            "search": args.search,
            "clean": bool(args.clean),
            "smooth": args.smooth,
            "crystal_mask": bool(args.crystal_mask),
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
    arrays = _collect(maps)
    try:
        if plan["kind"] == "tiff":
            written = _write_tiffs(plan, arrays, geometry, record, args.overwrite)
        else:
            written = _write_zarr(plan, arrays, geometry, record, args.overwrite)
        record["outputs"] = written
        from .io import jsonable

        mode = "w" if args.overwrite else "x"
        with open(plan["record"], mode, encoding="utf-8") as f:
            json.dump(jsonable(record), f, indent=1, ensure_ascii=False, allow_nan=False)
    except FileExistsError as err:
        raise CliError(f"{err} (use --overwrite to replace)", EXIT_OUTPUT) from None
    except OSError as err:
        raise CliError(f"cannot write the output: {err}", EXIT_OUTPUT) from None
    _log(args, f"wrote {len(written)} file(s) and {plan['record']}")
    if not args.quiet:
        print("\n".join([*written, str(plan["record"])]))
    return EXIT_OK


def _run_analysis(args, mg, refl, pixel_size, with_strain):
    """Run the engine (and the chosen post-processing) and compute every map."""
    import contextlib

    import dask

    from .core import postprocess
    from .core.engine import analyze
    from .core.strain import strain

    if args.quiet:
        progress = contextlib.nullcontext()
    else:
        from dask.diagnostics import ProgressBar

        progress = ProgressBar(out=sys.stderr, minimum=0.5)
    try:
        with progress:
            maps = analyze(
                mg.data,
                refl,
                pixel_size=pixel_size,
                window=args.window,
                step=args.step,
                search=args.search,
            )
            if with_strain and maps.strain is None:
                maps.strain = strain(maps)
            if args.clean:
                maps = postprocess.clean(maps)
            if args.smooth:
                maps = postprocess.smooth(maps, args.smooth, method="block")
            if args.crystal_mask:
                maps = postprocess.apply_mask(maps, postprocess.crystal_mask(maps))
            fields = {q: getattr(maps, q) for q in _QUANTITIES}
            if maps.strain is not None:
                fields.update(maps.strain.components())
            computed = dict(zip(fields, dask.compute(*fields.values()), strict=True))
    except (TypeError, ValueError) as err:
        raise CliError(f"analysis failed: {err}", EXIT_USAGE) from None
    for q in _QUANTITIES:
        setattr(maps, q, computed[q])
    if maps.strain is not None:
        for c in _STRAIN:
            setattr(maps.strain, c, computed[c])
    return maps


def _collect(maps) -> dict:
    """Arrays to write: per quantity ``(n, ..., my, mx)``, strain ``(..., my, mx)``."""
    import numpy as np

    arrays = {q: np.asarray(getattr(maps, q), dtype=np.float32) for q in _QUANTITIES}
    if maps.strain is not None:
        for c, v in maps.strain.components().items():
            arrays[c] = np.asarray(v, dtype=np.float32)
    return arrays


def _write_tiffs(plan, arrays, geometry, record, overwrite) -> list[str]:
    from .io import write_tiff

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


def _write_zarr(plan, arrays, geometry, record, overwrite) -> list[str]:
    try:
        import zarr
    except ImportError:
        raise CliError(
            "writing .zarr needs the zarr package: pip install 'napari-hrtem-fft[zarr]'",
            EXIT_OUTPUT,
        ) from None
    from .io import jsonable

    store = str(plan["store"])
    try:
        root = zarr.open_group(store, mode="w" if overwrite else "w-")
    except (zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
        raise FileExistsError(f"{store!r} already exists") from None
    root.attrs.update(jsonable({"napari_hrtem_fft": record}))
    lead_axes = ["t", "z", "c"][: len(geometry["scale"]) - 2]
    for name, data in arrays.items():
        per_reflection = name in _QUANTITIES
        unit, what = _QUANTITIES[name] if per_reflection else _STRAIN[name]
        # zarr 3 names it create_array, zarr 2 create_dataset.
        create = getattr(root, "create_array", None) or root.create_dataset
        arr = create(name, shape=data.shape, dtype="float32", fill_value=float("nan"))
        arr[...] = data
        axes = [*lead_axes, "y", "x"]
        arr.attrs.update(
            {
                "axes": (["reflection"] if per_reflection else []) + axes,
                "scale": ([1.0] if per_reflection else []) + list(geometry["scale"]),
                "translate": ([0.0] if per_reflection else []) + list(geometry["translate"]),
                "units": ([""] if per_reflection else []) + list(geometry["units"]),
                "value_unit": unit,
                "description": what,
            }
        )
    return [store]


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
        5 no reflection found.
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
