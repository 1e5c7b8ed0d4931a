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
    """A :class:`FileWriteError` for an ``OSError`` raised while writing a file.

    Example message: ``cannot write run/checkpoint.npz (File too large): ... raise the limit``.

    Parameters
    ----------
    path : str or os.PathLike
        The file being written, named in the message.
    exc : OSError
        The error raised; its errno is kept and chooses the hint (full disk, quota, size limit,
        permissions, read-only file system).
    doing : str
        What was being done to ``path`` (``"write"``, ``"create"``), for the message.

    Returns
    -------
    FileWriteError
        With the same errno as ``exc``; the caller raises it ``from exc``.
    """
    hint = _WRITE_HINTS.get(exc.errno, "check the path and the disk")
    return FileWriteError(exc.errno, f"cannot {doing} {path} ({exc.strerror or exc}): {hint}")


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """``path`` opened for reading in binary mode, after checking that it is a regular file.

    Opened without blocking (a FIFO would block an ordinary open until a writer came) and refused
    when it is a directory, a FIFO, a device or a socket.

    Parameters
    ----------
    path : str or os.PathLike
        The file to open.
    what : str
        What the file is, for messages (``"spec file"``).

    Returns
    -------
    BinaryIO
        The open file, in blocking mode; the caller closes it.

    Raises
    ------
    FileReadError
        When ``path`` is not a regular file; the message names ``what`` and ``path``.
    FileNotFoundError, PermissionError
        Propagated from the open.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(mode)
                else "a FIFO"
                if stat.S_ISFIFO(mode)
                else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file"
            )
            raise FileReadError(
                f"{what} {str(path)!r} is {kind}, not a regular file; give the path of a file"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes_limited(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the file.
    limit : int
        Largest size accepted, in bytes.
    what : str
        What the file is, for messages (``"spec file"``).

    Returns
    -------
    bytes
        The whole content (at most ``limit`` bytes).

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
        raise FileReadError(
            f"{what} {str(path)!r} is larger than {limit:,} bytes, more than any "
            f"{what} circuitep reads; check the path"
        )
    return data


def read_text_limited(
    path: str | os.PathLike, limit: int, what: str = "file", encoding: str = "utf-8"
) -> str:
    """:func:`read_bytes_limited`, decoded.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the file.
    limit : int
        Largest size accepted, in bytes (before decoding).
    what : str
        What the file is, for messages.
    encoding : str
        Text encoding of the file.

    Returns
    -------
    str
        The decoded content.

    Raises
    ------
    FileNotFoundError, FileReadError
        As :func:`read_bytes_limited`.
    UnicodeDecodeError
        When the bytes are not valid in ``encoding`` (propagated).
    """
    return read_bytes_limited(path, limit, what).decode(encoding)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """A temporary path beside ``path`` that replaces ``path`` in one step on success.

    A crash at any moment leaves either the old file or the new one, never half of one. The
    temporary file is removed whatever happens.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.

    Yields
    ------
    Path
        ``.<name>.tmp<suffix>`` in the same directory; write the new content there.

    Raises
    ------
    FileWriteError
        For any ``OSError`` while writing or replacing; the message names ``path``.
    """
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
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    text : str
        Its new content, written as UTF-8.

    Raises
    ------
    FileWriteError
        When the write fails; the message names ``path`` and what to do.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)
