"""Send one attention module's calls to a function of ours: the config view that prefix tuning
(``prefix_attention.py``) and suffix gating (``suffix_gate.py``) put on a module.

transformers (5.x) attention modules hand query/key/value to the function registered under
``self.config._attn_implementation``. A module whose ``config`` is an ``AttentionConfigView`` reads every
setting from the model's config except that name, which is ours; our function calls
``original_attention`` for the work the model would have done.
"""

from __future__ import annotations

import sys


class AttentionConfigView:
    """A module's config, except that attention dispatches to ``implementation``."""

    def __init__(self, base, implementation: str):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_implementation", implementation)

    @property
    def _attn_implementation(self) -> str:
        return object.__getattribute__(self, "_implementation")

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_base"), name)


def routes_to(module, implementation: str) -> bool:
    """Whether ``module``'s own config is already a view that routes to ``implementation``."""
    view = module.__dict__.get("config")
    return isinstance(view, AttentionConfigView) and view._attn_implementation == implementation


def original_attention(module, implementation: str | None):
    """The function ``implementation`` names for ``module``: its own module's eager one for ``"eager"``."""
    if implementation in (None, "eager"):
        return getattr(sys.modules[type(module).__module__], "eager_attention_forward")
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[implementation]
