"""Reading and writing files a client names without hanging, exhausting memory or following a planted link.

A path in a request (a checkpoint, a PEFT adapter, a run's manifest) may name a FIFO (``open`` blocks
until a writer comes: forever), a device such as ``/dev/zero`` (``read`` never ends), or a symlink swapped
in by someone else. `read_regular_file` opens with ``O_NOFOLLOW | O_NONBLOCK`` (neither a link nor a FIFO
can make ``open`` wait), checks with ``fstat`` on the open descriptor that it is a regular file, and
refuses one larger than its cap before reading a byte. `open_regular_file` does the same for a file read
as a stream (JSONL data: its lines are capped where they are read) and follows links, since data files
are the user's own and often linked.

    data = read_regular_file(path, max_bytes=MAX_CHECKPOINT_BYTES, what="checkpoint")

Writes under a directory the user chose (a run directory, a PEFT export folder) walk from that directory
one component at a time with descriptors (``openat`` style: ``os.open(name, dir_fd=...)`` with
``O_NOFOLLOW``), so a link swapped in for a folder or file between a check and the write cannot send the
write elsewhere: there is no window between checking and writing, the descriptor is the check.

    write_file_under(run_dir, run_dir / "checkpoints" / "step-00000100.pb", data)   # atomic
    log = open_append_under(run_dir, run_dir / "events.jsonl")
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from pathlib import Path

from softprompt_worker.errors import InvalidArgumentError, NotFoundError

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


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _parts_under(root: str | os.PathLike, target: str | os.PathLike) -> tuple[tuple[str, ...], str]:
    """``target``'s folders below ``root`` and its file name; InvalidArgumentError if it is not below it."""
    try:
        rel = Path(target).relative_to(Path(root))
    except ValueError:
        raise InvalidArgumentError(f"{str(target)!r} is not inside {str(root)!r}; refusing to write there") from None
    parts = rel.parts
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgumentError(f"{str(target)!r} does not name a file inside {str(root)!r}")
    return parts[:-1], parts[-1]


def open_dir_under(root: str | os.PathLike, folders: tuple[str, ...], *, create: bool = True) -> int:
    """A descriptor on ``root/folders...``, each folder opened with ``O_NOFOLLOW`` relative to the one
    before (made when missing, with ``create``). A folder that is a link is refused, wherever it leads."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for name in folders:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
            try:
                inner = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise InvalidArgumentError(f"{name!r} in {str(root)!r} is a link or not a folder; refusing to "
                                               "write through it") from None
                raise
            os.close(fd)
            fd = inner
        return fd
    except BaseException:
        os.close(fd)
        raise


def write_file_under(root: str | os.PathLike, target: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``target`` (inside ``root``) atomically: a temp file beside it, fsync, rename, fsync
    of the folder, all relative to the folder's descriptor. A link planted at ``target`` is replaced, never
    followed. On failure the temp file is removed and the ``OSError`` propagates."""
    folders, name = _parts_under(root, target)
    dir_fd = open_dir_under(root, folders)
    try:
        fd, tmp = _create_temp(dir_fd, name, mode)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _create_temp(dir_fd: int, name: str, mode: int) -> tuple[int, str]:
    """A new ``.<name>.<random>.tmp`` in the folder ``dir_fd`` (O_EXCL: never an existing file or link)."""
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd), tmp


def open_append_under(root: str | os.PathLike, target: str | os.PathLike) -> io.TextIOWrapper:
    """``target`` (inside ``root``) opened for appending UTF-8 text; a link at any step is refused."""
    folders, name = _parts_under(root, target)
    dir_fd = open_dir_under(root, folders)
    try:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidArgumentError(f"{str(target)!r} is a link; refusing to write through it") from None
            raise
    finally:
        os.close(dir_fd)
    return os.fdopen(fd, "a", encoding="utf-8")
