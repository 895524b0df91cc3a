"""The request and reply bodies of ops ``train`` and ``run_inspect`` (``ops/train.py``), declared once: the
worker parses requests with them (``fields.parse``) and builds replies from them, and ``make schema``
exports them to JSON Schema and the SDK's zod schemas and types (docs/schema.md). The job's own fields are
``training/job.py`` (``JobRequest``, ``plan``'s too, and ``TrainingExtras``); the events are
``ops/train_events.py``.

The nested options have schemas of their own and are parsed where they are read: ``method_config`` by the
method's config class (``<method>.json``), ``task_options`` by the task's (``<task>_task.json``),
``training`` by ``TrainingConfig`` (``training.json``) plus ``TrainingExtras`` below, ``model`` by
``ModelSpec``. ``data`` is ``DataOptions`` (``data.json``) plus its sources (``{path}`` / ``{dataset}`` /
``{rows}``), which stay hand-written (``data.py``; docs/schema.md says why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.ops.train_events import BestCheckpoint, STATUSES, TrainingSummary
from softprompt_worker.training.job import JobRequest, TrainingExtras


@dataclass(kw_only=True)
class TrainRequest(JobRequest):
    """Op ``train``: one streaming request trains one soft prompt and writes its run directory."""

    data: dict[str, Any] = option(doc="the rows: {train, eval?} sources and DataOptions (data.json)")
    run_dir: str = option(non_empty=True, doc="job.json, events.jsonl, data/ and checkpoints/ go here")
    job_id: str | None = option(None, non_empty=True, doc="the client's id for the job, kept across its resumes")
    overwrite: bool = option(False, doc="replace the checkpoints an earlier job left in run_dir")


@dataclass(kw_only=True)
class TrainReply:
    """Op ``train``'s reply, also when the job was cancelled (its checkpoint is usable and resumable)."""

    status: str = option(choices=STATUSES, doc="how the job ended")
    summary: TrainingSummary = option(ref="train_reply_summary", doc="how the run went")
    checkpoint: str = option(doc="the last step's checkpoint (resumable)")
    best: BestCheckpoint | None = option(None, ref="train_reply_best",
                                         doc="the evaluation training.select_by chose, saved as checkpoints/best.pb")


@dataclass(kw_only=True)
class RunInspectRequest:
    """Op ``run_inspect``: where a job can pick up after its worker died (``training/runs.py``)."""

    run_dir: str = option(non_empty=True, doc="the job's run directory")
    job_id: str | None = option(None, non_empty=True, doc="only what this job wrote counts")


@dataclass
class RunCheckpoint:
    """The newest checkpoint with training state that verifies."""

    path: str = option(doc="the checkpoint file")
    step: int = option(ge=0, doc="its step")


@dataclass
class SavedRows:
    """The rows a job saved before training, whose hashes match their manifest."""

    train: str = option(doc="the training rows' JSONL file")
    eval: str = option(doc="the evaluation rows' JSONL file")
    train_rows: int = option(ge=0, doc="rows in train")
    eval_rows: int = option(ge=0, doc="rows in eval")


@dataclass
class InvalidFile:
    """A file that failed verification, and was skipped."""

    path: str = option(doc="the file")
    error: str = option(doc="why")


@dataclass(kw_only=True)
class RunInspectReply:
    """Op ``run_inspect``'s reply."""

    run_dir: str = option(doc="the run directory, absolute")
    checkpoint: RunCheckpoint | None = option(doc="where the job can resume from; null: start over")
    data: SavedRows | None = option(doc="the saved rows; null: none valid (upload the data again)")
    invalid: list[InvalidFile] = option(doc="files that failed verification")


BODIES = {"train_request": TrainRequest, "training_extras": TrainingExtras, "train_reply": TrainReply,
          "run_inspect_request": RunInspectRequest, "run_inspect_reply": RunInspectReply}
