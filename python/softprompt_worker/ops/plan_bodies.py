"""The request and reply bodies of op ``plan`` (``ops/plan.py``), declared once: the worker parses requests
with them (``fields.parse``) and builds replies from them (``planner.plan.plan_job``'s result), and
``make schema`` exports them to JSON Schema and the SDK's zod schemas and types (docs/schema.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.models import QUANTIZATIONS
from softprompt_worker.planner.request import DEVICES
from softprompt_worker.training.job import JobRequest

IGNORED = "a train op field, accepted and ignored"


@dataclass(kw_only=True)
class PlanRequest(JobRequest):
    """Op ``plan``: a training job's estimated peak memory, whether it fits a budget, what to change. No
    weights are loaded: the model is built on the ``meta`` device."""

    data: dict[str, Any] | None = option(None, doc=IGNORED)
    run_dir: str | None = option(None, doc=IGNORED)
    job_id: str | None = option(None, doc=IGNORED)
    gpu_bytes: int | None = option(None, gt=0,
                                   doc="the budget; default: the CUDA device's total memory, if there is one")
    device: str | None = option(None, choices=DEVICES, doc=(
        "what to plan for; default: cuda when gpu_bytes is given, else the model's device when it names one, "
        "else cuda when CUDA is present, else cpu"))
    negatives: int | None = option(None, ge=0, doc="hard negatives per row (suffix, passage tuning); default 0 / "
                                                  "max_hard_negatives")


@dataclass(kw_only=True)
class MemoryBreakdown:
    """Bytes by part of the peak (``planner/estimate.py``); they sum to ``peak_bytes``."""

    weights: int = option(ge=0, doc="the frozen model's weights (packed where quantized) and buffers")
    soft_params: int = option(ge=0, doc="the soft parameters (f32)")
    gradients: int = option(ge=0, doc="their gradients")
    optimizer: int = option(ge=0, doc="the optimizer's state (AdamW: two moments; Adafactor: factored; SGD: none)")
    activations: int = option(ge=0, doc="what the frozen layers keep for backward")
    logits: int = option(ge=0, doc="logits and the loss's f32 log-softmax and gradients")
    other: int = option(ge=0, doc="input embeddings, the attention mask, backward's working set beyond the logits")
    cuda_reserve: int | None = option(None, ge=0, absent=True,
                                      doc="CUDA only: context, workspaces and allocator slack (a fixed 1 GiB)")


@dataclass(kw_only=True)
class PlanSettings:
    """The settings the estimate used, after defaults."""

    method: str = option(doc="the method")
    batch_size: int = option(ge=0, doc="rows per micro-batch")
    seq: int = option(ge=0, doc="tokens per row (prompt/prefix tuning), per text (suffix), per passage "
                                "(passage tuning)")
    seq_field: str = option(doc="where a job sets seq: training.max_length or method_config.max_passage_tokens")
    virtual_tokens: int = option(ge=0, doc="the soft prompt's length")
    negatives: int = option(ge=0, doc="hard negatives per row")
    gradient_checkpointing: bool = option(doc="whether the frozen layers recompute in backward")
    quantization: str | None = option(choices=QUANTIZATIONS, doc="the frozen weights' quantization, or null")
    weights_dtype: str = option(doc="the frozen weights' dtype")
    compute_dtype: str = option(doc="the compute dtype")
    optimizer: str = option(doc="the optimizer")
    frozen_params: int = option(ge=0, doc="the frozen model's parameters")
    trainable_params: int = option(ge=0, doc="the soft parameters")
    layers: int = option(ge=0, doc="the model's layers")
    hidden: int = option(ge=0, doc="its hidden size")
    vocab: int = option(ge=0, doc="its vocabulary size")


@dataclass(kw_only=True)
class PlanSuggestion:
    """One change that would make the job fit (or come closer)."""

    change: dict[str, Any] = option(doc="fields to change, by wire path: {'training.gradient_checkpointing': true}")
    peak_bytes: int = option(ge=0, doc="the peak with the change")
    fits: bool = option(doc="whether that fits the budget")
    text: str = option(doc="the change in words")


@dataclass(kw_only=True)
class PlanReply:
    """Op ``plan``'s reply: ``planner.plan.plan_job``'s result and where the budget came from."""

    peak_bytes: int = option(ge=0, doc="the estimated peak")
    budget_bytes: int | None = option(doc="the budget; null without one")
    fits: bool | None = option(doc="whether the peak fits the budget; null without one")
    device: str = option(choices=DEVICES, doc="what was planned for")
    breakdown: MemoryBreakdown = option(doc="bytes by part of the peak")
    settings: PlanSettings = option(doc="the settings the estimate used")
    longest_seq: int | None = option(doc="the longest seq that fits the budget, all else unchanged (0: none); null "
                                         "without a budget")
    suggestions: list[PlanSuggestion] = option(doc="when it does not fit: changes, the ones that fit first")
    budget_source: str | None = option(choices=("given", "device"), doc="'given' (gpu_bytes), 'device' (the CUDA "
                                                                       "device's memory), or null")


BODIES = {"plan_request": PlanRequest, "plan_reply": PlanReply}
