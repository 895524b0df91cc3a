"""What one training micro-batch of each method runs through the frozen model: its forward passes.

``passes(job)`` turns a method, its config, the task options and the training config into ``Pass``es
(activations.py). The method's extra positions are where each method puts them:

- prompt tuning: ``n`` vectors before the input: every layer sees ``seq + n`` positions, and the logits
  cover them too (they are sliced off afterwards);
- prefix tuning: ``n`` key/value slots in every attention layer: ``seq`` queries attend to ``seq + n`` keys;
- suffix tuning: ``k`` vectors after the text, for the query, the positive and every hard negative of each
  row (no LM head). With last-suffix pooling on a causal LM (the default), the text runs once without
  autograd and only the ``k`` suffix positions run with it, attending to the text's cache;
- passage tuning: one scored sequence per (query, passage) pair, ``BOS + "Passage: " + passage + m
  passage vectors + n prompt vectors + query``; logits for the query positions only. Pairs per row:
  the positive, up to ``max_hard_negatives`` hard negatives and (``negatives: both``) the batch's other
  positives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .activations import Pass

# "Passage: " and a BOS token: the constant segments of a passage-tuning row (a few tokens in any tokenizer).
PASSAGE_CONSTANT_TOKENS = 4


@dataclass(frozen=True)
class Job:
    """The settings a plan reads (all plain values, so a suggestion is a ``replace``)."""

    method: str
    task: str
    batch_size: int
    seq: int  # tokens per row (prompt/prefix), per text (suffix), per passage (passage tuning)
    virtual_tokens: int  # n: prompt/prefix/suffix vectors (passage: the prompt's)
    gradient_checkpointing: bool = False
    negatives: int = 0  # hard negatives per row (suffix, passage tuning)
    options: dict[str, Any] = field(default_factory=dict)  # method config + task options that shape passes


def passes(job: Job) -> list[Pass]:
    B, T, n, o = job.batch_size, job.seq, job.virtual_tokens, job.options
    if job.method == "prompt_tuning":
        rows = B * _ranked_labels(job)
        # Rows are packed to the right and run without a mask under causal attention (injection.run_lm).
        return [Pass(rows, T + n, T + n, logits=T + n, scored=T - 1, masked=False)]
    if job.method == "prefix_tuning":
        rows = B * _ranked_labels(job)
        # The prefix path calls SDPA itself without a per-row mask (prefix_attention.py): heads unrepeated.
        return [Pass(rows, T, T + n, logits=T, scored=T - 1, masked=False)]
    if job.method == "suffix_tuning":
        texts = 2 * B + B * job.negatives
        if o.get("cached_text", True):
            return [Pass(texts, T, T, grad=False, masked=texts > 1), Pass(texts, n, T + n, checkpointed=False)]
        return [Pass(texts, T + n, T + n, masked=texts > 1)]
    if job.method == "passage_tuning":
        mode = o.get("negatives", "both")
        hard = min(job.negatives, o.get("max_hard_negatives", 4)) if mode in ("both", "hard") else 0
        in_batch = B - 1 if mode in ("both", "in_batch") else 0
        pairs = B * (1 + hard + in_batch)
        vectors = {"pooled": o.get("num_passage_vectors", 8), "per_token": T, "none": 0}[o.get("passage_vectors", "pooled")]
        query = o.get("max_query_tokens", 64)
        length = PASSAGE_CONSTANT_TOKENS + T + vectors + n + query
        return [Pass(pairs, length, length, logits=query + 1, scored=query)]
    raise ValueError(f"no workload for method {job.method!r}")


def _ranked_labels(job: Job) -> int:
    """Classification with ``loss: ranking`` scores every label per row; otherwise one sequence per row."""
    labels = job.options.get("labels") or []
    return max(1, len(labels)) if job.task == "classification" and job.options.get("loss") == "ranking" else 1
