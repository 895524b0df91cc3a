"""Reading files a client names without hanging, exhausting memory or following a planted link.

A path in a request (a checkpoint, a PEFT adapter, a run's manifest) may name a FIFO (``open`` blocks
until a writer comes: forever), a device such as ``/dev/zero`` (``read`` never ends), or a symlink swapped
in by someone else. `read_regular_file` opens with ``O_NOFOLLOW | O_NONBLOCK`` (neither a link nor a FIFO
can make ``open`` wait), checks with ``fstat`` on the open descriptor that it is a regular file, and
refuses one larger than its cap before reading a byte. `open_regular_file` does the same for a file read
as a stream (JSONL data: its lines are capped where they are read) and follows links, since data files
are the user's own and often linked.

    data = read_regular_file(path, max_bytes=MAX_CHECKPOINT_BYTES, what="checkpoint")
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

from .errors import InvalidArgumentError, NotFoundError

#: The largest checkpoint read (a soft prompt plus its optimizer state; 4096 virtual tokens × 65,536 wide
#: in float32 is 1 GiB, Adam's two moments triple it).
MAX_CHECKPOINT_BYTES = 4 << 30
#: The largest JSON file read (adapter_config.json, a run's manifest).
MAX_JSON_BYTES = 16 << 20

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _open(path: str | os.PathLike, what: str, *, follow: bool) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{what}: no file at {str(path)!r}") from exc
    except IsADirectoryError as exc:
        raise InvalidArgumentError(f"{what}: {str(path)!r} is a directory, not a file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise InvalidArgumentError(f"{what}: {str(path)!r} is a symbolic link; the worker opens only regular "
                                       "files it does not reach through a link (pass the file it points to)") from exc
        raise


def _check_regular(fd: int, path: str | os.PathLike, what: str, max_bytes: int | None) -> int:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise InvalidArgumentError(f"{what}: {str(path)!r} is {kind}; only regular files are read")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InvalidArgumentError(f"{what}: {str(path)!r} is {st.st_size} bytes, over the limit of {max_bytes}")
    return st.st_size


def read_regular_file(path: str | os.PathLike, *, max_bytes: int, what: str) -> bytes:
    """The bytes of the regular file ``path`` (not a link, FIFO or device), at most ``max_bytes`` of them.

    NotFoundError when missing; InvalidArgumentError for a link, a non-regular file or one too large."""
    fd = _open(path, what, follow=False)
    try:
        _check_regular(fd, path, what, max_bytes)
        os.set_blocking(fd, True)
        chunks, left = [], max_bytes + 1  # one byte more than allowed: a file that grew while read is refused
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 24))):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise InvalidArgumentError(f"{what}: {str(path)!r} grew past the limit of {max_bytes} bytes while read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular_text(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, what: str) -> str:
    """`read_regular_file` decoded as UTF-8."""
    return read_regular_file(path, max_bytes=max_bytes, what=what).decode("utf-8")


def open_regular_file(path: str | os.PathLike, *, what: str) -> io.BufferedReader:
    """A binary reader on the regular file ``path`` (links followed; FIFOs and devices refused)."""
    fd = _open(Path(path), what, follow=True)
    try:
        _check_regular(fd, path, what, None)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
