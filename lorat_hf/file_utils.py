"""Atomic file and folder writes: readers never see a half-written result, checkpoint or export."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# `tempfile.mkstemp` / `mkdtemp` create private entries (0600 / 0700); what is moved into place gets the permissions
# an ordinary `open` / `mkdir` would have given it (or keeps those of the file it replaces).
_UMASK = _umask()
NEW_FILE_MODE = 0o666 & ~_UMASK
NEW_DIR_MODE = 0o777 & ~_UMASK


def write_text_atomic(
    path: str | os.PathLike, text: str | bytes, *, overwrite: bool = True, fsync: bool = False
) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`. A replaced file keeps its
    permissions; a new one gets the usual ones (0666 minus the umask).

    With `overwrite=False` an existing file raises `FileExistsError` instead of being replaced; `fsync=True` flushes
    the data to disk before the rename (checkpoint markers).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; remove it or choose another output path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    temporary = temporary_sibling(path)
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
            if fsync:
                stream.flush()
                os.fsync(stream.fileno())
        move_into_place(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno is None:
            raise
        hint = " Free some disk space and run again." if error.errno == errno.ENOSPC else ""
        raise OSError(
            error.errno,
            f"Could not write {path} ({error.strerror or error}); a file already there is unchanged.{hint}",
        ) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def temporary_sibling(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty hidden file next to `path` (same filesystem: `move_into_place` is then an atomic rename) for
    writers that produce `path` piece by piece (a video encoder). The caller deletes it if it gives up."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    return Path(temporary)


def move_into_place(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Atomically replace `path` with the finished `temporary` file, with the permissions an ordinary `open` would
    give a new file (0666 minus the umask), or those of the file it replaces."""
    path = Path(path)
    os.chmod(temporary, (path.stat().st_mode & 0o777) if path.exists() else NEW_FILE_MODE)
    os.replace(temporary, path)
    return path


def write_json_atomic(path: str | os.PathLike, data: Any, *, overwrite: bool = True, fsync: bool = True) -> Path:
    """`json.dump(data, indent=2)` to `path` atomically (non-JSON values are written with `str`)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    return write_text_atomic(path, text, overwrite=overwrite, fsync=fsync)


@contextmanager
def staged_directory(output: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it onto `output` only when the block succeeds.

    A non-empty `output` raises `FileExistsError` unless `overwrite=True`; on failure nothing is left behind and an
    existing `output` is untouched.
    """
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} exists and is not empty; pass overwrite=True (--overwrite) to replace it.")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        os.chmod(staging, NEW_DIR_MODE)
        yield staging
        if output.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
            os.replace(output, retired / output.name)
            os.replace(staging, output)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = ["move_into_place", "staged_directory", "temporary_sibling", "write_json_atomic", "write_text_atomic"]
