/**
 * Upper bounds on job parameters, the same as python/softprompt_worker/limits.py name for name (a
 * test checks that they agree), so a spec the worker would refuse is refused here, before anything is
 * sent. They are sanity bounds far above any useful setting: they turn a typo (an extra zero, a byte
 * count where a token count was meant) into a `ValidationError` naming the field and the limit.
 * The model's own position table bounds sequence lengths further, at train time.
 */

/** Soft prompt / prefix / suffix length (Lester et al. used up to 150). */
export const MAX_NUM_VIRTUAL_TOKENS = 4096;
/** Optimizer steps; also `warmupSteps` and the eval/checkpoint/log cadences. */
export const MAX_STEPS = 10_000_000;
export const MAX_EPOCHS = 100_000;
/** Rows per micro-batch. */
export const MAX_BATCH_SIZE = 65_536;
/** Micro-batches per optimizer step. */
export const MAX_GRAD_ACCUMULATION = 65_536;
/** Tokens per row (`maxLength` & co.), 2^20. */
export const MAX_SEQUENCE_LENGTH = 1_048_576;
/** Widths of learned layers and vector counts (prefix projection, passage bottleneck). */
export const MAX_HIDDEN_SIZE = 65_536;
/** `Number.MAX_SAFE_INTEGER`: the largest seed a JS number holds exactly. */
export const MAX_SEED = 2 ** 53 - 1;
