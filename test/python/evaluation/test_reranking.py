"""Reranking metrics: hand-worked examples, pessimistic ties, padding, and a plain-Python reference."""

from __future__ import annotations

import math
import random

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.evaluation.reranking import rank_candidates, reranking_metrics


def test_hand_worked_example():
    scores = torch.tensor([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    relevance = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    m = reranking_metrics(scores, relevance, hits_at=(1, 2), recall_at=(2,), ndcg_at=(3,))
    # query 0: positive ranked 3rd; query 1: ranked 2nd
    assert m["hits@1"] == 0.0 and m["hits@2"] == 0.5 and m["recall@2"] == 0.5
    assert math.isclose(m["mrr"], (1 / 3 + 1 / 2) / 2, rel_tol=1e-6)
    assert math.isclose(m["ndcg@3"], (1 / math.log2(4) + 1 / math.log2(3)) / 2, rel_tol=1e-6)
    assert m["queries"] == 2.0


def test_ties_are_pessimistic_so_a_constant_scorer_gets_the_worst_rank():
    scores = torch.zeros(1, 4)
    relevance = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # the positive is listed first
    m = reranking_metrics(scores, relevance)
    assert m["hits@1"] == 0.0 and math.isclose(m["mrr"], 0.25)


def test_padding_is_never_ranked_or_relevant_and_queries_without_positives_are_skipped():
    scores = torch.tensor([[1.0, 2.0, 9.0], [5.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    relevance = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True], [True, True, True]])
    m = reranking_metrics(scores, relevance, mask)
    assert m["queries"] == 2.0  # query 2 has no relevant candidate
    assert math.isclose(m["mrr"], (1 / 2 + 1) / 2)  # query 0: the padded 9.0 (relevant) is ignored
    order = rank_candidates(torch.tensor([[float("-inf"), 0.0, 7.0]]), mask=torch.tensor([[True, True, False]]))
    assert order[0, -1].item() == 2  # padding last, even below a real -inf score


def _reference(scores, grades, k_hits, k_ndcg):
    """Plain Python: sort each list by (-score, grade) and read the metrics off the ranked grades."""
    out = {"hits": [], "mrr": [], "ndcg": []}
    for s, g in zip(scores, grades):
        if not any(x > 0 for x in g):
            continue
        ranked = [gr for _, gr in sorted(zip(s, g), key=lambda t: (-t[0], t[1]))]
        first = next(i for i, x in enumerate(ranked) if x > 0)
        out["hits"].append(float(first < k_hits))
        out["mrr"].append(1 / (first + 1))
        dcg = sum(x / math.log2(i + 2) for i, x in enumerate(ranked[:k_ndcg]))
        idcg = sum(x / math.log2(i + 2) for i, x in enumerate(sorted(g, reverse=True)[:k_ndcg]))
        out["ndcg"].append(dcg / idcg)
    return {k: sum(v) / len(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(5))
def test_matches_plain_python_reference_with_graded_relevance_and_ties(seed):
    rng = random.Random(seed)
    scores = [[float(rng.randint(0, 4)) for _ in range(8)] for _ in range(6)]  # many ties
    grades = [[float(rng.choice([0, 0, 0, 1, 2])) for _ in range(8)] for _ in range(6)]
    m = reranking_metrics(torch.tensor(scores), torch.tensor(grades), hits_at=(3,), ndcg_at=(5,))
    ref = _reference(scores, grades, 3, 5)
    assert math.isclose(m["hits@3"], ref["hits"], rel_tol=1e-6)
    assert math.isclose(m["mrr"], ref["mrr"], rel_tol=1e-6)
    assert math.isclose(m["ndcg@5"], ref["ndcg"], rel_tol=1e-5)


def test_bad_shapes_and_cutoffs_raise():
    with pytest.raises(InvalidArgumentError, match="queries, candidates"):
        reranking_metrics(torch.zeros(3), torch.zeros(3))
    with pytest.raises(InvalidArgumentError, match="cut-off 0"):
        reranking_metrics(torch.zeros(1, 2), torch.ones(1, 2), hits_at=(0,))
