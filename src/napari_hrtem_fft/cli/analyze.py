"""``napari-hrtem-fft analyze``: lattice maps of a micrograph or movie, written calibrated.

The analysis is the pipeline's (:mod:`napari_hrtem_fft.core.pipeline`): the same
options, post-processing and maps as the lattice-map widget and the console.
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path

from ..core.quantities import MAP_QUANTITIES as _QUANTITIES
from . import _common as cli

HELP = "compute lattice maps and write them"

#: Displacement maps written with --phase: name → (unit, description).
_DISPLACEMENT = {
    "displacement_uy": ("nm", "displacement along y, from the geometric phases (unwrapped)"),
    "displacement_ux": ("nm", "displacement along x, from the geometric phases (unwrapped)"),
}

DESCRIPTION = (
    "Compute local spacing, angle, peak strength and (with two or more "
    "non-collinear reflections) strain maps, and write them calibrated, with a JSON "
    "record of all parameters beside the output."
)


def configure(parser) -> None:
    """Add the subcommand's arguments to its ``parser``."""
    cli.add_input_options(parser)
    cli.add_reflection_options(parser)
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="maps.tif (one calibrated TIFF per map) or maps.zarr (one store)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--calibrate",
        metavar="MATERIAL:HKL|D_NM",
        help="correct the scale so that reflections 1 (and 2) have a known spacing: a "
        "built-in plane such as MoS2:100 or Pd:111, or a true d in nm; isotropic from one "
        "reflection, affine (scan distortion) from two non-parallel ones",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="set outliers (spacing > 5 %% or angle > 5° from the median) to NaN (first)",
    )
    parser.add_argument(
        "--crystal-mask",
        action="store_true",
        help="NaN outside the crystal (automatic threshold on the peak strength; after --clean)",
    )
    cli.add_analysis_options(parser, "--smooth", "--resolution")
    parser.add_argument(
        "--method",
        choices=("local_fft", "gpa"),  # core.pipeline.METHODS (not imported: --help is fast)
        default="local_fft",
        help="local_fft: rolling-window FFT (default); gpa: geometric phase analysis "
        "(Gaussian mask of --resolution around each reflection, one FFT of the image)",
    )
    parser.add_argument(
        "--reference",
        type=cli.rectangle,
        metavar="Y0:Y1,X0:X1",
        help="strain relative to the median lattice inside this rectangle (nm from the "
        "image origin; map pixels whose centres lie inside), instead of the reflections; "
        "stored in the JSON record",
    )
    parser.add_argument(
        "--phase",
        action="store_true",
        help="with --out maps.tif: also write the phase maps "
        "(maps_phase_gK.tif, rad), the displacement (maps_displacement_uy/ux.tif, nm, "
        "unwrapped) and the dislocation cores found from the phase windings "
        "(maps_dislocations.csv, one row per core: position, Burgers vector in nm)",
    )
    movie = parser.add_argument_group("movies (t, y, x)")
    movie.add_argument(
        "--frames",
        type=cli.frames_slice,
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
        type=cli.scheduler,
        metavar="ADDRESS",
        help="compute on a dask.distributed scheduler (tcp://host:8786), or with a local "
        "dask scheduler (threads, processes, synchronous); with --out maps.zarr the "
        "workers write the blocks straight to the store",
    )


def _output_plan(out: Path, n: int, with_strain: bool, phase: bool = False) -> dict:
    """Every file the analysis will write: the export layout (TIFF) or the store (zarr).

    ``phase``: also the phase and displacement maps and the dislocations table.
    """
    from ..core import export

    suffix = out.suffix.lower()
    if suffix in export.TIFF_SUFFIXES:
        fields = (*_QUANTITIES, "phase") if phase else tuple(_QUANTITIES)
        labels = export.map_labels(n, fields, with_strain)
        return {
            "kind": "tiff",
            **export.output_plan(
                out,
                [*labels, *(_DISPLACEMENT if phase else ())],
                tables=("dislocations",) if phase else (),
            ),
        }
    if phase:
        raise cli.CliError("--phase writes TIFF files: use --out maps.tif", cli.EXIT_USAGE)
    if suffix == ".zarr":
        return {"kind": "zarr", "store": out, "record": out.with_suffix(".json")}
    raise cli.CliError(f"--out must end in .tif, .tiff or .zarr, got {out.name!r}", cli.EXIT_USAGE)


def _staged_plan(plan: dict, stage: Path, *, keep_store: bool = False) -> dict:
    """The plan with every output in the staging folder.

    A store written during the analysis (``keep_store``) stays where it is.
    """
    staged = {**plan, "record": stage / plan["record"].name}
    if not keep_store:
        staged["store"] = stage / plan["store"].name
    return staged


def _existing(plan: dict) -> list[Path]:
    from ..core.export import existing_outputs

    if plan["kind"] == "tiff":
        return existing_outputs(plan)
    return [p for p in (plan["store"], plan["record"]) if p.exists()]


def _checked_plan(args, out: Path, refl):
    """Output plan for these reflections; error if an output exists (no --overwrite)."""
    from ..core.strain import MIN_RECIPROCAL_ANGLE, has_two_directions

    with_strain = has_two_directions(refl)
    if not with_strain and len(refl) > 1:
        cli.log(args, f"note: no strain: the reflections are not {MIN_RECIPROCAL_ANGLE:g}° apart")
    if args.phase and not with_strain:
        raise cli.CliError(
            "--phase needs two non-collinear reflections (displacement, dislocations)",
            cli.EXIT_USAGE,
        )
    plan = _output_plan(out, len(refl), with_strain, args.phase)
    existing = _existing(plan)
    from ..io import is_zarr_store

    store = plan.get("store")
    if store is not None and store.exists() and not is_zarr_store(store):
        # --overwrite replaces a zarr store, never a folder or file of something else.
        raise cli.CliError(
            f"{store} exists and is not a zarr store; not replacing it", cli.EXIT_OUTPUT
        )
    if existing and not args.overwrite:
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise cli.CliError(f"output exists: {names} (use --overwrite to replace)", cli.EXIT_OUTPUT)
    return plan, with_strain


def run(args) -> int:
    """Run the subcommand; return the exit code."""
    from ..core.reciprocal import as_reflections

    if not args.reflection and args.auto is None:
        raise cli.CliError(
            "give reflections with --reflection GY,GX or use --auto N", cli.EXIT_USAGE
        )
    if args.reflection and args.auto is not None:
        raise cli.CliError("use either --reflection or --auto, not both", cli.EXIT_USAGE)
    options = _options(args)
    if args.track and options.method != "local_fft":
        raise cli.CliError(
            "--track follows the lattice of the local-FFT method; drop --track or use "
            "--method local_fft",
            cli.EXIT_USAGE,
        )
    if args.track and args.scheduler is not None:
        raise cli.CliError(
            "--track analyses the frames one after the other in this process (each starts "
            "from the lattice found in the previous one) and cannot use --scheduler; "
            "drop one of them",
            cli.EXIT_USAGE,
        )
    out = Path(args.out)
    # Validate the output kind, and refuse existing outputs, before the (long) analysis.
    _output_plan(out, 1, False, args.phase)
    if args.reflection:
        refl = as_reflections(args.reflection, name="--reflection")
        source = "--reflection"
        plan, with_strain = _checked_plan(args, out, refl)
    mg, index, pixel_size, cal = cli.load(args)
    frames = _movie_frames(args, mg)

    if args.auto is not None:
        first = mg.data if frames is None else mg.data[frames.start : frames.start + 1]
        refl = cli.suggest(args, cli.first_frame(first), pixel_size, args.auto, "--auto: ")
        if len(refl) < args.auto:
            cli.log(args, f"note: --auto {args.auto}: only {len(refl)} significant reflection(s)")
        source = "--auto"
        plan, with_strain = _checked_plan(args, out, refl)
    from ..core.export import reflection_rows

    for row in reflection_rows(refl):
        gy, gx = row["g_inv_nm"]
        cli.log(
            args,
            f"g{row['index']}: ({gy:.4f}, {gx:.4f}) 1/nm, d = {row['d_nm']:.5f} nm, "
            f"angle {row['angle_deg']:.2f}°",
        )

    with _compute_on(args) as scheduler, _progress_bar(args):
        try:
            maps, movie, stored = _run_analysis(
                args, options, mg, refl, pixel_size, with_strain, frames
            )
        except (TypeError, ValueError) as err:
            raise cli.CliError(f"analysis failed: {err}", cli.EXIT_USAGE) from None
        if args.calibrate:
            if stored:
                raise cli.CliError(
                    "--calibrate corrects the maps after the analysis; with --track write "
                    "to a .tif or add --clean/--smooth/--crystal-mask",
                    cli.EXIT_USAGE,
                )
            maps = _calibrate(args, maps, refl, pixel_size)
        geometry = _map_geometry(mg, maps, frames)
        record = _analysis_record(args, options, mg, index, cal, source, maps, geometry, frames)
        if movie is not None:
            record["movie"] = movie
        try:
            from ..io import staged_outputs

            # Outputs are written in a hidden staging folder and moved in when all are
            # complete, the record last: an interrupted or failed run leaves nothing that
            # looks complete, and no "output exists" for the rerun.
            folder = plan["record"].parent
            with staged_outputs(
                folder, overwrite=args.overwrite, last=[plan["record"].name]
            ) as stage:
                if plan["kind"] == "tiff":
                    written = _write_tiffs(
                        stage / out.name, maps, geometry, record, args.phase, scheduler, folder
                    )
                else:
                    staged = _staged_plan(plan, stage, keep_store=stored)
                    written = _write_zarr(
                        staged,
                        maps,
                        geometry,
                        record,
                        False,
                        scheduler,
                        stored=stored,
                        listed_in=folder,
                    )
                written = [folder / Path(p).name for p in written]
        except FileExistsError as err:
            raise cli.CliError(f"{err} (use --overwrite to replace)", cli.EXIT_OUTPUT) from None
        except OSError as err:
            raise cli.CliError(f"cannot write the output: {err}", cli.EXIT_OUTPUT) from None
        except (TypeError, ValueError) as err:
            # Lazy maps are computed while they are written: engine errors surface here.
            raise cli.CliError(f"analysis failed: {err}", cli.EXIT_USAGE) from None
    cli.log(args, f"wrote {len(written)} file(s)")
    if not args.quiet:
        print("\n".join(str(p) for p in written))
    return cli.EXIT_OK


def _movie_frames(args, mg) -> range | None:
    """Frame numbers selected by --frames (all with --track), None for no selection."""
    if args.frames is None and not args.track:
        return None
    option = "--track" if args.frames is None else "--frames"
    if len(mg.shape) != 3:
        raise cli.CliError(
            f"{option} needs a movie (t, y, x); {mg.name!r} has shape {tuple(mg.shape)}",
            cli.EXIT_USAGE,
        )
    t = int(mg.shape[0])
    frames = range(t) if args.frames is None else range(*args.frames.indices(t))
    if len(frames) == 0:
        s = args.frames
        text = ":".join("" if v is None else str(v) for v in (s.start, s.stop, s.step))
        raise cli.CliError(
            f"--frames {text.rstrip(':')} selects no frame of the {t} frames (0 to {t - 1})",
            cli.EXIT_USAGE,
        )
    return frames


@contextlib.contextmanager
def _compute_on(args):
    """Where lazy maps are computed.

    None (dask's default), a local scheduler name, or a ``distributed.Client`` set as
    default for the run (post-processing that needs a global value, such as the crystal
    mask's threshold, also computes there).
    """
    if args.scheduler is None:
        yield None
        return
    import dask

    if args.scheduler in cli.LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=args.scheduler):
            yield args.scheduler
        return
    try:
        from distributed import Client
    except ImportError:
        raise cli.CliError(
            "--scheduler ADDRESS needs the distributed package: pip install distributed",
            cli.EXIT_USAGE,
        ) from None
    try:
        client = Client(args.scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as err:
        raise cli.CliError(
            f"cannot reach the dask scheduler {args.scheduler}: {err}", cli.EXIT_SCHEDULER
        ) from None
    try:
        workers = client.scheduler_info().get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        cli.log(
            args, f"computing on {args.scheduler}: {len(workers)} worker(s), {threads} threads"
        )
        yield client
    finally:
        client.close()


def _progress_bar(args):
    """Dask's progress bar on stderr for local computations (not on a cluster)."""
    if args.quiet or (args.scheduler is not None and args.scheduler not in cli.LOCAL_SCHEDULERS):
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr, minimum=0.5)


def _options(args):
    """The pipeline's options of the command line (checked once, by the pipeline)."""
    from ..core.pipeline import AnalysisOptions

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
            method=args.method,
            resolution_nm=args.resolution,
            reference=args.reference,
        )
    except (TypeError, ValueError) as err:
        raise cli.CliError(str(err), cli.EXIT_USAGE) from None


def _calibrate(args, maps, refl, pixel_size):
    """Maps corrected from reflections 1 (and 2) of known spacing (``--calibrate``)."""
    import numpy as np

    from ..core import calibration

    g = np.asarray(refl)[:2]
    if len(g) == 2 and abs(g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]) < 0.17 * np.prod(np.hypot(*g.T)):
        g = g[:1]  # (nearly) parallel: one direction only, an isotropic correction
    text = str(args.calibrate)
    try:
        if ":" in text:
            material, hkl = text.split(":", 1)
            # "100", "-111" or "1,0,0": one (signed) digit per index, or commas.
            parts = hkl.split(",") if "," in hkl else re.findall(r"-?\d", hkl)
            plane = tuple(int(c) for c in parts)
            correction = calibration.correction_from_planes(
                g, material, [plane] * len(g), pixel_size=pixel_size
            )
        else:
            d = float(text)
            source = f"--calibrate {d:g} nm"
            correction = (
                calibration.isotropic_correction(g, d, pixel_size=pixel_size, source=source)
                if len(g) == 1
                else calibration.affine_correction(g, [d, d], pixel_size=pixel_size, source=source)
            )
    except ValueError as err:
        raise cli.CliError(f"--calibrate {text}: {err}", cli.EXIT_USAGE) from None
    cli.log(args, correction.describe())
    return calibration.correct_maps(maps, correction)


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
    from ..core.pipeline import postprocess
    from ..core.strain import strain

    stored = False
    movie = None
    if args.track:
        maps, movie, stored = _run_tracked(
            args, options, mg, refl, pixel_size, with_strain, frames
        )
    else:
        from ..core.engine import analyze

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
        if not hasattr(maps.d_spacing, "dask"):
            # Lazy maps are computed only when written; their diagnosis would cost a
            # second pass.
            from ..core.pipeline import record_diagnostics

            for line in record_diagnostics(maps):
                cli.log(args, f"warning: {line}")
    if with_strain and maps.strain is None:
        maps.strain = strain(maps)
    # The command line has no intensity mask: the image is not needed.
    maps = postprocess(maps, None, options)
    return maps, movie, stored


def _run_tracked(args, options, mg, refl, pixel_size, with_strain, frames):
    """analyze_movie(track=True), streamed to the zarr output when nothing follows."""
    from ..core.movie import analyze_movie

    out = Path(args.out)
    post = (
        options.clean
        or options.crystal_mask
        or options.smoothing != "none"
        or options.reference is not None
    )
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


def _analysis_record(args, options, mg, index, cal, source, maps, geometry, frames) -> dict:
    from ..core.export import analysis_record

    return analysis_record(
        maps,
        options,
        program=f"{cli.PROG} analyze",
        command=[cli.PROG, *args.argv],
        source={
            "path": str(Path(args.image).resolve()),
            "image_index": index,
            "name": mg.name,
            "shape": list(mg.shape),
            "dtype": str(mg.data.dtype),
            "format": mg.metadata.get("format"),
        },
        calibration=cal,
        geometry=geometry,
        reflections_source=source,
        analysis={
            "frames": None if frames is None else list(frames),
            "track": bool(args.track),
            "scheduler": args.scheduler,
        },
    )


def _write_tiffs(path: Path, maps, geometry, record, phase, scheduler, folder) -> list[Path]:
    """The maps in the export layout; with ``phase`` also the phase products.

    The files are written beside ``path`` and listed in the record as in ``folder``.
    """
    import dataclasses

    from ..core.export import write_results
    from ..core.movie import compute_maps

    if phase:
        maps = compute_maps(maps, scheduler=scheduler)
        extra = _phase_products(maps, record)
    else:
        # Phase maps are an output of --phase only.
        maps, extra = dataclasses.replace(maps, phase=None), {}
    return write_results(
        path,
        maps,
        geometry=geometry,
        record=record,
        scheduler=scheduler,
        listed_in=folder,
        **extra,
    )


def _phase_products(maps, record) -> dict:
    """Displacement maps and the dislocation cores of computed ``maps``.

    The core's :func:`~napari_hrtem_fft.displacement` and
    :func:`~napari_hrtem_fft.find_dislocations`, as keyword arguments of
    :func:`~napari_hrtem_fft.core.export.write_results`; the cores are counted in the
    record.
    """
    import csv
    import io

    import numpy as np

    from ..core.phase import displacement, find_dislocations

    u = displacement(maps)
    extra_maps = {
        name: (np.asarray(u[k]), *_DISPLACEMENT[name]) for k, name in enumerate(_DISPLACEMENT)
    }
    cores = find_dislocations(maps)
    table = cores.table()
    text = io.StringIO(newline="")
    text.write(
        "# dislocation cores: position (y, x) nm from the image origin; Burgers vector "
        "b = closure of u counter-clockwise on screen round the core (docs/gpa.md)\n"
    )
    writer = csv.writer(text)
    writer.writerow(table)
    writer.writerows(zip(*(col.tolist() for col in table.values()), strict=True))
    record["dislocations"] = {"count": len(cores), "parameters": cores.parameters}
    return {"extra_maps": extra_maps, "tables": {"dislocations": text.getvalue()}}


def _write_zarr(
    plan,
    maps,
    geometry,
    record,
    overwrite,
    scheduler=None,
    *,
    stored: bool = False,
    listed_in: Path | None = None,
) -> list[str]:
    """Write the maps to a zarr store, with their calibration and the record of the run.

    :func:`napari_hrtem_fft.to_zarr` writes lazy maps block by block, on the
    scheduler's workers.

    The group attribute ``napari_hrtem_fft`` is the record of the run merged into what
    ``to_zarr`` writes, so that :func:`napari_hrtem_fft.read_zarr_maps` opens the store:
    ``reflections`` holds the ``(gy, gx)`` pairs and ``reflection_rows`` the rows of the
    JSON record.  ``stored``: the arrays were already written (tracked, frame by frame).
    """
    try:
        import zarr
    except ImportError:
        raise cli.CliError(
            "writing .zarr needs the zarr package: pip install 'napari-hrtem-fft[zarr]'",
            cli.EXIT_OUTPUT,
        ) from None
    from ..core.export import write_record
    from ..core.movie import to_zarr, write_zarr_geometry
    from ..io import jsonable

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
    names = [Path(store), plan["record"]]
    record = {**record, "outputs": [str((listed_in or p.parent) / p.name) for p in names]}
    return [Path(store), write_record(plan["record"], record, overwrite=overwrite)]
