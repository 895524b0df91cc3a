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
