"""One export layout for every front end: the command line's ``--out`` and the widget's Export.

For an output path ``DIR/NAME.tif`` the files are

* ``DIR/NAME_<quantity>_g<k>.tif`` per reflection ``k`` (``d_spacing``, ``angle``,
  ``amplitude``, ``d_sigma``, ``angle_sigma``, as far as the maps hold them) and
  ``DIR/NAME_<component>.tif`` per strain map (``exx``, ``eyy``, ``exy``,
  ``rotation``): calibrated float32 TIFFs, each with its JSON sidecar
  (:func:`napari_hrtem_fft.io.write_tiff`);
* ``DIR/NAME_statistics.csv``: the statistics per reflection
  (:func:`napari_hrtem_fft.reflection_statistics`);
* ``DIR/NAME.json``: the record of the run (strict JSON: a missing value is the string
  ``"nan"``), with the list of files written.

Nothing is overwritten unless asked: when any target exists, nothing is written.  No
napari, no Qt.
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .quantities import MAP_QUANTITIES, OPTIONAL_QUANTITIES, STRAIN_QUANTITIES
from .records import jsonable

__all__ = [
    "analysis_record",
    "existing_outputs",
    "map_labels",
    "map_names",
    "output_plan",
    "reflection_rows",
    "versions",
    "write_record",
    "write_results",
]

#: Suffixes of an output path for TIFF maps.
TIFF_SUFFIXES = (".tif", ".tiff")


def map_labels(n: int, fields, strain: bool) -> list[str]:
    """File labels of maps: ``<field>_g<k>`` per field and reflection, then strain.

    Parameters
    ----------
    n : int
        Number of reflections.
    fields : iterable of str
        Per-reflection fields (names of :attr:`LatticeMaps.FIELDS`).
    strain : bool
        Whether there are strain maps (``exx``, ``eyy``, ``exy``, ``rotation``).

    Returns
    -------
    list of str
        ``d_spacing_g1``, …, then ``exx``, … when ``strain``.
    """
    labels = [f"{field}_g{k + 1}" for field in fields for k in range(n)]
    return labels + (list(STRAIN_QUANTITIES) if strain else [])


def map_names(maps) -> list[str]:
    """File labels of every map of ``maps`` (fields that are None have no file).

    Parameters
    ----------
    maps : LatticeMaps
        The maps.

    Returns
    -------
    list of str
        In the order of :meth:`LatticeMaps.arrays`.
    """
    fields = [name for name in maps.arrays() if name not in STRAIN_QUANTITIES]
    return map_labels(maps.n_reflections, fields, maps.strain is not None)


def write_record(path, record: Mapping, *, overwrite: bool = False) -> Path:
    """Write the record of a run as strict JSON (non-finite numbers as strings).

    Parameters
    ----------
    path : str or Path
        The JSON file.
    record : mapping
        The record (:func:`analysis_record`).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with open(path, "w" if overwrite else "x", encoding="utf-8") as fh:
        json.dump(jsonable(record), fh, indent=1, ensure_ascii=False, allow_nan=False)
        fh.write("\n")
    return path


def output_plan(out, names, tables=()) -> dict:
    """Every file of an export to ``out``.

    Parameters
    ----------
    out : str or Path
        ``DIR/NAME.tif`` (or ``.tiff``).
    names : sequence of str
        Map labels (:func:`map_names`, and any further maps).
    tables : sequence of str
        Labels of further CSV tables (``dislocations``: ``DIR/NAME_dislocations.csv``).

    Returns
    -------
    dict
        ``maps`` (label → TIFF path), ``statistics`` (CSV path), ``tables`` (label →
        CSV path) and ``record`` (JSON path).

    Raises
    ------
    ValueError
        If ``out`` does not end in ``.tif`` or ``.tiff``.
    """
    out = Path(out)
    if out.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"the output must end in .tif or .tiff, got {out.name!r}")
    return {
        "maps": {name: out.with_name(f"{out.stem}_{name}{out.suffix}") for name in names},
        "statistics": out.with_name(f"{out.stem}_statistics.csv"),
        "tables": {name: out.with_name(f"{out.stem}_{name}.csv") for name in tables},
        "record": out.with_suffix(".json"),
    }


def existing_outputs(plan: Mapping) -> list[Path]:
    """The files of ``plan`` (and the TIFFs' sidecars) that already exist.

    Parameters
    ----------
    plan : mapping
        From :func:`output_plan`.

    Returns
    -------
    list of Path
        Existing files, in plan order.
    """
    from ..io import sidecar_path

    paths = [p for t in plan["maps"].values() for p in (t, sidecar_path(t))]
    paths += [plan["statistics"], *plan.get("tables", {}).values(), plan["record"]]
    return [p for p in paths if p.exists()]


def reflection_rows(g) -> list[dict]:
    """One record per reflection: number, ``g`` (nm⁻¹), ``d`` (nm), angle (°).

    Parameters
    ----------
    g : array_like
        ``(n, 2)`` reflections ``(gy, gx)`` in nm⁻¹.

    Returns
    -------
    list of dict
        ``index`` (from 1), ``g_inv_nm``, ``d_nm``, ``angle_deg``.
    """
    from .reciprocal import g_angle, g_spacing

    g = np.asarray(g, dtype=np.float64).reshape(-1, 2)
    d = g_spacing(g)
    angle = g_angle(g)
    return [
        {
            "index": k + 1,
            "g_inv_nm": [float(g[k, 0]), float(g[k, 1])],
            "d_nm": float(d[k]),
            "angle_deg": float(angle[k]),
        }
        for k in range(len(g))
    ]


def versions() -> dict:
    """Versions of this package, Python and the libraries that shape the numbers.

    Returns
    -------
    dict
        Distribution name → version (None when not installed).
    """
    from importlib import metadata

    from .. import __version__

    out = {"napari-hrtem-fft": __version__, "python": platform.python_version()}
    for dist in ("numpy", "scipy", "dask", "tifffile", "zarr", "rosettasciio"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def analysis_record(
    maps,
    options,
    *,
    program: str,
    source: Mapping,
    geometry: Mapping,
    reflections_source: str,
    **extra,
) -> dict:
    """The record of a run, as every front end writes it (``NAME.json``).

    Parameters
    ----------
    maps : LatticeMaps
        The post-processed maps.
    options : AnalysisOptions
        The options of the run.
    program : str
        What ran it (``"napari-hrtem-fft analyze"``, the widget).
    source : mapping
        The analysed image: file, name, shape, calibration.
    geometry : mapping
        ``scale``, ``translate`` and ``units`` of the maps (world).
    reflections_source : str
        Where the reflections came from (``"--auto"``, the picker's layer name).
    **extra
        Further top-level entries (``command``, ``calibration``, ``movie``, ...).

    Returns
    -------
    dict
        ``program``, ``created_utc``, ``input``, ``reflections`` (rows of
        :func:`reflection_rows` with their source), ``analysis`` (the options and the
        engine's parameters), ``maps`` (shape and geometry), ``strain_reference_inv_nm``,
        ``versions`` and ``extra``.
    """
    analysis = {**options.as_dict(), **extra.pop("analysis", {})}
    analysis["engine_parameters"] = maps.parameters
    rows = reflection_rows(maps.reflections)
    return {
        "program": program,
        **{k: extra.pop(k) for k in ("command",) if k in extra},
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "input": dict(source),
        **extra,
        "reflections": [dict(r, source=reflections_source) for r in rows],
        "analysis": analysis,
        "maps": {
            "shape": list(np.shape(maps.d_spacing)[1:]),
            **{k: list(geometry[k]) for k in ("scale", "units", "translate")},
            "map_pixel": "map pixel (i, j) is the window centred on image pixel (i*step, j*step)",
        },
        "strain_reference_inv_nm": (
            maps.strain.reference.tolist() if maps.strain is not None else None
        ),
        "versions": versions(),
    }


def _statistics_csv(maps) -> str:
    from .statistics import reflection_statistics, statistics_text

    rows = reflection_statistics(np.asarray(maps.d_spacing), np.asarray(maps.angle))
    return statistics_text(rows, delimiter=",")


def write_results(
    out,
    maps,
    *,
    geometry: Mapping,
    record: dict,
    overwrite: bool = False,
    scheduler=None,
    listed_in=None,
    extra_maps: Mapping | None = None,
    tables: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write maps, their statistics and the record of the run in the one export layout.

    Parameters
    ----------
    out : str or Path
        ``DIR/NAME.tif``; see the module documentation for the files.
    maps : LatticeMaps
        The maps (numpy or dask: computed here, in one pass, on ``scheduler``).
    geometry : mapping
        ``scale``, ``translate`` and ``units`` of the maps (world), for every TIFF.
    record : dict
        The record of the run (:func:`analysis_record`); its ``input``, ``analysis``
        and reflection rows go into every sidecar, ``outputs`` is added.
    overwrite : bool
        Replace existing files; otherwise nothing is written when one exists.
    scheduler : optional
        dask scheduler for lazy maps (see :func:`napari_hrtem_fft.compute_maps`).
    listed_in : str or Path, optional
        Folder the record names the files in (default their own): the final folder
        when they are written to a staging folder first.
    extra_maps : mapping, optional
        Further maps derived from ``maps``: label → ``(array, unit, description)``,
        written as ``NAME_<label>.tif`` (e.g. the displacement of ``--phase``).
    tables : mapping, optional
        Further tables: label → CSV text, written as ``NAME_<label>.csv``.

    Returns
    -------
    list of Path
        Every file written: each TIFF and its JSON sidecar, the statistics CSV, the
        tables, the record.

    Raises
    ------
    FileExistsError
        If a target exists and ``overwrite`` is False (nothing is written).
    ValueError
        If ``out`` does not end in ``.tif`` or ``.tiff``.
    """
    from ..io import write_tiff
    from .movie import compute_maps

    extra_maps = dict(extra_maps or {})
    tables = dict(tables or {})
    plan = output_plan(out, [*map_names(maps), *extra_maps], tables)
    existing = existing_outputs(plan)
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise FileExistsError(f"output exists: {names}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    maps = compute_maps(maps, scheduler=scheduler)
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in maps.arrays().items()}
    common = {"analysis": record["analysis"], "input": record["input"]}
    written = []
    for label, path in plan["maps"].items():
        if label in extra_maps:
            data, unit, what = extra_maps[label]
            data, extra = np.asarray(data, dtype=np.float32), {}
        elif label in STRAIN_QUANTITIES:
            data, (unit, what), extra = arrays[label], STRAIN_QUANTITIES[label], {}
        else:
            quantity, _, number = label.rpartition("_g")
            k = int(number) - 1
            data = arrays[quantity][k]
            unit, what = {**MAP_QUANTITIES, **OPTIONAL_QUANTITIES}[quantity]
            extra = {"reflection": record["reflections"][k]}
        meta = {"quantity": label, "value_unit": unit, "description": what, **extra, **common}
        tiff_and_sidecar = write_tiff(
            path,
            data,
            scale=geometry["scale"],
            units=geometry["units"],
            translate=geometry["translate"],
            metadata=meta,
            name=path.stem,
            overwrite=overwrite,
        )
        written += [Path(p) for p in tiff_and_sidecar]
    mode = "w" if overwrite else "x"
    with open(plan["statistics"], mode, encoding="utf-8", newline="") as fh:
        fh.write(_statistics_csv(maps))
    written.append(plan["statistics"])
    for label, path in plan["tables"].items():
        with open(path, mode, encoding="utf-8", newline="") as fh:
            fh.write(tables[label])
        written.append(path)
    folder = Path(listed_in) if listed_in is not None else None
    listed = [(folder or p.parent) / p.name for p in [*written, plan["record"]]]
    record = {**record, "outputs": [str(p) for p in listed]}
    written.append(write_record(plan["record"], record, overwrite=overwrite))
    return written
