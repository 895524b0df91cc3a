"""The request and reply bodies of ops ``checkpoint_inspect`` (``ops/checkpoints.py``),
``checkpoint_export_peft`` and ``checkpoint_import_peft`` (``ops/peft.py``), declared once: the worker parses
requests with them (``fields.parse``) and builds replies from them, and ``make schema`` exports them to JSON
Schema and the SDK's zod schemas and types (docs/schema.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option


@dataclass(kw_only=True)
class CheckpointInspectRequest:
    """Op ``checkpoint_inspect``: a checkpoint's metadata, its content hash verified."""

    path: str = option(non_empty=True, doc="the checkpoint file")
    model: dict[str, Any] | None = option(None, ref="model", doc="also say whether the checkpoint fits this model")


@dataclass(kw_only=True)
class BaseModelInfo:
    """The model a checkpoint was trained on."""

    name_or_path: str = option(doc="as it was loaded")
    model_type: str = option(doc="the transformers model type")
    fingerprint: str = option(doc="identifies the architecture and parameter shapes")
    hidden_size: int = option(doc="the hidden size")
    num_layers: int = option(doc="the layers")
    model_spec: dict[str, Any] | None = option(None, doc="the model spec it was loaded with, resolved; null in older "
                                                          "checkpoints")


@dataclass
class TensorInfo:
    """A soft-prompt tensor, without its data."""

    dtype: str = option(doc="torch dtype without its prefix ('float32')")
    shape: list[int] = option(doc="its shape")


@dataclass(kw_only=True)
class CheckpointInfo:
    """Op ``checkpoint_inspect``'s reply (``training/checkpoints.CheckpointRecord.describe``)."""

    path: str = option(doc="the checkpoint file")
    method: str = option(doc="the method that wrote it (methods.json)")
    method_config: dict[str, Any] = option(doc="the method's options (snake_case)")
    base_model: BaseModelInfo = option(doc="the model it was trained on")
    step: int = option(doc="the training step it was written at")
    metrics: dict[str, float] = option(nan=True, doc="metrics recorded with it")
    versions: dict[str, str] = option(doc="versions of softprompt, torch, transformers and peft that wrote it")
    created_unix_ms: int = option(doc="when it was written")
    content_sha256: str = option(doc="sha256 of the content, verified on load")
    resumable: bool = option(doc="whether it holds training state (resume_from can continue it)")
    tensors: dict[str, TensorInfo] = option(doc="soft-prompt tensors by name")
    compatible: bool | None = option(None, absent=True, doc="whether it fits the request's model (same fingerprint); "
                                                            "only when one was given")


@dataclass(kw_only=True)
class CheckpointExportPeftRequest:
    """Op ``checkpoint_export_peft``: a checkpoint as a PEFT adapter directory."""

    checkpoint: str = option(non_empty=True, doc="the checkpoint file")
    out_dir: str = option(non_empty=True, doc="the adapter directory to write")
    model: dict[str, Any] | None = option(None, ref="model", doc="the model to build the adapter on; default: the "
                                                                 "checkpoint's")


@dataclass(kw_only=True)
class CheckpointExportPeftReply:
    """Op ``checkpoint_export_peft``'s reply."""

    out_dir: str = option(doc="the adapter directory written")
    method: str = option(doc="the checkpoint's method")
    files: list[str] = option(doc="file names inside out_dir: adapter_config.json, adapter_model.safetensors")


@dataclass(kw_only=True)
class CheckpointImportPeftRequest:
    """Op ``checkpoint_import_peft``: a PEFT adapter directory as a checkpoint."""

    adapter_dir: str = option(non_empty=True, doc="adapter_config.json + adapter_model.safetensors")
    model: dict[str, Any] = option(ref="model", doc="the base model the adapter was trained on")
    out: str = option(non_empty=True, doc="the checkpoint file to write (.pb)")


@dataclass(kw_only=True)
class CheckpointImportPeftReply:
    """Op ``checkpoint_import_peft``'s reply."""

    path: str = option(doc="the checkpoint file written")
    method: str = option(doc="its method")
    method_config: dict[str, Any] = option(doc="its options (snake_case)")


BODIES = {"checkpoint_inspect_request": CheckpointInspectRequest, "checkpoint_inspect_reply": CheckpointInfo,
          "checkpoint_export_peft_request": CheckpointExportPeftRequest,
          "checkpoint_export_peft_reply": CheckpointExportPeftReply,
          "checkpoint_import_peft_request": CheckpointImportPeftRequest,
          "checkpoint_import_peft_reply": CheckpointImportPeftReply}
