"""Loaded soft prompts by name, against the frozen models of ``models.cache``.

One loaded base model serves any number of soft prompts: loading a prompt builds its method against
the cached model (never a second copy), so switching prompts, or mixing prompts in one batch, never
reloads or touches the model. Both caches live in the worker's shared state
(``serving.handlers.WorkerState``), so every op (train, generate, classify, embed, rerank...) sees the same
models and prompts. The prompt cache holds prompts of every method; each op decides what using one means and
refuses the wrong method by name: ``generate``/``classify`` take the methods that inject into a language
model (prompt and prefix tuning, via their ``Injection``), ``embed`` takes ``suffix_tuning`` and
``rerank`` takes ``passage_tuning`` (both through ``resolve_prompt``, which also takes checkpoint paths).
Loaded prompts belong to the client that loaded them (``state.client``, ``clients.py``) unless loaded with
``shared=True``; models are shared by all.

    frozen = get_frozen_model(state, ModelSpec.from_dict({"tiny": "gpt2"}))
    prompts = prompt_cache(state)
    prompts.load("sentiment", "/runs/a/final.pb", frozen)
    frozen, rows = resolve_rows(state, {"tiny": "gpt2"}, ["sentiment", None])   # per-row Injections
    frozen, method = resolve_prompt(state, None, "ranker", use="rerank", needs=("passage_tuning",))
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from softprompt_worker.errors import InvalidArgumentError, NotFoundError
from softprompt_worker.models import FrozenModel, ModelSpec
from softprompt_worker.models.cache import get_frozen_model, model_key

PROMPT_CACHE = "prompts"
CHECKPOINT_PROMPTS = "checkpoint_prompt"  # prompts used by checkpoint path, keyed by (model, path, mtime)
MAX_CHECKPOINT_PROMPTS = 8  # the most recently used ones are kept; a rewritten file is a new key


def spec_for_checkpoint(base_model: dict[str, Any]) -> ModelSpec:
    """The ModelSpec a checkpoint's recorded base model names, for requests that leave out ``model``.

    Checkpoints record the full spec (``BaseModel.model_spec_json``: tiny seed and overrides, revision);
    older ones only ``name_or_path`` (``tiny:<family>`` for tiny models, at the default init). Device and
    dtype are per-run choices: the defaults (``auto``) apply. ``trust_remote_code`` is never taken from a
    file: a checkpoint whose model needs it must be given ``model`` explicitly.
    """
    recorded = base_model.get("model_spec")
    if recorded:
        if not isinstance(recorded, dict):
            raise InvalidArgumentError("model: the checkpoint's recorded model spec is not a map; pass 'model'")
        if recorded.get("trust_remote_code"):
            raise InvalidArgumentError(
                f"model: the checkpoint's model {base_model.get('name_or_path')!r} runs code from its repository "
                "(trust_remote_code), which is never enabled from a checkpoint file; pass 'model' with "
                "trust_remote_code: true to opt in")
        try:
            return ModelSpec.from_dict(recorded)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"model: this worker cannot read the checkpoint's recorded model spec "
                                       f"({exc.message}); pass 'model'") from exc
    name = base_model.get("name_or_path") or ""
    if name.startswith("tiny:"):
        return ModelSpec(tiny=name.removeprefix("tiny:"))
    if name.startswith("embedded:"):
        return ModelSpec(embedded=name.removeprefix("embedded:"))
    if not name:
        raise InvalidArgumentError("model: the checkpoint records no base model name; pass 'model'")
    return ModelSpec(name_or_path=name)


def require_method(prompt: str, method: str, use: str, needs: Sequence[str]) -> None:
    """InvalidArgumentError unless ``method`` is one of ``needs``: "prompt 'x' is a prefix_tuning prompt;
    rerank needs passage_tuning"."""
    if method not in needs:
        raise InvalidArgumentError(f"prompt {prompt!r} is a {method} prompt; {use} needs {' or '.join(needs)}")


@dataclass
class LoadedPrompt:
    name: str
    path: str
    method: Any  # a SoftPromptMethod attached to a cached FrozenModel, in eval mode
    model_key: str
    injection: Any  # methods.injection.Injection for LM methods (computed once, no grad); None otherwise
    step: int
    metrics: dict[str, float]

    def describe(self) -> dict[str, Any]:
        method = self.method
        return {"name": self.name, "path": self.path, "method": method.name,
                "method_config": method.config.to_dict(), "model": method.frozen.spec.display_name,
                "num_trainable_parameters": method.num_trainable_parameters(), "step": self.step,
                "metrics": self.metrics}


class PromptCache:
    """Loaded prompts of any method, by name. Loading a name again replaces it."""

    def __init__(self) -> None:
        self._prompts: dict[str, LoadedPrompt] = {}
        self._lock = threading.Lock()

    def load(self, name: str, path: str, frozen: FrozenModel, record=None) -> LoadedPrompt:
        """Builds the checkpoint at ``path`` (or its already-read ``record``) on ``frozen`` under ``name``."""
        from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
        from softprompt_worker.methods.base import LMSoftPromptMethod

        record = record if record is not None else load_checkpoint(path)
        method = build_method_from_checkpoint(record, frozen)  # checks the model fingerprint
        method.eval()
        injection = None
        if isinstance(method, LMSoftPromptMethod):
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

    def find(self, name: str) -> LoadedPrompt | None:
        with self._lock:
            return self._prompts.get(name)

    def get(self, name: str) -> LoadedPrompt:
        with self._lock:
            loaded = self._prompts.get(name)
            known = sorted(self._prompts)
        if loaded is None:
            raise NotFoundError(f"prompt {name!r} is not loaded (loaded: {known or 'none'}); call prompt_load first")
        return loaded

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._prompts)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            prompts = list(self._prompts.values())
        return [p.describe() for p in sorted(prompts, key=lambda p: p.name)]


class ClientPrompts:
    """The prompts one client sees (``state.client``, ``clients.py``): its own, then those any client loaded
    with ``shared=True``; its own shadow a shared one of the same name. Same methods as `PromptCache`."""

    def __init__(self, state) -> None:
        self._state = state
        self._key = (PROMPT_CACHE, "client", state.client)
        # A client gets a cache entry only once it loads a prompt: lookups by passing clients leave none.
        self._own = state.cache.get(self._key) or _NO_PROMPTS
        self._shared = state.get_or_create((PROMPT_CACHE, "shared"), PromptCache)

    def load(self, name: str, path: str, frozen: FrozenModel, record=None, *, shared: bool = False) -> LoadedPrompt:
        if not shared:
            self._own = self._state.get_or_create(self._key, PromptCache)
        loaded = (self._shared if shared else self._own).load(name, path, frozen, record)
        if shared:
            self._own.unload(name)  # else this client's own prompt of that name would hide the new one
        return loaded

    def unload(self, name: str) -> bool:
        return self._own.unload(name) or self._shared.unload(name)

    def find(self, name: str) -> LoadedPrompt | None:
        found = self._own.find(name)
        return found if found is not None else self._shared.find(name)

    def get(self, name: str) -> LoadedPrompt:
        loaded = self.find(name)
        if loaded is None:
            known = self.names()
            raise NotFoundError(f"prompt {name!r} is not loaded (loaded: {known or 'none'}); call prompt_load first")
        return loaded

    def names(self) -> list[str]:
        return sorted(set(self._own.names()) | set(self._shared.names()))

    def list(self) -> list[dict[str, Any]]:
        own = [{**p, "shared": False} for p in self._own.list()]
        taken = {p["name"] for p in own}
        shared = [{**p, "shared": True} for p in self._shared.list() if p["name"] not in taken]
        return sorted(own + shared, key=lambda p: p["name"])


_NO_PROMPTS = PromptCache()  # the own prompts of a client that has loaded none (never loaded into)


def prompt_cache(state) -> ClientPrompts:
    """The prompt cache as the client of ``state`` (``WorkerState.for_client``) sees it."""
    return ClientPrompts(state)


def lm_method_names() -> list[str]:
    """The methods whose prompts ``generate`` and ``classify`` use: those that inject into an LM."""
    from softprompt_worker.methods.base import LMSoftPromptMethod
    from softprompt_worker.methods.registry import method_class, method_names

    return [n for n in method_names() if issubclass(method_class(n), LMSoftPromptMethod)]


def resolve_rows(state, model: dict | None, names: list[str | None], use: str = "generate/classify"):
    """``(frozen model, [Injection | None per row])`` for a request naming one prompt (or none) per row.

    ``model`` may be omitted when a prompt is named: the prompts' model is used. Every named prompt must
    be loaded on the request's model and be of a method that injects into a language model.
    """
    cache = prompt_cache(state)
    loaded = [cache.get(n) if n is not None else None for n in names]
    for p in loaded:
        if p is not None and p.injection is None:
            require_method(p.name, p.method.name, use, lm_method_names())
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


def resolve_prompt(state, raw_model: Any, prompt: Any, *, use: str, needs: Sequence[str]):
    """``(frozen model, method or None)`` for a request's ``model`` and ``prompt``: the one resolver of the
    ops that use a single prompt (``embed``, ``evaluate_retrieval``, ``rerank``, ``evaluate_reranking``).

    ``prompt`` is the name of a loaded prompt first, else a checkpoint path; the checkpoint's method is
    built once per (model, path, file modification time) and kept while it is among the
    ``MAX_CHECKPOINT_PROMPTS`` most recently used. Its method must be one of ``needs``
    (InvalidArgumentError naming both, with ``use`` the op). Without ``prompt``, ``raw_model`` is
    required and the method is None; with one, ``raw_model`` may be left out (the prompt's model).
    """
    if prompt is None:
        if raw_model is None:
            raise InvalidArgumentError("model: required when no prompt is given")
        return get_frozen_model(state, ModelSpec.from_dict(raw_model)), None
    if not isinstance(prompt, str) or not prompt:
        raise InvalidArgumentError(f"prompt: expected a loaded prompt name or a checkpoint path, got {prompt!r:.60}")
    loaded = prompt_cache(state).find(prompt)
    if loaded is not None:
        require_method(prompt, loaded.method.name, use, needs)
        if raw_model is not None and model_key(ModelSpec.from_dict(raw_model)) != loaded.model_key:
            raise InvalidArgumentError(f"prompt {prompt!r} is loaded on {loaded.method.frozen.spec.display_name!r}, "
                                       "not on the requested model")
        return loaded.method.frozen, loaded.method
    return _checkpoint_prompt(state, raw_model, prompt, use, needs)


def _checkpoint_prompt(state, raw_model: Any, path: str, use: str, needs: Sequence[str]):
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint

    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None
    record = _read_checkpoint(state, path) if stamp is None else None  # raises: not a name, not a file
    if raw_model is None:
        record = _read_checkpoint(state, path)
        require_method(path, record.method, use, needs)  # before loading a model for nothing
        spec = spec_for_checkpoint(record.base_model)
    else:
        spec = ModelSpec.from_dict(raw_model)
    frozen = get_frozen_model(state, spec)

    def build():
        checkpoint = record if record is not None else _read_checkpoint(state, path)
        require_method(path, checkpoint.method, use, needs)
        method = build_method_from_checkpoint(checkpoint, frozen)  # checks the model fingerprint
        method.eval()
        return method

    method = state.get_or_create_recent((CHECKPOINT_PROMPTS, model_key(spec), os.path.abspath(path), stamp), build,
                                        MAX_CHECKPOINT_PROMPTS)
    require_method(path, method.name, use, needs)  # built earlier for another op
    return frozen, method


def _read_checkpoint(state, path: str):
    from softprompt_worker.training.checkpoints import load_checkpoint

    try:
        return load_checkpoint(path)
    except NotFoundError as exc:
        loaded = prompt_cache(state).names()
        raise NotFoundError(f"prompt {path!r} is neither a loaded prompt (loaded: {loaded or 'none'}) nor a "
                            "checkpoint file") from exc
