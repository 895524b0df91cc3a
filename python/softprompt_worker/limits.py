"""Upper bounds on job and request parameters: the one source of them. ``scripts/gen-schema.py`` writes
them to ``proto/schema/limits.json`` and ``ts/src/gen/schema/limits.ts`` (``make schema``; ``make
schema-check`` fails when those are stale), so the SDK refuses the same values before anything is sent.

They are sanity bounds far above any useful setting: they turn a typo (an extra zero, a byte count
where a token count was meant) into a clear error naming the field, the limit and the value, before
the worker allocates anything. The model's own position table bounds sequence lengths further.
"""

MAX_NUM_VIRTUAL_TOKENS = 4096  # soft prompt / prefix / suffix length (Lester et al. used up to 150)
MAX_STEPS = 10_000_000  # optimizer steps; also warmup_steps and the eval/checkpoint/log cadences
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536  # rows per micro-batch
MAX_GRAD_ACCUMULATION = 65_536  # micro-batches per optimizer step
MAX_SEQUENCE_LENGTH = 1_048_576  # tokens per row (max_length & co.), 2^20
MAX_HIDDEN_SIZE = 65_536  # widths of learned layers and vector counts (projection, bottleneck)
MAX_FUSED_JOBS = 64  # training jobs of one train_many (fused training: they share every forward pass)
MAX_SEED = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: every seed survives the trip from TS

# Inference requests (embed, rerank, classify, generate, evaluate).
MAX_INFERENCE_BATCH_SIZE = 4096  # rows per forward pass of an inference op (never changes a result)
MAX_NEW_TOKENS = 4096  # tokens generated per row
MAX_TEXTS = 1_000_000  # texts per embed call
