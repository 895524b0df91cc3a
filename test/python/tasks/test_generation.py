"""Generation task: batching for both model shapes, teacher-forced metrics, and that training lowers loss."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.generation import GenerationTask
from softprompt_worker.tasks.lm_batching import IGNORE, score_targets
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)

ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "xy", "kite", "moon", "stone")]


def _task(family: str, rows=ROWS, **options):
    frozen = load_frozen_model(ModelSpec(tiny=family, device="cpu"))
    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=4), frozen)
    return GenerationTask(method, options, rows, rows)


def test_registry_and_row_validation():
    assert task_class("generation") is GenerationTask
    with pytest.raises(InvalidArgumentError, match="target: missing"):
        GenerationTask.validate_row({"input": "a"})
    with pytest.raises(InvalidArgumentError, match="input: expected a string, got int"):
        GenerationTask.validate_row({"input": 1, "target": "b"})
    with pytest.raises(InvalidArgumentError, match=r"unknown option\(s\) \['labels'\]"):
        _task("gpt2", labels=["a"])


def test_decoder_batch_labels_cover_target_and_eos_only():
    task = _task("gpt2")
    batch = task.collate(ROWS[:2])  # "abc=" + "cba" + EOS, "hello=" + "olleh" + EOS
    assert batch.input_ids.shape == (2, 12) and batch.labels.shape == (2, 12)
    assert batch.input_ids[0, :8].tolist() == [*b"abc=cba", 258] and batch.attention_mask[0].sum() == 8
    assert batch.labels[0, :8].tolist() == [IGNORE] * 4 + [*b"cba", 258]
    assert (batch.labels[0, 8:] == IGNORE).all() and batch.n_tokens == 8 + 12


def test_decoder_truncation_keeps_the_target():
    task = _task("gpt2", max_length=6)
    ids, labels = task.encoder.pair("0123456789", "ab")
    assert ids == [*b"789ab", 258] and labels == [IGNORE] * 3 + [*b"ab", 258]


def test_encoder_decoder_batch():
    task = _task("t5")
    batch = task.collate(ROWS[:2])
    assert batch.input_ids[0, :5].tolist() == [*b"abc=", 258]  # t5 template appends </s>
    assert batch.labels.shape == (2, 6) and batch.labels[0].tolist() == [*b"cba", 258, IGNORE, IGNORE]


def test_score_targets_matches_greedy_semantics():
    V = 5
    logits = torch.full((1, 4, V), -10.0)  # (B, T, V)
    logits[0, 0, 2] = logits[0, 1, 3] = 10.0  # predicts 2 then 3
    labels = torch.tensor([[IGNORE, 2, 3, IGNORE]])  # decoder-only: position t predicts label t+1
    s = score_targets(logits, labels, decoder_only=True)
    assert s.all_correct.tolist() == [True] and s.n_tokens.tolist() == [2] and s.logprob.item() > -1e-3
    labels = torch.tensor([[IGNORE, 2, 4, IGNORE]])
    assert score_targets(logits, labels, decoder_only=True).all_correct.tolist() == [False]


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_training_lowers_eval_loss(family):
    task = _task(family)
    before = task.evaluate()
    assert set(before) == {"loss", "token_accuracy", "exact_match"}
    train(task.method, task, TrainingConfig(steps=15, batch_size=6, lr=0.3, log_every=15))
    after = task.evaluate()
    # Measured (random tiny models, prompt only, lr 0.3): llama 5.58 -> 5.41, t5 5.89 -> 5.10. (Random gpt2/bart
    # barely respond to a prompt; learning on a pretrained model is in test_learning_prompt_prefix.py.)
    assert after["loss"] < before["loss"] - 0.1, (before, after)
