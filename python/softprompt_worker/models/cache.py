"""The worker's frozen base models, loaded once per ``ModelSpec`` and shared by every op and prompt.

The cache lives in the worker's shared state (``serving.handlers.WorkerState.cache``), keyed by
``(MODEL_CACHE, model_key(spec))``, so specs that load the same model (``"auto"`` and the device it
resolves to) share one copy.

    frozen = get_frozen_model(state, ModelSpec.from_dict({"tiny": "gpt2"}))
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import torch

from softprompt_worker.models import FrozenModel, ModelSpec, load_frozen_model, resolve_device, resolve_dtype

MODEL_CACHE = "frozen_model"  # state.cache key prefix of loaded base models


def model_key(spec: ModelSpec) -> str:
    """Canonical JSON of a spec with ``device``/``dtype`` resolved: specs that load the same model share
    one (``{"device": "auto"}`` and ``{"device": "cpu"}`` on a CPU-only machine are the same model)."""
    device = resolve_device(spec.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = str(resolve_dtype(spec.dtype, device)).removeprefix("torch.")
    return json.dumps(asdict(replace(spec, device=str(device), dtype=dtype)), sort_keys=True, default=str)


def get_frozen_model(state, spec: ModelSpec) -> FrozenModel:
    """The model ``spec`` names, loaded once per worker: the one frozen-model cache every op uses."""
    return state.get_or_create((MODEL_CACHE, model_key(spec)), lambda: load_frozen_model(spec))


def loaded_models(state) -> list[dict]:
    """The base models this worker holds (the ``status`` op): spec, device, dtype and bytes in memory."""
    models = []
    for (_, key), frozen in state.entries(MODEL_CACHE):
        spec = json.loads(key)
        models.append({"model": spec, "device": spec["device"], "dtype": spec["dtype"],
                       "bytes": _bytes_in_memory(frozen.model)})
    return models


def _bytes_in_memory(model: torch.nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in {id(t): t for t in tensors}.values())
