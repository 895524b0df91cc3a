"""Suffix tuning LEARNS retrieval embeddings through a frozen model: a decoder (Llama, GQA) and an encoder
(BERT), trained with the real loop on the "embedding" task, raise held-out Recall@1 by a clear margin,
while every base weight stays bit-identical and only the suffix is trained.

The synthetic task: every text is 8 random noise characters (lowercase letters, digits) plus one
uppercase "topic" letter (anywhere, or first); a query's relevant document is the one with the same
topic. The frozen network does encode which uppercase letter a text holds, but the untuned pooled
embedding (the last suffix position) mixes it with the noise characters and their positions, so the
baseline ranks near chance (1/26). The suffix can fix that alone: its vectors decide what the last
position attends to. Tiny random models at the default init (std 0.02) are nearly the identity on each
position and carry almost no context into the pooled state (the loss sat at ln(batch) = 2.77), so the
models here are initialised at std 0.2, where attention depends on content as in a trained model.
"""

from __future__ import annotations

import random

import pytest
import torch

from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.embedding import EmbeddingTask
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)

TOPICS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NOISE = "abcdefghijklmnopqrstuvwxyz0123456789"


def _text(rng: random.Random, topic: str, at_start: bool) -> str:
    chars = [rng.choice(NOISE) for _ in range(8)]
    chars.insert(0 if at_start else rng.randrange(len(chars) + 1), topic)
    return "".join(chars)


def topic_rows(seed: int, n: int, *, at_start: bool = False, one_per_topic: bool = False) -> list[dict]:
    rng = random.Random(seed)
    topics = TOPICS if one_per_topic else [rng.choice(TOPICS) for _ in range(n)]
    return [{"query": _text(rng, t, at_start), "positive": _text(rng, t, at_start)} for t in topics]

# Measured (torch 2.13 CPU, transformers 5.24), Recall@1 on the 26 held-out queries (chance 0.038):
#   llama, causal (SPT-uni), topic anywhere:   0.077 -> 0.808 in 200 steps (loss windows 2.55 -> 0.28,
#                                               eval loss 6.56 -> 0.47)
#   llama, bidirectional (SPT-bi), anywhere:   0.154 -> 0.846 in 200 steps (eval loss 6.91 -> 0.45)
#   bert, topic first:                         0.154 -> 1.000 in 90 steps  (eval loss 3.08 -> 0.06)
#   bert, gated + text_mean, topic first:      0.000 -> 1.000 in 90 steps  (eval loss 3.25 -> 0.17; the
#                                               untrained start is the bare encoder; mean |tanh(gate)| 0.75)
# BERT's topic sits at the start: its absolute position embeddings are as large as the token embeddings
# in a random model, and with the topic anywhere it learned slowly (0.12 -> 0.27 in 300 steps). The
# margins asserted below leave room for run-to-run and version drift.
CASES = {
    "llama": dict(attention="model", topic_at_start=False, steps=200, min_gain=0.45),
    "llama-bidirectional": dict(attention="bidirectional", topic_at_start=False, steps=200, min_gain=0.45),
    "bert": dict(attention="model", topic_at_start=True, steps=90, min_gain=0.5),
    "bert-gated": dict(attention="gated", pooling="text_mean", topic_at_start=True, steps=90, min_gain=0.5),
}


@pytest.mark.parametrize("case_name", list(CASES))
def test_suffix_tuning_raises_held_out_recall(case_name):
    case = CASES[case_name]
    family = case_name.split("-")[0]
    frozen = load_frozen_model(ModelSpec(tiny=family, device="cpu", overrides={"initializer_range": 0.2}))
    torch.manual_seed(0)
    method = SuffixTuning(SuffixTuningConfig(num_virtual_tokens=16 if family == "llama" else 8,
                                             attention=case["attention"], pooling=case.get("pooling", "last")),
                          frozen)
    train_rows = topic_rows(0, 512, at_start=case["topic_at_start"])
    eval_rows = topic_rows(1, 26, at_start=case["topic_at_start"], one_per_topic=True)  # one query per topic
    task = EmbeddingTask(method, {"k_values": [1, 10]}, train_rows, eval_rows)
    base_before = {name: p.detach().clone() for name, p in frozen.model.named_parameters()}
    suffix_before = method.suffix.detach().clone()
    baseline = task.evaluate()

    events: list[dict] = []
    steps = case["steps"]
    config = TrainingConfig(steps=steps, batch_size=16, lr=0.05, schedule="constant", log_every=steps // 4,
                            eval_every=steps // 2)
    summary = train(method, task, config, emit=events.append)

    losses = [e["loss"] for e in events if e["event"] == "step"]
    evals = [e["metrics"] for e in events if e["event"] == "eval"]
    final = evals[-1]
    assert summary["status"] == "completed" and summary["metrics"] == final
    assert set(final) == {"loss", "ndcg@1", "recall@1", "mrr@1", "ndcg@10", "recall@10", "mrr@10"}
    assert losses[-1] < 0.6 * losses[0], losses
    assert final["loss"] < baseline["loss"]
    assert final["recall@1"] >= baseline["recall@1"] + case["min_gain"], (baseline, final)
    assert final["mrr@10"] > baseline["mrr@10"]

    # Only the suffix moved; every frozen weight is bit-identical and never got a gradient.
    gated = ["suffix_gate"] if case["attention"] == "gated" else []
    assert [name for name, _ in method.named_parameters()] == ["suffix", *gated]
    assert not torch.equal(method.suffix.detach(), suffix_before)
    if gated:  # the gates opened from 0
        assert method.suffix_gate.detach().abs().min() > 0
    for name, p in frozen.model.named_parameters():
        assert torch.equal(p, base_before[name]), name
        assert p.grad is None and not p.requires_grad, name
