"""Who may talk to a worker: ZeroMQ CURVE on the server socket, and which endpoints need it.

Nothing another user could reach is served in the clear: without CURVE, `check_endpoint` passes only
loopback TCP and a filesystem ipc socket in a 0700 folder of this user. With CURVE the server socket encrypts every connection with its key
pair, and a ZAP handler (pyzmq's `ThreadAuthenticator`) admits only the client public keys listed in a
folder (`keys.load_allowed_keys`); any other client's handshake fails (libzmq tells the client
"authentication failure", the server never sees its messages). The folder is read at start and again on
`reload()` (the worker calls it on SIGHUP), so keys can be added or revoked without a restart: the
server then closes the connections of revoked keys and cancels their requests (`server.Server`), and
their reconnects fail the handshake. Removing the last key lets nobody in.

    curve = CurveServer.from_files("server.key_secret", "allowed/")
    curve.start(context)          # the ZAP handler; before the socket binds
    curve.apply(router)           # CURVE server options on the socket
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import stat
import threading
from urllib.parse import urlsplit

import zmq
from zmq.auth.thread import ThreadAuthenticator

from softprompt_worker.serving.keys import load_allowed_keys, load_secret_key

log = logging.getLogger("softprompt_worker")


def is_loopback_tcp(endpoint: str) -> bool:
    """True for ``tcp://127.x.y.z:PORT``, ``tcp://localhost:PORT``, ``tcp://[::1]:PORT``."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name, a host name: may be reachable from outside
        return False


def check_endpoint(endpoint: str, *, curve: bool) -> None:
    """Refuse (ValueError) an endpoint that someone other than this user could reach when CURVE is off.

    Without CURVE only two kinds pass: loopback TCP (the test harness; the SDK always adds CURVE on TCP,
    and a TCP endpoint other machines could reach never passes) and a filesystem ipc socket whose folder
    is a real directory owned by this user with mode 0700, so no other user can find or connect to it.
    An abstract ipc socket (``ipc://@name``: no file, so no permissions) and every other scheme (inproc,
    ws, udp...) need CURVE."""
    if curve:
        return
    scheme = endpoint.partition("://")[0] if "://" in endpoint else ""
    if scheme == "tcp":
        if not is_loopback_tcp(endpoint):
            raise ValueError(f"refusing to serve {endpoint} without CURVE: anyone who can reach it could use the "
                             "worker. Pass --server-key and --allow (see `softprompt-worker keys new`), or bind "
                             "tcp://127.0.0.1:PORT")
        return
    if scheme == "ipc":
        path = endpoint[len("ipc://"):]
        if path.startswith("@") or not path.startswith("/"):
            raise ValueError(f"refusing to serve {endpoint} without CURVE: an abstract or relative ipc socket has "
                             "no private folder around it, so any local user could connect. Bind "
                             "ipc:///PATH/TO/0700-FOLDER/worker.sock, or pass --server-key and --allow")
        _check_private_folder(endpoint, os.path.dirname(path))
        return
    raise ValueError(f"refusing to serve {endpoint} without CURVE: only tcp:// and ipc:// in a 0700 folder are "
                     "served in the clear. Pass --server-key and --allow (see `softprompt-worker keys new`)")


def _check_private_folder(endpoint: str, folder: str) -> None:
    """The socket's folder must be a directory (not a link) owned by this user that only it can enter."""
    try:
        st = os.lstat(folder)
    except OSError as exc:
        raise ValueError(f"refusing to serve {endpoint}: its folder {folder} cannot be read ({exc.strerror})") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise ValueError(f"refusing to serve {endpoint} without CURVE: its folder {folder} must be a directory owned "
                         f"by this user with mode 0700 (it is {stat.filemode(st.st_mode)}, uid {st.st_uid}), or "
                         "other users could connect. `chmod 700` it, or pass --server-key and --allow")


class AllowedKeys:
    """The client public keys a server accepts, re-read from their folder on `reload()`. Thread-safe."""

    def __init__(self, folder: str | None, keys: frozenset[bytes] | None = None) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._keys = frozenset(load_allowed_keys(folder)) if keys is None else keys

    @classmethod
    def fixed(cls, keys: frozenset[bytes]) -> AllowedKeys:
        """A set that no folder backs (the SDK-started worker's one client key); `reload` keeps it."""
        return cls(None, keys)

    def reload(self) -> int:
        """Read the folder again; on a bad file keep the current keys (and raise). Returns the count; an
        empty folder empties the set (nobody gets in), it does not keep the old one."""
        if self.folder is None:
            return len(self)
        keys = frozenset(load_allowed_keys(self.folder, allow_empty=True))
        with self._lock:
            self._keys = keys
        return len(keys)

    def __contains__(self, client_key: object) -> bool:
        with self._lock:
            return client_key in self._keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def callback(self, domain: str, client_key: bytes) -> bool:
        """The ZAP credentials-provider hook: ``client_key`` is the Z85 public key of a handshake."""
        with self._lock:
            allowed = client_key in self._keys
        if not allowed:
            log.warning("refused a client with an unlisted CURVE key %s", client_key.decode("ascii", "replace"))
        return allowed


class CurveServer:
    """The server's key pair plus its allowed client keys."""

    def __init__(self, public: bytes, secret: bytes, allowed: AllowedKeys) -> None:
        self.public = public
        self.secret = secret
        self.allowed = allowed
        self._authenticator: ThreadAuthenticator | None = None

    @classmethod
    def from_files(cls, server_secret_file: str, allow_folder: str) -> CurveServer:
        """Load ``server_secret_file`` (``NAME.key_secret``) and the ``*.key`` files in ``allow_folder``;
        raises `keys.KeyFileError` saying what is wrong."""
        public, secret = load_secret_key(server_secret_file)
        return cls(public, secret, AllowedKeys(allow_folder))

    @classmethod
    def from_stdin_line(cls, line: str) -> CurveServer:
        """The SDK-started worker's keys (`--curve-stdin`): one JSON line
        ``{"server_secret": Z85, "client_public": Z85}`` on stdin, so no other process sees them in argv
        or the environment. The server's public key is derived from its secret; only that one client gets in."""
        try:
            data = json.loads(line)
            secret = data["server_secret"].encode("ascii")
            client = data["client_public"].encode("ascii")
            public = zmq.curve_public(secret)
            if len(zmq.utils.z85.decode(client)) != 32:
                raise ValueError("client_public is not a 32-byte key")
        except (ValueError, KeyError, TypeError, AttributeError, zmq.ZMQError) as exc:
            raise ValueError("--curve-stdin: expected one JSON line {\"server_secret\": Z85, \"client_public\": Z85} "
                             f"on stdin ({exc})") from exc
        return cls(public, secret, AllowedKeys.fixed(frozenset([client])))

    def start(self, context: zmq.Context) -> None:
        """Start the ZAP handler on `context` (it must run before a CURVE socket accepts clients)."""
        auth = ThreadAuthenticator(context, log=logging.getLogger("softprompt_worker.zap"))
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=self.allowed)
        self._authenticator = auth

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a CURVE server with this key pair (before it binds)."""
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, self.secret)

    def stop(self) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
