"""The events of op ``train`` and the parts of its reply they share (the summary, the best evaluation, how
selection went), declared once and exported by ``make schema`` to JSON Schema and the SDK's zod schemas
(docs/schema.md). The events are made where they happen, as maps: ``queued`` by the scheduler
(``serving/scheduler.py``, which imports nothing of the ops), ``data`` by the op, the rest by the training
loop (``training/loop.py``); ``test_train_bodies.py`` runs a job and checks every event it streams
against these classes, key for key.

Every float here may be NaN or infinite (``nan=True``): a metric of a run that went wrong is a result to
report, not a malformed message. The summary's defaults are what a worker older than the field meant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option

STATUSES = ("completed", "cancelled")


def _event(name: str) -> Any:
    return option(choices=(name,), doc=f"'{name}': which event this is")


@dataclass(kw_only=True)
class BestCheckpoint:
    """The evaluation model selection chose: the best value of ``training.select_by``."""

    step: int = option(ge=0, doc="0 when no trained step beat the untuned prompt")
    metrics: dict[str, float] = option(nan=True, doc="that evaluation's metrics")
    value: float = option(nan=True, doc="the selected metric's value")
    checkpoint: str | None = option(doc="checkpoints/best.pb (no training state: load it, do not resume from it)")


@dataclass(kw_only=True)
class SelectionOutcome:
    """How model selection went: sent once before ``done``, and kept in the summary."""

    by: str | None = option(doc="the metric compared; null when selection was off (no eval rows, select_by 'last')")
    beat_baseline: bool | None = option(doc="false when no trained step beat the untuned prompt; null without one")
    stopped_early_at: int | None = option(doc="the step early stopping ended the run at, or null")
    message: str = option(doc="in words: the best step, or why there is none, or that training did not help")


@dataclass(kw_only=True)
class TrainingSummary:
    """How a run went (the ``done`` event and the reply)."""

    status: str = option(choices=STATUSES, doc="how the run ended")
    steps: int = option(ge=0, doc="optimizer steps done, counted from the start of the original run")
    total_steps: int = option(ge=0, doc="the run's planned steps")
    final_loss: float | None = option(nan=True, doc="the last logged training loss; null when no step was logged")
    metrics: dict[str, float] = option(nan=True, doc="the last evaluation's metrics")
    baseline_metrics: dict[str, float] = option(
        factory=dict, nan=True, doc="the untuned prompt's step-0 metrics; empty when skipped or resumed")
    tokens: int = option(ge=0, doc="tokens trained on")
    epochs: float = option(nan=True, doc="passes over the training rows")
    elapsed_s: float = option(nan=True, doc="wall time of the run, in seconds")
    checkpoint: str | None = option(doc="the final checkpoint; null when none was written")
    best: BestCheckpoint | None = option(
        None, ref="train_reply_best", doc="the best evaluation; null when selection was off or nothing was evaluated")
    selection: SelectionOutcome = option(ref="train_reply_selection", sdk={"optional": True},
                                         doc="how selection went (absent from workers older than model selection)")


@dataclass(kw_only=True)
class QueuedEvent:
    """The worker runs as many jobs as it shares its device between; this one waits (sent once, first)."""

    event: str = _event("queued")
    position: int = option(gt=0, doc="1 = next to start")
    running: int = option(ge=0, doc="how many jobs the worker runs at once")
    reason: str | None = option(None, absent=True, doc=(
        "why it waits although a slot may be free: on a GPU, the running jobs leave too little free memory for "
        "its planned need (planner/admission.py); absent otherwise"))


@dataclass
class SkippedRow:
    """A row skipped under ``on_bad_row: 'skip'``."""

    where: str = option(doc="file:line or dataset[i]")
    error: str = option(doc="why")


@dataclass(kw_only=True)
class DataEvent:
    """The rows were loaded and checked (``data.DataReport``); training starts next."""

    event: str = _event("data")
    train_rows: int = option(ge=0, doc="training rows")
    eval_rows: int = option(ge=0, doc="evaluation rows")
    skipped: int = option(ge=0, doc="rows skipped under on_bad_row 'skip'")
    skipped_rows: list[SkippedRow] = option(doc="the first skipped rows")


@dataclass(kw_only=True)
class StartedEvent:
    """The method is attached and the optimizer built."""

    event: str = _event("started")
    trainable_params: int = option(ge=0, doc="the soft parameters")
    trainable_fraction: float = option(nan=True, doc="trainable parameters / base model parameters")
    total_params: int = option(ge=0, doc="base model and soft parameters")
    device: str = option(doc="'cpu', 'cuda:0', ...")
    dtype: str = option(doc="compute dtype: 'f32' or 'bf16'")
    total_steps: int = option(ge=0, doc="the run's planned steps")
    start_step: int = option(ge=0, doc="0, or the checkpoint's step when resuming")


@dataclass(kw_only=True)
class StepEvent:
    """Every ``training.log_every`` optimizer steps, and at the last one."""

    event: str = _event("step")
    step: int = option(ge=0, doc="the optimizer step")
    loss: float = option(nan=True, doc="mean training loss over the micro-batches since the previous step event")
    lr: float = option(nan=True, doc="learning rate of this step")
    grad_norm: float = option(nan=True, doc="global gradient norm before clipping")
    tokens_per_s: float = option(nan=True, doc="training tokens per second since the previous step event")
    memory_bytes: int = option(ge=0, doc="peak device memory (CUDA) or peak resident set size (CPU)")


@dataclass(kw_only=True)
class EvalEvent:
    """Every ``training.eval_every`` steps and at the end (and at step 0), when there are eval rows."""

    event: str = _event("eval")
    step: int = option(ge=0, doc="the optimizer step")
    metrics: dict[str, float] = option(nan=True, doc="metric name -> value, as the task reports them")


@dataclass(kw_only=True)
class BestEvent:
    """The evaluation just reported is the best so far on ``metric``; its prompt was saved to ``checkpoint``."""

    event: str = _event("best")
    step: int = option(ge=0, doc="the evaluation's step")
    metric: str = option(doc="training.select_by")
    value: float = option(nan=True, doc="the metric's value")
    checkpoint: str | None = option(doc="checkpoints/best.pb, replaced at each new best")


@dataclass(kw_only=True)
class CheckpointEvent:
    """A checkpoint was written (every ``training.checkpoint_every`` steps, at the end, on cancel)."""

    event: str = _event("checkpoint")
    step: int = option(ge=0, doc="the step it holds")
    path: str = option(doc="absolute path of the .pb checkpoint (resumable)")


@dataclass(kw_only=True)
class SelectionEvent(SelectionOutcome):
    """Model selection is over (sent just before ``done``)."""

    event: str = _event("selection")
    best: BestCheckpoint | None = option(ref="train_reply_best", doc="the chosen evaluation, or null")


@dataclass(kw_only=True)
class DoneEvent:
    """The run ended (completed or cancelled); the reply follows."""

    event: str = _event("done")
    summary: TrainingSummary = option(ref="train_reply_summary", doc="how the run went")


EVENTS = {"queued": QueuedEvent, "data": DataEvent, "started": StartedEvent, "step": StepEvent, "eval": EvalEvent,
          "best": BestEvent, "checkpoint": CheckpointEvent, "selection": SelectionEvent, "done": DoneEvent}

BODIES = {"train_reply_best": BestCheckpoint, "train_reply_selection": SelectionOutcome,
          "train_reply_summary": TrainingSummary, **{f"train_{name}_event": cls for name, cls in EVENTS.items()}}
