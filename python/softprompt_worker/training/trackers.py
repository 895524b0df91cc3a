"""Experiment trackers: a training job's events mirrored as scalars (``training.report_to``), as users of
transformers' ``Trainer(report_to=...)`` expect.

    tracker = open_trackers(["tensorboard"], run_dir)   # None for an empty list
    tracker.event({"event": "step", "step": 10, "loss": 2.1, "lr": 0.03, ...})
    tracker.close()

TensorBoard writes event files under ``<run_dir>/tensorboard/`` with ``torch.utils.tensorboard``'s
``SummaryWriter`` (it needs the ``tensorboard`` package: ``pip install 'softprompt-worker[tensorboard]'``);
``tensorboard --logdir runs/`` then shows every run side by side. Scalars, by optimizer step:

    train/loss, train/lr, train/grad_norm, train/tokens_per_s    each ``step`` event
    eval/<metric>                                                each ``eval`` event (step 0: the untuned prompt)

A tracker never fails a job once it runs: a write that fails is logged and the tracker stops writing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from softprompt_worker.errors import DependencyMissingError

log = logging.getLogger("softprompt_worker")

TRACKERS = ("tensorboard",)
_STEP_SCALARS = ("loss", "lr", "grad_norm", "tokens_per_s")


class TensorBoardTracker:
    """Scalars into ``<run_dir>/tensorboard/`` (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises ImportError naming tensorboard when it is missing
            raise DependencyMissingError(
                "training.report_to 'tensorboard' needs the tensorboard package in the worker's Python: "
                "pip install 'tensorboard>=2.14'", details={"package": "tensorboard"}) from exc
        self.log_dir = Path(run_dir) / "tensorboard"
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def event(self, event: dict[str, Any]) -> None:
        kind, step = event.get("event"), event.get("step")
        if kind == "step":
            for name in _STEP_SCALARS:
                if isinstance(event.get(name), (int, float)):
                    self._writer.add_scalar(f"train/{name}", event[name], step)
        elif kind == "eval":
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"eval/{name}", value, step)
        elif kind == "done":
            self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class Trackers:
    """Every tracker a job asked for, fed each event; one that fails is logged and dropped."""

    def __init__(self, trackers: list[TensorBoardTracker]) -> None:
        self._trackers = trackers

    def event(self, event: dict[str, Any]) -> None:
        for tracker in list(self._trackers):
            try:
                tracker.event(event)
            except Exception as exc:  # noqa: BLE001 - a tracker is a by-product; the job goes on
                log.warning("report_to: %s stopped writing: %s", type(tracker).__name__, exc)
                self._trackers.remove(tracker)

    def close(self) -> None:
        for tracker in self._trackers:
            try:
                tracker.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("report_to: closing %s failed: %s", type(tracker).__name__, exc)


def open_trackers(names: list[str] | None, run_dir: str | Path) -> Trackers | None:
    """The trackers ``names`` asks for (names from `TRACKERS`, checked with the train op's body:
    ``ops/train_bodies.TrainingExtras``), each once, writing under ``run_dir``; None for none."""
    if not names:
        return None
    return Trackers([TensorBoardTracker(run_dir) for name in dict.fromkeys(names) if name == "tensorboard"])
