"""Choosing a learning rate on a dev slice, one way for every trained row of the quality benches (issue 18.3).

Each candidate is trained exactly as the full run trains, then scored on a dev slice carved from the TRAIN
split (never on eval); the highest dev ``metric`` wins, ties going to the earlier candidate. The record
keeps every candidate's dev scores next to the choice, so the choice can be checked against the file, and
the a priori learning rate (``fixed``) stays a candidate: its trained model is kept, so a bench can report
"lr fixed" and "lr chosen on dev" side by side without training either twice.

    pick = choose_lr((5e-4, 1.5e-3, 5e-3), fixed=5e-4, metric="mrr",
                     fit=lambda lr: train(lr),                     # -> anything the bench trained
                     dev=lambda model: score_on_dev(model))        # -> {"mrr": ..., ...}
    pick.record            # {"metric", "candidates", "fixed_lr", "dev": [{"lr", "metrics"}, ...], "chosen_lr"}
    pick.trained[pick.chosen], pick.trained[pick.fixed]            # the two trained models, for the eval split
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass
class Choice(Generic[T]):
    """The outcome of ``choose_lr``: the record to store and the trained models still needed."""

    chosen: float
    fixed: float | None
    record: dict[str, Any]
    trained: dict[float, T] = field(default_factory=dict)  # the chosen and the fixed candidate only


def choose_lr(candidates: Sequence[float], *, fixed: float | None, metric: str | tuple[str, ...],
              fit: Callable[[float], T], dev: Callable[[T], dict[str, float]],
              log: Callable[[str], None] = print) -> Choice[T]:
    """Train each of ``candidates`` with ``fit``, score it with ``dev`` and choose by ``dev(...)[metric]``
    (higher is better; a tuple of metrics breaks ties in order, e.g. ``("mrr", "hits@1")``).

    ``fixed`` (the a priori learning rate), unless None, must be one of the candidates. Only the fixed
    candidate's and the best-so-far candidate's models are kept alive, so at most three exist at a time.
    """
    keys = (metric,) if isinstance(metric, str) else tuple(metric)
    if fixed is not None and fixed not in candidates:
        raise ValueError(f"the fixed lr {fixed:g} must be one of the dev candidates {list(candidates)}")
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"dev candidates repeat a learning rate: {list(candidates)}")
    runs: list[dict[str, Any]] = []
    trained: dict[float, T] = {}
    best: float | None = None
    for lr in candidates:
        started = time.perf_counter()
        model = fit(lr)
        scores = dev(model)
        missing = [k for k in keys if k not in scores]
        if missing:
            raise KeyError(f"dev scores have no {missing}: {sorted(scores)}")
        runs.append({"lr": lr, "metrics": scores, "seconds": round(time.perf_counter() - started, 1)})
        log(f"dev lr {lr:g}: " + ", ".join(f"{k} {scores[k]:.4f}" for k in keys))
        trained[lr] = model
        if best is None or _key(scores, keys) > _key(_scores(runs, best), keys):
            best = lr
        for old in [x for x in trained if x not in (best, fixed)]:
            del trained[old]  # frees a LoRA copy of the model
    record = {"metric": metric, "candidates": list(candidates), "fixed_lr": fixed, "dev": runs, "chosen_lr": best}
    return Choice(chosen=best, fixed=fixed, record=record, trained=trained)


def _key(scores: dict[str, float], keys: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(scores[k] for k in keys)


def _scores(runs: list[dict[str, Any]], lr: float) -> dict[str, float]:
    return next(r["metrics"] for r in runs if r["lr"] == lr)
