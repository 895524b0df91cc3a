"""What this worker can do here: versions, devices, methods (the `capabilities` of hello/info).

Nothing here raises for a missing dependency: a missing torch/transformers/peft is reported as a `None`
version and listed in `missing`, so `hello` still answers and the SDK can tell the user how to fix it.
Shape (WIRE.md): `{"python", "torch", "transformers", "peft", "devices", "cuda", "bf16", "gpus",
"methods"}` plus `"missing": [str]` and `"install_hint": str` when something is missing.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import platform
import threading
from typing import Any

log = logging.getLogger(__name__)

REQUIRED = ("torch", "transformers", "peft")
INSTALL_HINT = "pip install 'softprompt-worker' (or: pip install torch transformers peft) in the worker's Python"


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken install is as good as missing
        log.warning("cannot import %s: %s: %s", module, type(exc).__name__, exc)
        return None
    return str(getattr(mod, "__version__", None) or importlib.metadata.version(module))


def _devices() -> dict[str, Any]:
    try:
        import torch
    except Exception:  # noqa: BLE001
        return {"devices": [], "cuda": False, "bf16": False, "gpus": []}
    cuda = bool(torch.cuda.is_available())
    gpus = []
    devices = ["cpu"]
    if cuda:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"name": props.name, "memory_bytes": int(props.total_memory)})
            devices.append(f"cuda:{i}")
    # CPU bf16 works (slowly) everywhere torch does; on CUDA it needs Ampere or newer (not emulated).
    bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False)) if cuda else True
    return {"devices": devices, "cuda": cuda, "bf16": bf16, "gpus": gpus}


def _methods() -> list[str]:
    try:
        from softprompt_worker.methods import registry
    except Exception as exc:  # noqa: BLE001 - methods are optional for the control path
        log.warning("method registry not available: %s: %s", type(exc).__name__, exc)
        return []
    try:
        return list(registry.method_names())
    except Exception as exc:  # noqa: BLE001
        log.warning("method registry failed: %s: %s", type(exc).__name__, exc)
        return []


_FIRST_CALL = threading.Lock()


def capabilities() -> dict[str, Any]:
    """The capabilities map (computed once per process; imports torch, transformers and peft on the first
    call). Thread-safe: a second caller waits for the first, so no two threads import transformers at once
    (its lazy module then hands one of them a half-made module: "cannot import name 'AutoModel'"). The
    worker computes it in the background at start, and every compute op calls it before it runs."""
    with _FIRST_CALL:
        return _capabilities()


@functools.lru_cache(maxsize=1)
def _capabilities() -> dict[str, Any]:
    caps: dict[str, Any] = {"python": platform.python_version()}
    for module in REQUIRED:
        caps[module] = _version(module)
    caps.update(_devices())
    caps["methods"] = _methods() if caps["torch"] else []
    missing = [m for m in REQUIRED if caps[m] is None]
    if missing:
        caps["missing"] = missing
        caps["install_hint"] = INSTALL_HINT
    return caps
