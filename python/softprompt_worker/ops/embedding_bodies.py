"""The request and reply bodies of ops ``embed`` and ``evaluate_retrieval`` (``ops/embedding.py``), declared
once: the worker parses requests with them (``fields.parse``) and builds replies from them, and
``make schema`` exports them to JSON Schema and the SDK's zod schemas and types (docs/schema.md).
Cross-field rules (a model or a prompt; a whole retrieval set; one STS score per pair) stay in the op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.evaluation.retrieval import DEFAULT_K_VALUES
from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_INFERENCE_BATCH_SIZE
from softprompt_worker.methods.suffix_tuning import POOLINGS

NON_EMPTY_MAP = "expected a non-empty map of id → text"


@dataclass(kw_only=True)
class EmbedderRequest:
    """Which embedder: a ``suffix_tuning`` prompt, or the base model (mean pooling)."""

    model: dict[str, Any] | None = option(None, ref="model", doc="the base model; required without prompt")
    prompt: str | None = option(None, non_empty=True, errors={"non_empty": "expected a prompt name or checkpoint path"},
                                doc="a suffix_tuning prompt: a loaded prompt's name, else a checkpoint path")
    batch_size: int = option(32, ge=1, le=MAX_INFERENCE_BATCH_SIZE, message="range", sdk={"optional": True},
                             doc="texts per forward pass; changes speed and memory, never the result")
    pooling: str | None = option(None, choices=POOLINGS,
                                 doc="how token states become one vector; default: the prompt's, 'mean' without one")


@dataclass(kw_only=True)
class EmbedRequest(EmbedderRequest):
    """Op ``embed``: texts to embed, row i of the reply's tensor for texts[i]."""

    texts: list[str] = option(min_items=1, errors={"min_items": "expected at least one string"},
                              doc="the texts (at most MAX_TEXTS)")
    normalize: bool | None = option(None, doc="L2-normalise each row; default: the prompt's, true without one")


@dataclass
class EmbedReply:
    """Op ``embed``'s reply; the tensor ``embeddings`` (f32, count x dim) travels beside it."""

    count: int = option(ge=0, doc="rows of the embeddings tensor")
    dim: int = option(ge=0, doc="columns of the embeddings tensor")
    pooling: str = option(choices=POOLINGS, doc="the pooling used")
    normalized: bool = option(doc="whether rows are unit length")
    source: str = option(doc="'suffix_tuning' (a trained prompt) or 'base' (the bare model)")


@dataclass
class StsSet:
    """Sentence pairs with gold similarity scores (STS benchmarks), one score per pair."""

    pairs: list[tuple[str, str]] = option(min_items=2, doc="the sentence pairs")
    scores: list[float] = option(doc="gold similarity of each pair")


@dataclass(kw_only=True)
class EvaluateRetrievalRequest(EmbedderRequest):
    """Op ``evaluate_retrieval``: a retrieval set (queries + corpus + qrels), ``sts``, or both."""

    queries: dict[str, str] | None = option(None, min_items=1, errors={"min_items": NON_EMPTY_MAP},
                                            doc="query texts by query id")
    corpus: dict[str, str] | None = option(None, min_items=1, errors={"min_items": NON_EMPTY_MAP},
                                           doc="document texts by document id")
    qrels: dict[str, dict[str, float]] | None = option(
        None, min_items=1, errors={"min_items": "expected a non-empty map of query id → { doc id: grade }"},
        doc="relevance grades qrels[query id][doc id], > 0 is relevant")
    k_values: list[int] = option(factory=lambda: list(DEFAULT_K_VALUES), items_gt=0, min_items=1,
                                 sdk={"optional": True}, doc="cut-offs of nDCG@k, Recall@k, MRR@k")
    sts: StsSet | None = option(None, doc="sentence pairs with gold scores, for Spearman correlation")


@dataclass
class EvaluateRetrievalReply:
    """Op ``evaluate_retrieval``'s reply; scores are cosine similarities (``evaluation/retrieval.py``)."""

    source: str = option(doc="'suffix_tuning' or 'base'")
    metrics: dict[str, float] = option(doc="ndcg@k, recall@k, mrr@k per k (retrieval set); sts_spearman (sts)")
    queries: int = option(doc="queries evaluated (those with a relevant document)")
    corpus: int = option(doc="documents embedded")
    pairs: int = option(doc="STS pairs evaluated")


BODIES = {"embed_request": EmbedRequest, "embed_reply": EmbedReply,
          "evaluate_retrieval_request": EvaluateRetrievalRequest, "evaluate_retrieval_reply": EvaluateRetrievalReply}
