"""Gradient checkpointing for the frozen model: keep each layer's input, recompute its activations in backward.

Training a soft prompt backpropagates through the whole frozen model (to reach the vectors at its input or
inside its attention), so activations, not weights or optimizer state, set the memory of a long-sequence
or large-batch step. ``recomputed_layers(model)`` wraps every transformer layer of the model in
``torch.utils.checkpoint`` (non-reentrant) for the duration of a block: the forward keeps only each
layer's inputs; backward runs the layer again to get its activations. Memory per layer drops from all of
its activations to its input; compute grows by about one forward pass (~1.33x a step).

Why not ``model.gradient_checkpointing_enable()``: transformers checkpoints only in ``train()`` mode and a
frozen model stays in ``eval()`` (no dropout); and PEFT refuses prefix tuning with checkpointing, because
prefixes enter through the cache. Our prefixes enter inside attention (``prefix_attention``), which must
be active again when backward recomputes a layer: the recompute runs under the same prefixes
(``prefix_attention.active_prefixes``), so gradients equal the plain run's for every method.

Layers are the model's ``_no_split_modules`` (transformers' own list of blocks that must stay whole:
``LlamaDecoderLayer``, ``GPT2Block``, ``T5Block``, ...). A layer called with a key/value cache (suffix
tuning's cached text pass, generation) runs plainly: recomputing it would append to the cache twice.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from softprompt_worker.methods.prefix_attention import active_prefixes, prefix_context



def transformer_layers(model: nn.Module) -> list[nn.Module]:
    """The model's repeated blocks, by transformers' ``_no_split_modules`` class names."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names and m is not model]


@contextlib.contextmanager
def recomputed_layers(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, each layer of ``model`` keeps only its inputs when autograd records it."""
    if not enabled:
        yield
        return
    layers = transformer_layers(model)
    try:
        for layer in layers:
            layer.forward = functools.partial(_checkpointed, type(layer).forward.__get__(layer))
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)


def _checkpointed(forward, *args: Any, **kwargs: Any):
    if not torch.is_grad_enabled() or any(_is_cache(a) for a in (*args, *kwargs.values())):
        return forward(*args, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, context_fn=_recompute_under_the_same_prefixes,
                      **kwargs)


def _is_cache(value: Any) -> bool:
    """A transformers key/value cache (passed by keyword or, as GPT-2 does, by position)."""
    from transformers.cache_utils import Cache

    return isinstance(value, Cache)


def _recompute_under_the_same_prefixes():
    """``checkpoint``'s context_fn: nothing extra for the forward; the recompute in backward runs with the
    prefixes that were active when the layer first ran (none, for methods without prefixes)."""
    return contextlib.nullcontext(), prefix_context(active_prefixes())
