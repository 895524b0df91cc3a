"""CURVE key pairs for remote workers, as files in ZeroMQ's certificate format.

``softprompt-worker keys new --out DIR --name NAME`` writes two files, the layout CZMQ's ``zcert`` and
pyzmq's ``zmq.auth`` use, so any ZeroMQ tool reads them::

    DIR/NAME.key          the public key (give it away: the server lists allowed clients by these files)
    DIR/NAME.key_secret   the public and the secret key, mode 0600 (keep it; never copy it elsewhere)

Each key is 40 characters of Z85 (a 32-byte Curve25519 key), on a line ``public-key = "..."`` or
``secret-key = "..."`` under a ``curve`` section. A server needs its own ``.key_secret`` and a folder of
the allowed clients' ``.key`` files; a client needs its own ``.key_secret`` and the server's ``.key``.

    public_path, secret_path = new_key_pair("/etc/softprompt", "server")
    public, secret = load_secret_key("/etc/softprompt/server.key_secret")
"""

from __future__ import annotations

import datetime
import glob
import os
import stat
import sys

import zmq

Z85_KEY_LENGTH = 40  # a 32-byte Curve25519 key in Z85

_PUBLIC_BANNER = """#   ZeroMQ CURVE public certificate, made by softprompt-worker keys new on {date}.
#   Give this file to the other side: a server lists the client keys it accepts in its --allow folder.
"""
_SECRET_BANNER = """#   ZeroMQ CURVE **secret** certificate, made by softprompt-worker keys new on {date}.
#   Do not copy this file to another machine or user, nor loosen its permissions (0600).
"""


class KeyFileError(ValueError):
    """A key file is missing, unreadable, malformed or readable by other users; the message says which."""


def new_key_pair(out_dir: str, name: str, *, overwrite: bool = False) -> tuple[str, str]:
    """Make a key pair: write ``out_dir/name.key`` (public) and ``out_dir/name.key_secret`` (0600).

    The folder is made (0700) when missing. Refuses to replace existing files unless ``overwrite``.
    Returns the two paths.
    """
    if not name or os.sep in name or name.startswith("."):
        raise KeyFileError(f"--name must be a plain file name, got {name!r}")
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    public_path = os.path.join(out_dir, f"{name}.key")
    secret_path = os.path.join(out_dir, f"{name}.key_secret")
    if not overwrite:
        for path in (public_path, secret_path):
            if os.path.exists(path):
                raise KeyFileError(f"{path} exists; pass --force to replace it (clients using the old key stop working)")
    public, secret = (k.decode("ascii") for k in zmq.curve_keypair())
    date = datetime.datetime.now().isoformat(timespec="seconds")
    _write(secret_path, _SECRET_BANNER.format(date=date) + _curve_section(public, secret), 0o600)
    _write(public_path, _PUBLIC_BANNER.format(date=date) + _curve_section(public), 0o644)
    return public_path, secret_path


def load_public_key(path: str) -> bytes:
    """The Z85 public key in a ``.key`` (or ``.key_secret``) file."""
    return _read_keys(path)[0]


def load_secret_key(path: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` Z85 keys from a ``.key_secret`` file that only its owner can read."""
    public, secret = _read_keys(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret-key; pass the NAME.key_secret file that `keys new` wrote")
    if sys.platform != "win32" and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is readable by other users (mode {os.stat(path).st_mode & 0o777:o}); "
                           f"run `chmod 600 {path}`")
    return public, secret


def load_allowed_keys(folder: str, *, allow_empty: bool = False) -> list[bytes]:
    """The public keys of the ``*.key`` files in ``folder``: the clients a server accepts. At least one,
    unless ``allow_empty`` (a reload: removing the last key means nobody gets in)."""
    if not os.path.isdir(folder):
        raise KeyFileError(f"--allow {folder!r} is not a folder; make it and copy the clients' NAME.key files there")
    keys = [load_public_key(path) for path in sorted(glob.glob(os.path.join(folder, "*.key")))]
    if not keys and not allow_empty:
        raise KeyFileError(f"--allow {folder!r} holds no *.key file, so no client could connect; copy the "
                           "clients' NAME.key files (from `softprompt-worker keys new`) there")
    return keys


def _curve_section(public: str, secret: str | None = None) -> str:
    lines = ["metadata", "curve", f'    public-key = "{public}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret}"')
    return "\n".join(lines) + "\n"


def _write(path: str, text: str, mode: int) -> None:
    # O_EXCL after an unlink: the file is created with `mode` (never briefly world-readable) and a link
    # planted at `path` is not followed.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


def _read_keys(path: str) -> tuple[bytes, bytes | None]:
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    found: dict[str, bytes] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        key = key.strip()
        if sep and key in ("public-key", "secret-key"):
            found[key] = _z85(path, key, value.strip().strip("'\""))
    if "public-key" not in found:
        raise KeyFileError(f"{path} holds no public-key line; is it a file written by `softprompt-worker keys new`?")
    return found["public-key"], found.get("secret-key")


def _z85(path: str, field: str, text: str) -> bytes:
    raw = text.encode("ascii")
    try:
        ok = len(raw) == Z85_KEY_LENGTH and len(zmq.utils.z85.decode(raw)) == 32
    except (ValueError, KeyError, IndexError):
        ok = False
    if not ok:
        raise KeyFileError(f"{path}: {field} must be {Z85_KEY_LENGTH} characters of Z85, got {text[:48]!r}")
    return raw
