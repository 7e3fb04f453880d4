"""TIFF micrographs through tifffile, with the calibration of each producer.

Where the pixel size comes from, in order of trust:

1. our own JSON sidecar ``<stem>.json`` (written by :func:`write_tiff`), if the
   ImageJ calibration in the TIFF still agrees with it;
2. ImageJ: ``unit=`` in the description and XResolution/YResolution (pixels per unit);
3. FEI/TFS SEM/FIB (tag 34682/34680 INI text): ``[Scan] PixelWidth/PixelHeight`` in m;
4. Zeiss SmartSEM (tag 34118): the stored pixel size refers to a 1024-px-wide frame,
   so it is scaled by 1024/width (checked against ``ap_width`` / width when present);
5. TVIPS EM-MENU (tag 37706): ``PixelSizeX/PixelSizeY`` in nm;
6. DigitalMicrograph export (private tags 65003-65010: unit, origin, scale per axis);
7. OME-XML ``PhysicalSizeX/Y``.

Anything else is uncalibrated (px). The standard XResolution/ResolutionUnit tags are
never used on their own: they are a print resolution (72 dpi from DigitalMicrograph,
150 dpi from AxioVision, ...), not a pixel size.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._arrays import (
    EAGER_MAX_BYTES,
    FrameStack,
    SharedHandle,
    displayable,
    file_token,
    lazy_frames,
    raw_frames,
)
from ._calibration import FileAxis, build_micrograph, frame_times
from ._micrograph import Micrograph, MicrographReadError, corrupt_file_errors
from ._units import parse_unit

logger = logging.getLogger(__name__)

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
WRITER_ID = "napari-hrtem-fft"


def is_tiff(path) -> bool:
    """True when the file starts with a TIFF or BigTIFF signature."""
    with open(path, "rb") as f:
        return f.read(4) in TIFF_MAGIC


def read_tiff(path: Path, *, crop_databar: bool = True, lazy: bool = False) -> list[Micrograph]:
    """Every image series of a TIFF file (thumbnails and pyramid levels skipped).

    Parameters
    ----------
    path : Path
        The file.
    crop_databar : bool
        Remove the FEI/TFS information bar below SEM/FIB images (its height is
        ``[PrivateFei] DatabarHeight``; the image is ``[Image] ResolutionY`` rows). The
        number of rows removed is in ``metadata["databar_rows_removed"]``.
    lazy : bool
        Return every series as a dask array, even small 2-D images, so that only the
        tags are read (used to check the frames of a folder cheaply).
    """
    path = Path(path)
    if not is_tiff(path):
        raise MicrographReadError(path, "not a TIFF file (no TIFF signature in the first bytes)")
    with _dropped_tags() as dropped:
        out = _read_tiff(path, crop_databar=crop_databar, lazy=lazy)
    if dropped:
        # tifffile skips a tag whose value lies outside the file (and logs it): the
        # file was cut, and the calibration may be in the lost tag (FEI, Zeiss).
        raise MicrographReadError(path, f"truncated or corrupt TIFF file: {dropped[0]}")
    return out


class _TagLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if "TiffTag" in message and "offset" in message:
            self.found.append(re.sub(r"^<[^>]*> raised ", "", message))


@contextmanager
def _dropped_tags():
    """Messages of the tags tifffile could not read because they point past the end."""
    handler = _TagLog()
    log = logging.getLogger("tifffile")
    log.addHandler(handler)
    try:
        yield handler.found
    finally:
        log.removeHandler(handler)


def _read_tiff(path: Path, *, crop_databar: bool, lazy: bool) -> list[Micrograph]:
    import tifffile

    try:
        tf = tifffile.TiffFile(path)
    except (
        tifffile.TiffFileError,
        OSError,
        ValueError,
        struct.error,
        IndexError,
        KeyError,
    ) as exc:
        raise MicrographReadError(path, f"corrupt or truncated TIFF file: {exc}") from exc
    # Lazy stacks open their own handle when a frame is first read, so this one is
    # always closed here.
    with tf, corrupt_file_errors(path, "TIFF"):
        series = [(i, s) for i, s in enumerate(tf.series) if not s.pages[0].is_reduced]
        # Only reduced pages (thumbnails): the first series rather than nothing.
        series = series or list(enumerate(tf.series[:1]))
        if not series:
            raise MicrographReadError(
                path, "truncated or corrupt TIFF file: no readable image directory (IFD) in it"
            )
        out = [
            _read_series(path, tf, s, index, crop_databar=crop_databar, lazy=lazy)
            for index, s in series
        ]
    if len(out) > 1:
        for i, mg in enumerate(out):
            mg.name = f"{path.stem} [{i}]"
    return out


def _read_series(path, tf, s, index, *, crop_databar, lazy=False) -> Micrograph:
    page = s.pages[0]
    axes_letters = s.axes
    shape = tuple(s.shape)
    _check_extent(path, tf, s)
    _check_decoded_size(path, s)
    lazy = lazy or len(shape) - ("S" in axes_letters) > 2 or s.nbytes > EAGER_MAX_BYTES
    notes = []
    if lazy:
        data, grey_notes = _lazy_series(path, tf, s, index)
        notes += grey_notes
        axes_letters = axes_letters.replace("S", "")
    else:
        data = s.asarray()
    if "S" in axes_letters:
        i = axes_letters.index("S")
        if shape[i] == 1:
            data = data[(slice(None),) * i + (0,)]
        else:
            notes.append(f"{shape[i]} colour samples per pixel converted to float32 luminance")
            data = _luminance(np.moveaxis(data, i, -1))
        axes_letters = axes_letters.replace("S", "")
    cal = _calibration(path, tf, page, data.shape)
    notes += cal.notes
    if cal.crop_rows and crop_databar:
        data = data[..., : data.shape[-2] - cal.crop_rows, :]
        notes.append(f"removed the {cal.crop_rows}-row FEI databar at the bottom")
        cal.extra["databar_rows_removed"] = cal.crop_rows
    elif cal.crop_rows:
        cal.extra["databar_rows_removed"] = 0
    data, conv = displayable(data)
    notes += conv

    if len(axes_letters) != data.ndim:
        axes_letters = "Q" * (data.ndim - 2) + "YX"
    leading = [
        cal.leading.get(letter, FileAxis(1.0, 0.0, None, letter)) for letter in axes_letters[:-2]
    ]
    axes = [*leading, cal.y, cal.x]
    return build_micrograph(
        data,
        axes,
        path=path,
        fmt=cal.fmt,
        name=cal.name or path.stem,
        pixel_size_source=cal.source,
        original_metadata=cal.original,
        extra=cal.extra,
        notes=notes,
    )


def _luminance(data):
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (np.asarray(data[..., :3], dtype=np.float32) * weights).sum(axis=-1)


def _check_extent(path, tf, s) -> None:
    # A truncated TIFF still parses when its IFDs come first; tifffile would then
    # return zeros for the missing strips. Compare the data ranges with the file size.
    size = tf.filehandle.size
    end = 0
    pages = s.pages if len(s.pages) <= 10000 else [s.pages[0], s.pages[-1]]
    for page in pages:
        if page is None:
            continue
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        for o, c in zip(offsets, counts, strict=False):
            end = max(end, int(o) + int(c))
    if s.dataoffset is not None:
        end = max(end, int(s.dataoffset) + int(s.nbytes))
    if end > size:
        raise MicrographReadError(
            path,
            f"truncated TIFF file: the image data end at byte {end} but the file has {size} bytes",
        )


# Deflate cannot expand data by more than 1032:1, LZW and PackBits by less; a page
# that claims more than this ratio has a header that lies about its size.
_MAX_RATIO = {5: 1500, 8: 1500, 32946: 1500, 32773: 200}


def _check_decoded_size(path, s) -> None:
    """Refuse a compressed page whose declared size its compressed bytes cannot hold.

    A zlib TIFF of 8 MB can declare 90000 × 90000 pixels; reading a frame would then
    allocate 15 GiB before the decoder notices. The limit is the codec's maximum
    expansion (above 256 MiB) and, for any codec, half the machine's memory.
    """
    page = s.pages[0]
    if page is None:
        return
    compression = int(getattr(page, "compression", 1) or 1)
    if compression == 1:
        return  # uncompressed: _check_extent compared the data with the file size
    decoded = int(np.prod(page.shape, dtype=object)) * np.dtype(page.dtype).itemsize
    stored = sum(int(c) for c in (getattr(page, "databytecounts", ()) or ()))
    ratio = _MAX_RATIO.get(compression)
    too_big = decoded > _memory_bytes() // 2
    if too_big or (ratio and decoded > 256 * 2**20 and decoded > ratio * max(stored, 1)):
        raise MicrographReadError(
            path,
            f"corrupt TIFF header: a page of {page.shape} {np.dtype(page.dtype)} pixels "
            f"({decoded / 2**30:.1f} GiB) cannot come from its {stored} compressed bytes"
            + (" and would not fit in memory" if too_big else ""),
        )


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def _lazy_series(path, tf, s, index):
    """A TIFF series as a dask array of single (grey) frames, and notes.

    Uncompressed contiguous data (tifffile's ``dataoffset``; ImageJ hyperstacks, most
    camera stacks) are read with plain file reads at the frame's offset; anything else
    page by page through tifffile, one page per frame. Colour pages become float32
    luminance per frame.
    """
    page = s.pages[0]
    page_axes = page.axes
    n_page = len(page.shape)
    lead_shape = tuple(s.shape[: len(s.shape) - n_page])
    if "S" not in s.axes and s.dataoffset is not None:
        dtype = np.dtype(tf.byteorder + s.dtype.char)
        return raw_frames(path, offset=s.dataoffset, shape=s.shape, dtype=dtype), []
    samples = page_axes.index("S") if "S" in page_axes else None
    if len(page.shape) - (samples is not None) != 2:
        raise MicrographReadError(
            path, f"TIFF pages of shape {page.shape} ({page_axes}) are not 2-D images"
        )
    notes = []
    if samples is None:
        dtype, frame_shape = s.dtype, page.shape
    else:
        frame_shape = tuple(n for i, n in enumerate(page.shape) if i != samples)
        if page.shape[samples] == 1:
            dtype = s.dtype
        else:
            dtype = np.dtype(np.float32)
            notes.append(
                f"{page.shape[samples]} colour samples per pixel converted to float32 luminance"
            )
    reader = _TiffPageRows(path, index, samples)
    stack = FrameStack(
        lead_shape + tuple(frame_shape),
        dtype,
        reader,
        token=(*file_token(path), "tiff pages", index),
    )
    return lazy_frames(stack), notes


def _open_tiff(path):
    import tifffile

    return tifffile.TiffFile(path)


class _TiffPageRows:
    """Reads page ``k`` of TIFF series ``index`` as a grey frame (picklable)."""

    def __init__(self, path, index, samples):
        self.handle = SharedHandle(path, _open_tiff)
        self.index, self.samples = index, samples

    def __call__(self, frame, r0, r1):
        page = self.handle.call(lambda tf: tf.series[self.index].pages[frame].asarray())
        if self.samples is not None:
            page = np.moveaxis(page, self.samples, -1)
            page = page[..., 0] if page.shape[-1] == 1 else _luminance(page)
        return page[r0:r1]


class _Cal:
    """Calibration found for one TIFF page (mutable record, filled by the parsers)."""

    def __init__(self):
        self.y = FileAxis(1.0, 0.0, None, "y")
        self.x = FileAxis(1.0, 0.0, None, "x")
        self.leading: dict = {}
        self.fmt = "TIFF"
        self.source = "none"
        self.extra: dict = {}
        self.original: dict = {}
        self.notes: list = []
        self.crop_rows = 0
        self.name = None

    def set_pixel_size(self, py: float, px: float, unit: str, source: str) -> None:
        """Pixel size along y and x in ``unit`` (origin 0), and where it was read."""
        self.y = FileAxis(py, 0.0, unit, "y")
        self.x = FileAxis(px, 0.0, unit, "x")
        self.source = source


def _calibration(path, tf, page, shape) -> _Cal:
    tags = page.tags
    cal = _Cal()
    cal.original = {
        "tags": {
            t.name: t.value for t in tags.values() if t.code not in _BULKY_TAGS and t.code < 65000
        }
    }
    res = _resolution(page)
    for parser in (_sidecar, _imagej, _fei, _zeiss, _tvips, _dm, _ome):
        if parser(path, tf, page, shape, cal, res):
            break
    else:
        cal.fmt = "TIFF (plain)"
    if res and not cal.source.startswith(("ImageJ", "napari")):
        cal.extra["tiff_resolution_ignored"] = res
        cal.notes.append(
            f"XResolution {res['x']:g} per {res['unit']} ignored: it is a print "
            "resolution (dpi), not a pixel size"
        )
    return cal


# ImageDescription/StripOffsets etc. are kept; bulky binary tags and the private tags
# that get a dedicated parser are not copied into metadata.
_BULKY_TAGS = {273, 279, 320, 324, 325, 34665, 50838, 50839, 34682, 34680, 34118, 37706, 37708}


def _resolution(page):
    try:
        xr = page.tags["XResolution"].value
        yr = page.tags.get("YResolution")
        yr = yr.value if yr is not None else xr
        unit = page.tags.get("ResolutionUnit")
        unit = int(unit.value) if unit is not None else 2
    except (KeyError, TypeError, AttributeError):
        return None
    x = xr[0] / xr[1] if xr[1] else math.nan
    y = yr[0] / yr[1] if yr[1] else math.nan
    return {"x": x, "y": y, "unit": {1: "none", 2: "inch", 3: "cm"}.get(unit, str(unit))}


def _sidecar(path, tf, page, shape, cal, res) -> bool:
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        return False
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        logger.info("%s: unreadable sidecar %s (%s)", path, side.name, exc)
        return False
    if not isinstance(info, dict) or info.get("writer") != WRITER_ID:
        return False
    if tuple(info.get("shape", ())) != tuple(shape):
        cal.notes.append(
            f"sidecar {side.name} is for shape {info.get('shape')}, not {shape}; ignored"
        )
        return False
    scale, translate, units = info["scale"], info["translate"], info["units"]
    # If the TIFF was edited and re-saved in ImageJ, its calibration wins.
    ij = _Cal()
    if _imagej(path, tf, page, shape, ij, res) and parse_unit(ij.x.unit).kind != "none":
        factor = parse_unit(ij.x.unit).factor / parse_unit(units[-1]).factor
        if not math.isclose(ij.x.scale * factor, scale[-1], rel_tol=1e-5):
            cal.notes.append(
                f"sidecar {side.name} disagrees with the TIFF's ImageJ calibration; using the TIFF"
            )
            return False
    axes = [
        FileAxis(float(s), float(t), u, n)
        for s, t, u, n in zip(
            scale, translate, units, info.get("axis_names", [""] * len(scale)), strict=True
        )
    ]
    cal.y, cal.x = axes[-2], axes[-1]
    letters = tf.series[0].axes.replace("S", "")[:-2]
    cal.leading = dict(zip(letters, axes[:-2], strict=False))
    cal.fmt = "TIFF (napari-hrtem-fft)"
    cal.source = f"napari-hrtem-fft JSON sidecar {side.name}"
    cal.name = info.get("name")
    meta = info.get("metadata") or {}
    cal.original = meta.pop("original_metadata", {}) if isinstance(meta, dict) else {}
    if isinstance(meta, dict):
        previous = meta.pop("source_path", None)
        for key in (
            "format",
            "pixel_size_source",
            "notes",
            "file_axes",
            "calibrated",
            "reciprocal",
            "axis_units",
        ):
            meta.pop(key, None)
        cal.extra.update(meta)
        if previous:
            cal.extra["derived_from"] = previous
    return True


def _vendor_metadata(tf, kind: str, cal, name: str, original: str | None = None):
    """The metadata tifffile parsed of a ``kind`` TIFF (``is_<kind>``), else None.

    The vendor parsers start with it; it names the format in ``cal`` and, with
    ``original``, keeps the metadata under that key of ``cal.original``.
    """
    if not getattr(tf, f"is_{kind}"):
        return None
    cal.fmt = f"TIFF ({name})"
    md = getattr(tf, f"{kind}_metadata") or {}
    if original is not None:
        cal.original[original] = md
    return md


def _uncalibrated(cal, why: str) -> bool:
    """The vendor's file without a usable pixel size: say why; the parser is done."""
    cal.notes.append(f"{why}: uncalibrated")
    return True


def _imagej(path, tf, page, shape, cal, res) -> bool:
    ij = _vendor_metadata(tf, "imagej", cal, "ImageJ")
    if ij is None:
        return False
    unit = ij.get("unit")
    cal.original["imagej"] = {
        k: v for k, v in ij.items() if k not in ("Info", "Labels", "Ranges", "LUTs")
    }
    if "Info" in ij:
        cal.original["imagej_info"] = str(ij["Info"])[:20000]
    if "finterval" in ij:
        # The frame interval does not depend on a spatial calibration. A plain ImageJ
        # stack (axis "I", no z spacing) with a frame interval is a time series.
        t_axis = FileAxis(float(ij["finterval"]), 0.0, ij.get("tunit", "s"), "t")
        cal.leading["T"] = t_axis
        if "spacing" not in ij:
            cal.leading["I"] = t_axis
    if res is None or parse_unit(unit).kind == "none":
        cal.source = "none"
        return True
    # ImageJ writes \u00B5m as "micron" and escapes non-ASCII as \\u00B5.
    unit = str(unit).encode("latin-1", "backslashreplace").decode("unicode_escape")
    sx, sy = 1.0 / res["x"], 1.0 / res["y"]
    xo, yo = float(ij.get("xorigin", 0.0)), float(ij.get("yorigin", 0.0))
    cal.x = FileAxis(sx, -xo * sx, unit, "x")
    cal.y = FileAxis(sy, -yo * sy, ij.get("yunit", unit), "y")
    if "spacing" in ij:
        cal.leading["Z"] = FileAxis(float(ij["spacing"]), 0.0, ij.get("zunit", unit), "z")
    cal.source = f"ImageJ description unit={ij.get('unit')!r} + XResolution/YResolution"
    return True


def _fei(path, tf, page, shape, cal, res) -> bool:
    md = _vendor_metadata(tf, "fei", cal, "FEI/TFS", original="fei")
    if md is None:
        return False
    scan = md.get("Scan") or md.get("EScan") or {}
    try:
        px, py = float(scan["PixelWidth"]), float(scan["PixelHeight"])
        source = "FEI/TFS TIFF tag [Scan] PixelWidth/PixelHeight (m → nm)"
    except (KeyError, TypeError, ValueError):
        try:
            beam = md.get("IRBeam") or md.get("EBeam") or {}
            image = md["Image"]
            px = float(beam["HFW"]) / float(image["ResolutionX"])
            py = float(beam["VFW"]) / float(image["ResolutionY"])
            source = "FEI/TFS TIFF tag HFW/ResolutionX (m → nm)"
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return _uncalibrated(cal, "FEI metadata without PixelWidth or HFW")
    cal.set_pixel_size(py, px, "m", source)
    try:
        rows = int(md["Image"]["ResolutionY"])
    except (KeyError, TypeError, ValueError):
        rows = shape[-2]
    databar = md.get("PrivateFei", {}).get("DatabarHeight")
    cal.extra["databar_height"] = int(databar) if databar is not None else shape[-2] - rows
    if 0 < rows < shape[-2]:
        cal.crop_rows = shape[-2] - rows
    return True


def _zeiss(path, tf, page, shape, cal, res) -> bool:
    md = _vendor_metadata(tf, "sem", cal, "Zeiss SEM", original="zeiss")
    if md is None:
        return False
    width = shape[-1]
    try:
        stored = float(md[""][3])
    except (KeyError, IndexError, TypeError, ValueError):
        return _uncalibrated(cal, "Zeiss metadata without a pixel size")
    candidates = {
        "CZ_SEM pixel size × 1024 / width": stored * 1024 / width,
        "CZ_SEM pixel size": stored,
    }
    choice = "CZ_SEM pixel size × 1024 / width"
    ap = md.get("ap_width")
    if isinstance(ap, tuple) and len(ap) >= 3:
        info = parse_unit(ap[2])
        if info.kind == "length":
            field = float(ap[1]) * info.factor * 1e-9 / width  # m per pixel
            choice = min(candidates, key=lambda k: abs(candidates[k] - field))
            if abs(candidates[choice] - field) > 0.01 * field:
                cal.notes.append(
                    f"Zeiss pixel size inconsistent with ap_width/width "
                    f"({field:.4g} m); using ap_width/width"
                )
                candidates["ap_width / width"] = field
                choice = "ap_width / width"
    size = candidates[choice]
    cal.set_pixel_size(size, size, "m", f"Zeiss SEM TIFF tag 34118: {choice} (m → nm)")
    return True


def _tvips(path, tf, page, shape, cal, res) -> bool:
    md = _vendor_metadata(tf, "tvips", cal, "TVIPS")
    if md is None:
        return False
    cal.original["tvips"] = {
        k: v for k, v in md.items() if not isinstance(v, (bytes, np.ndarray)) or np.size(v) < 64
    }
    try:
        px, py = float(md["PixelSizeX"]), float(md["PixelSizeY"])
    except (KeyError, TypeError, ValueError):
        return _uncalibrated(cal, "TVIPS metadata without PixelSizeX")
    cal.set_pixel_size(py, px, "nm", "TVIPS TIFF tag 37706 PixelSizeX/PixelSizeY (nm)")
    return True


def _dm(path, tf, page, shape, cal, res) -> bool:
    tags = page.tags
    if 65009 not in tags and 65010 not in tags:
        return False

    def value(code, default=None):
        tag = tags.get(code)
        if tag is None:
            return default
        v = tag.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    cal.fmt = "TIFF (DigitalMicrograph export)"
    cal.original["dm_tags"] = {str(c): value(c) for c in range(65000, 65027) if c in tags}
    try:
        cal.x = FileAxis(float(value(65009, 1.0)), float(value(65006, 0.0)), value(65003), "x")
        cal.y = FileAxis(float(value(65010, 1.0)), float(value(65007, 0.0)), value(65004), "y")
    except (TypeError, ValueError):
        return _uncalibrated(cal, "unreadable DigitalMicrograph TIFF tags")
    cal.source = "DigitalMicrograph TIFF private tags 65003-65010 (unit, origin, scale)"
    return True


def _ome(path, tf, page, shape, cal, res) -> bool:
    if not tf.is_ome:
        return False
    import xml.etree.ElementTree as ET

    cal.fmt = "TIFF (OME)"
    try:
        root = ET.fromstring(tf.ome_metadata)
    except (ET.ParseError, TypeError) as exc:
        cal.notes.append(f"unreadable OME-XML: {exc}")
        return True
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return True
    a = pixels.attrib
    cal.original["ome_pixels"] = dict(a)
    if "PhysicalSizeX" in a and "PhysicalSizeY" in a:
        cal.x = FileAxis(float(a["PhysicalSizeX"]), 0.0, a.get("PhysicalSizeXUnit", "µm"), "x")
        cal.y = FileAxis(float(a["PhysicalSizeY"]), 0.0, a.get("PhysicalSizeYUnit", "µm"), "y")
        cal.source = "OME-XML Pixels PhysicalSizeX/PhysicalSizeY"
    if "TimeIncrement" in a:
        cal.leading["T"] = FileAxis(
            float(a["TimeIncrement"]), 0.0, a.get("TimeIncrementUnit", "s"), "t"
        )
    stamps = _ome_plane_times(pixels)
    if stamps is not None:
        axis, extra, notes = frame_times(stamps, source="OME-XML Plane DeltaT")
        cal.extra.update(extra)
        cal.notes += notes
        if axis is not None and "TimeIncrement" not in a:
            cal.leading["T"] = axis
    if "PhysicalSizeZ" in a:
        cal.leading["Z"] = FileAxis(
            float(a["PhysicalSizeZ"]), 0.0, a.get("PhysicalSizeZUnit", "µm"), "z"
        )
    return True


def _ome_plane_times(pixels):
    """DeltaT (s) of the planes with TheZ = TheC = 0, one per TheT, or None."""
    times = {}
    for plane in pixels:
        if not plane.tag.endswith("Plane") or "DeltaT" not in plane.attrib:
            continue
        attrs = plane.attrib
        if int(attrs.get("TheZ", 0)) or int(attrs.get("TheC", 0)):
            continue
        factor = parse_unit(attrs.get("DeltaTUnit", "s")).factor
        times[int(attrs.get("TheT", 0))] = float(attrs["DeltaT"]) * factor
    n = int(pixels.attrib.get("SizeT", 1))
    if n < 2 or sorted(times) != list(range(n)):
        return None
    return [times[t] for t in range(n)]


_NUMBER = re.compile(r"(\d+)")


def natural_key(name: str):
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(p) if p.isdigit() else p.lower() for p in _NUMBER.split(name)]
