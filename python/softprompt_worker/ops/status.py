"""The ``status`` op: what this worker holds and does, answered at once even under full load.

    status {} -> {"models": [{"model": ModelSpec, "device", "dtype", "bytes"}],
                  "jobs": [{"request_id", "op", "client", "state": "running"|"queued", "job_id", "run_dir",
                            "method", "age_s", "step"?, "total_steps"?, "loss"?}],
                  "queues": {"inference", "training"},
                  "device": {"holder", "waiting": {"inference", "training"}, "handovers"},
                  "max_training_jobs",
                  "batching": {"max_rows", "wait_ms", "runs", "requests",
                               "ops": {op: {"runs", "requests"}}},  # merged runs, the requests they answered
                  "compute": health's compute snapshot}

A control op (answered by the socket loop, never queued); it reads the model cache and the scheduler
without taking the locks a loading model holds.
"""

from __future__ import annotations

from softprompt_worker.models.cache import loaded_models
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("status", control=True)
def status(req: Request, ctx: OpContext) -> Reply:
    scheduler = ctx.state.scheduler
    work = scheduler.snapshot() if scheduler is not None else {
        "jobs": [], "queues": {"inference": 0, "training": 0}, "device": {}, "max_training_jobs": 0}
    return Reply(body={"models": loaded_models(ctx.state), **work, "compute": ctx.state.compute.snapshot()})
