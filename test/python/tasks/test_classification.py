"""Classification task: verbalizer validation, rank-classification scoring, both losses train."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.classification import ClassificationTask
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)

LABELS = ["yes", "no"]
ROWS = [{"input": f"{w}?", "label": "yes" if w[0] in "aeiou" else "no"}
        for w in ("apple", "egg", "kite", "moon", "olive", "stone", "under", "tree")]


def _task(family="gpt2", rows=ROWS, **options):
    frozen = load_frozen_model(ModelSpec(tiny=family, device="cpu"))
    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=4), frozen)
    return ClassificationTask(method, {"labels": LABELS, **options}, rows, rows)


@pytest.mark.parametrize("options, message", [
    ({"labels": ["only"]}, "at least two"),
    ({"labels": ["a", "a"]}, "distinct"),
    ({"labels": LABELS, "loss": "hinge"}, "task_options.loss"),
    ({}, "task_options.labels"),
])
def test_bad_options_name_the_field(options, message):
    frozen = load_frozen_model(ModelSpec(tiny="gpt2", device="cpu"))
    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=2), frozen)
    with pytest.raises(InvalidArgumentError, match=message):
        ClassificationTask(method, options, ROWS, [])


def test_a_label_outside_the_verbalizers_names_the_row():
    with pytest.raises(InvalidArgumentError, match=r"data.train row 1: label 'maybe'"):
        _task(rows=[ROWS[0], {"input": "x", "label": "maybe"}])


def test_ranking_batch_holds_every_label_and_scores_agree_with_evaluate():
    task = _task(loss="ranking")
    batch = task.collate(ROWS[:3])
    assert batch.lm.input_ids.shape[0] == 6 and batch.gold.tolist() == [0, 0, 1]
    predictions = task.predict([r["input"] for r in ROWS])
    expected = sum(p == LABELS.index(r["label"]) for p, r in zip(predictions, ROWS)) / len(ROWS)
    with torch.no_grad():
        assert task.evaluate()["accuracy"] == expected


@pytest.mark.parametrize("family, loss", [("gpt2", "lm"), ("gpt2", "ranking"), ("bart", "ranking")])
def test_training_lowers_the_loss(family, loss):
    task = _task(family, loss=loss)
    events = []
    train(task.method, task, TrainingConfig(steps=12, batch_size=8, lr=0.3, log_every=3), emit=events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses[-1] < losses[0], losses
