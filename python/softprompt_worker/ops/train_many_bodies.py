"""The request, reply and own event of op ``train_many`` (``ops/train_many.py``), declared once: the worker
parses requests with them (``fields.parse``) and builds replies from them, and ``make schema`` exports them
to JSON Schema and the SDK's zod schemas and types (docs/schema.md). Each job is a ``train`` body
(``train_request.json``), checked as ``train`` checks it; each job's events are ``train``'s
(``ops/train_events.py``) with ``"job": index`` added."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_FUSED_JOBS
from softprompt_worker.ops.train_bodies import TrainReply

JOBS = f"expected a list of 1..{MAX_FUSED_JOBS} train bodies"


@dataclass
class TrainManyRequest:
    """Op ``train_many``: several training jobs on one frozen model, trained in shared passes."""

    jobs: list[dict[str, Any]] = option(min_items=1, max_items=MAX_FUSED_JOBS,
                                        errors={"min_items": JOBS, "max_items": JOBS},
                                        doc="train bodies (train_request.json), each checked as train checks it")


@dataclass(kw_only=True)
class JobEnd:
    """How one job ended: its ``train`` reply, or its error."""

    reply: TrainReply | None = option(None, absent=True, ref="train_reply", doc="the job's train reply")
    error: dict[str, Any] | None = option(None, absent=True, doc="the job's error body: {code, message, details?}")


@dataclass(kw_only=True)
class JobEndEvent(JobEnd):
    """One job ended (finished, cancelled or failed); the others go on."""

    event: str = option(choices=("job_end",), doc="'job_end': which event this is")
    job: int = option(ge=0, doc="the job's index in the request")


@dataclass
class TrainManyReply:
    """Op ``train_many``'s reply."""

    jobs: list[JobEnd] = option(doc="how each job ended, in the order of the request")
    rounds: int = option(ge=0, doc="shared passes run")


BODIES = {"train_many_request": TrainManyRequest, "train_many_reply": TrainManyReply,
          "train_many_job_end_event": JobEndEvent}
