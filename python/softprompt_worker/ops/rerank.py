"""Ops ``rerank`` and ``evaluate_reranking``: query-likelihood reranking, UPR or passage-tuned.

Without ``prompt`` the reranker is UPR (Sachan et al., 2022): the frozen LM with the hard instruction
``" Please write a question based on this passage.\\nQuestion:"``, no training. With ``prompt`` (a
``passage_tuning`` checkpoint) the trained soft prompt and passage bottleneck fill the same slots.

``rerank``::

    {"model"?: ModelSpec, "prompt"?: str (passage_tuning checkpoint path), "batch_size"?: int (16),
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

``model`` may be left out when ``prompt`` is given: the checkpoint's base model is used. Both emit
``{"event": "progress", "done": int, "total": int}`` (pairs scored) at most twice a second, and end
with error ``cancelled`` when cancelled (checked between batches).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from ..checkpoints import build_method_from_checkpoint, load_checkpoint
from ..errors import CancelledError, InvalidArgumentError, TooLargeError
from ..models import ModelSpec
from ..prompts import get_frozen_model, model_key, spec_for_checkpoint
from ..scoring import HardPrompt, score_candidates
from ..tasks.reranking import RerankingTask, evaluate_rows
from .registry import OpContext, Reply, Request, op

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
    """``(frozen model, conditioner, "upr" | "passage_tuning")``; model and prompt cached in the worker
    state (the model cache is ``prompts.get_frozen_model``'s, shared with every other op)."""
    prompt = body.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or not prompt):
        raise InvalidArgumentError(f"prompt: expected a passage_tuning checkpoint path, got {prompt!r:.60}")
    record = None
    if body.get("model") is not None:
        spec = ModelSpec.from_dict(body["model"])
    elif prompt is not None:
        record = load_checkpoint(prompt)
        spec = spec_for_checkpoint(record.base_model)
    else:
        raise InvalidArgumentError("model: required when no prompt is given (UPR needs a model to score with)")
    frozen = get_frozen_model(ctx.state, spec)
    key = model_key(spec)
    if prompt is None:
        return frozen, ctx.state.get_or_create(("upr", key), lambda: HardPrompt(frozen)), "upr"
    return frozen, _load_prompt(ctx, frozen, key, prompt, record), "passage_tuning"


def _load_prompt(ctx: OpContext, frozen, model_key: str, path: str, record=None):
    """A ``passage_tuning`` checkpoint as a ready method, cached by (model, path, file mtime).

    Passage-tuned prompts are addressed by checkpoint path: ``prompt_load`` keeps prompts that inject
    into generation (prompt/prefix tuning), which a reranker's passage-conditioned vectors are not.
    """
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None  # load_checkpoint reports the missing file

    def build():
        loaded = record or load_checkpoint(path)
        if loaded.method != "passage_tuning":
            raise InvalidArgumentError(f"prompt: {path!r} is a {loaded.method!r} checkpoint; reranking needs "
                                       "'passage_tuning' (or no prompt for UPR)")
        method = build_method_from_checkpoint(loaded, frozen)  # checks the model fingerprint
        method.eval()
        return method

    return ctx.state.get_or_create(("passage_prompt", model_key, path, stamp), build)


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
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise InvalidArgumentError(f"batch_size: {value!r} is not an int in 1..4096")
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
