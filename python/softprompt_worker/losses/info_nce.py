"""InfoNCE with in-batch negatives (and optional hard negatives), for training text embeddings."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError

Features = dict[str, torch.Tensor]
Embedder = Callable[[Features], torch.Tensor]


class InfoNCELoss(nn.Module):
    """Contrastive loss: each query must pick its own positive among every candidate in the batch.

    For a batch of ``B`` (query, positive) pairs plus ``M`` hard-negative texts, the candidates of each
    query are the ``B`` positives (its own and the other rows', the *in-batch negatives*) and all ``M``
    hard negatives. Similarities are cosine similarities divided by ``temperature``; the loss is the
    cross-entropy of the query's own positive. This is sentence-transformers'
    ``MultipleNegativesRankingLoss`` with ``scale = 1 / temperature``: the default temperature 0.05 is
    scale 20. With ``symmetric=True`` the loss also asks each positive to pick its own query among the
    ``B`` queries, and averages both directions (``MultipleNegativesSymmetricRankingLoss``).

    Args:
        embed: maps a tokenised batch (``{"input_ids", "attention_mask"}``, ``(n, T)``) to embeddings
            ``(n, H)``; e.g. ``SuffixTuning.embed``. Only ``forward`` uses it.
        temperature: softmax temperature; lower is sharper. 0.05 (scale 20) follows sentence-transformers
            and most contrastive text-embedding work (E5, GTE use 0.01–0.05).
        symmetric: add the positive → query direction.

    References:
        - van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018
          (InfoNCE). https://arxiv.org/abs/1807.03748
        - Henderson et al., "Efficient Natural Language Response Suggestion for Smart Reply", 2017
          (in-batch negatives). https://arxiv.org/abs/1705.00652
        - Zhao et al., "Prompt Tuning Can Simply Adapt Large Language Models to Text Encoders",
          RepL4NLP 2025 (suffix prompt tuning trained with this loss).

    Inputs:
        +--------------------------------------+----------------------------------------------+
        | features                             | shapes                                       |
        +======================================+==============================================+
        | [queries, positives]                 | each ``(B, T_i)``                            |
        | [queries, positives, negatives]      | negatives ``(M, T_n)``, any ``M >= 0``        |
        +--------------------------------------+----------------------------------------------+

        Hard negatives need not be aligned with rows: every one is a candidate for every query.

    Recommendations:
        - Use large batches: every other row is a free negative. When memory limits the batch, use
          ``CachedInfoNCELoss`` (GradCache), which gives the same gradients with a fixed memory cost.
        - Make sure no two rows of a batch share a positive: a duplicate is a false negative.
        - Mined hard negatives help most once in-batch negatives are easy.

    Example:
        >>> loss_fn = InfoNCELoss(method.embed, temperature=0.05)
        >>> q, p = method.tokenize(["what is a cat?"]), method.tokenize(["a cat is a small feline"])
        >>> loss = loss_fn([q, p])
        >>> loss.backward()
    """

    def __init__(self, embed: Embedder | None = None, temperature: float = 0.05, symmetric: bool = False):
        super().__init__()
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise InvalidArgumentError(f"temperature: {temperature!r} is not a positive number")
        self.embed = embed
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)

    def forward(self, features: list[Features]) -> torch.Tensor:
        if self.embed is None:
            raise InvalidArgumentError("InfoNCELoss: no embed function; call compute_loss_from_embeddings")
        features = _check_features(features)
        embeddings = [self.embed(f) for f in features]  # [(B, H), (B, H), (M, H)?]
        return self.compute_loss_from_embeddings(*embeddings)

    def compute_loss_from_embeddings(self, queries: torch.Tensor, positives: torch.Tensor,
                                     negatives: torch.Tensor | None = None) -> torch.Tensor:
        """The loss (a scalar) from ``queries`` ``(B, H)``, ``positives`` ``(B, H)`` and optional
        ``negatives`` ``(M, H)``."""
        return info_nce(queries, positives, negatives, self.temperature, self.symmetric)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, symmetric={self.symmetric}"


def info_nce(queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None,
             temperature: float, symmetric: bool) -> torch.Tensor:
    """InfoNCE over cosine similarities; see ``InfoNCELoss``."""
    if queries.shape != positives.shape:
        raise InvalidArgumentError(f"queries {tuple(queries.shape)} and positives {tuple(positives.shape)} differ")
    B = queries.shape[0]
    q = nn.functional.normalize(queries.float(), dim=-1)  # (B, H)
    candidates = positives if negatives is None else torch.cat([positives, negatives.to(positives.dtype)])
    c = nn.functional.normalize(candidates.float(), dim=-1)  # (B + M, H)
    labels = torch.arange(B, device=q.device)  # (B,): row i's positive is candidate i
    logits = q @ c.T / temperature  # (B, B + M)
    loss = nn.functional.cross_entropy(logits, labels)
    if symmetric:
        backward_logits = c[:B] @ q.T / temperature  # (B, B): each positive against every query
        loss = (loss + nn.functional.cross_entropy(backward_logits, labels)) / 2
    return loss


def _check_features(features: list[Features]) -> list[Features]:
    """Validate the groups; drop an empty negatives group (no hard negatives in this batch)."""
    if len(features) not in (2, 3):
        raise InvalidArgumentError(f"features: expected [queries, positives(, negatives)], got {len(features)} groups")
    if features[0]["input_ids"].shape[0] != features[1]["input_ids"].shape[0]:
        raise InvalidArgumentError("features: queries and positives must have the same number of rows")
    if len(features) == 3 and features[2]["input_ids"].shape[0] == 0:
        return list(features[:2])
    return list(features)
