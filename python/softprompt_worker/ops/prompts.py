"""Ops ``prompt_load``, ``prompt_unload``, ``prompt_list``: soft prompts kept ready in the worker.

The bodies are declared once in ``ops/prompt_bodies.py`` (``PromptLoadRequest`` -> ``PromptInfo``;
``PromptUnloadRequest`` -> ``PromptUnloadReply``; ``{}`` -> ``PromptListReply``, sorted by name), exported to
``proto/schema/`` and the SDK (docs/schema.md).

``prompt_load`` loads the checkpoint, of any method, onto the cached base model (``model``, or the model
the checkpoint records), checking the model fingerprint; a name already loaded is replaced. The model is
loaded once per worker and shared by every prompt on it. Each op uses the prompts of the methods it
understands and names the method it needs otherwise: ``generate`` / ``classify`` take ``prompt_tuning`` and
``prefix_tuning`` prompts, ``embed`` / ``evaluate_retrieval`` take ``suffix_tuning``, ``rerank`` /
``evaluate_reranking`` take ``passage_tuning``.

Prompts are per client (the ``client_id`` of its ``hello``): another client sharing the worker neither sees
nor replaces them, unless loaded with ``"shared": true`` (then every client sees it; its own prompt of the
same name comes first). ``prompt_unload`` forgets the client's own prompt first, else a shared one.
"""

from __future__ import annotations

from softprompt_worker.fields import build, parse, to_body
from softprompt_worker.models import ModelSpec
from softprompt_worker.ops.prompt_bodies import (PromptInfo, PromptListReply, PromptLoadRequest, PromptUnloadReply,
                                                  PromptUnloadRequest)
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("prompt_load")
def prompt_load(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.training.checkpoints import load_checkpoint
    from softprompt_worker.inference.prompts import prompt_cache, spec_for_checkpoint
    from softprompt_worker.models.cache import get_frozen_model

    body = parse(PromptLoadRequest, req.body)
    record = load_checkpoint(body.path)
    spec = ModelSpec.from_dict(body.model) if body.model is not None else spec_for_checkpoint(record.base_model)
    frozen = get_frozen_model(ctx.state, spec)
    loaded = prompt_cache(ctx.state).load(body.name, body.path, frozen, record, shared=body.shared)
    return Reply(body=to_body(build(PromptInfo, {**loaded.describe(), "shared": body.shared})))


@op("prompt_unload")
def prompt_unload(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.prompts import prompt_cache

    body = parse(PromptUnloadRequest, req.body)
    return Reply(body=to_body(PromptUnloadReply(unloaded=prompt_cache(ctx.state).unload(body.name))))


@op("prompt_list")
def prompt_list(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.prompts import prompt_cache

    return Reply(body=to_body(build(PromptListReply, {"prompts": prompt_cache(ctx.state).list()})))
