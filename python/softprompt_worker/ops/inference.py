"""Ops ``generate`` (streaming) and ``classify``: inference with loaded soft prompts.

A request names one prompt for all rows (``prompt``) or one per row (``prompts``, ``null`` = no
prompt); prompts are loaded beforehand with ``prompt_load``. One batch may mix prompts, methods and
prompt lengths; each row gets what it would get alone. ``model`` may be omitted when a prompt is named.

The bodies are declared once in ``ops/inference_bodies.py`` (``GenerateRequest`` -> ``GenerateEvent``s
(stop strings are never streamed) -> ``GenerateReply``; ``ClassifyRequest`` -> ``ClassifyReply``, scores:
summed log-likelihood of each label, per input), exported to ``proto/schema/`` and the SDK (docs/schema.md).

Cancelled requests end with error ``cancelled`` (checked every generated token / batch).

Concurrent requests of one op with the same options run as one (``serving/coalesce.py``), whatever their
prompts: a request's ``prompt`` becomes its rows' entries of the merged ``prompts``, so one run mixes
prompts and prompt-less rows as one request can. ``generate`` merges into one static batch at most
(``batch_size`` rows), and its events reach each caller numbered by the caller's own rows.
"""

from __future__ import annotations

import dataclasses

from softprompt_worker.errors import CancelledError, InvalidArgumentError
from softprompt_worker.fields import parse
from softprompt_worker.ops.inference_bodies import (ClassifyReply, ClassifyRequest, GenerateReply, GenerateRequest,
                                                     PromptSelection)
from softprompt_worker.serving.coalesce import Coalesce
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


GENERATE_BATCHING = Coalesce(rows="inputs", body_rows=("outputs",), per_row=("prompt", "prompts"), event_row="row",
                             batch_rows="batch_size", request=GenerateRequest)
CLASSIFY_BATCHING = Coalesce(rows="inputs", body_rows=("predictions", "scores"), per_row=("prompt", "prompts"),
                             request=ClassifyRequest)


@op("generate", coalesce=GENERATE_BATCHING)
def generate(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.generation import GenerationOptions, generate as run_generate
    from softprompt_worker.inference.prompts import resolve_rows

    body = parse(GenerateRequest, req.body)
    options = GenerationOptions(**{f.name: getattr(body, f.name) for f in dataclasses.fields(GenerationOptions)})
    frozen, rows = resolve_rows(ctx.state, body.model, _prompt_names(body, req.body))
    size, inputs = body.batch_size, body.inputs
    outputs: list[str] = []
    for start in range(0, len(inputs), size):
        def on_delta(row: int, text: str, token_ids: list[int], start=start) -> None:
            ctx.emit({"row": start + row, "text": text, "token_ids": token_ids})  # a GenerateEvent

        outputs += run_generate(frozen, rows[start:start + size], inputs[start:start + size], options,
                                on_delta=on_delta, cancelled=lambda: ctx.cancelled)
    return Reply(body=dataclasses.asdict(GenerateReply(outputs=outputs)))


@op("classify", coalesce=CLASSIFY_BATCHING)
def classify(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.generation import classify as run_classify
    from softprompt_worker.inference.prompts import resolve_rows

    body = parse(ClassifyRequest, req.body)
    frozen, rows = resolve_rows(ctx.state, body.model, _prompt_names(body, req.body))
    size, inputs, labels = body.batch_size, body.inputs, body.labels
    predictions: list[str] = []
    scores: list[list[float]] = []
    for start in range(0, len(inputs), size):
        if ctx.cancelled:
            raise CancelledError("classify cancelled")
        best, chunk = run_classify(frozen, rows[start:start + size], inputs[start:start + size], labels,
                                   batch_size=size)
        predictions += [labels[i] for i in best]
        scores += chunk
    return Reply(body=dataclasses.asdict(ClassifyReply(predictions=predictions, scores=scores)))


def _prompt_names(body: PromptSelection, raw: dict) -> list[str | None]:
    """The prompt of each row: ``prompt`` for all, or ``prompts``, one per input (the cross-field rule)."""
    n = len(body.inputs)
    if "prompt" in raw and "prompts" in raw:
        raise InvalidArgumentError("give 'prompt' (all rows) or 'prompts' (one per row), not both")
    if body.prompts is not None:
        if len(body.prompts) != n:
            raise InvalidArgumentError(f"prompts: expected {n} entries (a prompt name or null per input), "
                                       f"got {body.prompts!r:.80}")
        return body.prompts
    return [body.prompt] * n
