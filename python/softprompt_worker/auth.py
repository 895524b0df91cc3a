"""Who may talk to a worker: ZeroMQ CURVE on the server socket, and which endpoints need it.

A TCP endpoint reachable from other machines is never served in the clear: `check_endpoint` refuses a
non-loopback TCP bind without CURVE. With CURVE the server socket encrypts every connection with its key
pair, and a ZAP handler (pyzmq's `ThreadAuthenticator`) admits only the client public keys listed in a
folder (`keys.load_allowed_keys`); any other client's handshake fails (libzmq tells the client
"authentication failure", the server never sees its messages). The folder is read at start and again on
`reload()` (the worker calls it on SIGHUP), so keys can be added or revoked without a restart.

    curve = CurveServer.from_files("server.key_secret", "allowed/")
    curve.start(context)          # the ZAP handler; before the socket binds
    curve.apply(router)           # CURVE server options on the socket
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from urllib.parse import urlsplit

import zmq
from zmq.auth.thread import ThreadAuthenticator

from softprompt_worker.keys import load_allowed_keys, load_secret_key

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
    """Refuse (ValueError) a TCP endpoint other machines could reach when CURVE is off."""
    if endpoint.startswith("tcp://") and not curve and not is_loopback_tcp(endpoint):
        raise ValueError(f"refusing to serve {endpoint} without CURVE: anyone who can reach it could use the "
                         "worker. Pass --server-key and --allow (see `softprompt-worker keys new`), or bind "
                         "tcp://127.0.0.1:PORT")


class AllowedKeys:
    """The client public keys a server accepts, re-read from their folder on `reload()`. Thread-safe."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._keys = frozenset(load_allowed_keys(folder))

    def reload(self) -> int:
        """Read the folder again; on a bad file keep the current keys (and raise). Returns the count."""
        keys = frozenset(load_allowed_keys(self.folder))
        with self._lock:
            self._keys = keys
        return len(keys)

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
