"""Protobuf checkpoints (``proto/softprompt/v1/checkpoint.proto``): save, verify, load, rebuild a method.

A checkpoint is one ``Checkpoint`` message in one file. Writing is atomic (a temp file in the same
directory, fsync, ``os.replace``), so a crash never leaves a half-written checkpoint under the final name.
``content_sha256`` is the sha256 of the message serialised deterministically with that field empty; it
is verified on every load. The base model's fingerprint is checked before a method is rebuilt, so a
prompt is never used with a model it was not trained for. No pickle anywhere: tensors are protobuf
``Tensor``s and the rest is JSON (optimizer param groups, cursor, config).

    path = save_checkpoint(run / "checkpoints" / "step-100.pb", method, step=100, metrics={"loss": 0.4})
    record = load_checkpoint(path)                 # verifies the hash
    method = build_method_from_checkpoint(record, frozen)   # checks the fingerprint
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from softprompt_worker import __version__
from softprompt_worker._proto.softprompt.v1 import checkpoint_pb2
from softprompt_worker.files import MAX_CHECKPOINT_BYTES, read_regular_file, write_file_under
from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError, NotFoundError, StorageError
from softprompt_worker.methods.base import SoftPromptMethod
from softprompt_worker.models import FrozenModel, ModelSpec
from softprompt_worker.tensors import tensor_from_proto, tensor_to_proto
from softprompt_worker.training.resume import TrainingState

FORMAT_VERSION = 1


@dataclass
class CheckpointRecord:
    """A verified checkpoint, decoded. ``training_state`` is None for an inference-only export."""

    path: str
    method: str
    method_config: dict[str, Any]
    base_model: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    step: int
    metrics: dict[str, float]
    versions: dict[str, str]
    created_unix_ms: int
    content_sha256: str
    training_state: TrainingState | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (no tensor data), as ``checkpoint_inspect`` replies."""
        return {"path": self.path, "method": self.method, "method_config": self.method_config,
                "base_model": self.base_model, "step": self.step, "metrics": self.metrics,
                "versions": self.versions, "created_unix_ms": self.created_unix_ms,
                "content_sha256": self.content_sha256, "resumable": self.training_state is not None,
                "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                            for k, v in sorted(self.tensors.items())}}


def resolve_under(root: str | os.PathLike, name: str | os.PathLike) -> Path:
    """``root / name`` resolved, or InvalidArgumentError if it escapes ``root`` (``..``, absolute, links)."""
    base = Path(root).resolve()
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise InvalidArgumentError(f"checkpoint path {str(name)!r} escapes the directory {str(base)!r}")
    return target


def save_checkpoint(path: str | os.PathLike, method: SoftPromptMethod, *, step: int,
                    metrics: dict[str, float] | None = None, training_state: TrainingState | None = None,
                    root: str | os.PathLike | None = None) -> Path:
    """Write ``method``'s soft state (plus ``training_state`` to resume) to ``path`` atomically.

    With ``root``, ``path`` is taken relative to it and must stay inside it. Returns the final path.
    """
    target = resolve_under(root, path) if root is not None else Path(path).resolve()
    msg = _to_proto(method, step=step, metrics=metrics or {}, training_state=training_state)
    msg.content_sha256 = _content_hash(msg)
    try:
        atomic_write(target, msg.SerializeToString(deterministic=True), root)
    except OSError as exc:  # a full disk, a file-size limit, a read-only or unwritable directory
        raise StorageError.from_os_error(f"checkpoint (step {step})", target, exc) from exc
    return target


def load_checkpoint(path: str | os.PathLike) -> CheckpointRecord:
    """Read and verify a checkpoint. NotFoundError if missing; CheckpointInvalidError if corrupt;
    InvalidArgumentError for a link, a FIFO, a device or a file over `files.MAX_CHECKPOINT_BYTES`."""
    p = Path(path)
    data = read_regular_file(p, max_bytes=MAX_CHECKPOINT_BYTES, what="checkpoint")
    msg = checkpoint_pb2.Checkpoint()
    try:
        msg.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeError by backend
        raise CheckpointInvalidError(f"checkpoint {str(p)!r} is not a softprompt checkpoint ({exc})") from exc
    if msg.format_version == 0 or not msg.method:
        raise CheckpointInvalidError(f"checkpoint {str(p)!r} is not a softprompt checkpoint (no format version)")
    if msg.format_version > FORMAT_VERSION:
        raise CheckpointInvalidError(f"checkpoint {str(p)!r} has format version {msg.format_version}; this worker "
                                     f"reads up to {FORMAT_VERSION}: upgrade softprompt-worker")
    stored = msg.content_sha256
    if _content_hash(msg) != stored:
        raise CheckpointInvalidError(f"checkpoint {str(p)!r} is corrupt: content sha256 does not match")
    try:
        tensors = {k: tensor_from_proto(v) for k, v in msg.tensors.items()}
        state = None
        if msg.training_state_json:
            state = TrainingState(tensors={k: tensor_from_proto(v) for k, v in msg.training_state.items()},
                                  meta=json.loads(msg.training_state_json))
        config = json.loads(msg.method_config_json or "{}")
        model_spec = json.loads(msg.base_model.model_spec_json) if msg.base_model.model_spec_json else None
    except ValueError as exc:
        raise CheckpointInvalidError(f"checkpoint {str(p)!r} is corrupt: {exc}") from exc
    bm = msg.base_model
    return CheckpointRecord(
        path=str(p), method=msg.method, method_config=config,
        base_model={"name_or_path": bm.name_or_path, "model_type": bm.model_type, "fingerprint": bm.fingerprint,
                    "hidden_size": bm.hidden_size, "num_layers": bm.num_layers, "model_spec": model_spec},
        tensors=tensors, step=msg.step, metrics=dict(msg.metrics),
        versions={"softprompt": msg.versions.softprompt, "torch": msg.versions.torch,
                  "transformers": msg.versions.transformers, "peft": msg.versions.peft},
        created_unix_ms=msg.created_unix_ms, content_sha256=stored, training_state=state)


def check_base_model(record: CheckpointRecord, frozen: FrozenModel) -> None:
    """CheckpointInvalidError unless ``record`` was trained on ``frozen``'s architecture."""
    if record.base_model["fingerprint"] != frozen.fingerprint:
        raise CheckpointInvalidError(
            f"checkpoint {record.path!r} was trained on {record.base_model['name_or_path']!r} "
            f"(fingerprint {record.base_model['fingerprint'][:12]}); the loaded model "
            f"{frozen.spec.display_name!r} has fingerprint {frozen.fingerprint[:12]}")


def build_method_from_checkpoint(record: CheckpointRecord, frozen: FrozenModel) -> SoftPromptMethod:
    """The method a checkpoint describes, attached to ``frozen``, with its soft state loaded."""
    from softprompt_worker.methods.registry import method_class

    check_base_model(record, frozen)
    cls = method_class(record.method)
    method = cls(cls.config_class.from_dict(record.method_config), frozen)
    method.load_soft_state(record.tensors)
    return method


# -- encoding ----------------------------------------------------------------------------------------

def _to_proto(method: SoftPromptMethod, *, step: int, metrics: dict[str, float],
              training_state: TrainingState | None) -> checkpoint_pb2.Checkpoint:
    frozen = method.frozen
    msg = checkpoint_pb2.Checkpoint(
        format_version=FORMAT_VERSION, method=method.name, method_config_json=method.config.to_json(),
        step=int(step), created_unix_ms=int(time.time() * 1000))
    bm = msg.base_model
    bm.name_or_path = frozen.spec.display_name
    bm.model_type = str(getattr(frozen.config, "model_type", ""))
    bm.fingerprint = frozen.fingerprint
    bm.hidden_size = frozen.hidden_size
    bm.num_layers = frozen.num_layers
    bm.model_spec_json = model_spec_json(frozen.spec)
    for name, tensor in method.soft_state().items():
        msg.tensors[name].CopyFrom(tensor_to_proto(tensor))
    if training_state is not None:
        for name, tensor in training_state.tensors.items():
            msg.training_state[name].CopyFrom(tensor_to_proto(tensor))
        msg.training_state_json = json.dumps(training_state.meta, sort_keys=True)
    for key, value in metrics.items():
        msg.metrics[key] = float(value)
    msg.versions.CopyFrom(_versions())
    return msg


def model_spec_json(spec: ModelSpec) -> str:
    """``BaseModel.model_spec_json``: the spec as canonical JSON, without the per-run ``device`` and ``dtype``."""
    fields = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("device", "dtype")}
    return json.dumps(fields, sort_keys=True)


def _versions() -> checkpoint_pb2.LibraryVersions:
    import transformers

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:  # pragma: no cover - peft is optional for loading
        peft_version = ""
    return checkpoint_pb2.LibraryVersions(softprompt=__version__, torch=torch.__version__,
                                          transformers=transformers.__version__, peft=peft_version)


def _content_hash(msg: checkpoint_pb2.Checkpoint) -> str:
    copy = checkpoint_pb2.Checkpoint()
    copy.CopyFrom(msg)
    copy.content_sha256 = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def atomic_write(target: Path, data: bytes, root: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``target`` or leave it as it was: a temp file beside it, fsync, ``os.replace``.

    With ``root`` (a run directory), every folder from ``root`` down is opened without following links
    and the file is written relative to its folder's descriptor (`files.write_file_under`), so a link
    swapped in after a check cannot redirect the write. On failure the temp file is removed and the
    ``OSError`` propagates; a process killed midway leaves at most a ``.<name>.*.tmp`` file
    (``RunDir.remove_temp_files`` clears those), never a partial target.
    """
    if root is not None:
        write_file_under(Path(root).resolve(), target, data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
