"""Files in and out: bounded reads of user and run files, atomic writes whose errors name the file.

Reading: :func:`read_bytes_limited` refuses what is not a regular file (``/dev/zero``, a FIFO,
a directory) before reading a byte, and a file larger than the limit the caller gives, so a
wrong path can neither hang a command nor fill memory. Writing: :func:`atomic_path` replaces a
file in one step, and an ``OSError`` while writing (full disk, ``ulimit -f``, permissions) is
re-raised as a :class:`FileWriteError` that names the file and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: What each kind of write failure asks the user to do.
_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EFBIG: "the file exceeds the file-size limit (ulimit -f): raise the limit",
    errno.EACCES: "no permission to write there: choose a directory you may write to",
    errno.EPERM: "no permission to write there: choose a directory you may write to",
    errno.EROFS: "the file system is read-only: choose a directory you may write to",
}


class FileReadError(ValueError):
    """A file that is not a regular file or is larger than the reader allows."""


class FileWriteError(OSError):
    """A write that failed; ``str()`` names the file, the reason and what to do."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def write_error(path: str | os.PathLike, exc: OSError, doing: str = "write") -> FileWriteError:
    """A :class:`FileWriteError` for ``exc`` raised while trying to ``doing`` ``path`` (same
    errno): ``cannot write run/checkpoint.npz (File too large): ... raise the limit``."""
    hint = _WRITE_HINTS.get(exc.errno, "check the path and the disk")
    return FileWriteError(exc.errno, f"cannot {doing} {path} ({exc.strerror or exc}): {hint}")


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """``path`` opened for reading in binary mode, after checking that it is a regular file.

    Opened without blocking (a FIFO would block an ordinary open until a writer came) and refused
    with a :class:`FileReadError` naming ``what`` and ``path`` when it is a directory, a FIFO, a
    device or a socket. ``FileNotFoundError`` and ``PermissionError`` propagate.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "not a regular file")
            raise FileReadError(f"{what} {str(path)!r} is {kind}, not a regular file; give the "
                                "path of a file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes_limited(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Parameters
    ----------
    path : path of the file
    limit : int
        Largest size accepted, in bytes.
    what : str
        What the file is, for messages (``"spec file"``).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    FileReadError
        When ``path`` is not a regular file (a device, FIFO, socket or directory: opened without
        blocking and refused before anything is read) or holds more than ``limit`` bytes.
    """
    with open_regular(path, what) as f:
        data = f.read(limit + 1)  # the size in the inode can lag behind a file still being written
    if len(data) > limit:
        raise FileReadError(f"{what} {str(path)!r} is larger than {limit:,} bytes, more than any "
                            f"{what} circuitep reads; check the path")
    return data


def read_text_limited(path: str | os.PathLike, limit: int, what: str = "file",
                      encoding: str = "utf-8") -> str:
    """:func:`read_bytes_limited` decoded with ``encoding`` (``UnicodeDecodeError`` propagates)."""
    return read_bytes_limited(path, limit, what).decode(encoding)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step, so a
    crash at any moment leaves either the old file or the new one, never half of one. An
    ``OSError`` while writing is raised as a :class:`FileWriteError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except FileWriteError:
        raise
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
