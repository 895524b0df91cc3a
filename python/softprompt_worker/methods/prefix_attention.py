"""Prefix key/values prepended inside attention, for any transformers attention module.

transformers (5.x) attention modules compute query/key/value themselves and hand them to an
"attention interface" function looked up by ``config._attn_implementation``. Inside
``prefix_context`` each prefixed module sees a config view whose implementation is
``softprompt_prefix``, a function registered here that

1. prepends the module's prefix keys/values, ``(batch, kv_heads, prefix, head_dim)``, to the keys and
   values (after rotary embeddings and after the KV cache, so a cache never holds a prefix);
2. extends the mask: prefix slots are visible to every query of a row whose prefix is valid there
   (the causal/padding mask of the real keys is kept, rebuilt when the model passed none);
3. pads T5's relative ``position_bias`` with zeros for the prefix slots: a prefix has no position,
   so no real token's position or relative distance changes;
4. calls the module's original implementation (its module-level eager function, or sdpa).

This reaches every kind of attention the same way: decoder-only self-attention (GPT-2; Llama with
grouped-query attention: the prefix has ``num_key_value_heads`` heads), encoder self-attention,
decoder self-attention and cross-attention (T5 eager with relative bias, BART sdpa). Outside the
context the model is untouched.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import torch

ATTENTION_NAME = "softprompt_prefix"
_PREFIX_ATTR = "_softprompt_prefix"


@dataclass
class PrefixKV:
    """One attention module's prefix for a batch."""

    key: torch.Tensor  # (batch, kv_heads, prefix, head_dim)
    value: torch.Tensor  # (batch, kv_heads, prefix, head_dim)
    valid: torch.Tensor  # (batch, prefix) bool: False for padding slots of rows with a shorter/no prefix


class _ConfigView:
    """The module's config, except that attention dispatches to ``softprompt_prefix``."""

    def __init__(self, base):
        object.__setattr__(self, "_base", base)

    @property
    def _attn_implementation(self) -> str:
        return ATTENTION_NAME

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_base"), name)


def _original_attention(module, implementation: str):
    if implementation in (None, "eager"):
        return getattr(sys.modules[type(module).__module__], "eager_attention_forward")
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[implementation]


def _prefix_attention(module, query, key, value, attention_mask, **kwargs):
    prefix: PrefixKV = module.__dict__[_PREFIX_ATTR]
    base_config = module.config._base
    implementation = base_config._attn_implementation
    B, _, q, K = query.shape[0], query.shape[1], query.shape[2], key.shape[2]
    P = prefix.key.shape[2]
    key = torch.cat([prefix.key.to(key.dtype), key], dim=2)  # (B, kv_heads, P + K, d)
    value = torch.cat([prefix.value.to(value.dtype), value], dim=2)  # (B, kv_heads, P + K, d)

    if attention_mask is None:
        allowed = torch.ones(q, K, dtype=torch.bool, device=query.device)  # (q, K)
        if kwargs.get("is_causal", getattr(module, "is_causal", False)) and q > 1:
            allowed = torch.tril(allowed, diagonal=K - q)  # queries are the last q of the K keys
        allowed = allowed[None, None].expand(B, 1, q, K)  # (B, 1, q, K)
    elif attention_mask.dtype == torch.bool:
        allowed = attention_mask[..., -q:, :K]  # (B|1, 1|h, q, K)
    else:
        allowed = attention_mask[..., -q:, :K] > torch.finfo(attention_mask.dtype).min / 2  # (B|1, 1|h, q, K)
    allowed = allowed.expand(B, allowed.shape[1], q, K)
    prefix_allowed = prefix.valid[:, None, None, :].expand(B, allowed.shape[1], q, P)  # (B, 1|h, q, P)
    allowed = torch.cat([prefix_allowed, allowed], dim=-1)  # (B, 1|h, q, P + K)
    # A padding query that sees nothing would give NaN that later leaks through 0 * NaN; let it see all.
    allowed = allowed | ~allowed.any(-1, keepdim=True)
    if implementation in (None, "eager"):
        mask = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device)
        mask = mask.masked_fill(~allowed, torch.finfo(query.dtype).min)  # (B, 1|h, q, P + K) additive
    else:
        mask = allowed

    bias = kwargs.get("position_bias")
    if bias is not None:
        zeros = bias.new_zeros(*bias.shape[:-1], P)  # (1|B, h, q, P): prefix slots have no position
        kwargs["position_bias"] = torch.cat([zeros, bias[..., -K:]], dim=-1)  # (1|B, h, q, P + K)
    kwargs.pop("is_causal", None)
    return _original_attention(module, implementation)(module, query, key, value, mask, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _prefix_attention)


@contextlib.contextmanager
def prefix_context(prefixes: dict):
    """Within the block, each attention module in ``prefixes`` (module -> PrefixKV) uses its prefix."""
    if not prefixes:
        yield
        return
    _register()
    saved = {}
    try:
        for module, prefix in prefixes.items():
            saved[module] = module.config
            module.__dict__["config"] = _ConfigView(module.config)
            module.__dict__[_PREFIX_ATTR] = prefix
        yield
    finally:
        for module, config in saved.items():
            module.__dict__["config"] = config
            module.__dict__.pop(_PREFIX_ATTR, None)
