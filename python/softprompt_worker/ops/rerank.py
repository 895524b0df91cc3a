"""Ops ``rerank`` and ``evaluate_reranking``: query-likelihood reranking, UPR or passage-tuned.

Without ``prompt`` the reranker is UPR (Sachan et al., 2022): the frozen LM with the hard instruction
``" Please write a question based on this passage.\\nQuestion:"``, no training. With ``prompt`` (a
``passage_tuning`` prompt: the name of a prompt loaded by ``prompt_load`` first, else a checkpoint path;
``prompts.resolve_prompt``) the trained soft prompt and passage bottleneck fill the same slots. A prompt
of another method is refused (``invalid_argument``).

``rerank``::

    {"model"?: ModelSpec, "prompt"?: str (loaded name or checkpoint path), "batch_size"?: int (16),
     "queries": [{"query": str, "passages": [str], "top_k"?: int}]}
    -> {"reranker": "upr" | "passage_tuning",
        "results": [{"indices": [int], "log_likelihood": [float], "mean_log_likelihood": [float]}]}

    One result per query, in request order. ``indices`` index that query's ``passages``, best first
    (ties keep input order), cut to ``top_k``; the two score lists are aligned with ``indices``: the
    summed log-likelihood of the query tokens and its per-token mean.

``evaluate_reranking``::

    {"model"?: ModelSpec, "prompt"?: str, "batch_size"?: int (16),
     "rows": [{"query": str, "positive": str, "negatives"?: [str]}]}
    -> {"reranker": ..., "queries": int, "metrics": {"hits@1", "hits@5", "mrr", "ndcg@10": float}}

``model`` may be left out when ``prompt`` is given: the prompt's base model is used. Both emit
``{"event": "progress", "done": int, "total": int}`` (pairs scored) at most twice a second, and end
with error ``cancelled`` when cancelled (checked between batches).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from softprompt_worker.errors import CancelledError, InvalidArgumentError, TooLargeError
from softprompt_worker.limits import MAX_INFERENCE_BATCH_SIZE
from softprompt_worker.methods.passage_tuning import PassageTuning
from softprompt_worker.inference.prompts import resolve_prompt
from softprompt_worker.models.cache import model_key
from softprompt_worker.inference.scoring import HardPrompt, score_candidates
from softprompt_worker.tasks.reranking import RerankingTask, evaluate_rows
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op

MAX_RESULT_ENTRIES = 20_000  # scores in one reply body (about 21 bytes each), well under the 1 MiB header
PROGRESS_INTERVAL_S = 0.5


@op("rerank")
def rerank(req: Request, ctx: OpContext) -> Reply:
    body = req.body
    queries = _list(body, "queries")
    texts, candidates, top_ks = [], [], []
    for i, item in enumerate(queries):
        where = f"queries[{i}]"
        if not isinstance(item, dict):
            raise InvalidArgumentError(f"{where}: expected an object, got {type(item).__name__}")
        texts.append(_str(item, "query", where))
        candidates.append(_str_list(item, "passages", where))
        top_k = item.get("top_k", len(candidates[-1]))
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidArgumentError(f"{where}.top_k: {top_k!r} is not a positive int")
        top_ks.append(min(top_k, len(candidates[-1])))
    if sum(top_ks) > MAX_RESULT_ENTRIES:
        raise TooLargeError(f"rerank: the reply would hold {sum(top_ks)} scores; the limit is {MAX_RESULT_ENTRIES}. "
                            "Split the queries over several calls or set top_k")
    frozen, conditioner, kind = _reranker(ctx, body)
    scored = score_candidates(frozen, conditioner, texts, candidates, batch_size=_batch_size(body),
                              before_batch=_progress(ctx))
    results = []
    for scores, k in zip(scored, top_ks):
        order = torch.argsort(scores.log_likelihood, descending=True, stable=True)[:k]  # (k,)
        results.append({"indices": order.tolist(), "log_likelihood": scores.log_likelihood[order].tolist(),
                        "mean_log_likelihood": scores.mean_log_likelihood[order].tolist()})
    return Reply(body={"reranker": kind, "results": results})


@op("evaluate_reranking")
def evaluate_reranking(req: Request, ctx: OpContext) -> Reply:
    rows = _list(req.body, "rows")
    for i, row in enumerate(rows):
        try:
            RerankingTask.validate_row(row)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"rows[{i}].{exc.message}") from exc
    frozen, conditioner, kind = _reranker(ctx, req.body)
    candidates = [[r["positive"], *r.get("negatives", [])] for r in rows]
    metrics = evaluate_rows(frozen, conditioner, rows, candidates, batch_size=_batch_size(req.body),
                            before_batch=_progress(ctx))
    return Reply(body={"reranker": kind, "queries": len(rows), "metrics": metrics})


# -- shared pieces -----------------------------------------------------------------------------------

def _reranker(ctx: OpContext, body: dict[str, Any]):
    """``(frozen model, conditioner, "upr" | "passage_tuning")``; models and prompts come from the worker's
    caches (``prompts.py``), shared with every other op."""
    if body.get("prompt") is None and body.get("model") is None:
        raise InvalidArgumentError("model: required when no prompt is given (UPR needs a model to score with)")
    frozen, method = resolve_prompt(ctx.state, body.get("model"), body.get("prompt"), use=ctx.op,
                                    needs=(PassageTuning.name,))
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


def _batch_size(body: dict[str, Any]) -> int:
    value = body.get("batch_size", 16)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INFERENCE_BATCH_SIZE:
        raise InvalidArgumentError(f"batch_size: {value!r} is not an int in 1..{MAX_INFERENCE_BATCH_SIZE}")
    return value


def _list(body: dict[str, Any], field: str) -> list:
    value = body.get(field)
    if not isinstance(value, list) or not value:
        raise InvalidArgumentError(f"{field}: expected a non-empty list, got {type(value).__name__}")
    return value


def _str(item: dict, field: str, where: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{where}.{field}: expected a non-empty string, got {value!r:.40}")
    return value


def _str_list(item: dict, field: str, where: str) -> list[str]:
    value = item.get(field)
    if not isinstance(value, list) or not value:
        raise InvalidArgumentError(f"{where}.{field}: expected a non-empty list of strings")
    for j, text in enumerate(value):
        if not isinstance(text, str) or not text:
            raise InvalidArgumentError(f"{where}.{field}[{j}]: expected a non-empty string, got {text!r:.40}")
    return value
