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

Where no row needs a mask of its own (every row has the whole prefix, and padding comes after the real
tokens or there is none), SDPA is called directly with a lower-right causal bias (or no mask), so it can
choose the flash or memory-efficient kernel and keeps grouped-query heads unrepeated; a boolean mask of
shape ``(batch, 1, q, prefix + keys)`` would rule both out.

This reaches every kind of attention the same way: decoder-only self-attention (GPT-2; Llama with
grouped-query attention: the prefix has ``num_key_value_heads`` heads), encoder self-attention,
decoder self-attention and cross-attention (T5 eager with relative bias, BART sdpa). Outside the
context the model is untouched.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

from softprompt_worker.methods.attention_routing import AttentionConfigView, original_attention, routes_to

ATTENTION_NAME = "softprompt_prefix"
_PREFIX_ATTR = "_softprompt_prefix"


@dataclass
class PrefixKV:
    """One attention module's prefix for a batch."""

    key: torch.Tensor  # (batch, kv_heads, prefix, head_dim)
    value: torch.Tensor  # (batch, kv_heads, prefix, head_dim)
    valid: torch.Tensor  # (batch, prefix) bool: False for padding slots of rows with a shorter/no prefix
    full: bool = False  # host fact: every row has the whole prefix (``valid`` is all True)
    right_padded: bool = False  # host fact: padding follows each row's real tokens, in queries and keys


def _prefix_attention(module, query, key, value, attention_mask, **kwargs):
    prefix: PrefixKV = module.__dict__[_PREFIX_ATTR]
    base_config = module.config._base
    implementation = base_config._attn_implementation
    B, _, q, K = query.shape[0], query.shape[1], query.shape[2], key.shape[2]
    P = prefix.key.shape[2]
    key = torch.cat([prefix.key.to(key.dtype), key], dim=2)  # (B, kv_heads, P + K, d)
    value = torch.cat([prefix.value.to(value.dtype), value], dim=2)  # (B, kv_heads, P + K, d)
    causal = bool(kwargs.get("is_causal", getattr(module, "is_causal", False)))
    if implementation == "sdpa" and kwargs.get("position_bias") is None and prefix.full and (
            (causal and (prefix.right_padded or attention_mask is None)) or (not causal and attention_mask is None)):
        return _sdpa_without_row_mask(module, query, key, value, causal, **kwargs)

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
    return original_attention(module, implementation)(module, query, key, value, mask, **kwargs)


def _sdpa_without_row_mask(module, query, key, value, causal: bool, **kwargs):
    """SDPA over ``[prefix | keys]`` with no per-row mask, so it may pick the flash or memory-efficient
    kernel: causal modules get a lower-right causal bias (query ``i`` of ``q`` sees the whole prefix and the
    keys up to its own position), others none. Grouped-query heads go to SDPA as they are (``enable_gqa``),
    not repeated. Right padding needs no mask under causal attention: no real query sees a later key, and
    padding queries' outputs are never read. Returns ``(batch, q, heads, head_dim)``, as transformers'
    SDPA function does."""
    q, k = query.shape[2], key.shape[2]
    mask = None
    if causal and q > 1:
        try:
            mask = _lower_right(q, k)
        except RuntimeError:  # a tensor subclass cannot be made under some dispatch modes: the plain mask
            mask = torch.ones(q, k, dtype=torch.bool, device=query.device).tril(k - q)  # (q, k)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=kwargs.get("dropout", 0.0), scale=kwargs.get("scaling"),
        enable_gqa=query.shape[1] != key.shape[1])  # (B, heads, q, d)
    return out.transpose(1, 2).contiguous(), None


@functools.lru_cache(maxsize=64)
def _lower_right(q: int, k: int):
    """``torch.nn.attention.bias.causal_lower_right(q, k)``, one object per shape (it holds no data)."""
    from torch.nn.attention.bias import causal_lower_right

    return causal_lower_right(q, k)


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _prefix_attention)


_active: list[dict] = [{}]  # the prefixes of the innermost prefix_context (compute runs on one thread)


def active_prefixes() -> dict:
    """The prefixes in force now (module -> PrefixKV; empty outside any ``prefix_context``): what a layer
    recomputed in backward (``recompute.py``) must see again."""
    return _active[-1]


@contextlib.contextmanager
def prefix_context(prefixes: dict):
    """Within the block, each attention module in ``prefixes`` (module -> PrefixKV) uses its prefix.
    Re-entrant: an inner block (a recompute during backward) puts back what the outer one set."""
    if not prefixes:
        yield
        return
    _register()
    saved = {}
    _active.append(prefixes)
    try:
        for module, prefix in prefixes.items():
            saved[module] = (module.__dict__.get("config", module.config), module.__dict__.get(_PREFIX_ATTR))
            base = saved[module][0]
            if not routes_to(module, ATTENTION_NAME):
                module.__dict__["config"] = AttentionConfigView(base, ATTENTION_NAME)
            module.__dict__[_PREFIX_ATTR] = prefix
        yield
    finally:
        _active.pop()
        for module, (config, previous) in saved.items():
            module.__dict__["config"] = config
            if previous is None:
                module.__dict__.pop(_PREFIX_ATTR, None)
            else:
                module.__dict__[_PREFIX_ATTR] = previous
