"""FEI TIA ES Vision ``.emi`` + ``.ser``, through rosettasciio, with its traps fixed.

rosettasciio (0.15) converts ``CalibrationDelta`` from m to nm but leaves
``CalibrationOffset`` in metres while calling it nm; when a ``.ser`` is opened on its
own it cannot know that a diffraction pattern is in 1/m and multiplies it by 1e9 as if
it were metres. Here the image calibration is recomputed from the raw ``.ser`` header
values (SI units: m or 1/m) and the real/reciprocal decision is taken from the
``.emi`` Mode string.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ._arrays import displayable, eager_or_lazy
from ._calibration import FileAxis, build_micrograph, rsciio_axes
from ._micrograph import Micrograph, MicrographReadError

logger = logging.getLogger(__name__)

SER_MAGIC = (b"II\x97\x01",)  # little-endian byte order mark, SeriesID 0x0197


def emi_for_ser(ser: Path) -> Path | None:
    """The ``.emi`` that belongs to ``name_N.ser`` (``name.emi`` beside it), if any."""
    match = re.match(r"^(?P<stem>.+)_\d+$", ser.stem)
    if not match:
        return None
    for ext in (".emi", ".EMI"):
        emi = ser.with_name(match["stem"] + ext)
        if emi.is_file():
            return emi
    return None


def decide_reciprocal(mode: str | None, acquire_info: dict | None, delta_si: float):
    """Whether a TIA image is in reciprocal space, and why.

    TIA writes the pixel size in SI units without saying m or 1/m. The .emi Mode
    string decides: ``"TEM … Diffraction"`` is a diffraction pattern (1/m); STEM
    Mode strings also end in "Diffraction" (the projector is in diffraction mode while
    scanning) but a STEM detector image is real space — unless it was recorded on a
    camera (``CameraNamePath``), which is then a CBED/Ronchigram. Without a Mode
    string the magnitude decides: a real-space pixel of 1 m or more is impossible.

    Returns
    -------
    reciprocal : bool
    reason : str
    """
    magnitude_says = delta_si >= 1.0
    if mode:
        words = mode.split()
        camera = bool(acquire_info) and "CameraNamePath" in acquire_info
        if words and words[0].upper() == "STEM":
            reciprocal = camera
            reason = f"Mode {mode.strip()!r}: STEM " + (
                "recorded on a camera (CameraNamePath) = reciprocal"
                if camera
                else "detector image = real space"
            )
        else:
            reciprocal = "diffraction" in mode.lower()
            reason = f"Mode {mode.strip()!r}: TEM " + ("diffraction" if reciprocal else "image")
        if reciprocal != magnitude_says:
            logger.warning(
                "TIA %s contradicts the pixel size %g (SI); trusting the Mode", reason, delta_si
            )
        return reciprocal, reason
    reason = f"no .emi Mode string; pixel size {delta_si:g} in SI units is " + (
        "≥ 1, so 1/m (reciprocal)" if magnitude_says else "< 1, so m (real space)"
    )
    return magnitude_says, reason


def read_tia(path: Path) -> list[Micrograph]:
    """All images of an .emi (one per .ser), or the one image of a .ser."""
    from rsciio.tia import file_reader

    path = Path(path)
    if path.suffix.lower() == ".emi":
        emi, wanted = path, None
        if not any(path.parent.glob(f"{glob_escape(path.stem)}_[0-9]*.ser")):
            raise MicrographReadError(
                path,
                f"no .ser data file beside it (expected "
                f"{path.stem}_1.ser); TIA keeps the pixels there",
            )
    else:
        _check_ser_header(path)
        emi, wanted = emi_for_ser(path), path.name
    try:
        if emi is not None:
            signals = file_reader(str(emi), lazy=True)
            if wanted is not None:
                signals = [
                    s
                    for s in signals
                    if s["metadata"]["General"].get("original_filename") == wanted
                ]
            if not signals:
                # The .emi reader silently skips .ser files it cannot read.
                if wanted is not None:
                    _check_ser_header(path)
                    signals = file_reader(str(path), lazy=True)
                else:
                    raise MicrographReadError(path, "none of its .ser files holds an image")
        else:
            signals = file_reader(str(path), lazy=True)
    except MicrographReadError:
        raise
    except Exception as exc:  # rsciio raises many types on corrupt input
        raise MicrographReadError(
            path, f"corrupt or truncated TIA file ({type(exc).__name__}: {exc})"
        ) from exc

    out = []
    for sig in signals:
        ser_name = sig["metadata"]["General"].get("original_filename", path.name)
        out.append(_one(path, ser_name, sig, emi, multi=len(signals) > 1))
    return out


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a file stem."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _check_ser_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in SER_MAGIC:
        raise MicrographReadError(
            path, "not a TIA .ser file (bad byte-order mark / series ID in the first 4 bytes)"
        )


def _one(path: Path, ser_name: str, sig: dict, emi: Path | None, *, multi: bool) -> Micrograph:
    om = sig.get("original_metadata", {})
    hdr = om.get("ser_header_parameters", {})
    data = sig["data"]
    if data.ndim < 2:
        raise MicrographReadError(
            path, f"{ser_name} holds {data.ndim}-D data (a spectrum), not an image"
        )
    try:
        raw = {
            k: float(np.ravel(hdr[k])[0])
            for k in (
                "CalibrationDeltaX",
                "CalibrationDeltaY",
                "CalibrationOffsetX",
                "CalibrationOffsetY",
            )
        }
        elem = {
            k: float(np.ravel(hdr.get(k, 0))[0])
            for k in ("CalibrationElementX", "CalibrationElementY")
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise MicrographReadError(
            path,
            f"{ser_name} has no image calibration in its header "
            f"(it is not an image series?): {exc}",
        ) from exc
    info = om.get("ObjectInfo", {})
    mode = info.get("ExperimentalDescription", {}).get("Mode")
    reciprocal, reason = decide_reciprocal(
        mode, info.get("AcquireInfo"), abs(raw["CalibrationDeltaX"])
    )
    unit = "1/m" if reciprocal else "m"
    try:
        data = eager_or_lazy(data)
    except (OSError, ValueError) as exc:
        raise MicrographReadError(path, f"cannot load the pixels of {ser_name}: {exc}") from exc
    data, notes = displayable(data)
    axes = rsciio_axes(sig["axes"], data.ndim, path)
    # Pixel i is at Offset + (i - Element) * Delta; the first pixel's position is the
    # translate. rsciio flips the rows (TIA stores them bottom-up) and keeps the
    # offset of the y axis, and so do we.
    axes[-2] = FileAxis(
        raw["CalibrationDeltaY"],
        raw["CalibrationOffsetY"] - elem["CalibrationElementY"] * raw["CalibrationDeltaY"],
        unit,
        "y",
    )
    axes[-1] = FileAxis(
        raw["CalibrationDeltaX"],
        raw["CalibrationOffsetX"] - elem["CalibrationElementX"] * raw["CalibrationDeltaX"],
        unit,
        "x",
    )
    notes.append(f"real/reciprocal space from {reason}")
    notes.append(
        "offsets converted from SI units like the pixel size (rosettasciio 0.15 "
        "leaves them in metres)"
    )
    if emi is None:
        notes.append("no .emi beside the .ser: microscope metadata unavailable")
    extra = {
        "ser_file": ser_name,
        "emi_file": emi.name if emi else None,
        "tia_mode": mode,
        "rows_flipped": True,
    }
    times = np.ravel(hdr.get("Time", [])) if "Time" in hdr else np.array([])
    if data.ndim == 3 and times.size == data.shape[0]:
        extra["frame_times_s"] = (times.astype(float) - float(times[0])).tolist()
    name = Path(ser_name).stem if multi or path.suffix.lower() == ".ser" else path.stem
    return build_micrograph(
        data,
        axes,
        path=path,
        fmt="TIA SER",
        name=name,
        pixel_size_source=f"TIA .ser CalibrationDelta ({unit} → {'1/nm' if reciprocal else 'nm'})",
        original_metadata=om,
        extra=extra,
        notes=notes,
    )
