"""Ops ``prompt_load``, ``prompt_unload``, ``prompt_list``: soft prompts kept ready in the worker.

``prompt_load``::

    {"name": str, "path": str (checkpoint file), "model"?: ModelSpec, "shared"?: bool}
    -> {"name", "path", "method", "method_config", "model", "num_trainable_parameters", "step", "metrics", "shared"}

    Loads the checkpoint, of any method, onto the cached base model (``model``, or the model the
    checkpoint records), checking the model fingerprint; a name already loaded is replaced. The model is
    loaded once per worker and shared by every prompt on it. Each op uses the prompts of the methods it
    understands and names the method it needs otherwise: ``generate`` / ``classify`` take
    ``prompt_tuning`` and ``prefix_tuning`` prompts, ``embed`` / ``evaluate_retrieval`` take
    ``suffix_tuning``, ``rerank`` / ``evaluate_reranking`` take ``passage_tuning``.

    Prompts are per client (the ``client_id`` of its ``hello``): another client sharing the worker neither
    sees nor replaces them, unless loaded with ``"shared": true`` (then every client sees it; its own
    prompt of the same name comes first).

``prompt_unload``: ``{"name": str} -> {"unloaded": bool}`` (the client's own prompt first, else a shared one).
``prompt_list``: ``{} -> {"prompts": [<prompt_load reply>, ...]}`` (sorted by name).
"""

from __future__ import annotations

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import ModelSpec
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("prompt_load")
def prompt_load(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.training.checkpoints import load_checkpoint
    from softprompt_worker.inference.prompts import prompt_cache, spec_for_checkpoint
    from softprompt_worker.models.cache import get_frozen_model

    name, path = _name(req.body), req.body.get("path")
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"path: expected a checkpoint file path, got {path!r:.60}")
    model = req.body.get("model")
    record = load_checkpoint(path)
    spec = ModelSpec.from_dict(model) if model is not None else spec_for_checkpoint(record.base_model)
    frozen = get_frozen_model(ctx.state, spec)
    shared = req.body.get("shared", False)
    if not isinstance(shared, bool):
        raise InvalidArgumentError(f"shared: expected true or false, got {shared!r:.40}")
    loaded = prompt_cache(ctx.state).load(name, path, frozen, record, shared=shared)
    return Reply(body={**loaded.describe(), "shared": shared})


@op("prompt_unload")
def prompt_unload(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.prompts import prompt_cache

    return Reply(body={"unloaded": prompt_cache(ctx.state).unload(_name(req.body))})


@op("prompt_list")
def prompt_list(req: Request, ctx: OpContext) -> Reply:
    from softprompt_worker.inference.prompts import prompt_cache

    return Reply(body={"prompts": prompt_cache(ctx.state).list()})


def _name(body) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"name: expected a non-empty string, got {name!r:.60}")
    return name
