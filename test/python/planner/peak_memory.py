"""Measured peak memory of real training steps on the CPU, for the planner's validation test.

``measured_peak(frozen, method_name, ...)`` runs ``training.train`` for two optimizer steps (the second
one has Adam's state and the first step's leftovers, as every later step does) under torch's profiler
with ``profile_memory=True``. The profiler records every allocation and free of the CPU allocator; the
running sum of those deltas, maximised, is the peak of live tensor bytes during the run. Bytes already
live when it starts (the frozen model's weights and buffers) are added, counted once per storage.
"""

from __future__ import annotations

import warnings

import torch
from torch.profiler import ProfilerActivity, profile

from softprompt_worker.methods.registry import method_class
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.training.loop import TrainingConfig, train

TASK_OF = {"prompt_tuning": "generation", "prefix_tuning": "generation", "suffix_tuning": "embedding",
           "passage_tuning": "reranking"}
WORDS = "the model reads a long text and learns what each word means in its place".split()


def words(n: int, seed: int) -> str:
    """About ``n`` tokens of plain words (more than enough: the tasks truncate to their limits)."""
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n))


def rows_for(method: str, batch: int, seq: int, negatives: int) -> list[dict]:
    """``batch`` rows whose texts are all longer than ``seq`` tokens (truncated to exactly ``seq``)."""
    if method in ("prompt_tuning", "prefix_tuning"):  # row 0 shorter: padded rows, as real data has
        return [{"input": words(seq // 2 if i == 0 and batch > 1 else 2 * seq, i), "target": words(4, i + 1)}
                for i in range(batch)]
    if method == "suffix_tuning":
        return [{"query": words(2 * seq, i), "positive": words(2 * seq, i + 50),
                 "negatives": [words(2 * seq, i + 100 + j) for j in range(negatives)]} for i in range(batch)]
    return [{"query": words(40, i), "positive": words(2 * seq, i + 50),
             "negatives": [words(2 * seq, i + 100 + j) for j in range(negatives)]} for i in range(batch)]


def storage_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()
    return total


def measured_peak(frozen, method: str, method_config: dict, training: dict, task_options: dict,
                  rows: list[dict]) -> int:
    """Peak live CPU tensor bytes of two training steps, frozen weights included."""
    static = storage_bytes([*frozen.model.parameters(), *frozen.model.buffers()])
    config = TrainingConfig.from_dict({"steps": 2, "log_every": 1, "eval_baseline": False, "lr": 1e-3, **training})
    task_cls = task_class(TASK_OF[method])
    options = {**task_options}
    if "max_length" in task_cls.options_defaults:
        options.setdefault("max_length", config.max_length)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            cls = method_class(method)
            m = cls(cls.config_class.from_dict(method_config), frozen)
            task = task_cls(m, options, rows, [])
            train(m, task, config)
            del m, task
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return static + peak
