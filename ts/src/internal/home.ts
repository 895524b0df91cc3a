/**
 * The per-user softprompt folder: where `softprompt setup` builds the worker's Python environment and
 * records it (`setup.json`), and where the CLI's warm worker keeps its state (`worker/`).
 *
 * `$SOFTPROMPT_CACHE_DIR`, else `$XDG_CACHE_HOME/softprompt`, else `~/.cache/softprompt`: the same folder
 * the worker keeps its dequantised embedded models in (`embedded.py` `cache_root`, `models/`). Everything
 * in it can be rebuilt (`softprompt setup`), so it is a cache in the XDG sense.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function softpromptHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env['SOFTPROMPT_CACHE_DIR']) return env['SOFTPROMPT_CACHE_DIR'];
  const cache = env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(cache, 'softprompt');
}

/** What `softprompt setup` wrote to `<home>/setup.json`. */
export interface SetupRecord {
  /** The environment's interpreter: the worker's Python. */
  readonly python: string;
  /** The SDK version whose worker package was installed. */
  readonly sdkVersion: string;
  /** The torch requirement and the index it came from (none: pip's default). */
  readonly torch: { readonly spec: string; readonly indexUrl: string | null; readonly build: 'cpu' | 'cuda' | 'custom' };
  /** Embedded model packages installed (`minilm`, `smollm2`). */
  readonly models: readonly string[];
  /** ISO time of the setup. */
  readonly createdAt: string;
}

export function setupRecordPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(softpromptHome(env), 'setup.json');
}

/** The setup record, or undefined when `softprompt setup` has not run (or its file is unreadable). */
export function readSetupRecord(env: NodeJS.ProcessEnv = process.env): SetupRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(setupRecordPath(env), 'utf8')) as Partial<SetupRecord>;
    return typeof record.python === 'string' && typeof record.sdkVersion === 'string' ? (record as SetupRecord) : undefined;
  } catch {
    return undefined;
  }
}
