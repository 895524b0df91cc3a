"""The memory planner against measured peaks: every method, a tiny Llama, a tiny GPT-2 and the embedded
SmolLM2, two batch/sequence settings each (and gradient checkpointing on the tiny Llama), on the CPU in f32.

The measurement (measure.py) is the peak of live CPU tensor bytes over two real training steps, from the
profiler's record of every allocation; the estimate is ``planner.estimate.breakdown`` for the same job
with ``device="cpu"``. Both count tensors only (not the Python heap or allocator caches), so they measure
the same thing; docs/memory.md has the numbers.
"""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.models import embedded
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.planner.estimate import breakdown
from softprompt_worker.planner.request import plan_input
from softprompt_worker.training.loop import TrainingConfig

from peak_memory import TASK_OF, measured_peak, rows_for

torch.set_num_threads(1)
TOLERANCE = 0.20
TINY = {"tiny": "llama", "overrides": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4,
                                       "max_position_embeddings": 1024}}
TINY_GPT2 = {"tiny": "gpt2", "overrides": {"n_embd": 128, "n_layer": 4, "n_positions": 1024}}
HAS_SMOLLM2 = embedded.is_installed("smollm2") and embedded.importlib.util.find_spec("gguf") is not None


def compare(frozen, spec: ModelSpec, method: str, batch: int, seq: int, **training) -> tuple[int, int, int]:
    """(measured peak, estimated peak, frozen weight bytes) of one job."""
    method_config = {"num_virtual_tokens": 8}
    if method == "passage_tuning":
        method_config.update(max_passage_tokens=seq, max_query_tokens=16)
    train = {"batch_size": batch, "max_length": seq, **training}
    measured = measured_peak(frozen, method, method_config, train, {}, rows_for(method, batch, seq, negatives=1))
    inp = plan_input(spec, method, method_config, TASK_OF[method], {}, TrainingConfig.from_dict(train), "cpu",
                     negatives=1)
    parts = breakdown(inp.shape, inp.precision, inp.trainable, inp.job)
    return measured, sum(parts.values()), parts["weights"]


def check(frozen, spec, settings, **training) -> None:
    failures = []
    for method in TASK_OF:
        for batch, seq in settings:
            measured, estimated, _ = compare(frozen, spec, method, batch, seq, **training)
            error = estimated / measured - 1
            if abs(error) > TOLERANCE:
                failures.append(f"{method} batch {batch} seq {seq}: estimated {estimated:,} vs measured {measured:,} "
                                f"({error:+.1%})")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def tiny():
    spec = ModelSpec.from_dict(TINY)
    return load_frozen_model(spec), spec


def test_tiny_gpt2_estimates_are_within_20_percent():  # the LayerNorm / GELU formula (activations.py)
    spec = ModelSpec.from_dict(TINY_GPT2)
    check(load_frozen_model(spec), spec, [(2, 64), (4, 128)])


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointing"])
def test_tiny_llama_estimates_are_within_20_percent(tiny, checkpointing):
    frozen, spec = tiny
    check(frozen, spec, [(2, 64), (4, 128)], gradient_checkpointing=checkpointing)


@pytest.mark.skipif(not HAS_SMOLLM2, reason="the embedded SmolLM2 is not installed (make setup)")
def test_smollm2_estimates_are_within_20_percent():
    spec = ModelSpec.from_dict({"embedded": "smollm2"})
    check(load_frozen_model(spec), spec, [(1, 32), (2, 64)])


if __name__ == "__main__":  # the table in docs/memory.md: cd test/python/planner && python test_estimate_vs_measured.py
    import sys

    print("| model | method | batch | seq | checkpointing | measured MiB | estimated MiB | error | error without weights |")
    print("|---|---|---|---|---|---|---|---|---|")
    cases = [(TINY, [(2, 64), (4, 128)], False), (TINY, [(2, 64), (4, 128)], True),
             (TINY_GPT2, [(2, 64), (4, 128)], False)]
    if HAS_SMOLLM2:
        cases.append(({"embedded": "smollm2"}, [(1, 32), (2, 64)], False))
    for raw, settings, ckpt in cases:
        spec = ModelSpec.from_dict(raw)
        frozen = load_frozen_model(spec)
        for method in TASK_OF:
            for batch, seq in settings:
                m, e, w = compare(frozen, spec, method, batch, seq, gradient_checkpointing=ckpt)
                name = f"tiny {raw['tiny']} (4 layers, 128 wide)" if "tiny" in raw else "SmolLM2-135M"
                print(f"| {name} | {method} | {batch} | {seq} | {'on' if ckpt else 'off'} | {m / 2**20:.1f} | "
                      f"{e / 2**20:.1f} | {e / m - 1:+.1%} | {(e - w) / (m - w) - 1:+.1%} |", flush=True)
    sys.exit(0)
