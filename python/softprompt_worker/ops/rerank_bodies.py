"""The request and reply bodies of ops ``rerank`` and ``evaluate_reranking`` (``ops/rerank.py``), declared
once: the worker parses requests with them (``fields.parse``) and builds replies from them, and
``make schema`` exports them to JSON Schema and the SDK's zod schemas and types (docs/schema.md).
Cross-field rules (a model or a prompt; the reply's size) stay in the op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_INFERENCE_BATCH_SIZE

RERANKERS = ("upr", "passage_tuning")


@dataclass(kw_only=True)
class RerankerRequest:
    """Which reranker: a ``passage_tuning`` prompt, or UPR's hard instruction on the frozen model."""

    model: dict[str, Any] | None = option(None, ref="model", doc="the base model (a causal LM); required without prompt")
    prompt: str | None = option(None, non_empty=True, errors={"non_empty": "expected a prompt name or checkpoint path"},
                                doc="a passage_tuning prompt: a loaded prompt's name, else a checkpoint path")
    batch_size: int = option(16, ge=1, le=MAX_INFERENCE_BATCH_SIZE, message="range", sdk={"optional": True},
                             doc="(query, passage) pairs per forward pass; never changes scores")


@dataclass
class RerankQuery:
    """One query and its candidate passages."""

    query: str = option(pattern=r"\S", errors={"pattern": "expected a non-empty string"}, doc="the query")
    passages: list[str] = option(min_items=1, items_non_empty=True, doc="the candidates",
                                 errors={"min_items": "expected at least one passage",
                                         "items_non_empty": "expected a non-empty string"})
    top_k: int | None = option(None, gt=0, doc="keep only the best top_k; default all")


@dataclass(kw_only=True)
class RerankRequest(RerankerRequest):
    """Op ``rerank``: queries, each with its passages, one result per query in order."""

    queries: list[RerankQuery] = option(min_items=1, errors={"min_items": "expected at least one query"},
                                        doc="the queries")


@dataclass
class RerankResult:
    """One query's passages, best first (ties keep input order), cut to top_k."""

    indices: list[int] = option(doc="indices into the query's passages, best first")
    log_likelihood: list[float] = option(doc="summed log-likelihood of the query's tokens, aligned with indices")
    mean_log_likelihood: list[float] = option(doc="the same per query token")


@dataclass
class RerankReply:
    """Op ``rerank``'s reply."""

    reranker: str = option(choices=RERANKERS, doc="which reranker scored")
    results: list[RerankResult] = option(doc="one per query, in request order")


@dataclass
class RerankingRow:
    """One query with its relevant passage and hard negatives: a row of the reranking task
    (``RerankingTask.validate_row`` also refuses empty texts)."""

    query: str = option(doc="the query")
    positive: str = option(doc="its relevant passage")
    negatives: list[str] | None = option(None, doc="hard negatives; a row without any is trivially ranked first")


@dataclass(kw_only=True)
class EvaluateRerankingRequest(RerankerRequest):
    """Op ``evaluate_reranking``: rows to rank each positive among its negatives."""

    rows: list[RerankingRow] = option(min_items=1, errors={"min_items": "expected at least one row"}, doc="the rows")


@dataclass
class EvaluateRerankingReply:
    """Op ``evaluate_reranking``'s reply (``evaluation/reranking.py``, pessimistic ties)."""

    reranker: str = option(choices=RERANKERS, doc="which reranker scored")
    queries: int = option(doc="rows evaluated")
    metrics: dict[str, float] = option(doc="hits@1, hits@5, mrr, ndcg@10")


BODIES = {"rerank_request": RerankRequest, "rerank_reply": RerankReply,
          "evaluate_reranking_request": EvaluateRerankingRequest, "evaluate_reranking_reply": EvaluateRerankingReply}
