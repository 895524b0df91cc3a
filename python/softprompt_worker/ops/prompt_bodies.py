"""The request and reply bodies of ops ``prompt_load``, ``prompt_unload`` and ``prompt_list``
(``ops/prompts.py``), declared once: the worker parses requests with them (``fields.parse``) and builds
replies from them, and ``make schema`` exports them to JSON Schema and the SDK's zod schemas and types
(docs/schema.md). ``prompt_list`` takes ``{}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.ops.inference_bodies import PROMPT_NAME


@dataclass(kw_only=True)
class PromptUnloadRequest:
    """Op ``prompt_unload``: forget a prompt (the client's own first, else a shared one)."""

    name: str = option(non_empty=True, errors={"non_empty": PROMPT_NAME}, doc="the name it was loaded under")


@dataclass(kw_only=True)
class PromptLoadRequest(PromptUnloadRequest):
    """Op ``prompt_load``: keep a checkpoint of any method ready under ``name`` (a name already loaded is
    replaced), on the cached base model, checking the model fingerprint."""

    path: str = option(non_empty=True, errors={"non_empty": "expected a checkpoint file path"},
                       doc="the checkpoint file")
    model: dict[str, Any] | None = option(None, ref="model",
                                          doc="the base model; default: the one the checkpoint records")
    shared: bool = option(False, sdk={"optional": True},
                          doc="every client of the worker sees it; else it is the loading client's own")


@dataclass(kw_only=True)
class PromptInfo:
    """A loaded soft prompt (``inference/prompts.LoadedPrompt.describe``): ``prompt_load``'s reply."""

    name: str = option(doc="the name it was loaded under")
    path: str = option(doc="the checkpoint file it came from")
    method: str = option(doc="'prompt_tuning', 'prefix_tuning', ...")
    method_config: dict[str, Any] = option(doc="the method's options as trained (snake_case)")
    model: str = option(doc="the base model's display name ('gpt2', 'tiny:gpt2')")
    num_trainable_parameters: int = option(ge=0, doc="the soft parameters")
    step: int = option(ge=0, doc="the training step the checkpoint was written at")
    metrics: dict[str, float] = option(nan=True, doc="metrics recorded with the checkpoint")
    shared: bool = option(False, doc="whether every client sees it")


@dataclass
class PromptUnloadReply:
    """Op ``prompt_unload``'s reply."""

    unloaded: bool = option(doc="whether the worker had it")


@dataclass
class PromptListReply:
    """Op ``prompt_list``'s reply: the prompts this client sees, sorted by name."""

    prompts: list[PromptInfo] = option(ref="prompt_load_reply", doc="each as prompt_load describes it")


BODIES = {"prompt_load_request": PromptLoadRequest, "prompt_load_reply": PromptInfo,
          "prompt_unload_request": PromptUnloadRequest, "prompt_unload_reply": PromptUnloadReply,
          "prompt_list_reply": PromptListReply}
