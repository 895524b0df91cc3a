"""Bytes that one forward pass with autograd keeps for backward, and the transients around the loss.

Soft-prompt training backpropagates through a frozen model: a linear layer whose weight needs no
gradient saves nothing of its input (its backward needs only the weight), so what a layer saves is what
its nonlinear parts need. Counted per query position of a Llama-style layer under SDPA (checked against
``torch.autograd.graph.saved_tensors_hooks`` on a real layer, docs/memory.md):

- two RMSNorms: each keeps its input in f32 (``hidden.to(float32)``) and a ``rsqrt`` per position;
- attention: q after rotary embeddings, SDPA's output, and SDPA's log-sum-exp (f32, one per head);
  k and v over the whole key length (prefix or cached text included);
- gated MLP: gate, up and act(gate), each ``intermediate`` wide.

SDPA (flash / memory-efficient on CUDA, the flash kernel on CPU) never materialises the
``(query, key)`` score matrix, so nothing here grows with seq². The only seq² term is a boolean
padding mask, built once per batch when rows may differ in length (``mask_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass

from softprompt_worker.methods.workload import Pass
from softprompt_worker.planner.shape import ModelShape

__all__ = ["Pass", "layer_bytes"]


def layer_bytes(shape: ModelShape, b: int, p: Pass) -> int:
    """What one layer saves for backward in pass ``p`` at compute width ``b`` bytes."""
    h, q, kv, inter = shape.hidden, shape.q_width, shape.kv_width, shape.intermediate
    if shape.family == "llama":
        per_query = 2 * (4 * h + 4) + b * 2 * q + 4 * shape.heads + 3 * inter * b
    else:  # LayerNorm (f32 under autocast), GELU (tanh form: four saved intermediates), plain MLP
        per_query = 2 * (4 * h + 8) + b * 2 * q + 4 * shape.heads + b * inter + 4 * inter * b
    per_key = 2 * (q if p.masked else kv) * b
    return p.rows * (p.queries * per_query + p.keys * per_key)


def layer_input_bytes(shape: ModelShape, b: int, p: Pass) -> int:
    """What gradient checkpointing keeps per layer: the hidden states entering it."""
    return p.rows * p.queries * shape.hidden * b


def model_io_bytes(shape: ModelShape, b: int, p: Pass) -> int:
    """Outside the layers: the input embeddings (token embeddings and the injected sequence: two copies)
    and the final norm's f32 input."""
    return p.rows * p.queries * (2 * shape.hidden * b + 4 * shape.hidden + 4)


def logits_bytes(shape: ModelShape, b: int, p: Pass) -> int:
    """Logits ``(rows, positions, vocab)`` at compute width, and per scored position the f32 log-softmax the
    loss saves plus backward's f32 gradients of its output and input (the loss's slice copy and f32
    upcast are freed once the log-softmax exists)."""
    return p.rows * (p.logits * b + p.scored * 12) * shape.vocab


def backward_transient_bytes(shape: ModelShape, b: int, p: Pass) -> int:
    """Backward's working set in one layer: gradients of the hidden states (the residual stream's and a
    norm's) and of two of the MLP's ``intermediate``-wide tensors."""
    return p.rows * p.queries * (2 * shape.hidden + 2 * shape.intermediate) * b


def mask_bytes(p: Pass) -> int:
    """A boolean ``(rows, 1, queries, keys)`` attention mask, built once per pass when there is one."""
    return p.rows * p.queries * p.keys if p.masked else 0


def kv_cache_bytes(shape: ModelShape, b: int, rows: int, positions: int) -> int:
    """A key/value cache over ``positions`` positions, every layer."""
    return shape.layers * rows * positions * 2 * shape.kv_width * b
