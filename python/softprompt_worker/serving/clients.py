"""Which client each connection belongs to, so several clients can share one worker.

A ROUTER names each connection by a routing id that changes when a client reconnects; a client keeps
its identity across reconnects by sending a `client_id` (a random UUID the SDK makes per client) in its
`hello`. Ops see it as ``ctx.state.client`` (``WorkerState.for_client``): the prompt cache keeps each
client's prompts apart unless loaded with ``shared: true`` (``prompts.py``). A connection that said
hello without a `client_id` gets the anonymous client ``""``, shared by all such connections.

    directory = client_directory(state)
    directory.register(peer, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")   # at hello
    directory.client_of(peer)                                         # at each compute request
"""

from __future__ import annotations

import threading
from collections import OrderedDict

CLIENTS_KEY = "clients"  # WorkerState.cache key
MAX_CLIENT_ID_LENGTH = 128
#: Connections remembered; past this the least recently registered is forgotten (it must say hello again).
MAX_CONNECTIONS = 65_536


class ClientDirectory:
    """Client id by routing id, as each connection announced in `hello`. Thread-safe and bounded."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self._limit = limit
        self._clients: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, peer: bytes, client_id: str) -> None:
        with self._lock:
            self._clients[peer] = client_id
            self._clients.move_to_end(peer)
            while len(self._clients) > self._limit:
                self._clients.popitem(last=False)

    def forget(self, peer: bytes) -> None:
        """Drop the connection `peer` (its key was revoked)."""
        with self._lock:
            self._clients.pop(peer, None)

    def client_of(self, peer: bytes) -> str | None:
        """The client id the connection `peer` announced, or None if it has not said hello."""
        with self._lock:
            return self._clients.get(peer)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)


def client_directory(state) -> ClientDirectory:
    """The worker's one directory (kept in ``state.cache``)."""
    return state.get_or_create(CLIENTS_KEY, ClientDirectory)
