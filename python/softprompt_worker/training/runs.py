"""The run directory a training job writes, and nothing outside it:

    <run_dir>/job.json           the job spec as received (model, method, task, data, training, ...)
    <run_dir>/events.jsonl       every event of the job, one JSON object per line, with a timestamp
    <run_dir>/data/train.jsonl   the rows the job trains on, after validation and the train/eval split
    <run_dir>/data/eval.jsonl    its held-out rows (possibly none)
    <run_dir>/data/manifest.json {"job_id", "train": {"file", "rows", "sha256"}, "eval": {...}}
    <run_dir>/checkpoints/step-00000100.pb   protobuf checkpoints (see checkpoints.py)
    <run_dir>/.lock              flocked for the life of the job that writes here: a second job is refused

A run directory belongs to one job: a new job (not resuming) is refused one that holds checkpoints,
unless it asks to overwrite them (`RunDir.check_unused`).

The saved rows let a job resume after its worker died without the client sending its rows again:
``inspect_run`` finds the newest checkpoint that verifies and the saved rows whose hashes match, and
the resumed ``train`` reads ``data/*.jsonl`` as its sources, so it sees the same rows in the same order
and split. Every file is written atomically (checkpoints.atomic_write); a write that fails raises
``StorageError`` naming the file. Checkpoint names are resolved inside the run directory; a name that
escapes it is rejected.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from softprompt_worker.training.checkpoints import atomic_write, load_checkpoint, resolve_under
from softprompt_worker.errors import InvalidArgumentError, NotFoundError, StorageError, WorkerError
from softprompt_worker.files import open_append_under, read_regular_file, read_regular_text

_CHECKPOINT_NAME = re.compile(r"step-(\d+)\.pb")
MANIFEST = "manifest.json"
LOCK_FILE = ".lock"  # flocked by the job that writes the run directory, for its whole life
MAX_SAVED_DATA_BYTES = 8 << 30  # a run's saved train/eval JSONL, hashed when the run is resumed


class RunDir:
    def __init__(self, path: Any) -> None:
        self.path = run_path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InvalidArgumentError(f"run_dir: {str(self.path)!r} exists and is not a directory")
        try:
            (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgumentError(f"run_dir: cannot create {str(self.path)!r}: {exc.strerror}") from exc
        self._inside("checkpoints")

    def check_unused(self, *, resuming: bool, overwrite: bool) -> None:
        """Refuse a run directory that holds an earlier job's checkpoints, unless this job resumes it
        or ``overwrite`` (then those checkpoints, its best.pb and the event log are removed here)."""
        folder = self._inside("checkpoints")
        found = sorted(p.name for p in folder.iterdir() if _CHECKPOINT_NAME.fullmatch(p.name)) if folder.is_dir() else []
        if not found or resuming:
            return
        if not overwrite:
            raise InvalidArgumentError(
                f"run_dir: {str(self.path)!r} already holds {len(found)} checkpoint(s) of an earlier job (newest "
                f"{found[-1]}); a new job would overwrite them. Continue that job (resumeFrom), choose another "
                "runDir, or pass overwrite: true (CLI: --overwrite) to replace them",
                details={"run_dir": str(self.path), "checkpoints": len(found)})
        for name in found:
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError.from_os_error("old checkpoint", folder / name, exc) from exc
        for stale in ("checkpoints/best.pb", "events.jsonl"):  # the old job's best prompt and its log
            with contextlib.suppress(FileNotFoundError):
                self._inside(stale).unlink()

    def lock(self) -> None:
        """Take ``<run_dir>/.lock`` (an exclusive flock) for this job's life, or refuse: another job, in this
        worker or another process, writes here. `unlock` (or the process's end) lets it go."""
        path = self._inside(LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError.from_os_error("run directory lock", path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidArgumentError(
                f"run_dir: {str(self.path)!r} is in use by another training job (it holds {LOCK_FILE}); two jobs in "
                "one run directory would overwrite each other's checkpoints. Give this job its own runDir, or wait "
                "for the other to end", details={"run_dir": str(self.path), "locked": True}) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def write_job(self, job: dict[str, Any]) -> None:
        data = json.dumps(job, indent=2, sort_keys=True, default=str) + "\n"
        _write(self.path, self.path / "job.json", data.encode(), "job spec")

    def save_rows(self, train_rows: list[dict], eval_rows: list[dict], *, job_id: str | None) -> None:
        """Write the resolved rows to ``data/`` (manifest last, so a manifest always names whole files).

        Raises InvalidArgumentError for a row JSON cannot hold, StorageError when the disk refuses.
        """
        folder = self._inside("data")
        try:
            (folder / MANIFEST).unlink(missing_ok=True)  # until the new rows are complete, none are valid
        except OSError as exc:
            raise StorageError.from_os_error("data manifest", folder / MANIFEST, exc) from exc
        manifest: dict[str, Any] = {"format": 1, "job_id": job_id}
        for split, rows in (("train", train_rows), ("eval", eval_rows)):
            data = _jsonl(rows, split)
            _write(self.path, folder / f"{split}.jsonl", data, f"{split} rows")
            manifest[split] = {"file": f"{split}.jsonl", "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}
        _write(self.path, folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), "data manifest")

    def remove_temp_files(self) -> int:
        """Delete the ``.*.tmp`` files a killed process left behind (a write it never finished)."""
        removed = 0
        for folder in (self.path, self._inside("checkpoints"), self._inside("data")):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                with contextlib.suppress(OSError):  # best effort: a leftover is only clutter
                    tmp.unlink()
                    removed += 1
        return removed

    def checkpoint_path(self, step: int) -> Path:
        return resolve_under(self.path, f"checkpoints/step-{step:08d}.pb")

    def best_path(self) -> Path:
        """The best evaluation's prompt (training.select_by); no training state, never pruned."""
        return resolve_under(self.path, "checkpoints/best.pb")

    def events(self) -> "EventLog":
        return EventLog(self._inside("events.jsonl"), root=self.path)

    def _inside(self, name: str) -> Path:
        """``run_dir/name``, refused when it (or a folder on the way) is a symlink that leads outside:
        the job writes under the directory the user chose and nowhere else."""
        try:
            return resolve_under(self.path, name)
        except InvalidArgumentError:
            raise InvalidArgumentError(f"run_dir: {name!r} in {str(self.path)!r} is a link that leads outside it; "
                                       "refusing to write there") from None


class EventLog:
    """Appends events to ``events.jsonl``, one line each, flushed so a crash loses at most one line."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        try:
            self._file = open_append_under(root, path) if root is not None else path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StorageError.from_os_error("event log", path, exc) from exc

    def write(self, event: dict[str, Any]) -> None:
        try:
            self._file.write(json.dumps({"time": time.time(), **event}, default=str) + "\n")
            self._file.flush()
        except OSError as exc:
            raise StorageError.from_os_error("event log", self.path, exc) from exc

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # the failed flush was reported by write()
            pass


def run_path(path: Any) -> Path:
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"run_dir: expected a directory path, got {path!r:.60}")
    return Path(path).expanduser().resolve()


def inspect_run(path: Any, job_id: str | None = None) -> dict[str, Any]:
    """What a resumed job can start from, read without writing anything:

    ``{"run_dir", "checkpoint": {"path", "step"} | None, "data": {"train", "eval", "train_rows",
    "eval_rows"} | None, "invalid": [{"path", "error"}]}``: the newest checkpoint with training state
    that verifies, and the saved rows whose hashes match their manifest. With ``job_id``, only what
    that job wrote counts (a run directory may hold an older job's files). Files that fail
    verification are listed in ``invalid`` and skipped.
    """
    root = run_path(path)
    out: dict[str, Any] = {"run_dir": str(root), "checkpoint": None, "data": None, "invalid": []}
    folder = root / "checkpoints"
    found = [(int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else ())
             if (m := _CHECKPOINT_NAME.fullmatch(p.name))]
    for step, p in sorted(found, reverse=True):
        try:
            record = load_checkpoint(p)
        except WorkerError as exc:
            out["invalid"].append({"path": str(p), "error": exc.message})
            continue
        state = record.training_state
        if state is not None and (job_id is None or state.meta.get("job_id") == job_id):
            out["checkpoint"] = {"path": str(p), "step": record.step}
            break
    out["data"] = _saved_rows(root / "data", job_id, out["invalid"])
    return out


def _saved_rows(folder: Path, job_id: str | None, invalid: list[dict[str, str]]) -> dict[str, Any] | None:
    try:
        manifest = json.loads(read_regular_text(folder / MANIFEST, what="data manifest"))
    except NotFoundError:
        return None
    except (OSError, ValueError, InvalidArgumentError) as exc:
        invalid.append({"path": str(folder / MANIFEST), "error": f"unreadable: {exc}"})
        return None
    if job_id is not None and manifest.get("job_id") != job_id:
        return None
    out: dict[str, Any] = {}
    for split in ("train", "eval"):
        entry = manifest.get(split) or {}
        file = folder / str(entry.get("file", f"{split}.jsonl"))
        try:
            digest = hashlib.sha256(read_regular_file(file, max_bytes=MAX_SAVED_DATA_BYTES, what="saved data")).hexdigest()
        except (OSError, NotFoundError, InvalidArgumentError) as exc:
            invalid.append({"path": str(file), "error": f"unreadable: {getattr(exc, 'strerror', None) or exc}"})
            return None
        if digest != entry.get("sha256"):
            invalid.append({"path": str(file), "error": "sha256 does not match data/manifest.json"})
            return None
        out[split], out[f"{split}_rows"] = str(file), int(entry.get("rows", 0))
    return out


def _jsonl(rows: list[dict], split: str) -> bytes:
    lines = []
    for i, row in enumerate(rows):
        try:
            lines.append(json.dumps(row, allow_nan=True))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"data.{split}[{i}]: cannot be saved as JSON for resuming ({exc})") from exc
    return ("\n".join(lines) + "\n" if lines else "").encode()


def _write(root: Path, path: Path, data: bytes, what: str) -> None:
    try:
        atomic_write(path, data, root)
    except OSError as exc:
        raise StorageError.from_os_error(what, path, exc) from exc
