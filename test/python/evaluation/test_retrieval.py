"""Retrieval metrics on hand-computed rankings; search; Spearman with ties."""

from __future__ import annotations

import math

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.evaluation import metrics_from_rankings, retrieval_metrics, search, spearman, sts_spearman

torch.set_num_threads(1)


def test_metrics_by_hand():
    ranked = {"q1": ["a", "b", "c", "d"], "q2": ["x", "y", "z", "w"], "q3": ["m", "n"], "unjudged": ["a"]}
    qrels = {"q1": {"b": 1, "d": 2}, "q2": {"x": 1}, "q3": {"zz": 1, "m": 0}}
    got = metrics_from_rankings(ranked, qrels, k_values=(1, 2, 4))
    # q1: gains [0, 1, 0, 2]; ideal [2, 1]. q2: gains [1, 0, 0, 0]. q3: nothing relevant retrieved.
    idcg_q1 = 2 + 1 / math.log2(3)
    expected = {
        "ndcg@1": (0 + 1 + 0) / 3,
        "ndcg@2": ((1 / math.log2(3)) / idcg_q1 + 1 + 0) / 3,
        "ndcg@4": ((1 / math.log2(3) + 2 / math.log2(5)) / idcg_q1 + 1 + 0) / 3,
        "recall@1": (0 + 1 + 0) / 3, "recall@2": (0.5 + 1 + 0) / 3, "recall@4": (1 + 1 + 0) / 3,
        "mrr@1": (0 + 1 + 0) / 3, "mrr@2": (0.5 + 1 + 0) / 3, "mrr@4": (0.5 + 1 + 0) / 3,
    }
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name


def test_search_and_retrieval_metrics_from_embeddings():
    corpus = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # d0, d1, d2
    queries = torch.tensor([[0.0, 2.0], [3.0, 0.1]])  # q0 closest to d1, then d2; q1 closest to d0
    scores, indices = search(queries, corpus, k=2, chunk_size=1)
    assert indices.tolist() == [[1, 2], [0, 2]]
    assert scores[0, 0].item() == pytest.approx(1.0)
    metrics = retrieval_metrics(queries, corpus, ["q0", "q1"], ["d0", "d1", "d2"],
                                {"q0": {"d2": 1}, "q1": {"d0": 1}}, k_values=(1, 10))
    assert metrics["recall@1"] == pytest.approx(0.5)
    assert metrics["mrr@10"] == pytest.approx((0.5 + 1) / 2)
    assert metrics["recall@10"] == pytest.approx(1.0)  # k beyond the corpus size is clipped


def test_bad_inputs_are_rejected():
    with pytest.raises(InvalidArgumentError):
        metrics_from_rankings({"q": ["a"]}, {"q": {"a": 0}})  # no relevant document anywhere
    with pytest.raises(InvalidArgumentError):
        metrics_from_rankings({"q": ["a"]}, {"q": {"a": 1}}, k_values=[0])
    with pytest.raises(InvalidArgumentError):
        search(torch.zeros(2, 3), torch.zeros(2, 4), k=1)


def test_spearman_with_ties_and_sts():
    x = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0])
    y = torch.tensor([2.0, 1.0, 4.0, 3.0, 9.0])
    # Average ranks: x -> [1, 2.5, 2.5, 4, 5]; y -> [2, 1, 4, 3, 5]; Pearson of those, by hand:
    rx, ry = torch.tensor([1, 2.5, 2.5, 4, 5]), torch.tensor([2.0, 1, 4, 3, 5])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    assert spearman(x, y) == pytest.approx(float(rx @ ry / (rx.norm() * ry.norm())))
    assert spearman(x, x ** 3) == pytest.approx(1.0)  # monotone
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert math.isnan(spearman(x, torch.ones(5)))
    e1 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    e2 = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # cosines 1, 0.71, 0
    assert sts_spearman(e1, e2, torch.tensor([5.0, 3.0, 0.0])) == pytest.approx(1.0)
