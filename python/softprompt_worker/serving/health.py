"""The compute thread's heartbeat, so a stuck compute thread is noticed (the `health` op).

`ping` is answered by the socket loop, so it says nothing about the compute thread: a request stuck in
a read or a hung kernel leaves `ping` answering while every compute call waits. The compute thread beats
when idle (each second), when it starts or finishes a request, and whenever a running op emits an event
or checks its cancel flag (training checks it every step). `health` reports how long ago the last beat
was; past ``stuck_after_s`` the compute thread is reported stuck.
"""

from __future__ import annotations

import threading
import time
from typing import Any

IDLE_BEAT_S = 1.0  # the idle compute thread beats this often
STUCK_AFTER_S = 120.0  # default: a busy compute thread silent this long is reported stuck


class ComputeMonitor:
    """What the compute thread does and when it last showed life. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beat = time.monotonic()
        self._op: str | None = None
        self._request_id = 0
        self._since = self._beat

    def beat(self) -> None:
        self._beat = time.monotonic()  # one float store: atomic under the GIL, no lock on the hot path

    def started(self, op: str, request_id: int) -> None:
        with self._lock:
            self._op, self._request_id = op, request_id
            self._since = self._beat = time.monotonic()

    def finished(self) -> None:
        with self._lock:
            self._op, self._request_id = None, 0
            self._since = self._beat = time.monotonic()

    def snapshot(self, stuck_after_s: float = STUCK_AFTER_S) -> dict[str, Any]:
        """``{"state": "idle"|"busy", "op", "request_id", "busy_s", "since_beat_s", "stuck"}``."""
        now = time.monotonic()
        with self._lock:
            op, request_id, since, beat = self._op, self._request_id, self._since, self._beat
        since_beat = max(0.0, now - beat)
        return {"state": "busy" if op else "idle", "op": op, "request_id": request_id,
                "busy_s": round(now - since, 3) if op else 0.0, "since_beat_s": round(since_beat, 3),
                "stuck": since_beat > stuck_after_s}
