"""What one training micro-batch of a method runs through the frozen model: the facts a memory plan reads.

Each method describes its own passes where it is defined (``SoftPromptMethod.training_passes``), so the
planner (``planner/``) turns any registered method's micro-batch into bytes without a table of names.
Plain data and arithmetic: no torch, nothing imported from above ``methods/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Job:
    """The settings a plan reads (all plain values, so a suggestion is a ``replace``)."""

    method: str
    task: str
    batch_size: int
    seq: int  # tokens per row (prompt/prefix), per text (suffix), per passage (passage tuning)
    virtual_tokens: int  # n: prompt/prefix/suffix vectors (passage: the prompt's)
    gradient_checkpointing: bool = False
    negatives: int = 0  # hard negatives per row (suffix, passage tuning)
    options: dict[str, Any] = field(default_factory=dict)  # method config + task options that shape passes


@dataclass(frozen=True)
class Pass:
    """One forward pass of the frozen model inside a training micro-batch.

    ``rows`` sequences of ``queries`` positions each, attending to ``keys`` positions (queries plus
    prefix slots or cached text). ``logits``/``scored``: positions per row whose vocab logits are
    computed / enter the loss (0 for embedding passes). ``grad``: False for a pass under ``no_grad``."""

    rows: int
    queries: int
    keys: int
    logits: int = 0
    scored: int = 0
    grad: bool = True
    # Gradient checkpointing applies: recompute.py runs a layer called with a key/value cache plainly.
    checkpointed: bool = True
    # SDPA gets a boolean mask (rows of different lengths, a cache, left padding): transformers then
    # repeats grouped key/value heads to the query heads, so k and v are saved at the query width.
    masked: bool = True


def lm_rows(job: Job) -> int:
    """Sequences per micro-batch of an LM task: classification with ``loss: ranking`` scores every label per
    row; otherwise one sequence per row."""
    labels = job.options.get("labels") or []
    ranked = job.task == "classification" and job.options.get("loss") == "ranking"
    return job.batch_size * (max(1, len(labels)) if ranked else 1)


@dataclass(frozen=True)
class Sizes:
    """A job's sizes as the method reads them (``SoftPromptMethod.plan_sizes``): ``seq`` (tokens per row the
    plan varies), ``virtual_tokens`` (positions the method adds to a row), ``negatives`` (hard negatives per
    row when the request gives none)."""

    seq: int
    virtual_tokens: int
    negatives: int = 0
