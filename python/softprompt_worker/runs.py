"""The run directory a training job writes, and nothing outside it:

    <run_dir>/job.json           the job spec as received (model, method, task, data, training, ...)
    <run_dir>/events.jsonl       every event of the job, one JSON object per line, with a timestamp
    <run_dir>/checkpoints/step-00000100.pb   protobuf checkpoints (see checkpoints.py)

Checkpoint names are resolved inside the run directory; a name that escapes it is rejected.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .checkpoints import resolve_under
from .errors import InvalidArgumentError


class RunDir:
    def __init__(self, path: Any) -> None:
        if not isinstance(path, str) or not path:
            raise InvalidArgumentError(f"run_dir: expected a directory path, got {path!r:.60}")
        self.path = Path(path).expanduser().resolve()
        if self.path.exists() and not self.path.is_dir():
            raise InvalidArgumentError(f"run_dir: {str(self.path)!r} exists and is not a directory")
        try:
            (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgumentError(f"run_dir: cannot create {str(self.path)!r}: {exc.strerror}") from exc

    def write_job(self, job: dict[str, Any]) -> None:
        tmp = self.path / ".job.json.tmp"
        tmp.write_text(json.dumps(job, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.path / "job.json")

    def checkpoint_path(self, step: int) -> Path:
        return resolve_under(self.path, f"checkpoints/step-{step:08d}.pb")

    def events(self) -> "EventLog":
        return EventLog(self.path / "events.jsonl")


class EventLog:
    """Appends events to ``events.jsonl``, one line each, flushed so a crash loses at most one line."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps({"time": time.time(), **event}, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
