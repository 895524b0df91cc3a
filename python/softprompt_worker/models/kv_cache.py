"""The key/value cache across transformers versions: 5.2x renamed ``past_key_values`` to ``cache``.

    out = model(input_ids=ids, use_cache=True)
    out = model(input_ids=next_ids, use_cache=True, **cache_kwargs(model, cache_of(out)))
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """``{"cache": cache}`` or ``{"past_key_values": cache}``, whichever ``model.forward`` takes."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache}


def cache_of(out: Any) -> Any:
    """The key/value cache of a model output, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def layer_key_values(cache: Any) -> list[tuple[Any, Any]]:
    """Per layer ``(keys, values)``, each ``(batch, kv_heads, seq, head_dim)``, from a ``DynamicCache``
    (``.layers`` in transformers >= 4.56, ``key_cache``/``value_cache`` before) or a legacy tuple."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]
