"""What to change when a job does not fit: each change re-planned, the ones that fit first.

Tried one at a time, then together: gradient checkpointing, an NF4 base (CUDA: bitsandbytes), a smaller
micro-batch with more accumulation (the same effective batch), and the longest sequence that fits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from softprompt_worker.planner.estimate import Precision, peak_bytes
from softprompt_worker.planner.request import PlanInput


def peak_of(inp: PlanInput) -> int:
    return peak_bytes(inp.shape, inp.precision, inp.trainable, inp.job)


def seq_field(method: str) -> str:
    """Where a job sets the sequence length the plan calls ``seq`` (the method says: ``plan_seq_field``)."""
    from softprompt_worker.methods.registry import method_class

    return method_class(method).plan_seq_field


def with_seq(inp: PlanInput, seq: int) -> PlanInput:
    return replace(inp, job=replace(inp.job, seq=seq))


def longest_seq(inp: PlanInput, budget: int, limit: int | None = None) -> int:
    """The longest ``seq`` whose plan fits ``budget`` (0: not even one token), up to the model's
    positions (or ``limit``, or 2^20 tokens)."""
    hi = min(x for x in (limit, inp.max_seq, 1 << 20) if x)
    if peak_of(with_seq(inp, 1)) > budget:
        return 0
    lo = 1
    while lo < hi:  # the peak grows with seq: binary search for the last that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if peak_of(with_seq(inp, mid)) <= budget else (lo, mid - 1)
    return lo


def suggestions(inp: PlanInput, budget: int, grad_accumulation: int) -> list[dict[str, Any]]:
    job, prec = inp.job, inp.precision
    options: list[tuple[dict[str, Any], PlanInput]] = []
    if not job.gradient_checkpointing:
        options.append(({"training.gradient_checkpointing": True},
                        replace(inp, job=replace(job, gradient_checkpointing=True))))
    if prec.quantization is None and prec.device == "cuda":
        nf4 = replace(inp, precision=Precision(prec.weights, prec.compute, "nf4", prec.device))
        options.append(({"model.quantization": "nf4"}, nf4))
        if not job.gradient_checkpointing:
            options.append(({"training.gradient_checkpointing": True, "model.quantization": "nf4"},
                            replace(nf4, job=replace(job, gradient_checkpointing=True))))
    batch = job.batch_size
    while batch > 1:
        batch //= 2
        smaller = replace(inp, job=replace(job, batch_size=batch))
        if peak_of(smaller) <= budget or batch == 1:
            factor = -(-job.batch_size // batch)
            options.append(({"training.batch_size": batch, "training.grad_accumulation": grad_accumulation * factor},
                            smaller))
            break
    seq = longest_seq(inp, budget, limit=job.seq - 1)
    if 0 < seq < job.seq:
        options.append(({seq_field(job.method): seq}, with_seq(inp, seq)))
    out = []
    for change, variant in options:
        peak = peak_of(variant)
        out.append({"change": change, "peak_bytes": peak, "fits": peak <= budget, "text": describe(change)})
    out.sort(key=lambda s: (not s["fits"], s["peak_bytes"]))
    return out


def describe(change: dict[str, Any]) -> str:
    words = {"training.gradient_checkpointing": "turn on training.gradient_checkpointing",
             "model.quantization": "load the frozen model in NF4 (model.quantization 'nf4')"}
    parts = []
    for key, value in change.items():
        if key in words:
            parts.append(words[key])
        elif key == "training.grad_accumulation":
            continue
        elif key == "training.batch_size":
            parts.append(f"lower training.batch_size to {value} with training.grad_accumulation "
                         f"{change['training.grad_accumulation']} (the same effective batch)")
        else:
            parts.append(f"shorten {key} to {value}")
    return " and ".join(parts)
