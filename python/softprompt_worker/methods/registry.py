"""The method registry: the one place that maps a method name to its implementation.

The name is the same everywhere: registry key, module name, proto ``Checkpoint.method``, TS literal.
Adding a method means adding its module under ``methods/`` and one line to ``_MODULES``: what it trains
and exports is declared on its class (``base.SoftPromptMethod``), and callers ask through the functions
below (``methods_training``, ``method_for_peft_type``) instead of listing names.
"""

from __future__ import annotations

import importlib

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.base import SoftPromptMethod

_MODULES = {
    "prompt_tuning": "softprompt_worker.methods.prompt_tuning",
    "prefix_tuning": "softprompt_worker.methods.prefix_tuning",
    "suffix_tuning": "softprompt_worker.methods.suffix_tuning",
    "passage_tuning": "softprompt_worker.methods.passage_tuning",
    "p_tuning": "softprompt_worker.methods.p_tuning",
}


def method_names() -> list[str]:
    """Names of the methods whose module imports in this environment."""
    return [name for name in _MODULES if _try_import(name) is not None]


def method_class(name: str) -> type[SoftPromptMethod]:
    """The class implementing ``name``; raises InvalidArgumentError naming the known methods."""
    if name not in _MODULES:
        raise InvalidArgumentError(f"method: {name!r} is not one of {', '.join(_MODULES)}")
    module = importlib.import_module(_MODULES[name])
    cls = getattr(module, "METHOD")
    if cls.name != name:  # pragma: no cover - a wiring bug
        raise RuntimeError(f"module {_MODULES[name]} declares method {cls.name!r}, registered as {name!r}")
    return cls


def methods_training(task: str) -> list[str]:
    """Names of the available methods that task ``task`` trains (their ``tasks`` declare it)."""
    return [name for name in method_names() if task in method_class(name).tasks]


def peft_methods() -> list[type[SoftPromptMethod]]:
    """The available methods that export to and import from a PEFT adapter format."""
    return [cls for cls in map(method_class, method_names()) if cls.peft_type is not None]


def method_for_peft_type(peft_type: object) -> type[SoftPromptMethod]:
    """The method whose ``peft_type`` is ``peft_type``; InvalidArgumentError naming the supported ones."""
    for cls in peft_methods():
        if cls.peft_type == peft_type:
            return cls
    supported = ", ".join(str(cls.peft_type) for cls in peft_methods())
    raise InvalidArgumentError(f"checkpoint_import_peft: peft_type {peft_type!r} is not supported ({supported})")


def _try_import(name: str):
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError:
        return None
