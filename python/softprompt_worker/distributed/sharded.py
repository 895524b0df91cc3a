"""A frozen base sharded across the ranks with FSDP2 (``fully_shard``), for models larger than one device.

``training.shard_model`` on a torchrun group: each rank keeps 1/W of every transformer layer's weights and
gathers one layer's whole weights just before it runs (forward, and backward for the input gradients the
soft vectors need), then frees them. The soft parameters stay replicated: ``DataParallel`` averages their
gradients with one all-reduce per step, as without sharding. The input embedding (and an output head
tied to it) is left whole on every rank: methods read it directly (prompt and suffix vectors, passages)
outside the model's forward, where FSDP would not gather it.

Loading: every rank builds the model's structure on the ``meta`` device and shards it; rank 0 alone reads
the weights, into host memory, and ``set_model_state_dict`` sends each rank its shards
(``broadcast_from_rank0``), so no device ever holds the whole model. Rank 0 needs the model's size in host
RAM; the others need nothing beyond their shards. Buffers the weights do not carry (rotary tables) come
from rank 0 too.

A sharded model serves collective jobs only: a non-collective op on rank 0 would gather weights the other
ranks never send. It is cached apart from the models inference uses. Quantized and sharded together is
not supported (bitsandbytes' packed weights are not DTensors).
"""

from __future__ import annotations

from dataclasses import replace

import logging

import torch
import torch.distributed as dist

from softprompt_worker.distributed.group import Group
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import FrozenModel, ModelSpec, fingerprint, load_frozen_model, model_structure, \
    resolve_device, resolve_dtype
from softprompt_worker.models.recompute import transformer_layers

log = logging.getLogger("softprompt_worker.distributed")
SHARDED_MODEL_CACHE = "sharded-frozen-model"


def sharded_model(state, spec: ModelSpec) -> FrozenModel:
    """For a collective job with ``training.shard_model``: the sharded model, loaded once per group and
    cached apart from the models inference uses."""
    from softprompt_worker.distributed.group import current_group
    from softprompt_worker.models.cache import model_key

    group = current_group()
    if group is None or group.world_size == 1:
        raise InvalidArgumentError("training.shard_model: needs a worker group of several ranks "
                                   "(Softprompt.start({ distributed: { nprocPerNode: N } }), docs/distributed.md)")
    return state.get_or_create((SHARDED_MODEL_CACHE, model_key(spec)), lambda: sharded_frozen_model(spec, group))


def sharded_frozen_model(spec: ModelSpec, group: Group) -> FrozenModel:
    """The model ``spec`` names, its transformer layers sharded over ``group`` (every rank calls this)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if spec.quantization is not None:
        raise InvalidArgumentError("training.shard_model: a quantized model (model.quantization) cannot be sharded; "
                                   "use one or the other")
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    full = None
    if group.rank == 0:  # the weights, once, in host memory
        full = load_frozen_model(replace(spec, device="cpu", dtype=_dtype_name(dtype)))
    model, tokenizer = model_structure(spec, dtype)  # on the meta device, every rank
    mesh = init_device_mesh(device.type, (group.world_size,))
    for layer in transformer_layers(model):
        fully_shard(layer, mesh=mesh)
    whole = {model.get_input_embeddings().weight}
    head = model.get_output_embeddings()
    if head is not None and head.weight is model.get_input_embeddings().weight:
        whole.add(head.weight)
    fully_shard(model, mesh=mesh, ignored_params=whole)
    model.to_empty(device=device)
    weights = full.model.state_dict() if full is not None else {}
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    _broadcast_unsaved_buffers(model, full.model if full is not None else None, weights)
    model.requires_grad_(False)
    model.eval()
    held = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    total = sum(p.numel() for p in model.parameters())
    log.info("sharded %s over %d ranks: this rank holds %d of its %d weights", spec.display_name,
             group.world_size, held, total)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return FrozenModel(model=model, tokenizer=tokenizer, spec=spec, fingerprint=fingerprint(model))


def _broadcast_unsaved_buffers(model, source, saved: dict) -> None:
    """Buffers outside the state dict (``persistent=False``: rotary inverse frequencies, position ids) are
    empty after ``to_empty``: rank 0 sends its own."""
    theirs = dict(source.named_buffers()) if source is not None else {}
    for name, buffer in model.named_buffers():
        if name in saved:
            continue
        if source is not None:
            buffer.copy_(theirs[name].to(buffer.device, buffer.dtype))
        dist.broadcast(buffer, src=0)


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}[dtype]
