"""The peak-memory estimate of one training micro-batch: its parts, summed.

    peak = frozen weights + soft parameters + their gradients + optimizer state
         + the largest pass: saved activations of every layer (or, with gradient checkpointing, each
           layer's input plus one layer recomputed) + logits and loss + backward's working set
           + input embeddings + attention mask

The sum is the peak because its parts are live together: at the start of backward every layer's saved
tensors, the logits and the loss's copies exist at once; the optimizer state lives from the first step
on (the loop frees the previous step's loss before the next forward, training.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from softprompt_worker.planner import activations as A
from softprompt_worker.planner.shape import ModelShape
from softprompt_worker.planner.weights import DTYPE_BYTES, frozen_weight_bytes, optimizer_state_bytes
from softprompt_worker.planner.workload import Job, passes

# On CUDA: the context, cuBLAS/cuDNN workspaces and the caching allocator's fragmentation, none of which
# torch.cuda.max_memory_allocated counts. A rule of thumb (docs/memory.md), not measured here.
CUDA_RESERVE_BYTES = 1 << 30


@dataclass(frozen=True)
class Precision:
    weights: str  # "f32" | "bf16" | "f16": the frozen model's dtype
    compute: str  # what activations are stored in: "bf16" under autocast, else the weights' dtype
    quantization: str | None = None
    device: str = "cuda"


@dataclass(frozen=True)
class Trainable:
    shapes: tuple[tuple[int, ...], ...]  # the soft parameters' shapes (f32)
    optimizer: str = "adamw"

    @property
    def count(self) -> int:
        total = 0
        for s in self.shapes:
            n = 1
            for d in s:
                n *= d
            total += n
        return total


def breakdown(shape: ModelShape, precision: Precision, trainable: Trainable, job: Job) -> dict[str, int]:
    """Bytes by part; the peak is their sum."""
    b = DTYPE_BYTES[precision.compute]
    parts = {
        "weights": frozen_weight_bytes(shape, precision.weights, precision.quantization),
        "soft_params": 4 * trainable.count,
        "gradients": 4 * trainable.count,
        "optimizer": optimizer_state_bytes(trainable.optimizer, list(trainable.shapes)),
        "activations": 0, "logits": 0, "other": 0,
    }
    best = None
    for p in passes(job):
        if p.grad:
            layers = (shape.layers * A.layer_input_bytes(shape, b, p) + A.layer_bytes(shape, b, p)
                      if job.gradient_checkpointing and p.checkpointed else shape.layers * A.layer_bytes(shape, b, p))
            # The loss's tensors are gone before backward reaches the layers' working set: the larger counts.
            logits, transient = A.logits_bytes(shape, b, p), A.backward_transient_bytes(shape, b, p)
            other = max(0, transient - logits) + A.model_io_bytes(shape, b, p) + A.mask_bytes(p)
            candidate = (layers, logits, other)
        else:  # no autograd: the key/value cache it leaves, one layer's working set
            candidate = (0, 0, A.kv_cache_bytes(shape, b, p.rows, p.keys) + A.backward_transient_bytes(shape, b, p))
        if best is None or sum(candidate) > sum(best):
            best = candidate
    parts["activations"], parts["logits"], parts["other"] = best or (0, 0, 0)
    if precision.device == "cuda":
        parts["cuda_reserve"] = CUDA_RESERVE_BYTES
    return parts


def peak_bytes(shape: ModelShape, precision: Precision, trainable: Trainable, job: Job) -> int:
    return sum(breakdown(shape, precision, trainable, job).values())
