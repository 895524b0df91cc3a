"""Query-likelihood loss for rerankers that score by log p(query | passage): NLL plus a margin term."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError

SCORES = ("mean", "sum")


class QueryLikelihoodLoss(nn.Module):
    """Make the query likely given its positive passage, and likelier than given any negative.

    With ``s(q, p)`` the query's log-likelihood given passage ``p`` (``scoring.py``; the per-token mean
    by default), for a batch of ``B`` queries each with one positive ``p+`` and up to ``K`` negatives:

        loss = nll_weight    * mean_b [ -log p(q_b | p+_b) / |q_b| ]
             + margin_weight * mean_{b,k} [ max(0, margin - (s(q_b, p+_b) - s(q_b, p-_bk))) ]

    The NLL term is the generation objective the reranker is trained with in passage-specific prompt
    tuning (it keeps the prompt a good *question generator*); the hinge term is the ranking signal that
    separates positives from negatives by at least ``margin``. Negatives may be hard negatives, in-batch
    negatives (other queries' positives) or both; the task decides and passes a mask.

    Args:
        score_fn: maps a ``scoring.PairBatch`` to ``scoring.Scores``, e.g. a ``PassageTuning`` method.
            Only ``forward`` uses it.
        nll_weight: weight of the NLL term (>= 0). 1.0 by default.
        margin_weight: weight of the hinge term (>= 0). 1.0 by default; 0 gives plain NLL training.
        margin: required gap between positive and negative scores, in the units of ``score``:
            nats per query token for ``"mean"`` (default 0.5), nats per query for ``"sum"``.
        score: ``"mean"`` (per-token log-likelihood, independent of query length) or ``"sum"``. The NLL
            term is always per token, so long queries do not dominate.

    References:
        - Wu et al., "Passage-specific Prompt Tuning for Passage Reranking in Question Answering with
          Large Language Models", SIGIR 2024 Gen-IR (NLL + ranking loss on soft prompts).
        - Sachan et al., "Improving Passage Retrieval with Zero-Shot Question Generation", EMNLP 2022
          (UPR: the query-likelihood score).
        - Nogueira dos Santos et al., "Beyond [CLS] through Ranking by Generation", EMNLP 2020
          (query likelihood trained with unlikelihood/hinge-style ranking losses).

    Inputs:
        +-----------------------------------------------+------------------------------------------+
        | ``compute_loss_from_scores`` argument         | shape                                    |
        +===============================================+==========================================+
        | positive (log-likelihoods, summed)            | ``(B,)``                                 |
        | negatives (log-likelihoods, summed)           | ``(B, K)``, ``K >= 0``                   |
        | negative_mask (True = a real negative)        | ``(B, K)`` bool, or None (all real)      |
        | num_tokens (query tokens per query)           | ``(B,)``                                 |
        +-----------------------------------------------+------------------------------------------+

    Recommendations:
        - Start with ``margin_weight = 1`` and a margin of a few tenths of a nat per token; raise the
          margin when the positives already win by a lot on training data.
        - With in-batch negatives make sure no two rows share a positive (a false negative).
        - ``nll_weight = 0`` turns this into a pure ranking loss; the prompt then may stop reading as an
          instruction, which is fine for reranking but loses the generator.

    Example:
        >>> loss_fn = QueryLikelihoodLoss(method, margin=0.5)
        >>> loss = loss_fn(batch, positive_index, negative_index, negative_mask)
        >>> loss.backward()
    """

    def __init__(self, score_fn: Callable | None = None, *, nll_weight: float = 1.0, margin_weight: float = 1.0,
                 margin: float = 0.5, score: str = "mean"):
        super().__init__()
        for name, value in (("nll_weight", nll_weight), ("margin_weight", margin_weight), ("margin", margin)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidArgumentError(f"{name}: {value!r} is not a number >= 0")
        if nll_weight == 0 and margin_weight == 0:
            raise InvalidArgumentError("nll_weight and margin_weight: at least one must be > 0")
        if score not in SCORES:
            raise InvalidArgumentError(f"score: {score!r} is not one of {', '.join(SCORES)}")
        self.score_fn = score_fn
        self.nll_weight, self.margin_weight, self.margin = float(nll_weight), float(margin_weight), float(margin)
        self.score = score

    def forward(self, batch, positive_index: torch.Tensor, negative_index: torch.Tensor,
                negative_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Score the pairs of ``batch`` and pick each query's positive ``(B,)`` and negatives ``(B, K)``
        by pair index."""
        if self.score_fn is None:
            raise InvalidArgumentError("QueryLikelihoodLoss: no score_fn; call compute_loss_from_scores")
        scores = self.score_fn(batch)
        ll, n = scores.log_likelihood, scores.num_tokens  # (N,), (N,)
        return self.compute_loss_from_scores(ll[positive_index], ll[negative_index], negative_mask,
                                             n[positive_index])

    def compute_loss_from_scores(self, positive: torch.Tensor, negatives: torch.Tensor,
                                 negative_mask: torch.Tensor | None, num_tokens: torch.Tensor) -> torch.Tensor:
        return self.terms(positive, negatives, negative_mask, num_tokens)["loss"]

    def terms(self, positive: torch.Tensor, negatives: torch.Tensor, negative_mask: torch.Tensor | None,
              num_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "nll", "hinge"}`` as 0-d tensors (the parts, for logging)."""
        n = num_tokens.to(positive.dtype).clamp(min=1)  # (B,)
        nll = (-positive / n).mean()  # ()
        if negatives.numel() == 0:
            hinge = positive.new_zeros(())  # ()
        else:
            if negative_mask is None:
                negative_mask = torch.ones_like(negatives, dtype=torch.bool)  # (B, K)
            per_query = n.unsqueeze(1) if self.score == "mean" else torch.ones_like(n).unsqueeze(1)  # (B, 1)
            gap = (positive.unsqueeze(1) - negatives) / per_query  # (B, K)
            violation = torch.relu(self.margin - gap) * negative_mask  # (B, K)
            hinge = violation.sum() / negative_mask.sum().clamp(min=1)  # ()
        loss = self.nll_weight * nll + self.margin_weight * hinge  # ()
        return {"loss": loss, "nll": nll, "hinge": hinge}
