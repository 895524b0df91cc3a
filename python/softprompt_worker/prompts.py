"""Worker-side caches: frozen base models by ``ModelSpec``, loaded soft prompts by name.

One loaded base model serves any number of soft prompts: loading a prompt builds its method against
the cached model (never a second copy) and keeps its ``Injection`` ready, so switching prompts, or
mixing prompts in one batch, never reloads or touches the model. Both caches live in the worker's
shared state (``ops.registry.WorkerState``), so every op (train, generate, classify, rerank...) sees
the same models.

    frozen = get_frozen_model(state, ModelSpec.from_dict({"tiny": "gpt2"}))
    prompts = prompt_cache(state)
    prompts.load("sentiment", "/runs/a/final.pb", frozen)
    frozen, rows = resolve_rows(state, {"tiny": "gpt2"}, ["sentiment", None])   # per-row Injections
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .errors import InvalidArgumentError, NotFoundError
from .models import FrozenModel, ModelSpec, load_frozen_model

MODEL_CACHE = "frozen_model"  # state.cache key prefix, shared with other ops (e.g. rerank)
PROMPT_CACHE = "prompts"


def model_key(spec: ModelSpec) -> str:
    """Canonical JSON of a spec: equal specs share one loaded model."""
    return json.dumps(asdict(spec), sort_keys=True, default=str)


def get_frozen_model(state, spec: ModelSpec) -> FrozenModel:
    """The model ``spec`` names, loaded once per worker."""
    return state.get_or_create((MODEL_CACHE, model_key(spec)), lambda: load_frozen_model(spec))


def spec_for_checkpoint(base_model: dict[str, Any]) -> ModelSpec:
    """The ModelSpec a checkpoint's recorded base model names (``tiny:<family>`` for tiny models)."""
    name = base_model.get("name_or_path") or ""
    if name.startswith("tiny:"):
        return ModelSpec(tiny=name.removeprefix("tiny:"))
    if not name:
        raise InvalidArgumentError("model: the checkpoint records no base model name; pass 'model'")
    return ModelSpec(name_or_path=name)


@dataclass
class LoadedPrompt:
    name: str
    path: str
    method: Any  # an LMSoftPromptMethod attached to a cached FrozenModel
    model_key: str
    injection: Any  # methods.injection.Injection, computed once (projection MLPs applied), no grad
    step: int
    metrics: dict[str, float]

    def describe(self) -> dict[str, Any]:
        method = self.method
        return {"name": self.name, "path": self.path, "method": method.name,
                "method_config": method.config.to_dict(), "model": method.frozen.spec.display_name,
                "num_trainable_parameters": method.num_trainable_parameters(), "step": self.step,
                "metrics": self.metrics}


class PromptCache:
    """Loaded prompts by name. Loading a name again replaces it."""

    def __init__(self) -> None:
        self._prompts: dict[str, LoadedPrompt] = {}
        self._lock = threading.Lock()

    def load(self, name: str, path: str, frozen: FrozenModel) -> LoadedPrompt:
        from .checkpoints import build_method_from_checkpoint, load_checkpoint

        record = load_checkpoint(path)
        method = build_method_from_checkpoint(record, frozen)  # checks the model fingerprint
        if not hasattr(method, "injection"):
            raise InvalidArgumentError(f"prompt {name!r}: {record.method!r} prompts are not used for generation or "
                                       "classification (see rerank / embed)")
        method.eval()
        with torch.no_grad():
            injection = method.injection()
        loaded = LoadedPrompt(name=name, path=path, method=method, model_key=model_key(frozen.spec),
                              injection=injection, step=record.step, metrics=dict(record.metrics))
        with self._lock:
            self._prompts[name] = loaded
        return loaded

    def unload(self, name: str) -> bool:
        with self._lock:
            return self._prompts.pop(name, None) is not None

    def get(self, name: str) -> LoadedPrompt:
        with self._lock:
            loaded = self._prompts.get(name)
            known = sorted(self._prompts)
        if loaded is None:
            raise NotFoundError(f"prompt {name!r} is not loaded (loaded: {known or 'none'}); call prompt_load first")
        return loaded

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            prompts = list(self._prompts.values())
        return [p.describe() for p in sorted(prompts, key=lambda p: p.name)]


def prompt_cache(state) -> PromptCache:
    return state.get_or_create(PROMPT_CACHE, PromptCache)


def resolve_rows(state, model: dict | None, names: list[str | None]):
    """``(frozen model, [Injection | None per row])`` for a request naming one prompt (or none) per row.

    ``model`` may be omitted when a prompt is named: the prompts' model is used. Every named prompt must
    be loaded on the request's model.
    """
    cache = prompt_cache(state)
    loaded = [cache.get(n) if n is not None else None for n in names]
    keys = {p.model_key for p in loaded if p is not None}
    if model is not None:
        spec = ModelSpec.from_dict(model)
        key = model_key(spec)
        frozen = get_frozen_model(state, spec)
    elif len(keys) == 1:
        first = next(p for p in loaded if p is not None)
        frozen, key = first.method.frozen, first.model_key
    else:
        raise InvalidArgumentError("model: required when no prompt is named or the prompts use different models")
    for p in loaded:
        if p is not None and p.model_key != key:
            raise InvalidArgumentError(f"prompt {p.name!r} is loaded on {p.method.frozen.spec.display_name!r}, "
                                       f"not on the requested model {frozen.spec.display_name!r}")
    return frozen, [p.injection if p is not None else None for p in loaded]
