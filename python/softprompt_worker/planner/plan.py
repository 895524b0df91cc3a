"""The planner's entry: a job in, its estimated peak memory, whether it fits and what to change out.

    result = plan_job(body, budget_bytes=24 * 2**30)
    result["fits"], result["peak_bytes"], result["breakdown"], result["suggestions"]

``body`` has the ``train`` op's job fields (``data`` and ``run_dir`` are not needed and are ignored), their
shape checked by the op (``ops/train_bodies.JobRequest``), and ``training`` without the op's own fields
(``TrainingExtras``).
"""

from __future__ import annotations

from typing import Any

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import ModelSpec
from softprompt_worker.training.loop import TrainingConfig
from softprompt_worker.planner.estimate import breakdown
from softprompt_worker.planner.request import DEVICES, PlanInput, plan_input
from softprompt_worker.planner.suggest import longest_seq, seq_field, suggestions


def plan_input_for(body: dict[str, Any], device: str, negatives: int | None = None) -> tuple[PlanInput, TrainingConfig]:
    config = TrainingConfig.from_dict(body.get("training"))
    spec = ModelSpec.from_dict(body.get("model"))
    method_config = body.get("method_config")
    if method_config is None and isinstance(body.get("resume_from"), str):
        from softprompt_worker.training.checkpoints import load_checkpoint

        method_config = load_checkpoint(body["resume_from"]).method_config  # a resumed job's own options
    inp = plan_input(spec, body["method"], method_config, body["task"], body.get("task_options"),
                     config, device, negatives)
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
