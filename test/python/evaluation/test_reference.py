"""The hand-written retrieval and reranking metrics (evaluation/) against trec_eval, the reference
implementation, through pytrec_eval (a dev dependency), on random runs: random corpora, graded
judgements and distinct scores (trec_eval breaks score ties by document id, ours pessimistically, so
ties are left out on purpose). Every metric must agree to 1e-6 on every run."""

from __future__ import annotations

import random

import pytest
import torch

from softprompt_worker.evaluation.reranking import reranking_metrics
from softprompt_worker.evaluation.retrieval import metrics_from_rankings

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier is a dev dependency (pip install -e '.[dev]')")

RUNS = 40
K = (1, 3, 10)


def _random_case(rng: random.Random, queries: int, docs: int):
    """qrels (every query has a relevant document), and a run with distinct scores."""
    qrels, run = {}, {}
    for q in range(queries):
        grades = {f"d{d}": rng.choice((0, 0, 0, 1, 2, 3)) for d in range(docs)}
        grades[f"d{rng.randrange(docs)}"] = rng.choice((1, 2, 3))
        qrels[f"q{q}"] = grades
        scores = rng.sample(range(10 * docs), docs)  # distinct
        run[f"q{q}"] = {f"d{d}": float(s) for d, s in enumerate(scores)}
    return qrels, run


def _trec(qrels, run, measures):
    """pytrec_eval's per-query measures, averaged over the queries (all judged)."""
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = next(iter(per_query.values())).keys()
    return {name: sum(q[name] for q in per_query.values()) / len(per_query) for name in names}


def _top(run, k):
    return {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:k]) for q, docs in run.items()}


@pytest.mark.parametrize("seed", range(RUNS))
def test_retrieval_metrics_match_trec_eval(seed):
    rng = random.Random(seed)
    qrels, run = _random_case(rng, queries=rng.randint(1, 8), docs=rng.randint(2, 30))
    ranked = {q: [d for d, _ in sorted(docs.items(), key=lambda kv: -kv[1])] for q, docs in run.items()}
    ours = metrics_from_rankings(ranked, {q: {d: float(g) for d, g in gs.items()} for q, gs in qrels.items()}, K)
    ref = _trec(qrels, run, {"ndcg_cut.1,3,10", "recall.1,3,10"})
    for k in K:
        assert ours[f"ndcg@{k}"] == pytest.approx(ref[f"ndcg_cut_{k}"], abs=1e-6)
        assert ours[f"recall@{k}"] == pytest.approx(ref[f"recall_{k}"], abs=1e-6)
        # MRR@k is trec_eval's reciprocal rank of the run cut to its top k.
        assert ours[f"mrr@{k}"] == pytest.approx(_trec(qrels, _top(run, k), {"recip_rank"})["recip_rank"], abs=1e-6)


@pytest.mark.parametrize("seed", range(RUNS))
def test_reranking_metrics_match_trec_eval(seed):
    rng = random.Random(1000 + seed)
    Q, C = rng.randint(1, 8), rng.randint(2, 12)
    lengths = [rng.randint(1, C) for _ in range(Q)]  # candidate lists of their own lengths, padded to C
    scores = torch.tensor([rng.sample(range(100 * C), C) for _ in range(Q)], dtype=torch.float32)  # (Q, C) distinct
    relevance = torch.tensor([[rng.choice((0, 0, 1, 2)) for _ in range(C)] for _ in range(Q)], dtype=torch.float32)
    for q in range(Q):
        relevance[q, rng.randrange(lengths[q])] = rng.choice((1, 2))  # each query has a relevant candidate
    mask = torch.tensor([[c < lengths[q] for c in range(C)] for q in range(Q)])  # (Q, C)
    ours = reranking_metrics(scores, relevance, mask, hits_at=(1, 5), recall_at=(1, 3), ndcg_at=(3, 10))
    qrels = {f"q{q}": {f"c{c}": int(relevance[q, c]) for c in range(lengths[q])} for q in range(Q)}
    run = {f"q{q}": {f"c{c}": float(scores[q, c]) for c in range(lengths[q])} for q in range(Q)}
    ref = _trec(qrels, run, {"success.1,5", "recall.1,3", "recip_rank", "ndcg_cut.3,10"})
    assert ours["queries"] == Q
    assert ours["hits@1"] == pytest.approx(ref["success_1"], abs=1e-6)
    assert ours["hits@5"] == pytest.approx(ref["success_5"], abs=1e-6)
    assert ours["recall@1"] == pytest.approx(ref["recall_1"], abs=1e-6)
    assert ours["recall@3"] == pytest.approx(ref["recall_3"], abs=1e-6)
    assert ours["mrr"] == pytest.approx(ref["recip_rank"], abs=1e-6)
    assert ours["ndcg@3"] == pytest.approx(ref["ndcg_cut_3"], abs=1e-6)
    assert ours["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-6)
