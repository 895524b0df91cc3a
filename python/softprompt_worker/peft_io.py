"""PEFT adapter export and import: the files; each method maps its own config and tensor.

A PEFT prompt-learning adapter is a directory with ``adapter_config.json`` (a PEFT config) and
``adapter_model.safetensors`` holding one tensor, ``prompt_embeddings``. Which methods have a PEFT format,
and how their prompt becomes that config and tensor and back, is declared on the method
(``SoftPromptMethod.peft_type``, ``to_peft``, ``from_peft``; today prompt tuning, and prefix tuning on
decoder-only models); this module only reads and writes the files, safely, and checks shapes.

Logits match PEFT's (``PeftModel.from_pretrained``) on the same base model, both ways.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError
from softprompt_worker.files import MAX_CHECKPOINT_BYTES, MAX_JSON_BYTES, read_regular_file, read_regular_text, write_file_under

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLED_WEIGHTS_FILE = "adapter_model.bin"  # older PEFT's torch.save pickle: refused, never loaded
WEIGHT_KEY = "prompt_embeddings"


def export_peft(method, out_dir: str | Path) -> Path:
    """Write ``method`` as a PEFT adapter in ``out_dir`` (a method with a ``peft_type``)."""
    from safetensors.torch import save as save_safetensors

    from softprompt_worker.methods.registry import peft_methods

    if method.peft_type is None:
        supported = ", ".join(cls.name for cls in peft_methods())
        raise InvalidArgumentError(f"checkpoint_export_peft: {method.name!r} has no PEFT equivalent "
                                   f"({supported} do)")
    frozen = method.frozen
    common = dict(task_type="SEQ_2_SEQ_LM" if frozen.is_encoder_decoder else "CAUSAL_LM",
                  num_virtual_tokens=method.config.num_virtual_tokens,
                  base_model_name_or_path=frozen.spec.display_name, inference_mode=True)
    config, weights = method.to_peft(common)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    with tempfile.TemporaryDirectory() as private:  # PEFT writes its config here (0700, ours), we copy it
        config.save_pretrained(private)
        config_bytes = read_regular_file(Path(private) / CONFIG_FILE, max_bytes=MAX_JSON_BYTES, what="adapter config")
    weights_bytes = save_safetensors({WEIGHT_KEY: weights.detach().float().cpu().contiguous()})
    try:  # relative to out_dir's descriptor, links not followed: a planted or swapped link cannot redirect it
        write_file_under(out, out / CONFIG_FILE, config_bytes)
        write_file_under(out, out / WEIGHTS_FILE, weights_bytes)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"out_dir: {exc.message}") from None
    return out


def import_peft(adapter_dir: str | Path, frozen):
    """The method (the one whose ``peft_type`` the adapter names) holding a PEFT adapter's prompt, on ``frozen``."""
    from safetensors.torch import load as load_safetensors

    from softprompt_worker.methods.registry import method_for_peft_type

    root = Path(adapter_dir)
    if not (root / WEIGHTS_FILE).exists() and (root / PICKLED_WEIGHTS_FILE).exists():
        raise CheckpointInvalidError(
            f"adapter_dir: {str(root)!r} holds {PICKLED_WEIGHTS_FILE} (a pickled PyTorch file) but no {WEIGHTS_FILE}; "
            "the worker never unpickles files (a pickle can run code). Convert it where you trust the file: "
            "PeftModel.from_pretrained(base, DIR).save_pretrained(DIR, safe_serialization=True)")
    try:
        raw = json.loads(read_regular_text(root / CONFIG_FILE, what="adapter_dir"))
        weights = load_safetensors(read_regular_file(root / WEIGHTS_FILE, max_bytes=MAX_CHECKPOINT_BYTES,
                                                     what="adapter_dir"))
    except (ValueError, OSError) as exc:
        raise CheckpointInvalidError(f"adapter_dir: {str(root)!r} is not a readable PEFT adapter: {exc}") from exc
    if WEIGHT_KEY not in weights:
        raise CheckpointInvalidError(f"adapter_dir: no {WEIGHT_KEY!r} tensor (found {sorted(weights)})")
    tensor = weights[WEIGHT_KEY].float()  # (V * submodules, width)
    kind = raw.get("peft_type")
    method, target = method_for_peft_type(kind).from_peft(raw, frozen)
    _check_shape(tensor, target.shape, kind)
    with torch.no_grad():
        target.copy_(tensor)
    return method


def _check_shape(tensor: torch.Tensor, want, kind: str) -> None:
    if tuple(tensor.shape) != tuple(want):
        raise CheckpointInvalidError(f"checkpoint_import_peft: {kind} {WEIGHT_KEY} has shape {list(tensor.shape)}; "
                                     f"the model needs {list(want)} (was it made for another base model?)")
