"""Whether a training job may start now, on a CUDA device that running jobs already use (serving/scheduler.py).

A job needs its planned peak (``plan.plan_job``) less what it would share: the frozen weights when that model
is already loaded, and the CUDA context reserve the process holds once. It may start when that fits the
device's free memory now, counting what torch's allocator has cached but does not use as free. A job that
must wait stays first in the training queue (its ``queued`` event says why) and starts when a running job
ends; with no job running it always starts, and its own check (``check.refuse_if_too_large``) decides.

On the CPU there is no budget to check (the OS pages), and where the planner has no estimate (an
encoder-decoder model, a sharded model, an unplannable body) every job may start.

    reason = wait_reason(body, state)     # None: start it; else "needs about 9.1 GiB, 6.0 GiB free on cuda:0"
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from softprompt_worker.errors import WorkerError
from softprompt_worker.models import ModelSpec, resolve_device
from softprompt_worker.models.cache import MODEL_CACHE, model_key
from softprompt_worker.planner.check import gib
from softprompt_worker.planner.plan import plan_job

log = logging.getLogger("softprompt_worker")


def free_bytes(device) -> int:
    """What a new job can use on ``device`` now: the driver's free memory plus torch's cached, unused blocks."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return int(free) + int(torch.cuda.memory_reserved(device)) - int(torch.cuda.memory_allocated(device))


def wait_reason(bodies: list[dict[str, Any]], state, *, free: Callable[[Any], int] = free_bytes) -> str | None:
    """Why the ``train`` jobs ``bodies`` (one, or a ``train_many``'s, which share one model) should wait for
    memory; None when they may start now (module docstring)."""
    need = need_bytes(bodies, state)
    if need is None:
        return None
    device, bytes_ = need
    available = free(device)
    if bytes_ <= available:
        return None
    return f"needs about {gib(bytes_)}, {gib(available)} free on {device}: waits for a running job to end"


def need_bytes(bodies: list[dict[str, Any]], state) -> tuple[Any, int] | None:
    """``(device, bytes)`` the jobs would add to the device now; None off CUDA or without an estimate."""
    device, total, weights = None, 0, 0
    for body in bodies:
        try:
            spec = ModelSpec.from_dict(body.get("model"))
            device = resolve_device(spec.device)
            training = body.get("training") or {}
            if device.type != "cuda" or training.get("shard_model") or training.get("memory_check") is False:
                return None
            plan = plan_job(body, device="cuda", budget_bytes=None)
            loaded = any(key == model_key(spec) for (_, key), _ in state.entries(MODEL_CACHE))
        except (WorkerError, TypeError, ValueError, AttributeError) as exc:  # the job's own checks report a bad body
            log.debug("admission: no estimate (%s)", exc)
            return None
        parts = plan["breakdown"]
        # the CUDA context is held already (a job runs: else nobody asks); a loaded model is shared
        total += plan["peak_bytes"] - parts.get("cuda_reserve", 0) - parts["weights"]
        weights = 0 if loaded else max(weights, parts["weights"])
    return (device, int(total + weights)) if device is not None else None
