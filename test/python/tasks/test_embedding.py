"""The "embedding" task: row spellings, collation, eval corpus and metrics, GradCache training."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.evaluation import retrieval_metrics
from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.embedding import EmbeddingTask, parse_row
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)

ROWS = [{"query": "red fruit", "positive": "apple", "negatives": ["car", "sky"]},
        {"anchor": "yellow fruit", "positive": "banana"},
        {"text1": "green vegetable", "text2": "spinach"},
        {"query": "orange fruit", "positive": "orange", "negatives": ["apple"]}]


@pytest.fixture(scope="module")
def frozen():
    return load_frozen_model(ModelSpec(tiny="gpt2", device="cpu", overrides={"initializer_range": 0.2}))


def _method(frozen, k=4):
    torch.manual_seed(0)
    return SuffixTuning(SuffixTuningConfig(num_virtual_tokens=k), frozen)


def test_rows_in_every_spelling_and_bad_rows():
    assert task_class("embedding") is EmbeddingTask
    assert [parse_row(r) for r in ROWS[:3]] == [("red fruit", "apple", ["car", "sky"]), ("yellow fruit", "banana", []),
                                                ("green vegetable", "spinach", [])]
    for bad, field in (({"query": "q"}, "positive"), ({"query": "q", "positive": 3}, "positive"),
                       ({"positive": "p"}, "query"), ({"query": "q", "positive": "p", "negatives": "n"}, "negatives"),
                       ({"text1": "a", "positive": "b"}, "text2"), ("row", "row")):
        with pytest.raises(InvalidArgumentError, match=field):
            EmbeddingTask.validate_row(bad)


def test_options_are_checked(frozen):
    method = _method(frozen)
    for options in ({"temprature": 0.1}, {"grad_cache_mini_batch": -1}, {"k_values": [0]}, {"eval_batch_size": 0}):
        with pytest.raises(InvalidArgumentError):
            EmbeddingTask(method, options, ROWS, [])


def test_collate_groups_and_counts_tokens(frozen):
    method = _method(frozen, k=4)
    task = EmbeddingTask(method, {}, ROWS, [])
    batch = task.collate([parse_row(r) for r in ROWS])
    queries, positives, negatives = batch.features
    assert queries["input_ids"].shape[0] == positives["input_ids"].shape[0] == 4
    assert negatives["input_ids"].shape[0] == 3  # car, sky, apple: every row's hard negatives, flattened
    text_tokens = sum(len(t.encode()) for r in ROWS for t in [*parse_row(r)[:2], *parse_row(r)[2]])
    assert batch.n_tokens == text_tokens + 4 * (4 + 4 + 3)
    assert len(task.collate([parse_row(ROWS[1])]).features) == 2  # no hard negatives: no third group
    batches = list(task.batches(3, torch.Generator().manual_seed(0)))
    assert [b.features[0]["input_ids"].shape[0] for b in batches] == [3, 1] == [3, task.num_batches(3) - 1]


def test_evaluate_searches_all_eval_positives_and_negatives(frozen):
    method = _method(frozen)
    task = EmbeddingTask(method, {"k_values": [1, 2]}, ROWS, ROWS)
    metrics = task.evaluate()
    # The same numbers by hand: corpus = apple, car, sky, banana, spinach, orange (apple once).
    texts = ["apple", "car", "sky", "banana", "spinach", "orange"]
    q = method.encode([parse_row(r)[0] for r in ROWS])
    d = method.encode(texts)
    qrels = {"q0": {"apple": 1}, "q1": {"banana": 1}, "q2": {"spinach": 1}, "q3": {"orange": 1}}
    expected = retrieval_metrics(q, d, ["q0", "q1", "q2", "q3"], texts, qrels, (1, 2))
    assert {k: v for k, v in metrics.items() if k != "loss"} == pytest.approx(expected)
    assert metrics["loss"] > 0 and set(metrics) == {"loss", *expected}
    assert EmbeddingTask(method, {}, ROWS, []).evaluate() == {}


def test_grad_cache_training_follows_plain_training(frozen):
    rows = [{"query": f"query {i} {w}", "positive": f"doc {w} {i}"} for i, w in enumerate("abcdefghijkl")]
    suffixes = []
    for mini in (0, 3):
        method = _method(frozen)
        task = EmbeddingTask(method, {"grad_cache_mini_batch": mini}, rows, [])
        train(method, task, TrainingConfig(steps=3, batch_size=8, lr=0.01, log_every=1))
        suffixes.append(method.suffix.detach().clone())
    torch.testing.assert_close(suffixes[1], suffixes[0], atol=1e-5, rtol=1e-4)
