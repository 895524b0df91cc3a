"""InfoNCE with GradCache: large contrastive batches at the memory cost of one mini-batch."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.losses.info_nce import Embedder, Features, InfoNCELoss, _check_features


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
        parameters: returns the trainable parameters the replay's gradients go to; default: those of the
            module ``embed`` is a method of.

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
                 mini_batch_size: int = 32, parameters: Callable[[], Iterable[torch.Tensor]] | None = None):
        super().__init__(embed, temperature, symmetric)
        if not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise InvalidArgumentError(f"mini_batch_size: {mini_batch_size!r} is not a positive int")
        self.mini_batch_size = mini_batch_size
        owner = getattr(embed, "__self__", None)
        if parameters is None and not isinstance(owner, nn.Module):
            raise InvalidArgumentError("CachedInfoNCELoss: give `parameters` when `embed` is not a module's method")
        self._parameters_of = parameters or owner.parameters

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
        # Step 2 runs when the caller backpropagates through the returned (leaf) loss, usually after the
        # caller's autocast block has closed: the replay re-enters the forward's autocast state.
        autocast = _autocast_state(reps[0].device.type)
        out = loss.detach().requires_grad_()
        out.register_hook(lambda grad_output: self._replay(chunks, cached, grad_output, autocast))
        return out

    def _replay(self, chunks: list[list[Features]], cached: tuple[torch.Tensor, ...], grad_output: torch.Tensor,
                autocast: contextlib.AbstractContextManager):
        """Re-embed each chunk with grad and backpropagate its slice of the cached embedding gradients.

        The chunks' gradients are summed apart from what ``.grad`` already holds (earlier micro-batches of a
        step) and added to it once, so ``.grad`` grows by one whole micro-batch gradient at a time, as after a
        plain backward: N data-parallel ranks then average exactly what one process accumulates."""
        params = [p for p in self._parameters_of() if p.requires_grad]
        earlier = [p.grad for p in params]
        for p in params:
            p.grad = None
        with torch.enable_grad(), autocast:
            for group, grads in zip(chunks, cached):
                start = 0
                for chunk in group:
                    emb = self.embed(chunk)  # (chunk, H)
                    g = grads[start:start + emb.shape[0]] * grad_output  # (chunk, H)
                    start += emb.shape[0]
                    torch.autograd.backward(emb, grad_tensors=g.to(emb.dtype))
        for p, before in zip(params, earlier):
            if before is not None:
                p.grad = before if p.grad is None else before + p.grad
        return None  # leave the (unused) gradient of the leaf loss as it is

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mini_batch_size={self.mini_batch_size}"


def _autocast_state(device_type: str) -> contextlib.AbstractContextManager:
    """An autocast context equal to the one active now on ``device_type`` (a no-op when none is, or when
    the device has no autocast, as ``meta``)."""
    if not torch.amp.is_autocast_available(device_type) or not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.get_autocast_dtype(device_type))


def _chunks(features: Features, size: int) -> list[Features]:
    """Row slices of a right-padded batch, each trimmed to its own longest row (less padding).

    The widths come from ``features["lengths"]`` when the batch carries it (real tokens per row, a CPU
    tensor: the embedding task's collate counts them before moving the batch): no device sync. Without
    it the chunks keep the batch's width."""
    n = features["input_ids"].shape[0]
    lengths = features.get("lengths")
    out = []
    for start in range(0, n, size):
        part = {k: v[start:start + size] for k, v in features.items()}
        width = int(lengths[start:start + size].max()) if lengths is not None and n else part["input_ids"].shape[1]
        out.append({k: v if k == "lengths" else v[:, :max(width, 1)] for k, v in part.items()})
    return out
