"""Passage-specific prompt tuning LEARNS: on a relation the frozen LM does not know, the tuned reranker
beats UPR on held-out queries by a wide margin, the base weights stay bit-identical, and only the soft
prompt and the bottleneck get gradients.

The set-up, all offline on one CPU thread:

1. A tiny GPT-2 is pretrained (~400 steps) on UPR-format text ``<s>Passage: <letters> Question: <letters>``
   whose question letters are drawn from the passage's letters. It learns to copy: UPR on top of it
   ranks a passage by letter overlap (checked below: UPR is good at *that*).
2. The reranking task hides the relevance behind a fixed random derangement ``pi`` of the letters: the
   question is ``pi`` applied to letters of its passage. The frozen LM never saw ``pi``, so UPR is at
   chance level. The relation is learnable only through the passage-specific vectors: the bottleneck
   can map each passage letter's embedding to (something the LM copies as) ``pi(letter)``.
"""

from __future__ import annotations

import random

import pytest
import torch

from softprompt_worker.methods.passage_tuning import PassageTuning, PassageTuningConfig
from softprompt_worker.models import FrozenModel, ModelSpec, fingerprint
from softprompt_worker.inference.scoring import HardPrompt, Layout
from softprompt_worker.tasks.reranking import RerankingTask, evaluate_rows
from softprompt_worker.models.tiny import tiny_model
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)

# Uppercase letters without P and Q, so no template character ("Passage: ", " Question:") is a letter the
# LM could copy: its copy head must follow content, not a fixed position.
ALPHABET = "ABCDEFGHIJKLMNORSTUVWXYZ"
INSTRUCTION = " Question:"  # short hard prompt keeps the pretraining sequences short
PASSAGE_LETTERS, QUERY_LETTERS, NEGATIVES = 8, 8, 7


def _passage(rng: random.Random, low: int = PASSAGE_LETTERS, high: int = PASSAGE_LETTERS) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))


def _query(rng: random.Random, passage: str, n: int, mapping: dict[str, str] | None) -> str:
    letters = [rng.choice(passage) for _ in range(n)]
    return "".join(mapping[c] if mapping else c for c in letters)


def _rows(n: int, seed: int, mapping: dict[str, str] | None) -> list[dict]:
    rng, rows = random.Random(seed), []
    for _ in range(n):
        positive = _passage(rng)
        rows.append({"query": _query(rng, positive, QUERY_LETTERS, mapping), "positive": positive,
                     "negatives": [_passage(rng) for _ in range(NEGATIVES)]})
    return rows


def _derangement(seed: int) -> dict[str, str]:
    order = list(ALPHABET)
    random.Random(seed).shuffle(order)
    return {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}  # one cycle: no fixed point


@pytest.fixture(scope="module")
def copying_lm() -> FrozenModel:
    """A tiny GPT-2 pretrained to copy passage letters into the question (left-padded batches of 32)."""
    torch.manual_seed(0)
    model, tok = tiny_model("gpt2", seed=0)
    rng = random.Random(0)
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prefix, instruction = enc("Passage: "), enc(INSTRUCTION)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(400):
        rows, labels = [], []
        for _ in range(32):
            passage = _passage(rng, 4, 16)  # varying lengths: the copy cannot rely on positions
            context = [tok.bos_token_id] + prefix + enc(passage) + instruction
            query = enc(" " + _query(rng, passage, 4, None))
            rows.append(context + query)
            labels.append([-100] * len(context) + query)  # learn the question only
        width = max(map(len, rows))
        pad = [width - len(r) for r in rows]
        ids = torch.tensor([[tok.pad_token_id] * p + r for p, r in zip(pad, rows)])  # (32, width)
        mask = torch.tensor([[0] * p + [1] * len(r) for p, r in zip(pad, rows)])  # (32, width)
        target = torch.tensor([[-100] * p + l for p, l in zip(pad, labels)])  # (32, width)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (32, width)
        loss = model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=target).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.requires_grad_(False)
    model.eval()
    return FrozenModel(model=model, tokenizer=tok, spec=ModelSpec(tiny="gpt2"), fingerprint=fingerprint(model))


def _metrics(frozen, conditioner, rows):
    return evaluate_rows(frozen, conditioner, rows, [[r["positive"], *r["negatives"]] for r in rows], batch_size=64)


def test_tuned_reranker_beats_upr_on_a_relation_the_lm_does_not_know(copying_lm):
    frozen = copying_lm
    layout = Layout(instruction=INSTRUCTION)
    upr = HardPrompt(frozen, layout)
    # The pretrained LM makes UPR a real reranker where letters overlap (measured MRR 0.87, chance 0.34) ...
    assert _metrics(frozen, upr, _rows(64, 12, None))["mrr"] > 0.7
    # ... and a chance-level one when the question is the deranged passage (measured MRR 0.31).
    mapping = _derangement(1)
    train_rows, eval_rows = _rows(256, 10, mapping), _rows(128, 11, mapping)
    upr_metrics = _metrics(frozen, upr, eval_rows)
    assert upr_metrics["mrr"] < 0.5

    torch.manual_seed(0)
    method = PassageTuning(PassageTuningConfig(init_text=INSTRUCTION, passage_vectors="per_token",
                                               bottleneck_dim=32), frozen)
    task = RerankingTask(method, {"max_hard_negatives": 3, "eval_batch_size": 64}, train_rows, eval_rows)
    base = {name: p.detach().clone() for name, p in frozen.model.named_parameters()}
    events: list[dict] = []
    config = TrainingConfig.from_dict({"steps": 200, "batch_size": 8, "lr": 1e-1, "log_every": 20})
    summary = train(method, task, config, emit=events.append)

    losses = [e["loss"] for e in events if e["event"] == "step"]
    tuned = [e for e in events if e["event"] == "eval"][-1]["metrics"]
    # Measured (torch 2.13, transformers 5.24, CPU): train loss 3.41 -> 2.80; UPR -> tuned on 128 held-out
    # queries: MRR 0.31 -> 0.67, hits@1 0.09 -> 0.48, nDCG@10 0.47 -> 0.75. Margins leave ~0.1 of slack.
    assert summary["status"] == "completed"
    assert losses[-1] < losses[0] - 0.2
    assert tuned["mrr"] > upr_metrics["mrr"] + 0.25
    assert tuned["hits@1"] > upr_metrics["hits@1"] + 0.25
    assert tuned["ndcg@10"] > upr_metrics["ndcg@10"] + 0.15
    for name, p in frozen.model.named_parameters():
        assert torch.equal(p, base[name]), f"frozen weight {name} changed"
        assert p.grad is None, f"frozen weight {name} got a gradient"
    assert {n for n, _ in method.named_parameters()} == {"prompt", "bottleneck.down.weight", "bottleneck.down.bias",
                                                           "bottleneck.up.weight", "bottleneck.up.bias"}
