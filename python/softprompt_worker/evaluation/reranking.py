"""Reranking metrics over per-query candidate lists: Hits@k, Recall@k, MRR and nDCG@k.

Each query has its own candidates (a reranker's input: the positive plus negatives, or a retriever's
top-k), each with a model score and a relevance grade (> 0 is relevant). Candidate lists may differ in
length: pad them and pass a mask. Conventions match ``evaluation/retrieval.py`` (BEIR / trec_eval):

- ``hits@k``: 1 if any relevant candidate is in the top ``k``, else 0 (a.k.a. top-k accuracy).
- ``recall@k``: relevant candidates in the top ``k`` / relevant candidates of the query.
- ``mrr``: ``1 / rank`` of the first relevant candidate (whole list, no cut-off).
- ``ndcg@k``: ``DCG@k / IDCG@k`` with linear gains, ``DCG@k = sum_{i<=k} grade(c_i) / log2(i + 1)``.

Metrics are averaged over the queries with at least one relevant candidate (others cannot be scored).
**Ties are broken pessimistically**: among equal scores, irrelevant candidates rank first. A constant
scorer therefore gets the worst ranking, never a lucky one from the candidates' input order (a
reranker's candidates usually list the positive first).

    >>> reranking_metrics(torch.tensor([[0.1, 0.9, 0.5]]), torch.tensor([[1.0, 0.0, 0.0]]))
    {'hits@1': 0.0, 'hits@5': 1.0, 'mrr': 0.333..., 'ndcg@10': 0.5, 'queries': 1.0}
"""

from __future__ import annotations

from typing import Sequence

import torch

from softprompt_worker.errors import InvalidArgumentError


def rank_candidates(scores: torch.Tensor, relevance: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Candidate indices best first, ``(Q, C)``: score descending; ties put less relevant candidates
    first (pessimistic) when ``relevance`` is given, else keep input order; masked-out candidates last."""
    scores = scores.float()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (Q, C)
    if relevance is None:
        return torch.argsort(scores, dim=1, descending=True, stable=True)  # (Q, C)
    by_grade = torch.argsort(relevance.float(), dim=1, stable=True)  # (Q, C): least relevant first
    by_score = torch.argsort(scores.gather(1, by_grade), dim=1, descending=True, stable=True)  # (Q, C)
    order = by_grade.gather(1, by_score)  # (Q, C)
    if mask is not None:  # a padded slot never outranks a real candidate, even one scored -inf
        real_first = torch.argsort((~mask.gather(1, order)).int(), dim=1, stable=True)  # (Q, C)
        order = order.gather(1, real_first)
    return order


def reranking_metrics(scores: torch.Tensor, relevance: torch.Tensor, mask: torch.Tensor | None = None, *,
                      hits_at: Sequence[int] = (1, 5), recall_at: Sequence[int] = (), ndcg_at: Sequence[int] = (10,),
                      mrr: bool = True) -> dict[str, float]:
    """Metrics for ``Q`` queries with up to ``C`` candidates each.

    Args:
        scores: ``(Q, C)`` model scores, higher is better.
        relevance: ``(Q, C)`` grades, > 0 relevant (bool works: True = 1).
        mask: ``(Q, C)`` bool, True for a real candidate; None means all are real.
        hits_at, recall_at, ndcg_at: cut-offs of each metric; ``mrr``: include MRR.

    Returns ``{"hits@1": .., "hits@5": .., "mrr": .., "ndcg@10": .., "queries": n}`` (metric names
    ``<metric>@<k>``), where ``queries`` counts the queries that had a relevant candidate.
    """
    if scores.ndim != 2 or relevance.shape != scores.shape or (mask is not None and mask.shape != scores.shape):
        raise InvalidArgumentError(f"reranking_metrics: scores {tuple(scores.shape)}, relevance "
                                   f"{tuple(relevance.shape)} and mask must all be (queries, candidates)")
    for k in (*hits_at, *recall_at, *ndcg_at):
        if not isinstance(k, int) or k < 1:
            raise InvalidArgumentError(f"reranking_metrics: cut-off {k!r} is not a positive int")
    grades = relevance.float().clamp(min=0)  # (Q, C)
    if mask is not None:
        grades = grades * mask  # (Q, C): padding is never relevant
    order = rank_candidates(scores, grades, mask)  # (Q, C)
    ranked = grades.gather(1, order)  # (Q, C): grades in ranked order
    relevant = ranked > 0  # (Q, C)
    n_relevant = relevant.sum(1)  # (Q,)
    keep = n_relevant > 0  # (Q,): queries that can be scored
    out: dict[str, float] = {}
    if not bool(keep.any()):
        return {**{f"hits@{k}": 0.0 for k in hits_at}, **{f"recall@{k}": 0.0 for k in recall_at},
                **({"mrr": 0.0} if mrr else {}), **{f"ndcg@{k}": 0.0 for k in ndcg_at}, "queries": 0.0}
    relevant, ranked, n_relevant = relevant[keep], ranked[keep], n_relevant[keep]
    C = ranked.shape[1]
    for k in hits_at:
        out[f"hits@{k}"] = relevant[:, :k].any(1).float().mean().item()
    for k in recall_at:
        out[f"recall@{k}"] = (relevant[:, :k].sum(1) / n_relevant).mean().item()
    if mrr:
        first = relevant.float().argmax(1)  # (Q,): 0-based rank of the first relevant candidate
        out["mrr"] = (1.0 / (first + 1).float()).mean().item()
    discount = 1.0 / torch.log2(torch.arange(C, dtype=torch.float32, device=ranked.device) + 2.0)  # (C,)
    ideal = ranked.sort(dim=1, descending=True).values  # (Q, C)
    for k in ndcg_at:
        dcg = (ranked[:, :k] * discount[:k]).sum(1)  # (Q,)
        idcg = (ideal[:, :k] * discount[:k]).sum(1)  # (Q,) > 0: every kept query has a relevant candidate
        out[f"ndcg@{k}"] = (dcg / idcg).mean().item()
    out["queries"] = float(keep.sum().item())
    return out
