"""The ``plan`` op: a training job's estimated peak memory, whether it fits a budget, what to change.

The bodies are declared once in ``ops/plan_bodies.py`` (``PlanRequest``: the ``train`` op's job fields, its
other fields accepted and ignored, plus ``gpu_bytes``, ``device``, ``negatives`` -> ``PlanReply``: ``plan_job``'s
result and ``budget_source``), exported to ``proto/schema/`` and the SDK (docs/schema.md). No weights are
loaded: the model is built on the ``meta`` device.
"""

from __future__ import annotations

from softprompt_worker.fields import build, check_unknown, parse, to_body
from softprompt_worker.ops.plan_bodies import PlanReply, PlanRequest
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op
from softprompt_worker.planner.plan import plan_job


@op("plan")
def plan_op(req: Request, ctx: OpContext) -> Reply:
    import torch

    check_unknown(PlanRequest, req.body, "plan")
    body = parse(PlanRequest, req.body)
    budget = body.gpu_bytes
    device = body.device or _device(body, budget is not None, torch.cuda.is_available())
    source = "given" if budget is not None else None
    if budget is None and device == "cuda" and torch.cuda.is_available():
        budget, source = int(torch.cuda.get_device_properties(0).total_memory), "device"
    result = plan_job(req.body, device=device, budget_bytes=budget, negatives=body.negatives)
    return Reply(body=to_body(build(PlanReply, {**result, "budget_source": source})))


def _device(body: PlanRequest, budget_given: bool, cuda_present: bool) -> str:
    if budget_given:
        return "cuda"
    named = body.model.get("device", "auto")
    if isinstance(named, str) and named != "auto":
        return "cuda" if named.startswith("cuda") else "cpu"
    return "cuda" if cuda_present else "cpu"
