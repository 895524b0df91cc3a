"""Model selection: which evaluation was best, and whether to stop early (transformers' Trainer has
``load_best_model_at_end`` + ``metric_for_best_model`` + ``EarlyStoppingCallback``; this is the same idea).

    selection = Selection.start(config, task)          # None-safe: off without eval rows
    improved = selection.consider(step, metrics)       # after every evaluation, step 0 included
    selection.should_stop()                            # patience evaluations in a row without improvement

Every evaluation is a candidate, the untuned prompt's step-0 evaluation too, so a run that never beats
its start hands back the untuned prompt and says so. ``by`` is ``auto`` (the task's own metric:
accuracy for classification, ndcg@10 for embedding and reranking, the held-out loss for generation),
``last`` (no selection: the last step is the result) or a metric name the task reports. Metrics whose
name holds ``loss`` or ``perplexity`` are better when lower; every other one when higher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from softprompt_worker.errors import InvalidArgumentError

LOWER_IS_BETTER = ("loss", "perplexity")


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in LOWER_IS_BETTER)


def better(metric: str, value: float, than: float, min_delta: float = 0.0) -> bool:
    """Whether ``value`` improves on ``than`` by more than ``min_delta``."""
    gain = than - value if lower_is_better(metric) else value - than
    return gain > min_delta


@dataclass
class Selection:
    """The selection state of one run; ``state()``/``restore()`` carry it across a resume."""

    by: str | None  # the metric compared; None = selection off (see ``reason``)
    patience: int = 0  # evaluations in a row without improvement before stopping; 0 = never stop
    min_delta: float = 0.0  # an improvement must exceed this
    reason: str = ""  # why selection is off, in words
    best: dict[str, Any] | None = None  # {"step", "metrics", "value", "checkpoint"}
    baseline: float | None = None  # the step-0 value of ``by``
    stale: int = 0  # evaluations since the last improvement
    _explicit: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, select_by: str, patience: int, min_delta: float, task: Any) -> "Selection":
        """Selection for ``task``: off when the task has no eval rows (``reason`` says so) or ``by`` is ``last``."""
        has_eval = bool(getattr(task, "eval_rows", None))
        if select_by == "last":
            return cls(None, reason="training.select_by is 'last': the last step is the result")
        if not has_eval:
            if select_by != "auto" or patience:
                what = "training.select_by" if select_by != "auto" else "training.early_stopping"
                raise InvalidArgumentError(f"{what}: needs eval rows to select on; give data.eval or "
                                           "data.eval_fraction (e.g. 0.1)")
            return cls(None, reason="no eval rows, so no step can be compared: the last step is the result "
                                    "(give data.eval or data.eval_fraction to keep the best step)")
        explicit = select_by != "auto"
        by = select_by if explicit else getattr(task, "selection_metric", "loss")
        return cls(by, patience, min_delta, _explicit=explicit)

    @property
    def on(self) -> bool:
        return self.by is not None

    def consider(self, step: int, metrics: dict[str, float]) -> bool:
        """Count one evaluation; True when it is the best so far (the caller then saves it)."""
        if not self.on or not metrics:
            return False
        if self.by not in metrics:
            if self._explicit:
                raise InvalidArgumentError(f"training.select_by: the task reports no metric {self.by!r}; "
                                           f"it reports {', '.join(sorted(metrics))}")
            self.by = "loss"  # a task option (k_values without 10) removed the task's own metric
        value = float(metrics[self.by])
        if step == 0:
            self.baseline = value
        if not math.isfinite(value):
            improved = False
        elif self.best is None:
            improved = True
        else:
            improved = better(self.by, value, self.best["value"], self.min_delta)
        if improved:
            self.best, self.stale = {"step": step, "metrics": dict(metrics), "value": value, "checkpoint": None}, 0
        elif step > 0:
            self.stale += 1
        return improved

    def should_stop(self) -> bool:
        return self.on and self.patience > 0 and self.stale >= self.patience

    def beat_baseline(self) -> bool | None:
        """Whether a trained step is the best; None when there was no step-0 evaluation to compare with."""
        if not self.on or self.baseline is None or self.best is None:
            return None
        return self.best["step"] > 0

    def summary(self, stopped_early_at: int | None) -> dict[str, Any]:
        """What the ``done`` summary and the ``selection`` event say."""
        beat = self.beat_baseline()
        if not self.on:
            message = self.reason
        elif self.best is None:
            message = f"no evaluation gave a finite {self.by}: the last step is the result"
        elif beat is False:
            message = (f"no step beat the untuned prompt on the eval split ({self.by} {self.baseline:.4g} at step 0): "
                       "the best checkpoint is the untuned prompt; try another learning rate, more data or "
                       "another method")
        else:
            message = f"best {self.by} {self.best['value']:.4g} at step {self.best['step']}"
            if self.baseline is not None:
                message += f" (untuned: {self.baseline:.4g})"
        if stopped_early_at is not None:
            by_more = f" of more than {self.min_delta:g}" if self.min_delta else ""
            message += (f"; stopped early at step {stopped_early_at}: {self.patience} evaluations in a row without "
                        f"an improvement{by_more}")
        return {"by": self.by, "best": self.best, "beat_baseline": beat, "stopped_early_at": stopped_early_at,
                "message": message}

    def state(self) -> dict[str, Any]:
        return {"by": self.by, "best": self.best, "baseline": self.baseline, "stale": self.stale}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue a resumed run's selection (a checkpoint from before selection existed has none)."""
        if not state or not self.on or state.get("by") != self.by:
            return
        self.best, self.baseline, self.stale = state.get("best"), state.get("baseline"), int(state.get("stale", 0))
