"""The ``train`` op's check before it loads a model on CUDA: refuse a job the planner says will not fit.

On the CPU there is no reliable budget (the OS swaps, other processes come and go), so nothing is
refused there; ``training.memory_check: false`` turns the check off everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

from softprompt_worker.errors import InvalidArgumentError, OutOfMemoryError
from softprompt_worker.planner.plan import plan_job

log = logging.getLogger("softprompt_worker")

GIB = 1 << 30


def refuse_if_too_large(body: dict[str, Any], device, memory_check: bool, shard_model: bool) -> None:
    """Raise ``OutOfMemoryError`` with the estimate, the device's memory and what to change when the job's
    planned peak exceeds the device's total memory. Quiet where the planner has no estimate (an
    encoder-decoder model, a sharded model)."""
    if not memory_check or device.type != "cuda" or shard_model:
        return
    import torch

    budget = int(torch.cuda.get_device_properties(device).total_memory)
    try:
        result = plan_job(body, device="cuda", budget_bytes=budget)
    except InvalidArgumentError as exc:
        log.info("memory check skipped: %s", exc)
        return
    if result["fits"]:
        return
    raise OutOfMemoryError(refusal_message(result, str(device)), details={
        "estimated_bytes": result["peak_bytes"], "available_bytes": budget, "breakdown": result["breakdown"],
        "suggestions": result["suggestions"]})


def refusal_message(result: dict[str, Any], device: str) -> str:
    parts = ", ".join(f"{name} {gib(n)}" for name, n in result["breakdown"].items() if n >= GIB // 20)
    fixes = [s["text"] for s in result["suggestions"] if s["fits"]][:3]
    advice = f"; fits with: {'; or '.join(fixes)}" if fixes else "; no single change fits: combine them or use a larger device"
    return (f"the job needs about {gib(result['peak_bytes'])} ({parts}) but {device} has {gib(result['budget_bytes'])}"
            f"{advice}; training.memory_check false trains anyway (docs/memory.md)")


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"
