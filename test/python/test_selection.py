"""Model selection and early stopping (selection.py, training.py): the best evaluation is kept with the prompt
that scored it, the untuned prompt is a candidate, a run that never beats its start says so, early stopping
stops, and a resumed run keeps comparing against the best so far.

The evaluations here are scripted (a metric per step) so every outcome is exact; test_train_op.py shows
the same on a real model through the op, where the saved best prompt re-evaluates to its reported metrics.
"""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.training.selection import Selection, lower_is_better
from softprompt_worker.training.loop import TrainingConfig, train

from fixtures.stub import stub_setup

torch.set_num_threads(1)


def _scripted(values: dict[int, float], metric: str = "loss", **config):
    """Train the stub with evaluations that report ``values[step]``; returns (events, summary, saved best)."""
    _, method, task = stub_setup()
    now = {"step": 0}
    task.evaluate = lambda: {metric: values[now["step"]], "other": 1.0}
    events, saved = [], {}

    def emit(event):
        if event["event"] == "step":
            now["step"] = event["step"]
        events.append(event)

    def save_best(step, metrics):
        saved[step] = {n: p.detach().clone() for n, p in method.named_parameters()}, dict(metrics)
        return f"best@{step}"

    save = config.pop("_save", None)
    summary = train(method, task, TrainingConfig.from_dict({"log_every": 1, "lr": 0.1, **config}), emit=emit,
                    save_best=save_best, save_checkpoint=save)
    return events, summary, saved, method


def test_the_best_evaluation_is_kept_with_the_prompt_that_scored_it():
    events, summary, saved, method = _scripted({0: 3.0, 2: 2.0, 4: 2.5, 6: 2.7}, steps=6, eval_every=2)
    assert [(e["step"], e["value"]) for e in events if e["event"] == "best"] == [(0, 3.0), (2, 2.0)]
    assert summary["best"] == {"step": 2, "metrics": {"loss": 2.0, "other": 1.0}, "value": 2.0, "checkpoint": "best@2"}
    assert summary["selection"]["beat_baseline"] is True and summary["selection"]["by"] == "loss"
    assert summary["metrics"]["loss"] == 2.7  # the last evaluation stays what it was
    assert sorted(saved) == [0, 2]
    # best@2 holds the prompt as it was at step 2, not the final one
    assert any(not torch.equal(saved[2][0][n], p) for n, p in method.named_parameters())
    assert any(not torch.equal(saved[2][0][n], saved[0][0][n]) for n in saved[0][0])
    selection = next(e for e in events if e["event"] == "selection")
    assert selection["message"] == "best loss 2 at step 2 (untuned: 3)"
    assert [e["event"] for e in events][-2:] == ["selection", "done"]


def test_higher_is_better_for_every_metric_but_losses_and_perplexities():
    assert lower_is_better("loss") and lower_is_better("eval_loss") and lower_is_better("perplexity")
    assert not lower_is_better("accuracy") and not lower_is_better("ndcg@10") and not lower_is_better("mrr@10")
    _, summary, _, _ = _scripted({0: 0.5, 2: 0.75, 4: 0.7}, metric="accuracy", steps=4, eval_every=2,
                                 select_by="accuracy")
    assert summary["best"]["step"] == 2 and summary["best"]["value"] == 0.75


def test_a_run_that_never_beats_its_start_hands_back_the_untuned_prompt_and_says_so():
    events, summary, saved, _ = _scripted({0: 1.0, 2: 1.5, 4: 2.0}, steps=4, eval_every=2)
    assert summary["best"]["step"] == 0 and list(saved) == [0]
    selection = next(e for e in events if e["event"] == "selection")
    assert selection["beat_baseline"] is False
    assert selection["message"].startswith("no step beat the untuned prompt on the eval split (loss 1 at step 0)")


def test_an_improvement_must_clear_min_delta():
    _, summary, _, _ = _scripted({0: 3.0, 1: 2.95, 2: 2.0, 3: 1.99, 4: 1.98}, steps=4, eval_every=1,
                                 early_stopping={"patience": 10, "min_delta": 0.1})
    assert summary["best"]["step"] == 2  # 2.95 and 1.99 are within 0.1 of the best before them


def test_early_stopping_stops_after_patience_evaluations_without_improvement():
    saved_states = {}
    events, summary, _, _ = _scripted(
        {0: 3.0, 1: 2.0, 2: 2.5, 3: 2.6, 4: 1.0}, steps=20, eval_every=1, early_stopping={"patience": 2},
        checkpoint_every=50, _save=lambda step, metrics, state: saved_states.setdefault(step, state) and f"ck{step}")
    assert summary["status"] == "completed" and summary["steps"] == 3
    assert summary["selection"]["stopped_early_at"] == 3 and summary["best"]["step"] == 1
    assert summary["selection"]["message"].endswith("; stopped early at step 3: 2 evaluations in a row without an "
                                                    "improvement")
    assert [e["step"] for e in events if e["event"] == "eval"] == [0, 1, 2, 3]  # no second evaluation at the end
    assert summary["checkpoint"] == "ck3"  # the last step is still saved, resumable


def test_a_resumed_run_keeps_the_best_so_far():
    values = {0: 3.0, 2: 1.0, 4: 2.0, 6: 2.5, 8: 0.5}
    states = {}
    _, whole, _, _ = _scripted(values, steps=6, eval_every=2, checkpoint_every=4,
                               _save=lambda step, metrics, state: states.setdefault(step, state) and f"ck{step}")
    assert states[4].meta["selection"]["best"]["step"] == 2
    _, method, task = stub_setup()
    now = {"step": 4}
    task.evaluate = lambda: {"loss": values[now["step"]]}
    resumed = train(method, task, TrainingConfig(steps=6, eval_every=2, log_every=1, lr=0.1), resume=states[4],
                    emit=lambda e: now.update(step=e["step"]) if e["event"] == "step" else None,
                    save_best=lambda step, metrics: f"best@{step}")
    assert resumed["best"]["step"] == whole["best"]["step"] == 2  # step 6's 2.5 does not replace step 2's 1.0
    assert resumed["selection"]["beat_baseline"] is True


def test_selection_needs_eval_rows_and_a_metric_the_task_reports():
    _, method, task = stub_setup()
    task.eval_rows = []
    with pytest.raises(InvalidArgumentError, match="training.select_by: needs eval rows"):
        Selection.start("accuracy", 0, 0.0, task)
    with pytest.raises(InvalidArgumentError, match="training.early_stopping: needs eval rows"):
        Selection.start("auto", 2, 0.0, task)
    off = Selection.start("auto", 0, 0.0, task)
    assert not off.on and off.summary(None)["message"].startswith("no eval rows")
    summary = train(method, task, TrainingConfig(steps=2, log_every=1))
    assert summary["best"] is None and summary["selection"]["by"] is None
    with pytest.raises(InvalidArgumentError, match=r"reports no metric 'ndcg@10'; it reports loss"):
        _scripted({0: 1.0, 2: 1.0}, steps=2, select_by="ndcg@10")
    last = Selection.start("last", 0, 0.0, stub_setup()[2])
    assert not last.on and "'last'" in last.reason


def test_training_config_checks_early_stopping():
    with pytest.raises(InvalidArgumentError, match="needs training.eval_every > 0"):
        TrainingConfig.from_dict({"early_stopping": {"patience": 2}})
    with pytest.raises(InvalidArgumentError, match="early_stopping.patience: expected 1"):
        TrainingConfig.from_dict({"eval_every": 2, "early_stopping": {"patience": 0}})
    with pytest.raises(InvalidArgumentError, match="expected {patience, min_delta"):
        TrainingConfig.from_dict({"eval_every": 2, "early_stopping": {"patience": 2, "delta": 1}})
    with pytest.raises(InvalidArgumentError, match="min_delta: must be >= 0"):
        TrainingConfig.from_dict({"eval_every": 2, "early_stopping": {"patience": 2, "min_delta": -1}})
    config = TrainingConfig.from_dict({"eval_every": 2, "early_stopping": {"patience": 2, "min_delta": 0.01}})
    assert config.to_dict()["early_stopping"] == {"patience": 2, "min_delta": 0.01}
