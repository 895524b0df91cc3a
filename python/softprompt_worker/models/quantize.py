"""A quantized frozen base: 8-bit or 4-bit (NF4) weights through bitsandbytes, as QLoRA does for LoRA.

Soft prompts never change the base weights, so they can stay compressed: an 8B model takes ~5.5 GB in NF4
instead of 16 GB in bf16, and a 70B model fits on one 80 GB GPU. The linear layers' weights are stored
quantized and dequantized block by block inside each matmul; embeddings, norms and the output head keep
the model's dtype; gradients still reach the input (and the soft vectors) through every layer.

- ``"nf4"``: 4-bit NormalFloat with double quantization (Dettmers et al., "QLoRA", NeurIPS 2023), compute
  in the model's dtype (bf16 on a GPU).
- ``"int8"``: LLM.int8() (Dettmers et al., NeurIPS 2022): int8 weights, outlier features in 16-bit.

Pretrained models are quantized while they load (``bnb_config``: transformers' loader, layer by layer, so
the full-precision model never sits in memory). Models built from a config (tests, benchmarks) are
quantized in place after they are built (``quantize_linears``). bitsandbytes runs on CUDA and, for both
kinds, on the CPU (its CPU backend, slower): the CPU tests use it. The choice is part of the model spec
that checkpoints record, so a prompt is served on the base it was trained on unless a caller names
another one (a prompt trained on an NF4 base loads on the bf16 base too: the fingerprint ignores how the
weights are stored).
"""

from __future__ import annotations

from typing import Any

from softprompt_worker.errors import DependencyMissingError, InvalidArgumentError

QUANTIZATIONS = ("int8", "nf4")


def require_bitsandbytes():
    try:
        import bitsandbytes
    except ImportError as exc:
        raise DependencyMissingError(
            "model.quantization needs the bitsandbytes package in the worker's Python "
            "(pip install 'softprompt-worker[quantize]' or pip install bitsandbytes)") from exc
    return bitsandbytes


def check_quantization(kind: str | None) -> None:
    if kind is not None and kind not in QUANTIZATIONS:
        raise InvalidArgumentError(f"model.quantization: {kind!r} is not one of {', '.join(QUANTIZATIONS)} (or null)")


def bnb_config(kind: str, compute_dtype) -> Any:
    """transformers' ``BitsAndBytesConfig`` for loading a pretrained model quantized."""
    require_bitsandbytes()
    from transformers import BitsAndBytesConfig

    if kind == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def quantize_linears(model, kind: str, compute_dtype) -> int:
    """Replace every ``nn.Linear`` of ``model`` except its output head with a bitsandbytes layer holding the
    same weights quantized, on the same device. Returns how many layers were replaced. One layer's
    full-precision weight is released as soon as its quantized copy exists."""
    from torch import nn

    require_bitsandbytes()
    head = model.get_output_embeddings()
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child is not head:
                parent.add_module(name, _quantized(child, kind, compute_dtype))
                count += 1
    keep_trainable_through(model)
    return count


def _quantized(linear, kind: str, compute_dtype):
    import bitsandbytes as bnb
    import torch

    device = linear.weight.device
    weight = linear.weight.data
    if kind == "nf4":
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  device="meta")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=True, quant_type="nf4")
    else:
        layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                    has_fp16_weights=False, threshold=6.0, device="meta")
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if linear.bias is not None:
        layer.bias = torch.nn.Parameter(linear.bias.data, requires_grad=False)
    return layer.to(device)  # bitsandbytes quantizes on this move


def keep_trainable_through(model) -> None:
    """Stop bitsandbytes' CPU inference repacking on every 4-bit layer of ``model``.

    On a CPU with AVX512-bf16, a ``Linear4bit`` in ``eval()`` mode that sees an input without grad rewrites
    its weight into a packed inference layout, for good; a later backward through it then gives zero
    gradients without an error (bitsandbytes 0.50, "an autograd kernel was not registered"). A frozen base
    is always in ``eval()`` and is evaluated without grad before it trains, so the repacking is turned off.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def logical_shape(param) -> list[int]:
    """A parameter's shape before quantization (NF4 weights are stored packed as ``(n / 2, 1)`` bytes)."""
    state = getattr(param, "quant_state", None)
    return list(state.shape) if state is not None and getattr(state, "shape", None) is not None else list(param.shape)


def materialize_quantized(model, kind: str, device, dtype, *, std: float = 0.02, seed: int = 0) -> None:
    """Give a model built on the ``meta`` device random weights on ``device``, one linear layer at a time,
    each quantized as soon as it exists: the full-precision model is never in memory (a 70B-shaped model
    from a config, for benchmarks, on one GPU). Linear weights are N(0, ``std``); other matrices likewise;
    vectors are ones (norm weights) or zeros (biases); modules holding computed buffers (rotary tables) are
    built again on the device from their config."""
    import torch
    from torch import nn

    generator = torch.Generator(device=device).manual_seed(seed)
    head = model.get_output_embeddings()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child is not head:
                linear = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device="meta")
                weight = torch.empty(child.out_features, child.in_features, device=device, dtype=dtype)
                linear.weight = nn.Parameter(weight.normal_(0, std, generator=generator), requires_grad=False)
                if child.bias is not None:
                    linear.bias = nn.Parameter(torch.zeros(child.out_features, device=device, dtype=dtype),
                                               requires_grad=False)
                parent.add_module(name, _quantized(linear, kind, dtype))
    for module in list(model.modules()):
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_meta:
                data = torch.empty(param.shape, device=device, dtype=dtype)
                if param.dim() == 1:
                    data.fill_(1.0 if name == "weight" else 0.0)
                else:
                    data.normal_(0, std, generator=generator)
                setattr(module, name, nn.Parameter(data, requires_grad=False))
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if any(b.is_meta for b in child.buffers(recurse=False)) and hasattr(child, "config"):
                with torch.device(device):
                    parent.add_module(name, type(child)(child.config))
    if head is not None and model.config.tie_word_embeddings:
        model.tie_weights()
    keep_trainable_through(model)
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise InvalidArgumentError(f"model: could not build {left[:3]} on {device} (meta tensors left)")
