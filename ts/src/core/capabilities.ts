/**
 * What the worker can do on this machine, as reported by `hello` and `info` (WIRE.md, "Control path").
 */
import { z } from 'zod';

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

const version = z.string().nullable();

/** Wire shape (snake_case) → {@link Capabilities}. */
export const capabilitiesSchema = z
  .object({
    python: z.string(),
    torch: version,
    transformers: version,
    peft: version,
    devices: z.array(z.string()),
    cuda: z.boolean(),
    bf16: z.boolean(),
    gpus: z.array(z.object({ name: z.string(), memory_bytes: z.number() })),
    methods: z.array(z.string()),
    missing: z.array(z.string()).optional(),
    install_hint: z.string().optional(),
  })
  .transform(
    (c): Capabilities => ({
      python: c.python,
      torch: c.torch,
      transformers: c.transformers,
      peft: c.peft,
      devices: c.devices,
      cuda: c.cuda,
      bf16: c.bf16,
      gpus: c.gpus.map((g) => ({ name: g.name, memoryBytes: g.memory_bytes })),
      methods: c.methods,
      ...(c.missing ? { missing: c.missing } : {}),
      ...(c.install_hint ? { installHint: c.install_hint } : {}),
    }),
  );
