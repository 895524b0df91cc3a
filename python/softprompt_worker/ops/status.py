"""The ``status`` op: what this worker holds and does, answered at once even under full load: ``{}`` ->
``StatusReply`` (``ops/control_bodies.py``, exported to ``proto/schema/`` and the SDK, docs/schema.md).

A control op (answered by the socket loop, never queued); it reads the model cache and the scheduler
without taking the locks a loading model holds.
"""

from __future__ import annotations

from softprompt_worker.fields import build, to_body
from softprompt_worker.models.cache import loaded_models
from softprompt_worker.ops.control_bodies import StatusReply
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op

NO_SCHEDULER = {"jobs": [], "queues": {"inference": 0, "training": 0}, "max_training_jobs": 0,
                "device": {"holder": None, "waiting": {"inference": 0, "training": 0}, "handovers": 0},
                "batching": {"max_rows": 0, "wait_ms": 0.0, "runs": 0, "requests": 0}}  # a worker not serving yet


@op("status", control=True)
def status(req: Request, ctx: OpContext) -> Reply:
    scheduler = ctx.state.scheduler
    work = scheduler.snapshot() if scheduler is not None else NO_SCHEDULER
    body = {"models": loaded_models(ctx.state), **work, "compute": ctx.state.compute.snapshot()}
    return Reply(body=to_body(build(StatusReply, body)))
