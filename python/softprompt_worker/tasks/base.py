"""The contract every training task implements, and small helpers tasks share.

A task turns rows (plain dicts from JSONL or from the client) into collated batches, computes the loss
the training loop backpropagates, and evaluates held-out rows. It talks to its method through the
method's own forward entry point (``forward_lm`` for prompt/prefix tuning, the embedding forward for
suffix/passage tuning); it never reaches into the frozen model's weights.

    task = task_class("generation")(method, {"max_length": 128}, train_rows, eval_rows)
    for batch in task.batches(batch_size=8, generator=torch.Generator().manual_seed(0)):
        loss, n_tokens = task.loss(batch)          # loss: () scalar, n_tokens: int
    metrics = task.evaluate()                      # {"loss": 1.23, "accuracy": 0.9}

Rules a task follows so training stays deterministic and resumable:
- ``batches`` draws every random choice (shuffling, negatives) from the ``generator`` it is given, and
  yields exactly ``num_batches(batch_size)`` batches; the loop resumes mid-epoch by re-seeding the
  generator and skipping the batches already consumed.
- ``loss`` returns the token count as a host ``int`` computed without a device sync (count on the CPU
  before moving the batch), so the hot path never waits for the device.
- ``evaluate`` runs under ``torch.no_grad()`` (the loop also wraps it) and returns plain floats.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Iterator, Protocol, runtime_checkable

import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import parse
from softprompt_worker.methods.base import SoftPromptMethod


@runtime_checkable
class Task(Protocol):
    """What the training loop needs from a task. Implementations usually subclass ``BaseTask``."""

    name: ClassVar[str]  # "generation" | "classification" | "embedding" | "reranking"
    # Which methods a task trains is declared by each method (``SoftPromptMethod.tasks``), not here.
    selection_metric: ClassVar[str]  # the eval metric ``training.select_by: auto`` keeps the best of

    @staticmethod
    def validate_row(row: dict) -> None:
        """Raise InvalidArgumentError naming the bad field (``"target: expected a string, got 3"``)."""

    def __init__(self, method: SoftPromptMethod, options: dict, train_rows: list[dict],
                 eval_rows: list[dict]) -> None: ...

    def num_batches(self, batch_size: int) -> int:
        """How many batches one epoch of ``batches(batch_size, ...)`` yields."""

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Any]:
        """One epoch of collated training batches on the method's device, shuffled with ``generator``."""

    def loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        """``(scalar loss to backprop, number of tokens processed)`` for one batch."""

    def evaluate(self) -> dict[str, float]:
        """Metrics on the eval rows, e.g. ``{"loss": .., "accuracy": ..}``; ``{}`` when there are none."""


class BaseTask:
    """Shared plumbing: stores the inputs, validates options, shuffles rows into index batches.

    Subclasses set ``name`` and ``options_class`` (a dataclass of ``fields.option``s: the task's
    ``task_options``, parsed here with ``fields.parse`` and exported to the SDK, docs/schema.md; a stand-in
    task may set only ``options_defaults``), implement ``validate_row``, ``collate(rows)``, ``loss`` and
    ``evaluate``. Unknown options are rejected.
    """

    name: ClassVar[str]
    options_class: ClassVar[type | None] = None
    options_defaults: ClassVar[dict[str, Any]] = {}  # option name -> default (derived from options_class)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("options_class") is not None:
            cls.options_defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                                    for f in dataclasses.fields(cls.options_class)
                                    if f.default is not dataclasses.MISSING
                                    or f.default_factory is not dataclasses.MISSING}  # type: ignore[misc]

    def __init__(self, method: SoftPromptMethod, options: dict, train_rows: list[dict],
                 eval_rows: list[dict]) -> None:
        check_trains(self.name, type(method))
        known = ({f.name for f in dataclasses.fields(self.options_class)} if self.options_class is not None
                 else set(self.options_defaults))
        unknown = sorted(set(options or {}) - known)
        if unknown:
            raise InvalidArgumentError(
                f"task_options: unknown option(s) {unknown} for task {self.name!r}; known: {sorted(known)}")
        if self.options_class is not None:
            parse(self.options_class, options or {}, "task_options.")  # types, required, bounds, choices
        self.method = method
        self.options = {**self.options_defaults, **(options or {})}
        self.train_rows = list(train_rows)
        self.eval_rows = list(eval_rows)

    @property
    def device(self) -> torch.device:
        return self.method.frozen.device

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self.train_rows) / batch_size)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Any]:
        order = torch.randperm(len(self.train_rows), generator=generator).tolist()  # (n_rows,)
        for start in range(0, len(order), batch_size):
            yield self.collate([self.train_rows[i] for i in order[start:start + batch_size]])

    def collate(self, rows: list[dict]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def eval_batches(self, batch_size: int) -> Iterator[tuple[list[dict], Any]]:
        """The eval rows in order, as ``(rows, collated batch)`` pairs."""
        for start in range(0, len(self.eval_rows), batch_size):
            rows = self.eval_rows[start:start + batch_size]
            yield rows, self.collate(rows)


def check_trains(task: str, method: type[SoftPromptMethod]) -> None:
    """InvalidArgumentError when task ``task`` does not train ``method``: its ``tasks`` say (a stand-in for a
    method, as benchmarks build, declares ``name`` and ``tasks`` too)."""
    if task not in method.tasks:
        from softprompt_worker.methods.registry import methods_training

        raise InvalidArgumentError(f"task: {task!r} does not train method {method.name!r}; "
                                   f"it trains {', '.join(methods_training(task))}")


# -- row validation helpers -----------------------------------------------------------------------

def require_str(row: dict, field: str, *, allow_empty: bool = False) -> str:
    """``row[field]`` as a string, or InvalidArgumentError naming the field."""
    if not isinstance(row, dict):
        raise InvalidArgumentError(f"row: expected an object, got {type(row).__name__}")
    if field not in row:
        raise InvalidArgumentError(f"{field}: missing (row has {sorted(map(str, row))})")
    value = row[field]
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{field}: expected a string, got {type(value).__name__} {value!r:.40}")
    if not allow_empty and not value:
        raise InvalidArgumentError(f"{field}: must not be empty")
    return value


def require_str_list(row: dict, field: str, *, min_len: int = 1) -> list[str]:
    """``row[field]`` as a list of strings, or InvalidArgumentError naming the field (and index)."""
    if not isinstance(row, dict):
        raise InvalidArgumentError(f"row: expected an object, got {type(row).__name__}")
    value = row.get(field)
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{field}: expected a list of strings, got {type(value).__name__}")
    if len(value) < min_len:
        raise InvalidArgumentError(f"{field}: needs at least {min_len} item(s), got {len(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidArgumentError(f"{field}[{i}]: expected a string, got {type(item).__name__}")
    return value
