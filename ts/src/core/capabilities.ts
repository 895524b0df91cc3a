/**
 * What the worker can do on this machine, as reported by `hello` and `info` (WIRE.md, "Control path").
 */
import { type HelloReplyCapabilities, helloReplyCapabilitiesSchema } from '../gen/schema/hello-reply-capabilities.js';
import { type Camel, camelized } from '../spec/case.js';
import type { Same } from '../spec/schema.js';

/** One GPU the worker can see. */
export interface GpuInfo {
  readonly name: string;
  readonly memoryBytes: number;
}

/** The worker's environment: library versions, devices and the tuning methods it offers. */
export interface Capabilities {
  readonly python: string;
  /** `null` when the package is missing in the worker's Python. */
  readonly torch: string | null;
  readonly transformers: string | null;
  readonly peft: string | null;
  /** Devices a job can run on: `'cpu'`, `'cuda:0'`, ... */
  readonly devices: readonly string[];
  readonly cuda: boolean;
  /** Whether bf16 compute is supported on the best device. */
  readonly bf16: boolean;
  readonly gpus: readonly GpuInfo[];
  /** Tuning methods: `'prompt_tuning'`, `'prefix_tuning'`, ... */
  readonly methods: readonly string[];
  /** Required packages that are missing (absent when none are). */
  readonly missing?: readonly string[];
  /** How to install what is missing. */
  readonly installHint?: string;
}

// The documented type is the worker's (proto/schema/hello_reply_capabilities.json), or this fails to compile.
true satisfies Same<Capabilities, Camel<HelloReplyCapabilities>>;

/** Wire shape (snake_case) → {@link Capabilities}. */
export const capabilitiesSchema = helloReplyCapabilitiesSchema.transform((c): Capabilities => camelized(c));
