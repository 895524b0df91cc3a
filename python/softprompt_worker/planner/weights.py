"""Bytes of the frozen model's weights, by dtype and quantization, and of the trainable side (the soft
parameters in f32, their gradients, the optimizer's state)."""

from __future__ import annotations

from softprompt_worker.planner.shape import ModelShape

DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2}
# bitsandbytes' storage per weight of a quantized nn.Linear: int8 is one byte plus one f32 scale per
# output row (LLM.int8's SCB); NF4 packs two weights per byte with one absmax per 64-weight block, itself
# 8-bit with double quantization (QLoRA): 0.5 + 1/64 + 4/(64*256) bytes.
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)


def frozen_weight_bytes(shape: ModelShape, dtype: str, quantization: str | None) -> int:
    """Every frozen parameter at ``dtype``, except quantized linear layers at their packed size."""
    width = DTYPE_BYTES[dtype]
    if quantization is None:
        return shape.params * width + shape.buffer_bytes
    rest = (shape.params - shape.linear_params) * width  # embeddings, norms, biases, the output head
    if quantization == "int8":
        packed = shape.linear_params + 4 * shape.linear_rows
    else:
        packed = shape.linear_params * NF4_BYTES
    return int(rest + packed) + shape.buffer_bytes


def optimizer_state_bytes(optimizer: str, tensor_shapes: list[tuple[int, ...]]) -> int:
    """AdamW: two f32 moments per parameter (and a step counter); Adafactor: factored second moments
    (a row and a column vector per matrix); SGD without momentum: nothing."""
    if optimizer == "adamw":
        return sum(8 * _numel(s) + 4 for s in tensor_shapes)
    if optimizer == "adafactor":
        return sum(4 * (sum(s) if len(s) >= 2 else _numel(s)) + 4 for s in tensor_shapes)
    return 0


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
