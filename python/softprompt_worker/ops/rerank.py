"""Ops ``rerank`` and ``evaluate_reranking``: query-likelihood reranking, UPR or passage-tuned.

Without ``prompt`` the reranker is UPR (Sachan et al., 2022): the frozen LM with the hard instruction
``" Please write a question based on this passage.\\nQuestion:"``, no training. With ``prompt`` (a
``passage_tuning`` prompt: the name of a prompt loaded by ``prompt_load`` first, else a checkpoint path;
``prompts.resolve_prompt``) the trained soft prompt and passage bottleneck fill the same slots. A prompt
of another method is refused (``invalid_argument``).

The bodies are declared once in ``ops/rerank_bodies.py`` (``RerankRequest`` -> ``RerankReply``,
``EvaluateRerankingRequest`` -> ``EvaluateRerankingReply``), exported to ``proto/schema/`` and the SDK
(docs/schema.md). ``rerank`` answers one result per query, in request order: ``indices`` index that
query's ``passages``, best first (ties keep input order), cut to ``top_k``; the two score lists are
aligned with ``indices``: the summed log-likelihood of the query tokens and its per-token mean.

``model`` may be left out when ``prompt`` is given: the prompt's base model is used. Both emit
``{"event": "progress", "done": int, "total": int}`` (pairs scored) at most twice a second, and end
with error ``cancelled`` when cancelled (checked between batches).

Concurrent ``rerank`` requests with the same reranker and options run as one (``serving/coalesce.py``):
their queries are scored together and each caller gets its own results (no progress events then). The
reranker is one per request (one conditioner scores every pair), so requests naming different prompts,
or a prompt and none, run apart.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from softprompt_worker.errors import CancelledError, InvalidArgumentError, TooLargeError
from softprompt_worker.fields import parse
from softprompt_worker.methods.passage_tuning import PassageTuning
from softprompt_worker.inference.prompts import resolve_prompt
from softprompt_worker.models.cache import model_key
from softprompt_worker.inference.scoring import HardPrompt, score_candidates
from softprompt_worker.ops.rerank_bodies import (EvaluateRerankingReply, EvaluateRerankingRequest, RerankerRequest,
                                                  RerankReply, RerankRequest, RerankResult)
from softprompt_worker.tasks.reranking import RerankingTask, evaluate_rows
from softprompt_worker.serving.coalesce import Coalesce
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op

MAX_RESULT_ENTRIES = 20_000  # scores in one reply body (about 21 bytes each), well under the 1 MiB header
PROGRESS_INTERVAL_S = 0.5


@op("rerank", coalesce=Coalesce(rows="queries", body_rows=("results",), request=RerankRequest))  # coalesce.py
def rerank(req: Request, ctx: OpContext) -> Reply:
    body = parse(RerankRequest, req.body)
    top_ks = [min(q.top_k or len(q.passages), len(q.passages)) for q in body.queries]
    if sum(top_ks) > MAX_RESULT_ENTRIES:
        raise TooLargeError(f"rerank: the reply would hold {sum(top_ks)} scores; the limit is {MAX_RESULT_ENTRIES}. "
                            "Split the queries over several calls or set top_k")
    frozen, conditioner, kind = _reranker(ctx, body)
    scored = score_candidates(frozen, conditioner, [q.query for q in body.queries], [q.passages for q in body.queries],
                              batch_size=body.batch_size, before_batch=_progress(ctx))
    results = []
    for scores, k in zip(scored, top_ks):
        order = torch.argsort(scores.log_likelihood, descending=True, stable=True)[:k]  # (k,)
        results.append(RerankResult(indices=order.tolist(), log_likelihood=scores.log_likelihood[order].tolist(),
                                    mean_log_likelihood=scores.mean_log_likelihood[order].tolist()))
    return Reply(body=dataclasses.asdict(RerankReply(reranker=kind, results=results)))


@op("evaluate_reranking")
def evaluate_reranking(req: Request, ctx: OpContext) -> Reply:
    body = parse(EvaluateRerankingRequest, req.body)
    rows = [{k: v for k, v in dataclasses.asdict(row).items() if v is not None} for row in body.rows]
    for i, row in enumerate(rows):
        try:
            RerankingTask.validate_row(row)  # the task's row contract: no empty texts
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"rows[{i}].{exc.message}") from exc
    frozen, conditioner, kind = _reranker(ctx, body)
    candidates = [[r["positive"], *r.get("negatives", [])] for r in rows]
    metrics = evaluate_rows(frozen, conditioner, rows, candidates, batch_size=body.batch_size,
                            before_batch=_progress(ctx))
    reply = EvaluateRerankingReply(reranker=kind, queries=len(rows), metrics=metrics)
    return Reply(body=dataclasses.asdict(reply))


# -- shared pieces -----------------------------------------------------------------------------------

def _reranker(ctx: OpContext, body: RerankerRequest):
    """``(frozen model, conditioner, "upr" | "passage_tuning")``; models and prompts come from the worker's
    caches (``prompts.py``), shared with every other op."""
    if body.prompt is None and body.model is None:
        raise InvalidArgumentError("model: required when no prompt is given (UPR needs a model to score with)")
    frozen, method = resolve_prompt(ctx.state, body.model, body.prompt, use=ctx.op, needs=(PassageTuning.name,))
    if method is None:
        upr = ctx.state.get_or_create(("upr", model_key(frozen.spec)), lambda: HardPrompt(frozen))
        return frozen, upr, "upr"
    return frozen, method, method.name  # scored through PassageTuning.forward (scoring.score_pairs)


def _progress(ctx: OpContext):
    last = [0.0]

    def before_batch(done: int, total: int) -> None:
        if ctx.cancelled:
            raise CancelledError(f"{ctx.op} cancelled after {done} of {total} pairs")
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            ctx.emit({"event": "progress", "done": done, "total": total})

    return before_batch
