"""The three rerankers of the reranking benchmark, each scored over the same BM25 top-k lists.

- BM25 order: the first stage's own ranking (score = minus its rank).
- UPR (Sachan et al., 2022): ``scoring.HardPrompt``, the query's log-likelihood given the passage and
  the hard instruction, zero-shot.
- Passage-specific prompt tuning (Wu et al., 2024): the worker's ``passage_tuning`` method and
  ``reranking`` task built and trained exactly as the ``train`` op does (``ops/train.py``: seed, method,
  task, ``training.train``), then scored by the same ``scoring.score_candidates`` as UPR.

Metrics come from the worker's ``evaluation/reranking.py``. Only queries whose positive is in the top k
are scored; a miss counts 0 for Hits@1, Hits@5 and MRR for every reranker, so the "all queries" numbers
are the scored queries' means times (scored / all).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from softprompt_worker.evaluation.reranking import rank_candidates, reranking_metrics
from softprompt_worker.methods.registry import method_class
from softprompt_worker.inference.scoring import HardPrompt, score_candidates
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.tasks.reranking import evaluate_rows
from softprompt_worker.training.loop import TrainingConfig, train

from reranking_first_stage import FirstStage

METRICS = ("hits@1", "hits@5", "mrr")


def bm25_scores(stage: FirstStage) -> torch.Tensor:
    """``(R, k)``: minus the BM25 rank of each candidate of each scored query (higher is better); a
    query with fewer than ``k`` BM25 matches (no shared term with the rest) is padded (see ``mask``)."""
    return _pad([-torch.arange(len(q.candidates), dtype=torch.float32) for q in stage.hit_queries()], stage.top_k)


def llm_scores(frozen, conditioner, stage: FirstStage, batch_size: int) -> tuple[torch.Tensor, dict[str, float]]:
    """``(R, k)`` summed query log-likelihoods of every candidate of every scored query, and timing."""
    hits = stage.hit_queries()
    t0 = time.perf_counter()
    scored = score_candidates(frozen, conditioner, [q.query for q in hits],
                              [[stage.corpus[c] for c in q.candidates] for q in hits], batch_size=batch_size)
    seconds = time.perf_counter() - t0
    scores = _pad([s.log_likelihood.float() for s in scored], stage.top_k)  # (R, k)
    pairs = sum(len(s.log_likelihood) for s in scored)
    return scores, {"score_seconds": seconds, "pairs": pairs, "pairs_per_s": pairs / max(seconds, 1e-9)}


def metrics(stage: FirstStage, scores: torch.Tensor) -> dict[str, Any]:
    """Hits@1, Hits@5, MRR over all queries (misses = 0) and over the scored queries, plus the
    1-based rank of each query's positive (None for a miss), for paired comparisons."""
    hits = stage.hit_queries()
    relevance = _pad([torch.tensor([float(c == q.positive) for c in q.candidates]) for q in hits], stage.top_k)
    mask = _pad([torch.ones(len(q.candidates)) for q in hits], stage.top_k).bool()  # (R, k) real candidates
    scored = reranking_metrics(scores, relevance, mask, hits_at=(1, 5), ndcg_at=())
    share = len(hits) / max(len(stage.queries), 1)
    order = rank_candidates(scores, relevance, mask)  # (R, k) best first, ties pessimistic, padding last
    ranks = (relevance.gather(1, order).argmax(1) + 1).tolist()  # (R,) 1-based rank of the positive
    it = iter(ranks)
    all_ranks = [next(it) if q.positive_rank is not None else None for q in stage.queries]
    return {"all": {m: scored[m] * share for m in METRICS}, "scored": {m: scored[m] for m in METRICS},
            "positive_ranks": all_ranks}


def _pad(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """Rows of up to ``width`` values -> ``(R, width)``, zero-padded on the right."""
    out = torch.zeros(len(rows), width)  # (R, width)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def upr(frozen, layout) -> HardPrompt:
    """UPR with the very layout (prefix, instruction, truncation) the tuned reranker starts from."""
    return HardPrompt(frozen, layout)


def train_passage_tuning(frozen, method_config: dict, task_options: dict, training: dict, train_rows: list[dict],
                         eval_rows: list[dict] | None = None):
    """Build and train as ``ops/train.py`` does; returns ``(method, summary, losses, train_seconds)``."""
    config = TrainingConfig.from_dict(training)
    cls = method_class("passage_tuning")
    losses: list[dict[str, float]] = []

    def emit(event: dict) -> None:
        if event["event"] == "step":
            losses.append({"step": event["step"], "loss": event["loss"]})

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)  # the method's initial vectors come from it, as in the train op
    method = cls(cls.config_class.from_dict(method_config), frozen)
    task = task_class("reranking")(method, dict(task_options), train_rows, eval_rows or [])
    summary = train(method, task, config, emit=emit)
    return method, summary, losses, time.perf_counter() - t0


def trainable_params(method) -> int:
    return sum(p.numel() for p in method.parameters() if p.requires_grad)


def dev_upr(frozen, layout, rows: list[dict], batch_size: int) -> dict[str, float]:
    """UPR on dev rows (positive + their hard negatives), by the task's own evaluation."""
    candidates = [[r["positive"], *r.get("negatives", [])] for r in rows]
    return evaluate_rows(frozen, upr(frozen, layout), rows, candidates, batch_size=batch_size)
