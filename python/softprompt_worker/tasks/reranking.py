"""Task "reranking": train a query-likelihood reranker (passage-specific prompt tuning).

Rows (one JSON object each)::

    {"query": str, "positive": str, "negatives"?: [str]}

Training: for each batch of ``B`` rows, every query is scored against its positive and its negatives:
up to ``max_hard_negatives`` of its own ``negatives`` (sampled with the loop's generator) and/or the
other rows' positives (in-batch negatives; a passage whose text equals the query's positive is never
its negative). The loss is ``QueryLikelihoodLoss``: NLL of the query given its positive + a hinge term
``max(0, margin - (s(q, p+) - s(q, p-)))`` over the negatives. Every distinct passage text in a batch is
encoded (and gets its passage vectors) once.

Evaluation: each eval row's candidates (its positive + all its negatives) are reranked by the
query log-likelihood. Metrics: ``hits@1``, ``hits@5``, ``mrr``, ``ndcg@10`` (``evaluation/reranking.py``,
pessimistic ties), and ``loss`` (the training loss over the same scores, hard negatives only). A row with
no negatives is trivially ranked first; give eval rows negatives.

Options (``task_options``): ``RerankingTaskOptions`` below (exported to the SDK, docs/schema.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch

from softprompt_worker.evaluation.reranking import reranking_metrics
from softprompt_worker.fields import option
from softprompt_worker.losses.query_likelihood import SCORES, QueryLikelihoodLoss
from softprompt_worker.inference.scoring import PairBatch, score_candidates, tokenize
from softprompt_worker.tasks.base import BaseTask, require_str, require_str_list

NEGATIVES = ("both", "hard", "in_batch")


@dataclass
class RerankingTaskOptions:
    """Options of task ``reranking`` (``task_options``)."""

    negatives: str = option("both", choices=NEGATIVES, doc="negatives per query: 'both' (its own hard negatives "
                                                             "and in-batch positives), 'hard' or 'in_batch'")
    max_hard_negatives: int = option(4, ge=0, doc="hard negatives sampled per row and step")
    nll_weight: float = option(1.0, ge=0, doc="weight of the NLL term")
    margin_weight: float = option(1.0, ge=0, doc="weight of the margin term")
    margin: float = option(0.5, ge=0, doc="hinge margin between positive and negative scores")
    score: str = option("mean", choices=SCORES, doc="'mean' (per-token log-likelihood) or 'sum'")
    eval_batch_size: int = option(16, gt=0, doc="pairs per forward pass when evaluating")


@dataclass
class RerankingBatch:
    """Pairs to score, and which pair is each query's positive ``(B,)`` / negatives ``(B, K)``."""

    pairs: PairBatch
    positive_index: torch.Tensor  # (B,)
    negative_index: torch.Tensor  # (B, K), padded with 0
    negative_mask: torch.Tensor  # (B, K) bool


class RerankingTask(BaseTask):
    name: ClassVar[str] = "reranking"
    selection_metric: ClassVar[str] = "ndcg@10"  # training.select_by "auto" (selection.py)
    options_class: ClassVar[type] = RerankingTaskOptions

    @staticmethod
    def validate_row(row: dict) -> None:
        require_str(row, "query")
        require_str(row, "positive")
        if "negatives" in row:
            require_str_list(row, "negatives", min_len=0)

    def __init__(self, method, options: dict, train_rows: list[dict], eval_rows: list[dict]) -> None:
        super().__init__(method, options, train_rows, eval_rows)
        opts = self.options
        for row in (*self.train_rows, *self.eval_rows):
            self.validate_row(row)
        self.loss_fn = QueryLikelihoodLoss(method, nll_weight=opts["nll_weight"], margin_weight=opts["margin_weight"],
                                           margin=opts["margin"], score=opts["score"])

    # -- training --------------------------------------------------------------------------------
    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[RerankingBatch]:
        order = torch.randperm(len(self.train_rows), generator=generator).tolist()  # (n_rows,)
        for start in range(0, len(order), batch_size):
            yield self.collate([self.train_rows[i] for i in order[start:start + batch_size]], generator)

    def collate(self, rows: list[dict], generator: torch.Generator | None = None) -> RerankingBatch:
        """Pairs: each query with its positive, then its negatives; distinct passage texts stored once."""
        mode, cap = self.options["negatives"], self.options["max_hard_negatives"]
        texts: dict[str, int] = {}
        index = lambda text: texts.setdefault(text, len(texts))  # noqa: E731
        positives = [index(r["positive"]) for r in rows]  # (B,) passage ids
        negatives: list[list[int]] = []
        for i, row in enumerate(rows):
            own: list[int] = []
            if mode in ("both", "hard"):
                hard = row.get("negatives", [])
                if len(hard) > cap:
                    picks = torch.randperm(len(hard), generator=generator)[:cap].tolist()
                    hard = [hard[j] for j in sorted(picks)]
                own += [index(t) for t in hard]
            if mode in ("both", "in_batch"):
                own += [positives[j] for j in range(len(rows)) if j != i]
            own = list(dict.fromkeys(p for p in own if p != positives[i]))  # no duplicates, no false negative
            negatives.append(own)
        B, K = len(rows), max((len(n) for n in negatives), default=0)
        pair_query = list(range(B)) + [i for i, n in enumerate(negatives) for _ in n]
        pair_passage = positives + [p for n in negatives for p in n]
        negative_index = torch.zeros(B, K, dtype=torch.long)  # (B, K)
        negative_mask = torch.zeros(B, K, dtype=torch.bool)  # (B, K)
        cursor = B
        for i, n in enumerate(negatives):
            negative_index[i, :len(n)] = torch.arange(cursor, cursor + len(n))
            negative_mask[i, :len(n)] = True
            cursor += len(n)
        layout, tok = self.method.layout, self.method.frozen.tokenizer
        q = tokenize(tok, [r["query"] for r in rows], prefix=layout.query_prefix, max_tokens=layout.max_query_tokens)
        p = tokenize(tok, list(texts), max_tokens=layout.max_passage_tokens)
        pairs = PairBatch.build(q, p, pair_query, pair_passage, self.device)
        move = dict(device=self.device, non_blocking=True)
        return RerankingBatch(pairs, torch.arange(B).to(**move), negative_index.to(**move), negative_mask.to(**move))

    def loss(self, batch: RerankingBatch) -> tuple[torch.Tensor, int]:
        loss = self.loss_fn(batch.pairs, batch.positive_index, batch.negative_index, batch.negative_mask)  # ()
        return loss, batch.pairs.num_text_tokens

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        if not self.eval_rows:
            return {}
        candidates = [[r["positive"], *r.get("negatives", [])] for r in self.eval_rows]
        return evaluate_rows(self.method.frozen, self.method, self.eval_rows, candidates,
                             batch_size=self.options["eval_batch_size"], loss_fn=self.loss_fn)


def evaluate_rows(frozen, conditioner, rows: list[dict], candidates: list[list[str]], *, batch_size: int,
                  loss_fn: QueryLikelihoodLoss | None = None, before_batch=None) -> dict[str, float]:
    """Rerank each row's candidates (the first is its positive) and return the metrics."""
    scored = score_candidates(frozen, conditioner, [r["query"] for r in rows], candidates, batch_size=batch_size,
                              before_batch=before_batch)
    R, C = len(rows), max(len(c) for c in candidates)
    log_likelihood = torch.zeros(R, C)  # (R, C)
    mask = torch.zeros(R, C, dtype=torch.bool)  # (R, C)
    num_tokens = torch.zeros(R, dtype=torch.long)  # (R,)
    for i, s in enumerate(scored):
        log_likelihood[i, :len(s.log_likelihood)] = s.log_likelihood
        mask[i, :len(s.log_likelihood)] = True
        num_tokens[i] = s.num_tokens[0]
    relevance = torch.zeros(R, C)  # (R, C): the positive, and any candidate with the positive's text
    for i, (row, texts) in enumerate(zip(rows, candidates)):
        relevance[i, :len(texts)] = torch.tensor([float(t == row["positive"]) for t in texts])
    metrics = reranking_metrics(log_likelihood, relevance, mask, hits_at=(1, 5), ndcg_at=(10,))
    metrics.pop("queries", None)
    if loss_fn is not None:
        metrics["loss"] = loss_fn.compute_loss_from_scores(log_likelihood[:, 0], log_likelihood[:, 1:], mask[:, 1:],
                                                           num_tokens).item()
    return metrics


TASK = RerankingTask
