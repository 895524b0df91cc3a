"""InfoNCE with GradCache: large contrastive batches at the memory cost of one mini-batch."""

from __future__ import annotations

import torch
from ..errors import InvalidArgumentError
from .info_nce import Embedder, Features, InfoNCELoss, _check_features


class CachedInfoNCELoss(InfoNCELoss):
    """``InfoNCELoss`` whose embeddings are computed ``mini_batch_size`` rows at a time (GradCache).

    The contrastive loss couples every row with every other, so a plain backward keeps the activations
    of the whole batch alive. GradCache splits the step in two: (1) embed all rows in chunks *without*
    grad, compute the loss on those embeddings and the gradient of the loss with respect to each
    embedding (cheap: ``(n, H)``); (2) when the training loop calls ``backward()``, re-embed each chunk
    *with* grad and backpropagate the cached embedding gradients, one chunk at a time. The parameter
    gradients equal the full-batch ones (up to float rounding) while peak memory is one chunk.

    Args:
        embed: as ``InfoNCELoss``; it must be deterministic (the frozen model runs in ``eval()`` mode,
            so no dropout), because step (2) recomputes what step (1) produced.
        temperature: as ``InfoNCELoss``: 0.05 = scale 20.
        symmetric: as ``InfoNCELoss``.
        mini_batch_size: rows embedded at once; memory grows with it, gradients do not change.

    References:
        - Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"
          (GradCache), RepL4NLP 2021. https://arxiv.org/abs/2101.06983
        - sentence-transformers' ``CachedMultipleNegativesRankingLoss``.

    Inputs:
        As ``InfoNCELoss``: ``[queries, positives]`` or ``[queries, positives, negatives]``.

    Recommendations:
        - Choose the batch size for the contrastive task (more negatives) and ``mini_batch_size`` for the
          device; a step costs about 1.5× the compute of a plain one (every row is embedded twice,
          once without grad).
        - Call ``backward()`` on the returned loss exactly once per ``forward``; the cached gradients
          are consumed by it.

    Example:
        >>> loss_fn = CachedInfoNCELoss(method.embed, mini_batch_size=8)
        >>> loss = loss_fn([method.tokenize(queries), method.tokenize(passages)])  # 512 rows, say
        >>> loss.backward()                                                      # chunks of 8
    """

    def __init__(self, embed: Embedder, temperature: float = 0.05, symmetric: bool = False,
                 mini_batch_size: int = 32):
        super().__init__(embed, temperature, symmetric)
        if not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise InvalidArgumentError(f"mini_batch_size: {mini_batch_size!r} is not a positive int")
        self.mini_batch_size = mini_batch_size

    def forward(self, features: list[Features]) -> torch.Tensor:
        features = _check_features(features)
        chunks = [_chunks(f, self.mini_batch_size) for f in features]  # per group, list of sub-batches
        with torch.no_grad():
            reps = [torch.cat([self.embed(c) for c in group]) for group in chunks]  # [(B, H), (B, H), (M, H)?]
        if not torch.is_grad_enabled():
            return self.compute_loss_from_embeddings(*reps)
        # Step 1: the loss on detached embeddings, and its gradient with respect to each of them.
        leaves = [r.detach().requires_grad_() for r in reps]
        loss = self.compute_loss_from_embeddings(*leaves)
        cached = torch.autograd.grad(loss, leaves)  # [(B, H), (B, H), (M, H)?]
        # Step 2 runs when the caller backpropagates through the returned (leaf) loss.
        out = loss.detach().requires_grad_()
        out.register_hook(lambda grad_output: self._replay(chunks, cached, grad_output))
        return out

    def _replay(self, chunks: list[list[Features]], cached: tuple[torch.Tensor, ...], grad_output: torch.Tensor):
        """Re-embed each chunk with grad and backpropagate its slice of the cached embedding gradients."""
        with torch.enable_grad():
            for group, grads in zip(chunks, cached):
                start = 0
                for chunk in group:
                    emb = self.embed(chunk)  # (chunk, H)
                    g = grads[start:start + emb.shape[0]] * grad_output  # (chunk, H)
                    start += emb.shape[0]
                    torch.autograd.backward(emb, grad_tensors=g.to(emb.dtype))
        return None  # leave the (unused) gradient of the leaf loss as it is

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mini_batch_size={self.mini_batch_size}"


def _chunks(features: Features, size: int) -> list[Features]:
    """Row slices of a right-padded batch, each trimmed to its own longest row (less padding)."""
    n = features["input_ids"].shape[0]
    out = []
    for start in range(0, n, size):
        part = {k: v[start:start + size] for k, v in features.items()}
        width = int(part["attention_mask"].sum(dim=1).max()) if part["attention_mask"].numel() else 0
        out.append({k: v[:, :max(width, 1)] for k, v in part.items()})
    return out
