"""Ops ``generate`` (streaming) and ``classify``: inference with loaded soft prompts.

A request names one prompt for all rows (``prompt``) or one per row (``prompts``, ``null`` = no
prompt); prompts are loaded beforehand with ``prompt_load``. One batch may mix prompts, methods and
prompt lengths; each row gets what it would get alone. ``model`` may be omitted when a prompt is named.

``generate``::

    {"model"?: ModelSpec, "prompt"?: str, "prompts"?: [str | null], "inputs": [str],
     "max_new_tokens"?: int (64), "do_sample"?: bool (false), "temperature"?: float (1.0),
     "top_p"?: float (1.0), "seed"?: int (0), "stop"?: [str], "batch_size"?: int (16)}
    events: {"row": int, "text": str (new text), "token_ids": [int]}  (stop strings are never streamed)
    -> {"outputs": [str]}

``classify``::

    {"model"?, "prompt"? | "prompts"?, "inputs": [str], "labels": [str], "batch_size"?: int (16)}
    -> {"predictions": [str], "scores": [[float]]}   scores: summed log-likelihood of each label, per input

Cancelled requests end with error ``cancelled`` (checked every generated token / batch).
"""

from __future__ import annotations

from typing import Any

from softprompt_worker.errors import CancelledError, InvalidArgumentError
from softprompt_worker.limits import MAX_INFERENCE_BATCH_SIZE
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("generate")
def generate(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.generation import GenerationOptions, generate as run_generate
    from softprompt_worker.inference.prompts import resolve_rows

    body = req.body
    inputs = _inputs(body)
    options = GenerationOptions(**{k: body[k] for k in ("max_new_tokens", "do_sample", "temperature", "top_p",
                                                         "seed", "stop") if k in body})
    options.validate()
    frozen, rows = resolve_rows(ctx.state, body.get("model"), _prompt_names(body, len(inputs)))
    size = _batch_size(body)
    outputs: list[str] = []
    for start in range(0, len(inputs), size):
        def on_delta(row: int, text: str, token_ids: list[int], start=start) -> None:
            ctx.emit({"row": start + row, "text": text, "token_ids": token_ids})

        outputs += run_generate(frozen, rows[start:start + size], inputs[start:start + size], options,
                                on_delta=on_delta, cancelled=lambda: ctx.cancelled)
    return Reply(body={"outputs": outputs})


@op("classify")
def classify(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.generation import classify as run_classify
    from softprompt_worker.inference.prompts import resolve_rows

    body = req.body
    inputs = _inputs(body)
    labels = body.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(s, str) and s for s in labels):
        raise InvalidArgumentError(f"labels: expected at least two non-empty strings, got {labels!r:.80}")
    frozen, rows = resolve_rows(ctx.state, body.get("model"), _prompt_names(body, len(inputs)))
    size = _batch_size(body)
    predictions: list[str] = []
    scores: list[list[float]] = []
    for start in range(0, len(inputs), size):
        if ctx.cancelled:
            raise CancelledError("classify cancelled")
        best, chunk = run_classify(frozen, rows[start:start + size], inputs[start:start + size], labels,
                                   batch_size=size)
        predictions += [labels[i] for i in best]
        scores += chunk
    return Reply(body={"predictions": predictions, "scores": scores})


def _inputs(body: dict[str, Any]) -> list[str]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) for s in inputs):
        raise InvalidArgumentError(f"inputs: expected a non-empty list of strings, got {inputs!r:.80}")
    return inputs


def _prompt_names(body: dict[str, Any], n: int) -> list[str | None]:
    if "prompt" in body and "prompts" in body:
        raise InvalidArgumentError("give 'prompt' (all rows) or 'prompts' (one per row), not both")
    if "prompts" in body:
        names = body["prompts"]
        if not isinstance(names, list) or len(names) != n or not all(x is None or isinstance(x, str) for x in names):
            raise InvalidArgumentError(f"prompts: expected {n} entries (a prompt name or null per input), "
                                       f"got {names!r:.80}")
        return names
    name = body.get("prompt")
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError(f"prompt: expected a prompt name, got {name!r:.60}")
    return [name] * n


def _batch_size(body: dict[str, Any]) -> int:
    size = body.get("batch_size", 16)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_INFERENCE_BATCH_SIZE:
        raise InvalidArgumentError(
            f"batch_size: expected an integer in 1..{MAX_INFERENCE_BATCH_SIZE}, got {size!r:.40}")
    return size
