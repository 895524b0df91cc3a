"""The ``train_many`` op: several training jobs on one frozen model, trained in shared passes.

Request body::

    {"jobs": [train body, ...]}        # 1..MAX_FUSED_JOBS bodies of the ``train`` op (ops/train.py)

Each job is exactly what ``train`` runs alone (its own optimizer, schedule, data order, evaluations,
checkpoints, run directory, events.jsonl and report), and its losses and final prompt equal the job alone's
up to float rounding; only the frozen model's forward and backward passes are shared (training/fused.py).

Events: each job's ``train`` events with ``"job": index`` added. When a job ends, alone (it finished, was
cancelled, or failed; the others go on):
``{"event": "job_end", "job": i, "reply": <its train reply>}`` or ``{"event": "job_end", "job": i,
"error": {"code", "message", ...}}``. Final reply: ``{"jobs": [{"reply": ...} | {"error": ...}, ...]}`` in the
order of the request. ``cancel`` with ``part: i`` cancels job ``i`` alone; cancelling the request cancels all.

Which jobs fuse, checked before any model loads; a job that cannot is refused with ``invalid_argument`` naming
it and the reason (never a silent fallback to one-at-a-time):
- the same ``model`` (a frozen model is shared, so it must be one model);
- a method that feeds the model through an ``Injection`` (prompt, prefix and P-tuning: ``LMSoftPromptMethod``)
  and a task whose loss reads the logits (generation, classification). Suffix and passage tuning build
  passes of their own (embeddings of several texts, query likelihoods per passage): train them with ``train``;
- the same ``training.dtype`` and ``training.gradient_checkpointing`` (one forward runs for all);
- no ``training.shard_model`` and no torchrun worker group; run directories all different.

Crash-resume: each job writes checkpoints as ``train`` does; a ``train_many`` whose jobs carry ``resume_from``
picks each up where its checkpoint left it (the SDK resubmits the unfinished jobs after a crash).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

from softprompt_worker import limits
from softprompt_worker.distributed.group import current_group
from softprompt_worker.errors import InvalidArgumentError, WorkerError, from_exception
from softprompt_worker.methods.base import LMSoftPromptMethod
from softprompt_worker.methods.registry import method_class
from softprompt_worker.planner.admission import wait_reason
from softprompt_worker.ops.train import PreparedJob, check_job, prepare_job, run_job
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.training.fused import FusedGroup
from softprompt_worker.training.loop import autocast_for

SHARED = ("dtype", "gradient_checkpointing")  # training fields every fused job must agree on


def _admission(body: dict[str, Any], state) -> str | None:
    jobs = body.get("jobs")
    return wait_reason([j for j in jobs if isinstance(j, dict)], state) if isinstance(jobs, list) else None


# one job for the scheduler: its members yield the device between rounds; admitted as train's are
@op("train_many", training=True, admission=_admission)
def train_many(req: Request, ctx: OpContext) -> Reply:
    bodies = _bodies(req.body)
    group_of_ranks = current_group()
    if group_of_ranks is not None and group_of_ranks.world_size > 1:
        raise InvalidArgumentError("train_many: not under a torchrun worker group (its ranks train one job at a "
                                   "time); send each job as a train request")
    check_fusable(bodies)
    checked = [_for_job(i, check_job, body) for i, body in enumerate(bodies)]  # all, before any touches the disk
    jobs = [_for_job(i, prepare_job, body, ctx, checked[i]) for i, body in enumerate(bodies)]
    frozen = jobs[0].method.frozen
    for i, job in enumerate(jobs[1:], start=1):
        if job.method.frozen is not frozen:  # pragma: no cover - equal model specs share the cached model
            raise InvalidArgumentError(f"jobs[{i}].model: loaded as a different frozen model than jobs[0]'s")
    config = jobs[0].config
    group = FusedGroup(frozen, members=len(jobs), autocast=autocast_for(config.dtype, frozen.device),
                       gradient_checkpointing=config.gradient_checkpointing, yield_turn=ctx.yield_turn)
    ends: list[dict[str, Any]] = [{} for _ in jobs]

    def member(i: int, job: PreparedJob) -> None:
        send = lambda event: ctx.emit({**event, "job": i})  # noqa: E731
        try:
            with group.joined(i):
                reply = run_job(job, ctx, send=send, cancelled=lambda: ctx.part_cancelled(i),
                                micro_step=group.micro_step(i, job.method, job.task))
            ends[i] = {"reply": reply.body}
        except Exception as exc:  # noqa: BLE001 - this job ends alone; the others go on
            ends[i] = {"error": from_exception(exc).to_body()}
        ctx.emit({"event": "job_end", "job": i, **ends[i]})

    threads = [threading.Thread(target=member, args=(i, job), name=f"train_many-{req.id}-{i}", daemon=True)
               for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Reply(body={"jobs": ends, "rounds": group.rounds})


def _for_job(i: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, its error naming the job: ``jobs[2]: training.steps: must be > 0``."""
    try:
        return fn(*args)
    except WorkerError as exc:
        raise type(exc)(f"jobs[{i}]: {exc.message}", details=exc.details) from exc


def _bodies(body: dict[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(body) - {"jobs"})
    if unknown:
        raise InvalidArgumentError(f"train_many: unknown field(s) {unknown}; known: ['jobs']")
    jobs = body.get("jobs")
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= limits.MAX_FUSED_JOBS:
        raise InvalidArgumentError(f"jobs: expected a list of 1..{limits.MAX_FUSED_JOBS} train bodies, got "
                                   f"{len(jobs) if isinstance(jobs, list) else type(jobs).__name__}")
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise InvalidArgumentError(f"jobs[{i}]: expected a train body (a map), got {type(job).__name__}")
    return jobs


def check_fusable(bodies: list[dict[str, Any]]) -> None:
    """InvalidArgumentError naming the first job that cannot train in shared passes with jobs[0], and why."""
    first = bodies[0]
    run_dirs: dict[str, int] = {}
    for i, body in enumerate(bodies):
        method, task = body.get("method"), body.get("task")
        cls = method_class(method) if isinstance(method, str) else None
        if cls is not None and not issubclass(cls, LMSoftPromptMethod):
            raise InvalidArgumentError(
                f"jobs[{i}].method: {method!r} cannot train fused: it runs passes of its own, not one forward of "
                "the model with its vectors injected (fused: prompt_tuning, prefix_tuning, p_tuning); train it "
                "with a train request")
        if isinstance(task, str) and not hasattr(task_class(task), "loss_from_logits"):
            raise InvalidArgumentError(f"jobs[{i}].task: {task!r} cannot train fused (fused: generation, "
                                       "classification); train it with a train request")
        if _canonical(body.get("model")) != _canonical(first.get("model")):
            raise InvalidArgumentError(f"jobs[{i}].model: differs from jobs[0].model; fused jobs share one frozen "
                                       "model (send jobs on other models in another train_many)")
        training, first_training = body.get("training") or {}, first.get("training") or {}
        if not isinstance(training, dict) or not isinstance(first_training, dict):
            continue  # prepare_job names the bad field
        for name in SHARED:
            if training.get(name) != first_training.get(name):
                raise InvalidArgumentError(f"jobs[{i}].training.{name}: {training.get(name)!r} differs from "
                                           f"jobs[0]'s {first_training.get(name)!r}; one forward runs for every "
                                           "fused job, so they must agree")
        if training.get("shard_model"):
            raise InvalidArgumentError(f"jobs[{i}].training.shard_model: fused jobs run in one process; "
                                       "shard a model with a train request under torchrun")
        run_dir = body.get("run_dir")
        if isinstance(run_dir, str) and run_dir:
            key = str(Path(run_dir).resolve())
            if key in run_dirs:
                raise InvalidArgumentError(f"jobs[{i}].run_dir: the same directory as jobs[{run_dirs[key]}]'s; "
                                           "each job writes its own run directory")
            run_dirs[key] = i


def _canonical(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)
