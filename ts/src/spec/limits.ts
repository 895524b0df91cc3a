/**
 * Upper bounds on job parameters: python/softprompt_worker/limits.py, generated into
 * ts/src/gen/schema/limits.ts (`make schema`; `make schema-check` fails when it is stale), so a spec the
 * worker would refuse is refused here, before anything is sent. They are sanity bounds far above any
 * useful setting: they turn a typo (an extra zero, a byte count where a token count was meant) into a
 * `ValidationError` naming the field and the limit. The model's own position table bounds sequence
 * lengths further, at train time.
 */
export * from '../gen/schema/limits.js';
