"""Save result layers, statistics and parameters to a folder in one go; no Qt.

Files written (names are fixed so scripts can find them):

* ``<kind>[_<reflection>].tif`` per result layer (``d_spacing_1.tif``, ``exx.tif``):
  calibrated float32 TIFF with its JSON sidecar, by :func:`napari_hrtem_fft.io.write_tiff`;
* ``statistics.csv``: the per-reflection statistics;
* ``parameters.json``: every analysis parameter, the source layer and its file (strict
  JSON: a missing value is the string ``"nan"``, as in the TIFF sidecars).

Nothing is overwritten: when any target name is taken, nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..core.statistics import statistics_text
from ..io import jsonable
from ..layers import file_stem, result_info

__all__ = ["export_results", "planned_files"]

STATISTICS_FILE = "statistics.csv"
PARAMETERS_FILE = "parameters.json"


def planned_files(layers: Sequence) -> dict[str, object]:
    """Target file names (without folder) of an export, mapped to their layer or None."""
    files: dict[str, object] = {}
    for layer in layers:
        info = result_info(layer)
        if info is None:
            raise ValueError(f"layer {layer.name!r} is not a lattice-map result layer")
        name = f"{file_stem(info)}.tif"
        if name in files:
            raise ValueError(f"two result layers would both be saved as {name}")
        files[name] = layer
    files[STATISTICS_FILE] = None
    files[PARAMETERS_FILE] = None
    return files


def _taken(directory: Path, names) -> list[str]:
    """Target names whose stem is already used by a file in ``directory`` (any suffix).

    Checking stems, not full names, also protects the sidecar files the TIFF writer
    puts beside each TIFF.
    """
    stems = {Path(n).stem for n in names}
    return sorted(p.name for p in directory.iterdir() if p.stem in stems or p.name in names)


def export_results(
    directory,
    layers: Sequence,
    *,
    statistics: Sequence[Mapping],
    source: Mapping | None = None,
) -> list[Path]:
    """Write result layers, their statistics and their parameters into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Existing or new folder.
    layers : sequence of napari image layers
        Result layers (with the plugin's metadata, see
        :func:`napari_hrtem_fft.layers.result_info`); data may be numpy or dask.
    statistics : sequence of dict
        Rows from :func:`napari_hrtem_fft.core.statistics.reflection_statistics`.
    source : mapping, optional
        Description of the analysed image (layer name, file path, scale, units).

    Returns
    -------
    list of Path
        Every file written: each TIFF and its JSON sidecar, the CSV, the JSON record.

    Raises
    ------
    FileExistsError
        If a file of the same name (or stem) is already in ``directory``; nothing is
        written then.
    ValueError
        If there is no layer, or a layer is not a result layer.
    """
    from ..io import write_tiff

    if not layers:
        raise ValueError("layers is empty: there are no lattice-map result layers to export")
    directory = Path(directory)
    files = planned_files(layers)
    directory.mkdir(parents=True, exist_ok=True)
    taken = _taken(directory, files)
    if taken:
        raise FileExistsError(
            f"{directory} already holds {', '.join(taken)}; choose an empty folder "
            "(nothing was overwritten)"
        )

    written = []
    layer_params = {}
    for name, layer in files.items():
        if layer is None:
            continue
        # Non-finite values as the strings "nan", "inf": strict JSON, as in the sidecars.
        params = jsonable(dict(result_info(layer)), max_items=None)
        data = layer.data.compute() if hasattr(layer.data, "compute") else layer.data
        path = directory / name
        units = [str(u) for u in getattr(layer, "units", ("nm",) * layer.ndim)]
        written += map(
            Path,
            write_tiff(
                path,
                np.asarray(data, dtype=np.float32),
                scale=tuple(float(s) for s in layer.scale),
                units=units,
                translate=tuple(float(t) for t in layer.translate),
                metadata={"layer": layer.name, **params},
                name=layer.name,
            ),
        )
        layer_params[name] = {"layer": layer.name, **params}

    csv_path = directory / STATISTICS_FILE
    with open(csv_path, "x", encoding="utf-8", newline="") as fh:
        fh.write(statistics_text(statistics, delimiter=","))
    written.append(csv_path)

    json_path = directory / PARAMETERS_FILE
    with open(json_path, "x", encoding="utf-8") as fh:
        json.dump(
            {
                "source": jsonable(dict(source or {}), max_items=None),
                "layers": layer_params,
            },
            fh,
            indent=2,
            ensure_ascii=False,
            allow_nan=False,
        )
        fh.write("\n")
    written.append(json_path)
    return written
