"""The planner's entry: a job in, its estimated peak memory, whether it fits and what to change out.

    result = plan_job(body, budget_bytes=24 * 2**30)
    result["fits"], result["peak_bytes"], result["breakdown"], result["suggestions"]

``body`` has the ``train`` op's fields (``data`` and ``run_dir`` are not needed and are ignored); its job fields
are parsed here with ``training/job.JobRequest`` (the scheduler asks before the op has checked the body).
"""

from __future__ import annotations

from typing import Any

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import parse
from softprompt_worker.models import ModelSpec
from softprompt_worker.training.job import JobRequest, split_training
from softprompt_worker.training.loop import TrainingConfig
from softprompt_worker.planner.estimate import breakdown
from softprompt_worker.planner.request import DEVICES, PlanInput, plan_input
from softprompt_worker.planner.suggest import longest_seq, seq_field, suggestions


def plan_input_for(body: dict[str, Any], device: str, negatives: int | None = None) -> tuple[PlanInput, TrainingConfig]:
    job = parse(JobRequest, body)
    _, training = split_training(job.training)  # the train op's own fields change no estimate
    config = TrainingConfig.from_dict(training)
    spec = ModelSpec.from_dict(job.model)
    method_config = job.method_config
    if method_config is None and job.resume_from is not None:
        from softprompt_worker.training.checkpoints import load_checkpoint

        method_config = load_checkpoint(job.resume_from).method_config  # a resumed job's own options
    inp = plan_input(spec, job.method, method_config, job.task, job.task_options, config, device, negatives)
    return inp, config


def plan_job(body: dict[str, Any], *, device: str, budget_bytes: int | None,
             negatives: int | None = None) -> dict[str, Any]:
    """The plan of the job ``body`` on ``device`` ("cuda" | "cpu") with ``budget_bytes`` (None: only the
    estimate, no verdict)."""
    if device not in DEVICES:
        raise InvalidArgumentError(f"device: {device!r} is not one of {', '.join(DEVICES)}")
    inp, config = plan_input_for(body, device, negatives)
    parts = breakdown(inp.shape, inp.precision, inp.trainable, inp.job)
    peak = sum(parts.values())
    job, prec = inp.job, inp.precision
    result: dict[str, Any] = {
        "peak_bytes": peak,
        "budget_bytes": budget_bytes,
        "fits": None if budget_bytes is None else peak <= budget_bytes,
        "device": device,
        "breakdown": parts,
        "settings": {
            "method": job.method, "batch_size": job.batch_size, "seq": job.seq, "seq_field": seq_field(job.method),
            "virtual_tokens": job.virtual_tokens, "negatives": job.negatives,
            "gradient_checkpointing": job.gradient_checkpointing, "quantization": prec.quantization,
            "weights_dtype": prec.weights, "compute_dtype": prec.compute, "optimizer": inp.trainable.optimizer,
            "frozen_params": inp.shape.params, "trainable_params": inp.trainable.count,
            "layers": inp.shape.layers, "hidden": inp.shape.hidden, "vocab": inp.shape.vocab,
        },
        "longest_seq": None,
        "suggestions": [],
    }
    if budget_bytes is not None:
        result["longest_seq"] = longest_seq(inp, budget_bytes)
        if peak > budget_bytes:
            result["suggestions"] = suggestions(inp, budget_bytes, config.grad_accumulation)
    return result
