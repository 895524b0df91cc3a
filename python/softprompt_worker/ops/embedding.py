"""Ops ``embed`` and ``evaluate_retrieval``: text embeddings from a suffix prompt or the base model.

With ``prompt`` (a ``suffix_tuning`` prompt: the name of a prompt loaded by ``prompt_load`` first, else a
checkpoint path; ``prompts.resolve_prompt``) texts are embedded by the trained suffix, pooled as the
prompt's config says unless ``pooling`` overrides it. Without one, the frozen base model embeds them by
mean pooling over real tokens (the usual baseline). ``model`` may be left out when ``prompt`` is given:
the prompt's base model is used. A prompt of another method is refused (``invalid_argument``).

The bodies are declared once in ``ops/embedding_bodies.py`` (``EmbedRequest`` -> ``EmbedReply`` plus the
tensor ``"embeddings"``: f32 (count, dim), row i embeds texts[i]; ``EvaluateRetrievalRequest`` ->
``EvaluateRetrievalReply``), exported to ``proto/schema/`` and the SDK (docs/schema.md).

Scores are cosine similarities; metric definitions in ``evaluation/retrieval.py``. Both ops emit
``{"event": "progress", "done": int, "total": int}`` (texts embedded) at most twice a second and end
with error ``cancelled`` when cancelled (checked between batches).
"""

from __future__ import annotations

import dataclasses
import time

import torch

from softprompt_worker.errors import CancelledError, InvalidArgumentError
from softprompt_worker.evaluation.retrieval import retrieval_metrics, sts_spearman
from softprompt_worker.fields import parse
from softprompt_worker.limits import MAX_TEXTS
from softprompt_worker.methods.suffix_tuning import SuffixTuning, backbone, encode_in_batches, pool
from softprompt_worker.models import FrozenModel
from softprompt_worker.inference.prompts import resolve_prompt
from softprompt_worker.ops.embedding_bodies import (EmbedderRequest, EmbedReply, EmbedRequest,
                                                     EvaluateRetrievalReply, EvaluateRetrievalRequest)
from softprompt_worker.serving.coalesce import Coalesce
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op

PROGRESS_INTERVAL_S = 0.5


@op("embed", coalesce=Coalesce(rows="texts", tensors=("embeddings",), count="count",
                               request=EmbedRequest))  # serving/coalesce.py
def embed(req: Request, ctx: OpContext) -> Reply:
    body = parse(EmbedRequest, req.body)
    if len(body.texts) > MAX_TEXTS:
        raise InvalidArgumentError(f"texts: {len(body.texts)} texts; the limit is {MAX_TEXTS} per call")
    embedder = Embedder.from_body(ctx, body)
    vectors = embedder.encode(body.texts, ctx)  # (count, dim)
    reply = EmbedReply(count=len(body.texts), dim=int(vectors.shape[1]), pooling=embedder.pooling,
                       normalized=embedder.normalize, source=embedder.source)
    return Reply(body=dataclasses.asdict(reply), tensors={"embeddings": vectors.float().contiguous()})


@op("evaluate_retrieval")
def evaluate_retrieval(req: Request, ctx: OpContext) -> Reply:
    body = parse(EvaluateRetrievalRequest, req.body)
    parts = {"queries": body.queries, "corpus": body.corpus, "qrels": body.qrels}
    retrieval = any(v is not None for v in parts.values())
    if not retrieval and body.sts is None:
        raise InvalidArgumentError("evaluate_retrieval: give 'queries' + 'corpus' + 'qrels', or 'sts', or both")
    for name, value in parts.items():
        if retrieval and value is None:
            raise InvalidArgumentError(f"{name}: required with a retrieval set")
    if body.sts is not None and len(body.sts.scores) != len(body.sts.pairs):
        raise InvalidArgumentError(f"sts.scores: expected one score per pair ({len(body.sts.pairs)}), "
                                   f"got {len(body.sts.scores)}")
    embedder = Embedder.from_body(ctx, body)
    metrics: dict[str, float] = {}
    counts = {"queries": 0, "corpus": 0, "pairs": 0}
    if retrieval:
        queries, corpus, qrels = body.queries, body.corpus, body.qrels
        q_emb = embedder.encode(list(queries.values()), ctx)  # (Q, H)
        d_emb = embedder.encode(list(corpus.values()), ctx)  # (D, H)
        metrics.update(retrieval_metrics(q_emb, d_emb, list(queries), list(corpus), qrels, body.k_values))
        counts.update(queries=sum(1 for q in queries if any(float(g) > 0 for g in qrels.get(q, {}).values())),
                      corpus=len(corpus))
    if body.sts is not None:
        first, second = [p[0] for p in body.sts.pairs], [p[1] for p in body.sts.pairs]
        emb = embedder.encode(first + second, ctx)  # (2n, H)
        gold = torch.tensor(body.sts.scores, dtype=torch.float64)
        metrics["sts_spearman"] = sts_spearman(emb[:len(first)], emb[len(first):], gold)
        counts["pairs"] = len(first)
    return Reply(body=dataclasses.asdict(EvaluateRetrievalReply(source=embedder.source, metrics=metrics, **counts)))


class Embedder:
    """Texts → embeddings with a suffix prompt (``method``) or the bare base model (``method is None``)."""

    def __init__(self, frozen: FrozenModel, method, pooling: str, normalize: bool, batch_size: int):
        self.frozen, self.method = frozen, method
        self.pooling, self.normalize, self.batch_size = pooling, normalize, batch_size
        self.source = method.name if method is not None else "base"

    @classmethod
    def from_body(cls, ctx: OpContext, body: EmbedderRequest) -> "Embedder":
        frozen, method = resolve_prompt(ctx.state, body.model, body.prompt, use=ctx.op, needs=(SuffixTuning.name,))
        pooling = body.pooling or (method.config.pooling if method is not None else "mean")
        normalize = getattr(body, "normalize", None)  # embed's option; evaluation uses the prompt's
        if normalize is None:
            normalize = method.config.normalize if method is not None else True
        return cls(frozen, method, pooling, normalize, body.batch_size)

    def embed_chunk(self, texts: list[str]) -> torch.Tensor:
        """Embeddings ``(n, H)`` f32 of one batch of texts: through the suffix's own ``embed`` (the path it
        trains through, cached text pass included), or the base model mean-pooled (``base_embed``)."""
        if self.method is not None:
            return self.method.embed(self.method.tokenize(texts), pooling=self.pooling, normalize=self.normalize)
        return base_embed(self.frozen, texts, self.pooling, self.normalize)

    @torch.no_grad()
    def encode(self, texts: list[str], ctx: OpContext | None = None) -> torch.Tensor:
        """``(len(texts), H)`` f32 on the CPU, in order; progress events and cancellation via ``ctx``."""
        done, last = [0], [0.0]

        def chunk(part: list[str]) -> torch.Tensor:
            if ctx is not None:
                if ctx.cancelled:
                    raise CancelledError(f"{ctx.op} cancelled after {done[0]} of {len(texts)} texts")
                now = time.monotonic()
                if now - last[0] >= PROGRESS_INTERVAL_S:
                    last[0] = now
                    ctx.emit({"event": "progress", "done": done[0], "total": len(texts)})
            out = self.embed_chunk(part)
            done[0] += len(part)
            return out

        return encode_in_batches(texts, self.batch_size, chunk)


def base_embed(frozen: FrozenModel, texts: list[str], pooling: str, normalize: bool) -> torch.Tensor:
    """Embeddings ``(n, H)`` f32 of ``texts`` by the bare model (no prompt): its last hidden states pooled
    over the real tokens (the usual baseline of the ``embed`` op)."""
    enc = frozen.tokenizer(texts, padding=True, truncation=True, max_length=_max_positions(frozen),
                           padding_side="right", return_tensors="pt").to(frozen.device)
    hidden = backbone(frozen)(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    pooled = pool(hidden.last_hidden_state, enc["attention_mask"], pooling).float()  # (n, H)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def _max_positions(frozen: FrozenModel) -> int:
    cfg = frozen.config
    return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 512)
