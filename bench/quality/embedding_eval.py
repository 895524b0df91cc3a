"""Scoring one retriever on the embedding bench's eval set with the worker's own evaluation code.

Dense retrievers embed through ``ops/embedding.py``'s ``Embedder`` (the ``embed`` op's path: a suffix
prompt, or the base model with a pooling) and are scored by ``evaluation/retrieval.py``'s
``retrieval_metrics``; BM25 rankings by its ``metrics_from_rankings``. The documents are embedded once;
every corpus is a leading slice of them (``EvalSet.corpora``).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch

from embedding_data import EvalSet
from softprompt_worker.evaluation.retrieval import metrics_from_rankings, retrieval_metrics
from softprompt_worker.ops.embedding import Embedder

K_VALUES = (1, 10)
REPORTED = ("ndcg@10", "recall@10", "recall@1", "mrr@10")
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def dense_metrics(embedder: Embedder, data: EvalSet) -> tuple[dict[str, dict[str, float]], float]:
    """``({corpus: {metric: value}}, seconds spent embedding)`` for one embedder."""
    t0 = time.perf_counter()
    queries = embedder.encode(data.queries)  # (Q, H)
    docs = embedder.encode(data.docs)  # (D, H)
    seconds = time.perf_counter() - t0
    if not (torch.isfinite(queries).all() and torch.isfinite(docs).all()):
        raise FloatingPointError("an embedding has a non-finite value")
    out = {}
    for name, n in data.corpora.items():
        scores = retrieval_metrics(queries, docs[:n], data.query_ids, data.doc_ids[:n], data.qrels, K_VALUES)
        out[name] = {m: scores[m] for m in REPORTED}
    return out, seconds


def bm25_metrics(data: EvalSet) -> tuple[dict[str, dict[str, float]], float]:
    """The same, for BM25 (k1 1.2, b 0.75) from scripts/build_dataset_debian.py over each corpus."""
    bm25_class = _dataset_script().BM25
    t0 = time.perf_counter()
    out = {}
    for name, n in data.corpora.items():
        index = bm25_class(data.docs[:n], k1=1.2, b=0.75)
        ranked = {qid: [f"d{i}" for i in index.top(q, max(K_VALUES))] for qid, q in zip(data.query_ids, data.queries)}
        scores = metrics_from_rankings(ranked, data.qrels, K_VALUES)
        out[name] = {m: scores[m] for m in REPORTED}
    return out, time.perf_counter() - t0


def _dataset_script():
    """scripts/build_dataset_debian.py as a module (scripts/ is not a package); it imports the standard
    library only and does nothing at import."""
    spec = importlib.util.spec_from_file_location("build_dataset_debian", SCRIPTS / "build_dataset_debian.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
