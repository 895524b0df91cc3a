/**
 * `Softprompt.connect()` options (a shared worker, `softprompt-worker serve`): the zod schema, its
 * defaults, and reading CURVE keys from the files `softprompt-worker keys new` writes. The public
 * option types are in core/connect-options.ts.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../core/errors.js';
import { logger, maxInFlight, positiveMs } from './options.js';
import { parseOrThrow } from './validate.js';

/** A Curve25519 key as ZeroMQ writes it: 40 characters of Z85. */
const z85Key = z.string().regex(/^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/, 'expected a 40-character Z85 CURVE key');

const keysSchema = z.union([
  z.strictObject({ serverPublicKey: z85Key, clientPublicKey: z85Key, clientSecretKey: z85Key }),
  z.strictObject({ dir: z.string().min(1), name: z.string().min(1).default('client') }),
]);

/** The schema of {@link ConnectOptions}; unknown keys are errors so typos surface. */
export const connectOptionsSchema = z.strictObject({
  keys: keysSchema.optional(),
  connectTimeoutMs: positiveMs.default(10_000),
  requestTimeoutMs: positiveMs.optional(),
  heartbeatMs: positiveMs.default(2_000),
  reconnectWaitMs: positiveMs.default(30_000),
  maxInFlight,
  logger: logger.optional(),
});

export type ResolvedConnectOptions = z.output<typeof connectOptionsSchema>;

/** Z85 keys for the DEALER's CURVE options. */
export interface CurveKeys {
  readonly serverPublicKey: string;
  readonly clientPublicKey: string;
  readonly clientSecretKey: string;
}

/** Validates the endpoint and options; throws {@link ValidationError} naming each bad field. */
export function parseConnectOptions(endpoint: unknown, options: unknown): ResolvedConnectOptions {
  if (typeof endpoint !== 'string' || !/^(tcp:\/\/.+:\d+|ipc:\/\/.+)$/.test(endpoint)) {
    throw new ValidationError(`endpoint: expected tcp://HOST:PORT or ipc://PATH, got ${JSON.stringify(endpoint)}`);
  }
  const resolved = parseOrThrow(connectOptionsSchema, options ?? {}, 'options');
  if (endpoint.startsWith('tcp://') && resolved.keys === undefined) {
    throw new ValidationError(
      'options.keys: required for a tcp:// endpoint (TCP always runs with CURVE): pass { dir } with the files from ' +
        '`softprompt-worker keys new`, or { serverPublicKey, clientPublicKey, clientSecretKey }',
    );
  }
  return resolved;
}

/**
 * The keys as Z85 strings, reading `{ dir }` from disk; ValidationError names a missing or bad file,
 * or a secret key file other users can read.
 */
export async function loadKeys(keys: ResolvedConnectOptions['keys']): Promise<CurveKeys | undefined> {
  if (keys === undefined || 'serverPublicKey' in keys) return keys;
  const dir = keys.dir === '~' || keys.dir.startsWith('~/') ? join(homedir(), keys.dir.slice(1)) : keys.dir;
  const server = join(dir, 'server.key');
  const secretFile = join(dir, `${keys.name}.key_secret`);
  const [serverFile, clientFile] = await Promise.all([readKeyFile(server), readKeyFile(secretFile)]);
  const mode = (await stat(secretFile)).mode;
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new ValidationError(`options.keys.dir: ${secretFile} is readable by other users (mode ${(mode & 0o777).toString(8)}); run \`chmod 600 ${secretFile}\``);
  }
  const clientSecretKey = clientFile.secret;
  if (clientSecretKey === undefined) throw new ValidationError(`options.keys.dir: ${secretFile} holds no secret-key`);
  return { serverPublicKey: serverFile.public, clientPublicKey: clientFile.public, clientSecretKey };
}

async function readKeyFile(path: string): Promise<{ public: string; secret: string | undefined }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ValidationError(`options.keys.dir: cannot read ${path} (${(cause as Error).message}); make it with \`softprompt-worker keys new\``, undefined, { cause });
  }
  const field = (name: string) => text.match(new RegExp(`^\\s*${name}\\s*=\\s*"([^"]*)"`, 'm'))?.[1];
  const [pub, secret] = [field('public-key'), field('secret-key')];
  for (const [name, value] of [['public-key', pub], ['secret-key', secret]] as const) {
    if (value !== undefined && !z85Key.safeParse(value).success) {
      throw new ValidationError(`options.keys.dir: ${path}: ${name} is not a 40-character Z85 key`);
    }
  }
  if (pub === undefined) throw new ValidationError(`options.keys.dir: ${path} holds no public-key line`);
  return { public: pub, secret };
}
