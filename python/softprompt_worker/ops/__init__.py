"""Op discovery: the worker imports each module in `OP_MODULES`; importing registers its ops.

To add ops, append one line with your module's name. A module that fails to import (a missing
optional dependency, say) is logged and skipped; the worker still serves the rest.
`SOFTPROMPT_EXTRA_OP_MODULES` (comma-separated module names) adds modules at run time, e.g. test ops.
"""

from __future__ import annotations

import importlib
import logging
import os

OP_MODULES: list[str] = [
    "softprompt_worker.ops.control",
    "softprompt_worker.ops.status",
    "softprompt_worker.ops.data",
    "softprompt_worker.ops.train",
    "softprompt_worker.ops.train_many",
    "softprompt_worker.ops.checkpoints",
    "softprompt_worker.ops.prompts",
    "softprompt_worker.ops.inference",
    "softprompt_worker.ops.peft",
    "softprompt_worker.ops.embedding",
    "softprompt_worker.ops.rerank",
    "softprompt_worker.ops.plan",
]

EXTRA_ENV = "SOFTPROMPT_EXTRA_OP_MODULES"

log = logging.getLogger(__name__)


def load_op_modules(modules: list[str] | None = None) -> dict[str, str]:
    """Import `modules` (default: `OP_MODULES` plus `$SOFTPROMPT_EXTRA_OP_MODULES`).

    Returns the modules that failed, as name -> "ExceptionType: text". Never raises.
    """
    if modules is None:
        extra = [m.strip() for m in os.environ.get(EXTRA_ENV, "").split(",") if m.strip()]
        modules = OP_MODULES + extra
    failed: dict[str, str] = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure must not stop the worker
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning("op module %s not loaded: %s", name, failed[name], exc_info=True)
    return failed
