"""EMD files (HDF5): ThermoFisher Velox and Berkeley/NCEM EMD.

Velox goes through rosettasciio for the pixel data, but the calibration is taken from
the raw ``BinaryResult/PixelSize``, ``PixelUnitX/Y`` and ``Offset`` (m or 1/m).

Berkeley EMD (``emd_group_type = 1``) is read here with h5py. rosettasciio returns
these arrays transposed (``raw.T``); we keep the file's own axis order and only
reorder axes when the dimension names say which one is x and which is y, so that the
result is always ``(..., y, x)``: ``Acquisition_18.emd`` (dim1 ``Y``, dim2 ``X``) comes
out exactly as stored, as ncempy returns it, and the Prismatic output
``Si100_2x1x1_3D.emd`` (dim1 ``R_x``, dim2 ``R_y``) is transposed to (R_y, R_x).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from ._arrays import displayable, eager_or_lazy
from ._calibration import FileAxis, build_micrograph, rsciio_axes
from ._micrograph import Micrograph, MicrographReadError

logger = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def open_hdf5(path: Path):
    """Open an HDF5 file read-only, turning h5py's errors into a clear message."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        with open(path, "rb") as f:
            head = f.read(8)
        what = (
            "truncated or corrupt HDF5 file"
            if head == HDF5_MAGIC
            else "not an HDF5 file (no HDF5 signature)"
        )
        raise MicrographReadError(path, f"{what}: {exc}") from exc


def emd_flavour(h5) -> str | None:
    """``"velox"``, ``"ncem"`` or None for an open h5py File."""
    if "Version" in h5 and "Data" in h5:
        try:
            version = json.loads(bytes(h5["Version"][0]).decode("utf-8"))
        except (ValueError, TypeError, KeyError, IndexError):
            version = {}
        if version.get("format") in ("Velox", "DevelopersKit"):
            return "velox"
    if _ncem_groups(h5):
        return "ncem"
    return None


def read_emd(path: Path) -> list[Micrograph]:
    """All images of a Velox or Berkeley EMD file."""
    with open_hdf5(path) as h5:
        flavour = emd_flavour(h5)
    if flavour == "velox":
        return _read_velox(path)
    if flavour == "ncem":
        return _read_ncem(path)
    raise MicrographReadError(
        path,
        "HDF5 file, but neither a Velox EMD (no Version/Data) nor "
        "a Berkeley EMD (no group with emd_group_type = 1)",
    )


def _read_velox(path: Path) -> list[Micrograph]:
    from rsciio.emd import file_reader

    try:
        signals = file_reader(str(path), lazy=True, select_type="images")
    except Exception as exc:  # rsciio raises many types on corrupt input
        raise MicrographReadError(
            path, f"corrupt Velox EMD file ({type(exc).__name__}: {exc})"
        ) from exc
    signals = [s for s in signals if s["data"].ndim >= 2]
    if not signals:
        raise MicrographReadError(path, "this Velox file holds no image (spectra only?)")
    out = []
    for sig in signals:
        om = sig.get("original_metadata", {})
        title = str(sig.get("metadata", {}).get("General", {}).get("title", "")) or path.stem
        try:
            data, notes = displayable(eager_or_lazy(sig["data"]))
        except (OSError, ValueError) as exc:
            raise MicrographReadError(path, f"cannot load the pixels of {title!r}: {exc}") from exc
        axes = rsciio_axes(sig["axes"], data.ndim, path)
        br = om.get("BinaryResult", {})
        try:
            size, offset = br["PixelSize"], br.get("Offset", {"x": 0, "y": 0})
            axes[-2] = FileAxis(
                float(size["height"]), float(offset["y"]), br.get("PixelUnitY", "m"), "y"
            )
            axes[-1] = FileAxis(
                float(size["width"]), float(offset["x"]), br.get("PixelUnitX", "m"), "x"
            )
            source = (
                f"Velox EMD metadata BinaryResult/PixelSize "
                f"({br.get('PixelUnitX', 'm')} → "
                f"{'1/nm' if '1/' in str(br.get('PixelUnitX')) else 'nm'})"
            )
        except (KeyError, TypeError, ValueError):
            notes.append(
                "no BinaryResult/PixelSize in the Velox metadata; used rosettasciio's axes"
            )
            source = "rosettasciio Velox axes"
        name = path.stem if len(signals) == 1 else f"{path.stem} [{title}]"
        out.append(
            build_micrograph(
                data,
                axes,
                path=path,
                fmt="Velox EMD",
                name=name,
                pixel_size_source=source,
                original_metadata=om,
                extra={"title": title, "detector": br.get("Detector")},
                notes=notes,
            )
        )
    return out


def _ncem_groups(h5) -> list:
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _int_attr(obj, "emd_group_type") == 1:
            found.append(name)

    h5.visititems(visit)
    return found


def _int_attr(obj, key):
    try:
        return int(np.ravel(obj.attrs[key])[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _attr_str(obj, key) -> str:
    value = obj.attrs.get(key, b"")
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _axis_letter(name: str) -> str | None:
    # "Y", "y", "R_y", "Ry", "Q_x", "kx" -> the spatial letter, else None
    match = re.fullmatch(r"(?:[a-z]_?)?([xyz])", name.strip().lower())
    return match.group(1) if match else None


def _read_ncem(path: Path) -> list[Micrograph]:
    h5 = open_hdf5(path)
    out = []
    try:
        for group_name in _ncem_groups(h5):
            group = h5[group_name]
            candidates = [
                k
                for k in group
                if not re.fullmatch(r"dim\d+", k)
                and hasattr(group[k], "shape")
                and group[k].ndim >= 1
            ]
            datasets = [k for k in candidates if f"dim{group[k].ndim}" in group]
            if not datasets:
                continue
            key = "data" if "data" in datasets else datasets[0]
            dset = group[key]
            if dset.ndim < 2:
                logger.info("%s: skipped 1-D EMD group %s", path.name, group_name)
                continue
            if dset.ndim > 3:
                logger.info(
                    "%s: skipped %d-D EMD group %s (4-D STEM is not an image)",
                    path.name,
                    dset.ndim,
                    group_name,
                )
                continue
            out.append(_ncem_image(path, h5, group_name, group, dset))
    except MicrographReadError:
        h5.close()
        raise
    except Exception as exc:  # h5py raises many types on corrupt datasets
        h5.close()
        raise MicrographReadError(
            path, f"corrupt Berkeley EMD file ({type(exc).__name__}: {exc})"
        ) from exc
    if not any(hasattr(m.data, "dask") for m in out):
        h5.close()
    if not out:
        raise MicrographReadError(path, "no 2-D or 3-D image in this Berkeley EMD file")
    if len(out) > 1:
        for m in out:
            m.name = f"{path.stem} [{m.metadata['title']}]"
    return out


def _ncem_image(path, h5, group_name, group, dset) -> Micrograph:
    file_axes = []
    for i in range(1, dset.ndim + 1):
        dim = group[f"dim{i}"]
        values = np.asarray(dim[()], dtype=float).ravel()
        step = float(values[1] - values[0]) if values.size > 1 else 1.0
        if values.size > 2 and not np.allclose(np.diff(values), step, rtol=1e-4):
            logger.warning("%s: dim%d is not evenly spaced; using its first step", path, i)
        file_axes.append(
            FileAxis(
                step,
                float(values[0]) if values.size else 0.0,
                _attr_str(dim, "units"),
                _attr_str(dim, "name"),
            )
        )
    letters = [_axis_letter(a.name) for a in file_axes]
    order = list(range(dset.ndim))
    notes = []
    if "x" in letters and "y" in letters and letters.count("x") == letters.count("y") == 1:
        iy, ix = letters.index("y"), letters.index("x")
        order = [i for i in order if i not in (iy, ix)] + [iy, ix]
    if order != list(range(dset.ndim)):
        notes.append(
            f"axes reordered from the file's (dim1..dim{dset.ndim}) = "
            f"{[a.name for a in file_axes]} to put y before x"
        )
    if dset.ndim == 2 and dset.nbytes <= 512 * 2**20:
        data = dset[()]
    else:
        import dask.array as da

        data = da.from_array(dset, chunks=(1,) * (dset.ndim - 2) + tuple(dset.shape[-2:]))
    data = np.transpose(data, order) if order != list(range(dset.ndim)) else data
    data, conv = displayable(eager_or_lazy(data))
    axes = [file_axes[i] for i in order]
    title = group_name.rsplit("/", 1)[-1]
    om = {"group": group_name, "attrs": dict(group.attrs)}
    for key in ("microscope", "sample", "user", "comments", "stage"):
        if key in h5:
            om[key] = dict(h5[key].attrs)
    om["root"] = dict(h5.attrs)
    units = sorted({str(a.unit) for a in axes[-2:]})
    return build_micrograph(
        data,
        axes,
        path=path,
        fmt="Berkeley EMD",
        name=path.stem,
        pixel_size_source=f"Berkeley EMD {group_name}/dim* datasets (units {', '.join(units)} "
        "→ nm)",
        original_metadata=om,
        extra={"title": title, "file_axis_order": [a.name for a in file_axes]},
        notes=notes + conv,
    )
