"""The worker process and its parent: the READY line on stdout (``announce``), whether a pid still lives
(``process_alive``), and the kernel's parent-death signal (``set_parent_death_signal``). Used by the
server, the torchrun followers (distributed/lifecycle.py) and the CLI."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

from softprompt_worker import PROTOCOL_VERSION

log = logging.getLogger("softprompt_worker")


def announce(endpoint: str) -> None:
    """Print the one stdout line (WIRE.md), then point stdout at stderr so nothing else lands there."""
    line = json.dumps({"endpoint": endpoint, "protocol": PROTOCOL_VERSION, "pid": os.getpid()})
    sys.stdout.write(f"SOFTPROMPT_READY {line}\n")
    sys.stdout.flush()
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real fds (embedded use): Python level is enough
        pass
    sys.stdout = sys.stderr


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def set_parent_death_signal() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except Exception as exc:  # noqa: BLE001 - the watcher thread still covers it
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)
