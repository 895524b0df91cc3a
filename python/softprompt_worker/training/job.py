"""A training job's envelope, declared once (``fields.option``): the fields the ``train`` op runs and the
``plan`` op (and the scheduler's admission) estimates, and the ``training`` fields the train op reads itself.
The ops' full bodies are ``ops/train_bodies.py`` and ``ops/plan_bodies.py``; the planner parses a job with
``JobRequest`` here (it may see a body no op has checked yet: the scheduler asks it before the job starts)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option, parse
from softprompt_worker.limits import MAX_STEPS
from softprompt_worker.training.trackers import TRACKERS


@dataclass(kw_only=True)
class JobRequest:
    """A training job: what ``train`` runs and ``plan`` estimates."""

    model: dict[str, Any] = option(ref="model", doc="the frozen base model")
    method: str = option(doc="the soft-prompt method (methods.json)")
    method_config: dict[str, Any] | None = option(None, doc=(
        "the method's options (<method>.json); when resuming, given only to be checked against the checkpoint's"))
    task: str = option(doc="what the prompt is trained for: one of the tasks the method trains (methods.json)")
    task_options: dict[str, Any] | None = option(None, doc="the task's options (<task>_task.json)")
    training: dict[str, Any] | None = option(None, doc="TrainingConfig (training.json) and TrainingExtras "
                                                        "(training_extras.json) fields")
    resume_from: str | None = option(None, non_empty=True,
                                     doc="a checkpoint with training state: continue that run (its method options)")


@dataclass(kw_only=True)
class TrainingExtras:
    """The ``training`` fields the train op reads itself, not the training loop: checkpoint retention and
    trackers."""

    keep_last: int = option(0, ge=0, le=MAX_STEPS, sdk={"optional": True},
                            doc="checkpoints this job keeps, older ones deleted; 0 keeps every one")
    report_to: list[str] | None = option(None, choices=TRACKERS, doc="trackers to log to (trackers.py)")


def split_training(training: dict[str, Any] | None) -> tuple[TrainingExtras, dict[str, Any]]:
    """A job's ``training`` map as its ``TrainingExtras`` (parsed) and the rest, ``TrainingConfig``'s."""
    rest = dict(training or {})
    names = [f.name for f in dataclasses.fields(TrainingExtras)]
    return parse(TrainingExtras, {k: rest.pop(k) for k in names if k in rest}, "training."), rest
