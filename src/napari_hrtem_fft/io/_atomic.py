"""Atomic outputs: a file or folder appears under its name only once it is complete.

Everything is written under a hidden temporary name in the target's folder
(``.<name>.partial-<host>-<pid>-<random>``) and renamed when the writing succeeded, so an
interrupted or failed write (Ctrl-C, ``kill``, a full disk, an exception) never
leaves a file that looks complete and is not, and a rerun does not meet an "output
exists" left over by the failed run. On an exception the temporary is removed; after
a hard kill (SIGKILL, power loss) only the hidden ``.partial`` remains.

Existing outputs are never replaced unless asked (``overwrite=True``), and a folder is
replaced only when ``replaceable(path)`` says it is one of ours (e.g. a zarr store),
so ``--out X.zarr --overwrite`` cannot delete an unrelated folder.

Example
-------
>>> from napari_hrtem_fft.io import atomic_path
>>> with atomic_path("maps.json") as tmp:          # doctest: +SKIP
...     tmp.write_text(text)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "PARTIAL_MARK",
    "atomic_directory",
    "atomic_path",
    "atomic_paths",
    "is_zarr_store",
    "remove_stale",
    "staged_outputs",
]

#: Part of the name of every temporary written here.
PARTIAL_MARK = ".partial-"


def _temporary(path: Path) -> Path:
    mark = f"{PARTIAL_MARK}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}{mark}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(
        f"{str(path)!r} already exists; not overwriting it (choose another name or overwrite)"
    )


def _reraise_named(exc: OSError, path: Path):
    """Raise ``exc``, with the output's name added when it has none (ENOSPC)."""
    if exc.filename is not None or exc.errno is None or str(path) in str(exc):
        raise exc
    raise OSError(exc.errno, f"{exc.strerror} while writing {str(path)!r}") from exc


def _publish_new(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, which must not exist (never replaced)."""
    try:
        os.link(tmp, target)  # fails if the target appeared meanwhile
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:
        # No hard links on this file system (FAT, some network shares): check, rename.
        if target.exists() or target.is_symlink():
            raise _exists_error(target) from None
        os.rename(tmp, target)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_paths(paths: Sequence, *, overwrite: bool = False) -> Iterator[list[Path]]:
    """Temporary names for several files that appear together or not at all.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        The final file names (e.g. a TIFF and its JSON sidecar).
    overwrite : bool
        Replace existing files. If False (default), an existing file raises
        FileExistsError before anything is written, and also if one appears meanwhile
        (the final names are created with a hard link, which never replaces).

    Yields
    ------
    list of Path
        One temporary path per file, in the same folders. Write them inside the block;
        a file not written is not created.

    Raises
    ------
    FileExistsError
        If a target exists and ``overwrite`` is False.
    OSError
        Write errors, with the target's name added when the system gave none.
    """
    targets = [Path(os.fspath(p)) for p in paths]
    if not overwrite:
        for p in targets:
            if p.exists() or p.is_symlink():
                raise _exists_error(p)
    for p in targets:
        p.parent.mkdir(parents=True, exist_ok=True)
    temps = [_temporary(p) for p in targets]
    try:
        yield temps
        done: list[Path] = []
        try:
            for tmp, target in zip(temps, targets, strict=True):
                if not tmp.exists():
                    continue
                if overwrite:
                    os.replace(tmp, target)
                else:
                    _publish_new(tmp, target)
                done.append(target)
        except BaseException:
            if not overwrite:
                for target in done:
                    _remove(target)
            raise
    except OSError as exc:
        _reraise_named(exc, targets[0])
    finally:
        for tmp in temps:
            _remove(tmp)


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary name for one file, renamed to ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.
    overwrite : bool
        Replace an existing file (default False: FileExistsError).

    Yields
    ------
    Path
        The temporary path (same folder); on an exception it is removed and ``path``
        is left as it was.
    """
    with atomic_paths([path], overwrite=overwrite) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_directory(
    path,
    *,
    overwrite: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """A temporary folder, renamed to ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The final folder (e.g. ``maps.zarr``).
    overwrite : bool
        Replace an existing ``path``, but only if ``replaceable(path)`` is True.
    replaceable : callable, optional
        Says whether an existing folder may be deleted (e.g. "it is a zarr store").
        Default: never, whatever ``overwrite`` says; a file is never replaced by a
        folder.

    Yields
    ------
    Path
        An empty temporary folder beside ``path``; it is removed on an exception.

    Raises
    ------
    FileExistsError
        If ``path`` exists and may not be replaced.
    """
    target = Path(os.fspath(path))

    def check():
        if not (target.exists() or target.is_symlink()):
            return
        if not overwrite:
            raise _exists_error(target)
        if target.is_symlink() or not target.is_dir():
            raise FileExistsError(f"{str(target)!r} exists and is not a folder; not replacing it")
        if replaceable is None or not replaceable(target):
            raise FileExistsError(
                f"{str(target)!r} exists and is not an output of this kind; not deleting it"
            )

    check()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(target)
    tmp.mkdir()
    try:
        yield tmp
        check()  # the target may have appeared while writing
        old = None
        if target.exists():
            old = _temporary(target)
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
        if old is not None:
            _remove(old)
    except OSError as exc:
        _reraise_named(exc, target)
    finally:
        _remove(tmp)


def remove_stale(folder) -> list[Path]:
    """Delete temporaries left in ``folder`` by processes that no longer run.

    A run killed with SIGTERM or SIGKILL cannot clean up; its hidden
    ``.<name>.partial-<host>-<pid>-<random>`` stays. The next run in the same folder
    removes those of this host whose process is gone (the host name in the mark keeps a
    live run on another machine sharing the folder safe).

    Returns
    -------
    list of Path
        What was removed.
    """
    removed = []
    host = _host()
    for p in Path(os.fspath(folder)).glob(f".*{PARTIAL_MARK}*"):
        tail = p.name.rsplit(PARTIAL_MARK, 1)[1].split("-")
        if len(tail) != 3 or tail[0] != host or not tail[1].isdigit():
            continue
        if not _alive(int(tail[1])):
            _remove(p)
            removed.append(p)
    return removed


def _host() -> str:
    import socket

    return "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def is_zarr_store(path) -> bool:
    """True for a folder that is a zarr v2 or v3 store (what ``--overwrite`` may replace)."""
    path = Path(os.fspath(path))
    return path.is_dir() and any(
        (path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray")
    )


@contextlib.contextmanager
def staged_outputs(
    folder,
    *,
    overwrite: bool = False,
    last: Sequence[str] = (),
    replaceable: Callable[[Path], bool] = is_zarr_store,
) -> Iterator[Path]:
    """A hidden staging folder in ``folder``; what is written there moves in on success.

    For a run that writes several outputs (one TIFF per map, their sidecars, a record):
    nothing appears under a final name until every output is complete, and a failed or
    interrupted run leaves only the hidden staging folder (removed on an exception).

    Parameters
    ----------
    folder : str or os.PathLike
        Where the outputs go.
    overwrite : bool
        Replace existing outputs; an existing folder (e.g. a zarr store) only when
        ``replaceable(path)`` (default: it is a zarr store). If False, an existing
        output raises FileExistsError and nothing is moved.
    last : sequence of str
        Names moved after all others (e.g. the JSON record, whose presence says the run
        is complete).

    Yields
    ------
    Path
        The staging folder: write the outputs there under their final names.
    """
    folder = Path(os.fspath(folder))
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale(folder)
    stage = _temporary(folder / "outputs")
    stage.mkdir()
    try:
        yield stage
        names = sorted(p.name for p in stage.iterdir())
        names = [n for n in names if n not in last] + [n for n in last if n in names]
        for name in names:  # check everything before moving anything
            target = folder / name
            if target.exists() or target.is_symlink():
                if not overwrite:
                    raise _exists_error(target)
                if target.is_dir() and not replaceable(target):
                    raise FileExistsError(
                        f"{str(target)!r} exists and is not an output of this kind; "
                        "not deleting it"
                    )
        for name in names:
            source, target = stage / name, folder / name
            if source.is_dir() and target.exists():
                old = _temporary(target)
                os.rename(target, old)
                os.rename(source, target)
                _remove(old)
            elif overwrite:
                os.replace(source, target)
            elif source.is_dir():
                os.rename(source, target)
            else:
                _publish_new(source, target)
    except OSError as exc:
        _reraise_named(exc, folder)
    finally:
        _remove(stage)
