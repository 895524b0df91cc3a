"""The request and reply bodies of ops ``generate`` and ``classify`` (``ops/inference.py``), declared once:
the worker parses requests with them (``fields.parse``) and builds replies from them, and ``make schema``
exports them to JSON Schema and the SDK's zod schemas and types (docs/schema.md). Cross-field rules
(``prompt`` xor ``prompts``, one per input, a model when no prompt is named) stay in the op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.inference.generation import GenerationOptions
from softprompt_worker.limits import MAX_INFERENCE_BATCH_SIZE

PROMPT_NAME = "expected a non-empty prompt name"


@dataclass(kw_only=True)
class PromptSelection:
    """The inputs, and which loaded soft prompt each row uses: one for all rows, one per row, or none."""

    model: dict[str, Any] | None = option(None, ref="model", doc="the base model; may be left out when a prompt is named")
    prompt: str | None = option(None, non_empty=True, errors={"non_empty": PROMPT_NAME},
                                doc="a loaded prompt for every row")
    prompts: list[str | None] | None = option(None, min_items=1, items_non_empty=True,
                                              errors={"items_non_empty": PROMPT_NAME},
                                              doc="one loaded prompt name (or null: none) per input")
    inputs: list[str] = option(min_items=1, errors={"min_items": "expected at least one string"}, doc="the texts")
    batch_size: int = option(16, ge=1, le=MAX_INFERENCE_BATCH_SIZE, message="range", sdk={"optional": True},
                             doc="rows per forward pass; changes speed and memory, never the output")


@dataclass(kw_only=True)
class GenerateRequest(GenerationOptions, PromptSelection):
    """Op ``generate``: a continuation of each input, streamed (the decoding options are ``GenerationOptions``)."""


@dataclass
class GenerateEvent:
    """One event of op ``generate``: new text of one row (stop strings are never streamed)."""

    row: int = option(ge=0, doc="index into inputs")
    text: str = option(doc="text added since the row's previous event")
    token_ids: list[int] = option(doc="the tokens that produced it")


@dataclass
class GenerateReply:
    """Op ``generate``'s reply."""

    outputs: list[str] = option(doc="outputs[i] continues inputs[i] (without the input)")


@dataclass(kw_only=True)
class ClassifyRequest(PromptSelection):
    """Op ``classify``: the likeliest label of each input."""

    labels: list[str] = option(min_items=2, items_non_empty=True, errors={"min_items": "expected at least two labels"},
                               doc="the candidate labels, scored as continuations of each input")


@dataclass
class ClassifyReply:
    """Op ``classify``'s reply."""

    predictions: list[str] = option(doc="the best label of each input")
    scores: list[list[float]] = option(doc="scores[i][j]: summed log-likelihood of labels[j] after inputs[i]")


BODIES = {"generate_request": GenerateRequest, "generate_event": GenerateEvent, "generate_reply": GenerateReply,
          "classify_request": ClassifyRequest, "classify_reply": ClassifyReply}
