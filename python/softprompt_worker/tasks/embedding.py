"""Task "embedding": contrastive training of text embeddings, evaluated as retrieval.

Rows (one JSON object each; the first matching spelling wins):

    {"query": str, "positive": str, "negatives"?: [str]}     retrieval pairs, optional hard negatives
    {"anchor": str, "positive": str, "negatives"?: [str]}    sentence-transformers spelling
    {"text1": str, "text2": str}                             plain pairs (text2 is text1's positive)

Training: ``InfoNCELoss`` over each batch (in-batch negatives + every row's hard negatives), or
``CachedInfoNCELoss`` (GradCache) when ``grad_cache_mini_batch`` > 0. Evaluation: every eval row's query
searches the corpus of all eval positives *and* hard negatives (deduplicated by text); its own positive
is the one relevant document. Metrics: ``loss`` (InfoNCE over eval rows in ``eval_batch_size`` blocks,
computed from the same embeddings) and ``ndcg@k``, ``recall@k``, ``mrr@k`` for each ``k`` of
``k_values`` (default 1, 10, 100).

Options (``task_options``): ``EmbeddingTaskOptions`` below (exported to the SDK, docs/schema.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.evaluation.retrieval import retrieval_metrics
from softprompt_worker.fields import option
from softprompt_worker.losses import CachedInfoNCELoss, InfoNCELoss
from softprompt_worker.losses.info_nce import info_nce
from softprompt_worker.methods.suffix_tuning import encode_in_batches
from softprompt_worker.tasks.base import BaseTask, require_str, require_str_list

_QUERY_FIELDS = (("query", "positive"), ("anchor", "positive"), ("text1", "text2"))


def parse_row(row: dict) -> tuple[str, str, list[str]]:
    """``(query, positive, negatives)`` of a row in any accepted spelling; InvalidArgumentError otherwise."""
    if not isinstance(row, dict):
        raise InvalidArgumentError(f"row: expected an object, got {type(row).__name__}")
    for query_field, positive_field in _QUERY_FIELDS:
        if query_field in row:
            query = require_str(row, query_field)
            positive = require_str(row, positive_field)
            negatives = require_str_list(row, "negatives", min_len=0) if "negatives" in row else []
            return query, positive, negatives
    raise InvalidArgumentError(
        f"row: needs 'query'/'anchor' + 'positive' or 'text1' + 'text2'; has {sorted(map(str, row))}")


@dataclass
class EmbeddingTaskOptions:
    """Options of task ``embedding`` (``task_options``)."""

    temperature: float = option(0.05, gt=0, doc="softmax temperature; 0.05 = scale 20 (sentence-transformers "
                                                "MultipleNegativesRankingLoss)")
    symmetric: bool = option(False, doc="also score positives against queries (both directions)")
    grad_cache_mini_batch: int = option(0, ge=0, doc="GradCache mini-batch size (big batches in small memory; "
                                                     "Gao et al. 2021); 0 = off")
    max_length: int | None = option(None, gt=0, sdk={"omit": True},
                                    doc="text tokens per input; null = the method's limit (the train op fills it "
                                        "from training.max_length)")
    eval_batch_size: int = option(64, gt=0, doc="texts per forward pass when evaluating")
    k_values: list[int] = option(factory=lambda: [1, 10, 100], items_gt=0, min_items=1,
                                 errors={"min_items": "expected at least one k"},
                                 doc="cut-offs of nDCG/recall/MRR@k on the eval rows")


@dataclass
class EmbeddingBatch:
    """Tokenised groups ``[queries (B, Tq), positives (B, Tp), negatives (M, Tn)?]`` and a token count."""

    features: list[dict[str, torch.Tensor]]
    n_tokens: int


class EmbeddingTask(BaseTask):
    """Trains a suffix (or any method with ``tokenize`` + ``embed``) for retrieval embeddings."""

    name: ClassVar[str] = "embedding"
    selection_metric: ClassVar[str] = "ndcg@10"  # training.select_by "auto" (selection.py)
    options_class: ClassVar[type] = EmbeddingTaskOptions

    @staticmethod
    def validate_row(row: dict) -> None:
        parse_row(row)

    def __init__(self, method, options: dict, train_rows: list[dict], eval_rows: list[dict]) -> None:
        super().__init__(method, options, train_rows, eval_rows)
        self.train_triples = [parse_row(r) for r in self.train_rows]
        self.eval_triples = [parse_row(r) for r in self.eval_rows]
        opts = self.options
        mini = opts["grad_cache_mini_batch"]
        if mini:
            self.loss_fn: InfoNCELoss = CachedInfoNCELoss(method.embed, opts["temperature"], opts["symmetric"], mini)
        else:
            self.loss_fn = InfoNCELoss(method.embed, opts["temperature"], opts["symmetric"])

    def batches(self, batch_size: int, generator: torch.Generator):
        order = torch.randperm(len(self.train_triples), generator=generator).tolist()  # (n_rows,)
        for start in range(0, len(order), batch_size):
            yield self.collate([self.train_triples[i] for i in order[start:start + batch_size]])

    def collate(self, triples: list[tuple[str, str, list[str]]]) -> EmbeddingBatch:
        queries = [q for q, _, _ in triples]
        positives = [p for _, p, _ in triples]
        negatives = [n for _, _, ns in triples for n in ns]
        groups = [queries, positives] + ([negatives] if negatives else [])
        cpu = [self.method.tokenize(g, max_length=self.options["max_length"], to_device=False) for g in groups]
        k = self.method.config.num_virtual_tokens
        n_tokens = sum(int(f["attention_mask"].sum()) + k * f["attention_mask"].shape[0] for f in cpu)
        # "lengths" stays on the host: GradCache trims its chunks with it, without reading the device.
        features = [{**{name: t.to(self.device, non_blocking=True) for name, t in f.items()},
                     "lengths": f["attention_mask"].sum(1)} for f in cpu]
        return EmbeddingBatch(features=features, n_tokens=n_tokens)

    def loss(self, batch: EmbeddingBatch) -> tuple[torch.Tensor, int]:
        return self.loss_fn(batch.features), batch.n_tokens

    def evaluate(self) -> dict[str, float]:
        if not self.eval_triples:
            return {}
        return evaluate_triples(self.method, self.eval_triples, self.options["temperature"],
                                self.options["symmetric"], self.options["eval_batch_size"],
                                self.options["k_values"], self.options["max_length"])


@torch.no_grad()
def evaluate_triples(method, triples: list[tuple[str, str, list[str]]], temperature: float, symmetric: bool,
                     batch_size: int, k_values, max_length: int | None = None) -> dict[str, float]:
    """Retrieval metrics and the InfoNCE loss of (query, positive, negatives) triples; see the module doc."""
    corpus: dict[str, int] = {}  # text -> doc index
    for _, positive, negatives in triples:
        for text in [positive, *negatives]:
            corpus.setdefault(text, len(corpus))
    texts = list(corpus)

    def embed(chunk: list[str]) -> torch.Tensor:
        return method.embed(method.tokenize(chunk, max_length=max_length))  # (chunk, H)

    query_emb = encode_in_batches([q for q, _, _ in triples], batch_size, embed)  # (Q, H)
    doc_emb = encode_in_batches(texts, batch_size, embed)  # (D, H)
    positive_idx = torch.tensor([corpus[p] for _, p, _ in triples])  # (Q,)
    losses = []
    for start in range(0, len(triples), batch_size):
        rows = triples[start:start + batch_size]
        neg_idx = torch.tensor([corpus[n] for _, _, ns in rows for n in ns], dtype=torch.long)  # (M,)
        losses.append(info_nce(query_emb[start:start + len(rows)], doc_emb[positive_idx[start:start + len(rows)]],
                               doc_emb[neg_idx] if len(neg_idx) else None, temperature, symmetric) * len(rows))
    query_ids = [f"q{i}" for i in range(len(triples))]
    doc_ids = [f"d{i}" for i in range(len(texts))]
    qrels = {qid: {doc_ids[int(i)]: 1} for qid, i in zip(query_ids, positive_idx)}
    metrics = retrieval_metrics(query_emb, doc_emb, query_ids, doc_ids, qrels, k_values)
    return {"loss": float(torch.stack(losses).sum() / len(triples)), **metrics}


TASK = EmbeddingTask
