"""Retrieval and STS metrics over embeddings: nDCG@k, Recall@k, MRR@k (BEIR / trec_eval conventions)
and Spearman correlation.

Relevance judgements (``qrels``) map a query id to ``{doc id: grade}``; a grade > 0 is relevant. Scores
are cosine similarities. Metrics are averaged over the queries that have at least one relevant
document in ``qrels`` (others cannot be scored, as in trec_eval). Definitions, for one query and
cut-off ``k`` over the ranked list ``d_1, d_2, ...``:

- ``ndcg@k``: ``DCG@k / IDCG@k`` with ``DCG@k = sum_{i<=k} grade(d_i) / log2(i + 1)`` (linear gains, as
  trec_eval/BEIR) and ``IDCG@k`` the DCG of the ideal ordering of the judged grades.
- ``recall@k``: relevant documents in the top ``k`` / relevant documents judged.
- ``mrr@k``: ``1 / rank`` of the first relevant document if it is in the top ``k``, else 0.

    >>> retrieval_metrics(q_emb, d_emb, ["q1"], ["d1", "d2"], {"q1": {"d2": 1}}, k_values=(1, 10))
    {'ndcg@1': ..., 'recall@1': ..., 'mrr@1': ..., 'ndcg@10': ..., 'recall@10': ..., 'mrr@10': ...}
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from softprompt_worker.errors import InvalidArgumentError

DEFAULT_K_VALUES = (1, 10, 100)
Qrels = dict[str, dict[str, float]]


def search(queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk_size: int = 1024):
    """Top-``k`` documents per query by cosine similarity: ``(scores, indices)``, each ``(Q, min(k, D))``,
    best first. Queries are scored ``chunk_size`` at a time, so memory is ``chunk_size × D``."""
    if queries.ndim != 2 or corpus.ndim != 2 or queries.shape[1] != corpus.shape[1]:
        raise InvalidArgumentError(f"search: queries {tuple(queries.shape)} and corpus {tuple(corpus.shape)} "
                                   "must be (n, dim) with the same dim")
    q = torch.nn.functional.normalize(queries.float(), dim=-1)  # (Q, H)
    d = torch.nn.functional.normalize(corpus.float(), dim=-1)  # (D, H)
    k = min(k, d.shape[0])
    scores, indices = [], []
    for start in range(0, q.shape[0], chunk_size):
        sims = q[start:start + chunk_size] @ d.T  # (chunk, D)
        top = sims.topk(k, dim=1)  # (chunk, k) each
        scores.append(top.values)
        indices.append(top.indices)
    if not scores:
        return q.new_empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(scores), torch.cat(indices)  # (Q, k), (Q, k)


def retrieval_metrics(query_embeddings: torch.Tensor, corpus_embeddings: torch.Tensor, query_ids: Sequence[str],
                      doc_ids: Sequence[str], qrels: Qrels, k_values: Sequence[int] = DEFAULT_K_VALUES,
                      ) -> dict[str, float]:
    """nDCG/Recall/MRR at each ``k`` of ``k_values`` for queries ``(Q, H)`` against a corpus ``(D, H)``."""
    k_values = _check_k_values(k_values)
    if len(query_ids) != query_embeddings.shape[0] or len(doc_ids) != corpus_embeddings.shape[0]:
        raise InvalidArgumentError("retrieval_metrics: ids and embeddings differ in length")
    _, indices = search(query_embeddings, corpus_embeddings, max(k_values))  # (Q, K)
    ranked = {qid: [doc_ids[i] for i in row] for qid, row in zip(query_ids, indices.tolist())}
    return metrics_from_rankings(ranked, qrels, k_values)


def metrics_from_rankings(ranked: dict[str, list[str]], qrels: Qrels,
                          k_values: Sequence[int] = DEFAULT_K_VALUES) -> dict[str, float]:
    """The metrics of ranked document lists (best first) per query id, averaged over judged queries."""
    k_values = _check_k_values(k_values)
    totals = {f"{name}@{k}": 0.0 for k in k_values for name in ("ndcg", "recall", "mrr")}
    judged = 0
    for qid, docs in ranked.items():
        grades = {d: float(g) for d, g in qrels.get(qid, {}).items() if float(g) > 0}
        if not grades:
            continue
        judged += 1
        gains = [grades.get(d, 0.0) for d in docs]  # grade of each ranked document
        ideal = sorted(grades.values(), reverse=True)
        first_hit = next((i for i, g in enumerate(gains) if g > 0), None)
        for k in k_values:
            idcg = _dcg(ideal[:k])
            totals[f"ndcg@{k}"] += _dcg(gains[:k]) / idcg
            totals[f"recall@{k}"] += sum(1 for g in gains[:k] if g > 0) / len(grades)
            totals[f"mrr@{k}"] += 1.0 / (first_hit + 1) if first_hit is not None and first_hit < k else 0.0
    if judged == 0:
        raise InvalidArgumentError("qrels: no query has a relevant document (grade > 0) among the queries given")
    return {name: total / judged for name, total in totals.items()}


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (ties get their average rank); nan if either is
    constant."""
    if x.ndim != 1 or x.shape != y.shape or x.numel() < 2:
        raise InvalidArgumentError(f"spearman: need two 1-D tensors of the same length >= 2, got "
                                   f"{tuple(x.shape)} and {tuple(y.shape)}")
    rx, ry = _average_ranks(x.double()), _average_ranks(y.double())  # (n,), (n,)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.norm() * ry.norm()).item()
    return float((rx @ ry).item() / denom) if denom > 0 else math.nan


def sts_spearman(embeddings1: torch.Tensor, embeddings2: torch.Tensor, gold: torch.Tensor) -> float:
    """Spearman correlation between the cosine similarity of each pair ``(n, H)`` × ``(n, H)`` and the gold
    scores ``(n,)`` (the STS benchmark metric)."""
    sims = torch.nn.functional.cosine_similarity(embeddings1.float(), embeddings2.float(), dim=-1)  # (n,)
    return spearman(sims, gold.float())


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks ``(n,)``; tied values share the mean of the ranks they span."""
    unique, inverse, counts = torch.unique(values, sorted=True, return_inverse=True, return_counts=True)  # (u,)
    ends = counts.cumsum(0).double()  # (u,): rank of the last copy of each value
    mean_rank = ends - (counts.double() - 1) / 2  # (u,)
    return mean_rank[inverse]  # (n,)


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def _check_k_values(k_values: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(k_values)
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise InvalidArgumentError(f"k_values: {list(ks)!r} must be a non-empty list of positive ints")
    return tuple(sorted(set(ks)))
