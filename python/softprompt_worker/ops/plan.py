"""The ``plan`` op: a training job's estimated peak memory, whether it fits a budget, what to change.

Request body: the ``train`` op's fields (``data``, ``run_dir``, ``resume_from`` and ``job_id`` are
accepted and ignored) plus::

    {"gpu_bytes"?: int,            # the budget; default: the CUDA device's total memory, if there is one
     "device"?: "cuda" | "cpu",    # what to plan for; default: cuda when gpu_bytes is given, else the model's
                                   # device when it names one, else cuda when CUDA is present, else cpu
     "negatives"?: int}            # hard negatives per row (suffix, passage tuning); default 0 / max_hard_negatives

Reply body: ``planner.plan.plan_job``'s result (``peak_bytes``, ``budget_bytes``, ``fits``, ``breakdown``,
``settings``, ``longest_seq``, ``suggestions``) and ``budget_source`` ("given" | "device" | null). No
weights are loaded: the model is built on the ``meta`` device.
"""

from __future__ import annotations

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op
from softprompt_worker.planner.plan import plan_job

_FIELDS = {"model", "method", "method_config", "task", "task_options", "training", "data", "run_dir", "resume_from",
           "job_id", "gpu_bytes", "device", "negatives"}


@op("plan")
def plan_op(req: Request, ctx: OpContext) -> Reply:
    import torch

    body = req.body
    unknown = sorted(map(str, set(body) - _FIELDS))
    if unknown:
        raise InvalidArgumentError(f"plan: unknown field(s) {unknown}; known: {sorted(_FIELDS)}")
    budget = _count(body, "gpu_bytes", minimum=1)
    negatives = _count(body, "negatives", minimum=0)
    device = body.get("device") or _device(body, budget is not None, torch.cuda.is_available())
    source = "given" if budget is not None else None
    if budget is None and device == "cuda" and torch.cuda.is_available():
        budget, source = int(torch.cuda.get_device_properties(0).total_memory), "device"
    result = plan_job(body, device=device, budget_bytes=budget, negatives=negatives)
    return Reply(body={**result, "budget_source": source})


def _count(body: dict, name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or value < minimum:
        raise InvalidArgumentError(f"{name}: expected an integer >= {minimum}, got {value!r:.40}")
    return value


def _device(body: dict, budget_given: bool, cuda_present: bool) -> str:
    if budget_given:
        return "cuda"
    named = (body.get("model") or {}).get("device", "auto") if isinstance(body.get("model"), dict) else "auto"
    if isinstance(named, str) and named != "auto":
        return "cuda" if named.startswith("cuda") else "cpu"
    return "cuda" if cuda_present else "cpu"
