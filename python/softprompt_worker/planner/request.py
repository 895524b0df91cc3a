"""From a job (the ``train`` op's fields) to the planner's inputs, without loading any weights.

The model is built on the ``meta`` device from its config (``models.model_structure``); the method is
built on that model too, so the soft parameters' shapes are the method's own (no second formula per
method); sizes the passes need come from the method's validated config and the task's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import FrozenModel, ModelSpec, model_structure
from softprompt_worker.training.loop import TrainingConfig
from softprompt_worker.planner.estimate import Precision, Trainable
from softprompt_worker.planner.shape import ModelShape, shape_of
from softprompt_worker.planner.workload import Job

DEVICES = ("cuda", "cpu")


@dataclass(frozen=True)
class PlanInput:
    shape: ModelShape
    precision: Precision
    trainable: Trainable
    job: Job
    max_seq: int | None  # the longest ``seq`` the model's positions allow


def precision_for(spec: ModelSpec, config: TrainingConfig, device: str) -> Precision:
    """The dtypes training would use on ``device`` (training/loop.py ``autocast_for``, models.py ``resolve_dtype``,
    ops/train.py ``model_for_training``); a CUDA device is assumed to run bf16 natively (Ampere or newer)."""
    weights = spec.dtype
    if weights == "auto":
        weights = "f32" if config.dtype == "f32" or device == "cpu" else "bf16"
    autocast = config.dtype == "bf16" or (config.dtype == "auto" and device == "cuda")
    return Precision(weights=weights, compute="bf16" if autocast else weights, quantization=spec.quantization,
                     device=device)


def plan_input(spec: ModelSpec, method_name: str, method_config: dict | None, task: str,
               task_options: dict | None, config: TrainingConfig, device: str, negatives: int | None) -> PlanInput:
    import torch

    from softprompt_worker.methods.registry import method_class

    if device not in DEVICES:
        raise InvalidArgumentError(f"device: {device!r} is not one of {', '.join(DEVICES)}")
    precision = precision_for(spec, config, device)
    model, tokenizer = model_structure(spec, {"f32": torch.float32, "bf16": torch.bfloat16,
                                              "f16": torch.float16}[precision.weights])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    shape = shape_of(model)
    frozen = FrozenModel(model=model, tokenizer=tokenizer, spec=spec, fingerprint="")
    cls = method_class(method_name)
    method = _method_on_meta(cls, dict(method_config or {}), frozen)
    trainable = Trainable(shapes=tuple(tuple(p.shape) for p in method.parameters() if p.requires_grad),
                          optimizer=config.optimizer)
    options: dict[str, Any] = {**method.config.to_dict(), **(task_options or {})}
    sizes = method.plan_sizes((task_options or {}).get("max_length") or config.max_length, options)
    max_seq = shape.max_positions
    if max_seq is not None:
        max_seq -= sizes.virtual_tokens
    if negatives is None:
        negatives = sizes.negatives
    job = Job(method=method_name, task=task, batch_size=config.batch_size, seq=int(sizes.seq),
              virtual_tokens=int(sizes.virtual_tokens), gradient_checkpointing=config.gradient_checkpointing,
              negatives=int(negatives), options=options)
    return PlanInput(shape=shape, precision=precision, trainable=trainable, job=job, max_seq=max_seq)


def _method_on_meta(cls, method_config: dict, frozen: FrozenModel):
    """The method built on the meta model. An init that runs the model (prefix tuning from text) cannot
    run without weights; the parameters' shapes do not depend on the init, so it is built without it."""
    config = cls.config_class.from_dict(method_config)
    try:
        return cls(config, frozen)
    except (RuntimeError, NotImplementedError):
        plain = {k: v for k, v in method_config.items() if k not in ("init", "init_text")}
        return cls(cls.config_class.from_dict(plain), frozen)
