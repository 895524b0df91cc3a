"""PEFT adapter export and import for prompt tuning and prefix tuning.

A PEFT prompt-learning adapter is a directory with ``adapter_config.json`` (a PEFT config) and
``adapter_model.safetensors`` holding one tensor, ``prompt_embeddings``:

- prompt tuning: ``(num_virtual_tokens, hidden)``, prepended to the (encoder) input embeddings. We
  export encoder–decoder prompts with ``num_transformer_submodules=1`` (encoder only), which is what
  our method does; PEFT's seq2seq default (2) also prompts the decoder, which we cannot import.
- prefix tuning: ``(num_virtual_tokens, num_layers * 2 * kv_width)``, the projected prefix (PEFT saves
  the MLP's output, never the MLP; so do we: a PEFT export cannot resume training, our checkpoint can).
  Only decoder-only models: PEFT's encoder–decoder prefix covers decoder self-attention only, ours also
  encoder self-attention and cross-attention, which PEFT cannot represent.

Logits match PEFT's (``PeftModel.from_pretrained``) on the same base model, both ways.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from .errors import CheckpointInvalidError, InvalidArgumentError
from .files import MAX_CHECKPOINT_BYTES, MAX_JSON_BYTES, read_regular_file, read_regular_text, write_file_under

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLED_WEIGHTS_FILE = "adapter_model.bin"  # older PEFT's torch.save pickle: refused, never loaded
WEIGHT_KEY = "prompt_embeddings"


def export_peft(method, out_dir: str | Path) -> Path:
    """Write ``method`` (prompt_tuning or decoder-only prefix_tuning) as a PEFT adapter in ``out_dir``."""
    from safetensors.torch import save as save_safetensors

    frozen = method.frozen
    common = dict(task_type="SEQ_2_SEQ_LM" if frozen.is_encoder_decoder else "CAUSAL_LM",
                  num_virtual_tokens=method.config.num_virtual_tokens,
                  base_model_name_or_path=frozen.spec.display_name, inference_mode=True)
    if method.name == "prompt_tuning":
        from peft import PromptTuningConfig

        config = PromptTuningConfig(**common, token_dim=frozen.hidden_size, num_transformer_submodules=1,
                                    num_layers=frozen.num_layers, prompt_tuning_init="RANDOM")
        weights = method.soft_state()["embedding"]  # (V, H)
    elif method.name == "prefix_tuning":
        if frozen.is_encoder_decoder:
            raise InvalidArgumentError(
                "checkpoint_export_peft: PEFT prefixes only the decoder of an encoder-decoder; this prompt also "
                "prefixes encoder self-attention and cross-attention, which PEFT cannot represent")
        from peft import PrefixTuningConfig

        target = method.targets[0]
        config = PrefixTuningConfig(**common, token_dim=method.kv_width, num_layers=len(method.targets),
                                    num_attention_heads=target.kv_heads, num_transformer_submodules=1,
                                    prefix_projection=False)
        with torch.no_grad():
            weights = method.flat_prefix()  # (P, layers * 2 * kv_width), projected
    else:
        raise InvalidArgumentError(f"checkpoint_export_peft: {method.name!r} has no PEFT equivalent "
                                   "(prompt_tuning and prefix_tuning do)")
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
    """A method (prompt_tuning or prefix_tuning) holding a PEFT adapter's prompt, on ``frozen``."""
    from safetensors.torch import load as load_safetensors

    from .methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
    from .methods.prompt_tuning import PromptTuning, PromptTuningConfig

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
    kind, n = raw.get("peft_type"), int(raw.get("num_virtual_tokens", 0))
    if kind == "PROMPT_TUNING":
        if (raw.get("num_transformer_submodules") or 1) != 1:
            raise InvalidArgumentError("checkpoint_import_peft: this adapter also prompts the decoder "
                                       "(num_transformer_submodules=2); only encoder/input prompts are supported")
        method = PromptTuning(PromptTuningConfig(num_virtual_tokens=n, init="random"), frozen)
        _check_shape(tensor, method.embedding.shape, kind)
        with torch.no_grad():
            method.embedding.copy_(tensor)
        return method
    if kind == "PREFIX_TUNING":
        if frozen.is_encoder_decoder:
            raise InvalidArgumentError("checkpoint_import_peft: PEFT encoder-decoder prefixes (decoder only) "
                                       "are not supported; ours prefix the encoder and cross-attention too")
        method = PrefixTuning(PrefixTuningConfig(num_virtual_tokens=n, prefix_projection=False), frozen)
        _check_shape(tensor, method.prefix.shape, kind)
        with torch.no_grad():
            method.prefix.copy_(tensor)
        return method
    raise InvalidArgumentError(f"checkpoint_import_peft: peft_type {kind!r} is not supported "
                               "(PROMPT_TUNING, PREFIX_TUNING)")


def _check_shape(tensor: torch.Tensor, want, kind: str) -> None:
    if tuple(tensor.shape) != tuple(want):
        raise CheckpointInvalidError(f"checkpoint_import_peft: {kind} {WEIGHT_KEY} has shape {list(tensor.shape)}; "
                                     f"the model needs {list(want)} (was it made for another base model?)")
