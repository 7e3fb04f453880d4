"""Live frame sources never return a frame whose file is still being written.

A writer thread writes each file (or the growing stack) in small pieces with pauses
longer than the polling interval, so a size that does not change between two polls is
no proof of completeness; the tests poll throughout and compare every frame returned
with the frame written.
"""

from __future__ import annotations

import io
import shutil
import threading
import time

import mrcfile
import numpy as np
import pytest
import tifffile

from napari_hrtem_fft.io import MicrographReadError
from napari_hrtem_fft.io import _watch as watch_module
from napari_hrtem_fft.io._watch import FileFrame, FolderFrames, GrowingStack, watch_source

SHAPE = (48, 40)


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(k, 1.0, SHAPE).astype(np.float32) for k in range(n)]


def _tiff_bytes(frames) -> bytes:
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tw:
        for f in frames:
            tw.write(f, contiguous=False, resolution=(1 / 0.02, 1 / 0.02), resolutionunit="NONE")
    return buffer.getvalue()


def _mrc_bytes(frames, tmp_path, name="stack.mrc") -> bytes:
    path = tmp_path / f"build-{name}"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.stack(frames))
        mrc.voxel_size = 0.25  # Å
        mrc.header.ispg = 0
    return path.read_bytes()


def _write_slowly(path, data: bytes, piece: int, pause: float) -> None:
    with open(path, "ab") as fh:
        for start in range(0, len(data), piece):
            fh.write(data[start : start + piece])
            fh.flush()
            time.sleep(pause)


def _poll_while(writer: threading.Thread, source, interval: float = 0.002) -> list:
    """Every frame the source returns while the writer runs, then after it ends."""
    got = []
    while writer.is_alive():
        got += source.poll()
        time.sleep(interval)
    for _ in range(3):
        got += source.poll()
    return got


def _run(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kind", ["tif", "mrc"])
def test_folder_frames_written_slowly_are_never_read_half_done(tmp_path, kind):
    frames = _frames(4)
    folder = tmp_path / "acq"
    folder.mkdir()

    def write_all():
        for k, f in enumerate(frames):
            data = _tiff_bytes([f]) if kind == "tif" else _mrc_bytes([f], tmp_path)
            # Pauses ten times the polling interval: the size stays put between polls.
            _write_slowly(folder / f"frame_{k:04d}.{kind}", data, piece=1500, pause=0.02)

    source = FolderFrames(folder)
    got = _poll_while(_run(write_all), source)
    assert [f.index for f in got] == [0, 1, 2, 3]
    assert [f.name for f in got] == [f"frame_{k:04d}.{kind}" for k in range(4)]
    for frame, truth in zip(got, frames, strict=True):
        np.testing.assert_array_equal(frame.data, truth)
    assert source.problems == []
    if kind == "mrc":
        assert got[0].pixel_size == pytest.approx(0.025)


def test_folder_of_real_dm3_files_copied_slowly(tmp_path, shared_data):
    original = shared_data / "dm3" / "PZO.dm3"
    from napari_hrtem_fft.io import read_micrographs

    (truth,) = read_micrographs(original)
    folder = tmp_path / "acq"
    folder.mkdir()
    data = original.read_bytes()

    def write_all():
        for k in range(2):
            _write_slowly(folder / f"PZO_{k}.dm3", data, piece=len(data) // 30, pause=0.02)

    source = FolderFrames(folder)
    got = _poll_while(_run(write_all), source)
    assert [f.name for f in got] == ["PZO_0.dm3", "PZO_1.dm3"]
    for frame in got:
        np.testing.assert_array_equal(frame.data, np.asarray(truth.data))
        assert frame.pixel_size == pytest.approx(0.015994541, rel=1e-6)


def test_renamed_files_are_read_at_first_sight_and_temporary_names_never(tmp_path):
    frames = _frames(3)
    folder = tmp_path / "acq"
    folder.mkdir()
    source = FolderFrames(folder, renamed=True)
    got = []
    for k, f in enumerate(frames):
        part = folder / f"frame_{k}.tif.part"
        part.write_bytes(_tiff_bytes([f])[:-100])  # a half-written temporary file
        assert source.poll() == []
        part.write_bytes(_tiff_bytes([f]))
        part.rename(folder / f"frame_{k}.tif")
        (new,) = source.poll()  # the same poll: no second look needed
        got.append(new)
    for frame, truth in zip(got, frames, strict=True):
        np.testing.assert_array_equal(frame.data, truth)


@pytest.mark.parametrize("kind", ["tif", "mrc"])
def test_a_file_whose_byte_counts_prove_it_complete_is_read_at_first_sight(tmp_path, kind):
    frames = _frames(2)
    folder = tmp_path / "acq"
    folder.mkdir()
    source = FolderFrames(folder)
    for k, f in enumerate(frames):
        data = _tiff_bytes([f]) if kind == "tif" else _mrc_bytes([f], tmp_path)
        path = folder / f"frame_{k}.{kind}"
        path.write_bytes(data[:-7])  # all but the last pixels' bytes
        assert source.poll() == []
        with open(path, "ab") as fh:
            fh.write(data[-7:])
        (frame,) = source.poll()  # its size just changed: no second look needed
        np.testing.assert_array_equal(frame.data, f)


def test_frames_after_the_first_are_read_only_when_asked(tmp_path):
    # A live run behind the acquisition skips most waiting frames: they are not read.
    frames = _frames(3)
    folder = tmp_path / "acq"
    folder.mkdir()
    for k, f in enumerate(frames):
        (folder / f"frame_{k}.tif").write_bytes(_tiff_bytes([f]))
    source = FolderFrames(folder)
    first, second, third = source.poll()
    assert isinstance(first.data, np.ndarray)  # read: the shape and calibration
    assert isinstance(second.data, FileFrame) and second.data.shape == SHAPE
    np.testing.assert_array_equal(np.asarray(third.data), frames[2])
    (folder / "frame_1.tif").unlink()  # e.g. the acquisition cleaned it up
    with pytest.raises(OSError):
        np.asarray(second.data)


def test_a_frame_touched_after_it_was_found_complete_is_read_again(tmp_path, monkeypatch):
    # Writers touch a file once more after its bytes are complete (closing it,
    # rewriting a tag); the frame is read as it is then, not lost. A file that never
    # holds still while it is read is refused by name.
    frames = _frames(3)
    folder = tmp_path / "acq"
    folder.mkdir()
    for k, f in enumerate(frames[:2]):
        (folder / f"frame_{k}.tif").write_bytes(_tiff_bytes([f]))
    _, second = FolderFrames(folder).poll()
    time.sleep(0.01)
    (folder / "frame_1.tif").write_bytes(_tiff_bytes([frames[2]]))  # new time stamp
    np.testing.assert_array_equal(np.asarray(second.data), frames[2])

    _, second = FolderFrames(folder).poll()

    def always_changing(*args):
        raise watch_module._Changed("frame_1.tif changed while it was read")

    monkeypatch.setattr(watch_module, "_read_frame", always_changing)
    monkeypatch.setattr(FileFrame, "_read_block", always_changing)
    with pytest.raises(MicrographReadError, match=r"frame_1\.tif.*changed after"):
        np.asarray(second.data)


def test_a_compressed_tiff_waits_for_its_size_to_stay_put(tmp_path):
    # Compressed strips do not say how many bytes the image needs: two looks.
    (f,) = _frames(1)
    folder = tmp_path / "acq"
    folder.mkdir()
    tifffile.imwrite(folder / "frame_0.tif", f, compression="zlib")
    source = FolderFrames(folder)
    assert source.poll() == []
    (frame,) = source.poll()
    np.testing.assert_array_equal(frame.data, f)


def test_a_frame_of_another_shape_is_refused_by_name(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    tifffile.imwrite(folder / "a_0.tif", np.zeros(SHAPE, np.float32))
    tifffile.imwrite(folder / "a_1.tif", np.zeros((10, 10), np.float32))
    source = FolderFrames(folder, give_up=0.05)
    got = []
    for _ in range(4):
        got += source.poll()
        time.sleep(0.03)
    assert [f.name for f in got] == ["a_0.tif"]
    ((name, reason),) = source.problems
    assert name == "a_1.tif"
    assert "(10, 10)" in reason and str(SHAPE) in reason


@pytest.mark.parametrize("kind", ["tif", "mrc"])
def test_growing_stack_written_slowly_returns_only_whole_frames(tmp_path, kind):
    frames = _frames(5)
    path = tmp_path / f"movie.{kind}"
    data = _tiff_bytes(frames) if kind == "tif" else _mrc_bytes(frames, tmp_path)
    source = watch_source(path)
    assert isinstance(source, GrowingStack)
    got = _poll_while(_run(_write_slowly, path, data, 700, 0.004), source)
    assert [f.index for f in got] == list(range(5))
    for frame, truth in zip(got, frames, strict=True):
        np.testing.assert_array_equal(frame.data, truth)
    if kind == "mrc":
        assert got[0].pixel_size == pytest.approx(0.025)


def test_growing_mrc_counts_frames_by_bytes_not_by_the_header_count(tmp_path):
    # Some cameras write the final frame count into the header before the frames.
    frames = _frames(3)
    data = _mrc_bytes(frames, tmp_path)
    path = tmp_path / "movie.mrc"
    frame_bytes = SHAPE[0] * SHAPE[1] * 4
    source = GrowingStack(path)
    path.write_bytes(data[: 1024 + frame_bytes + frame_bytes // 2])
    (first,) = source.poll()
    np.testing.assert_array_equal(first.data, frames[0])
    shutil.copyfile(tmp_path / "build-stack.mrc", path)
    assert [f.index for f in source.poll()] == [1, 2]


def test_watch_source_refuses_what_cannot_grow(tmp_path):
    with pytest.raises(ValueError, match="neither a folder"):
        watch_source(tmp_path / "movie.dm4")


def test_a_tiff_whose_header_is_written_first_is_polled_without_messages(tmp_path, caplog):
    # tifffile.imwrite writes the header with the first IFD offset still 0, then the
    # image: tifffile warns "<TiffFile 'frame.tif'> contains no pages" on such a file.
    # A live source parses it at every poll while it is written: nothing must be said.
    import logging

    frame = _frames(1)[0]
    data = _tiff_bytes([frame])
    folder = tmp_path / "acq"
    folder.mkdir()
    path = folder / "frame_0000.tif"
    path.write_bytes(data[:4] + b"\0\0\0\0")
    source = FolderFrames(folder)
    with caplog.at_level(logging.DEBUG):
        assert source.poll() == []
        assert source.poll() == []
        path.write_bytes(data)
        got = source.poll()
    assert [r.getMessage() for r in caplog.records if r.name == "tifffile"] == []
    assert [f.index for f in got] == [0]
    np.testing.assert_array_equal(np.asarray(got[0].data), frame)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, ">u2"])
def test_a_plain_tiff_proven_complete_is_read_from_where_its_pixels_are(tmp_path, dtype):
    # Its completeness check found the pixels' place: one plain read of those bytes,
    # not a second parse, gives what the reader gives (big-endian files included).
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 60000, SHAPE).astype(dtype) for _ in range(2)]
    folder = tmp_path / "acq"
    folder.mkdir()
    for k, frame in enumerate(frames):
        tifffile.imwrite(folder / f"f_{k}.tif", frame, byteorder=">" if dtype == ">u2" else "<")
    got = FolderFrames(folder).poll()
    assert isinstance(got[1].data, FileFrame) and got[1].data._layout is not None
    for frame, truth in zip(got, frames, strict=True):
        data = np.asarray(frame.data)
        assert data.dtype.isnative and data.dtype == np.dtype(dtype).newbyteorder("=")
        np.testing.assert_array_equal(data, truth)
    # Rewritten after it was found complete (same size, another time stamp): parsed
    # again, as it is now.
    third = rng.integers(0, 60000, SHAPE).astype(dtype)
    tifffile.imwrite(folder / "f_2.tif", third, byteorder=">" if dtype == ">u2" else "<")
    source = FolderFrames(folder)
    late = source.poll()[2].data
    time.sleep(0.02)
    tifffile.imwrite(folder / "f_2.tif", frames[0], byteorder=">" if dtype == ">u2" else "<")
    np.testing.assert_array_equal(np.asarray(late), frames[0])
