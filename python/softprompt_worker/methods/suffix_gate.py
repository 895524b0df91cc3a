"""Zero-initialised gates on what an encoder reads from a suffix (suffix tuning's ``attention="gated"``).

In a bidirectional encoder every text position attends to an appended suffix, so even an untrained suffix
changes the text's hidden states: on the Python FAQ an untrained 8-vector suffix costs all-MiniLM-L6-v2 14
nDCG@10 points under text-only pooling (bench/quality/suffix_adapt.py). LLaMA-Adapter's zero-init attention
(Zhang et al., 2023, "LLaMA-Adapter: Efficient Fine-tuning of Language Models with Zero-init Attention")
fixes the same problem for adapter prompts: the prompt keys get a softmax of their own, scaled by a gate
that starts at 0. Here, in every gated attention module, each query ``i`` reads

    out_i = softmax(s_i over text keys) V_text + tanh(g[layer, head]) * softmax(s_i over suffix keys) V_suffix

with ``g`` a trainable ``(layers, heads)`` table initialised to 0. At ``g = 0`` each text position sees
exactly what the bare encoder shows it (the caller also keeps the text's own position ids), so with
text-only pooling the untrained method *is* the encoder, up to float rounding. The gradient reaches ``g``
from the first step (``d out / d tanh(g)`` is the suffix read-out); the suffix vectors get gradient once
``g`` has left 0, after the first optimizer step.

How it reaches the model: transformers (5.x) attention modules hand query/key/value to a function looked up
by ``config._attn_implementation``. ``install`` gives each gated module a config view
(``attention_routing.py``) that names ``softprompt_suffix_gate``, registered here, which runs the gated
read-out when the forward call carries a ``suffix_gate`` keyword (transformers passes model keywords down to
the attention function, and activation checkpointing replays them) and otherwise calls the module's
original implementation unchanged. So an installed model behaves exactly as before for every caller that
does not pass a gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.attention_routing import AttentionConfigView, original_attention, routes_to

ATTENTION_NAME = "softprompt_suffix_gate"


@dataclass
class SuffixGate:
    """One forward pass's gate inputs, passed to the model as the ``suffix_gate`` keyword."""

    is_suffix: torch.Tensor  # (B, T) bool: True at each row's suffix positions
    gates: torch.Tensor  # (layers, heads) trainable, before tanh
    layer_of: dict[int, int]  # id(attention module) -> its row of ``gates``
    used: set[int] = field(default_factory=set)  # the layers that read their gate (checked after the pass)

    def check_every_layer_used(self) -> None:
        """Raise if some gated module ran without the gate: the model dispatches attention another way."""
        if self.used != set(self.layer_of.values()):
            raise InvalidArgumentError(f"attention: 'gated' reached {len(self.used)} of {len(self.layer_of)} "
                                       "attention layers; this model's attention cannot be gated")


def self_attention_modules(backbone: nn.Module) -> list[nn.Module]:
    """The encoder's self-attention modules in layer order (BERT family: ``layer[i].attention.self``)."""
    modules = [m for m in backbone.modules() if type(m).__name__.endswith("SelfAttention")
               and all(hasattr(m, name) for name in ("query", "key", "value", "config"))]
    if not modules:
        raise InvalidArgumentError(f"attention: 'gated' needs BERT-style self-attention modules; "
                                   f"{type(backbone).__name__} has none")
    return modules


def install(backbone: nn.Module) -> list[nn.Module]:
    """Route the backbone's self-attention through ``softprompt_suffix_gate`` (idempotent) and return the
    modules in layer order. Calls without a ``suffix_gate`` keyword keep the original attention."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _gated_attention)
    modules = self_attention_modules(backbone)
    for module in modules:
        if not routes_to(module, ATTENTION_NAME):
            module.__dict__["config"] = AttentionConfigView(module.config, ATTENTION_NAME)
    return modules


def _gated_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     suffix_gate: SuffixGate | None = None, **kwargs):
    """Attention with the suffix read through a gate; ``query``/``key``/``value`` are ``(B, heads, T, d)``,
    ``attention_mask`` additive ``(B, 1, T, T)`` (bool accepted). Returns ``((B, T, heads, d), None)``."""
    if suffix_gate is None:
        original = original_attention(module, module.config._base._attn_implementation)
        return original(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    layer = suffix_gate.layer_of[id(module)]
    suffix_gate.used.add(layer)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, h, T, T)
    blocked = torch.finfo(scores.dtype).min
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, blocked)
        else:
            scores = torch.maximum(scores + attention_mask, scores.new_tensor(blocked))  # no -inf rows
    key_is_suffix = suffix_gate.is_suffix[:, None, None, :]  # (B, 1, 1, T)
    to_text = torch.softmax(scores.masked_fill(key_is_suffix, blocked), dim=-1)  # (B, h, T, T)
    to_suffix = torch.softmax(scores.masked_fill(~key_is_suffix, blocked), dim=-1)  # (B, h, T, T)
    gate = torch.tanh(suffix_gate.gates[layer]).to(scores.dtype)[None, :, None, None]  # (1, h, 1, 1)
    probs = to_text + gate * to_suffix  # (B, h, T, T): rows sum to 1 + gate
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value)  # (B, h, T, d)
    return out.transpose(1, 2).contiguous(), None  # (B, T, h, d)
