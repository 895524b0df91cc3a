/**
 * A small HTTP service (node:http, no framework) that embeds and reranks with tuned soft prompts.
 *
 *     npx vite-node examples/serve.ts --embed runs/suffix/checkpoints/step-00000200.pb \
 *                                     --rerank runs/passage/checkpoints/step-00000200.pb --port 8080
 *
 *     curl -s localhost:8080/embed  -d '{"texts": ["mount a usb drive", "list open ports"]}'
 *     curl -s localhost:8080/rerank -d '{"query": "mount usb", "passages": ["apt install vim", "mount /dev/sdb1 /mnt"], "topK": 1}'
 *
 * - `POST /embed` `{ texts: string[] }` → `{ dim, embeddings: number[][], pooling, normalized }`, with
 *   the suffix-tuning checkpoint given by `--embed` (or `$SOFTPROMPT_EMBED_CHECKPOINT`).
 * - `POST /rerank` `{ query, passages: string[], topK? }` → `{ passages: [{ index, passage, score }] }`,
 *   best first, with the passage-tuning checkpoint given by `--rerank` (or `$SOFTPROMPT_RERANK_CHECKPOINT`).
 * - `GET /healthz` → `{ ok: true, prompts: [...] }`.
 *
 * Bad input gets 400 `{ error, field }` naming the field; unknown paths 404, other methods 405,
 * bodies over 1 MiB 413. The worker checks again what this file checks (the SDK's zod schemas): its
 * `ValidationError` is also a 400. SIGTERM / SIGINT stop accepting connections, let open requests
 * finish, then close the SDK (which stops the worker) and exit 0.
 *
 * `--model` (a hub id, `tiny:gpt2` or a JSON spec) loads the prompts onto that base model; default:
 * the model each checkpoint records. `--host` defaults to 127.0.0.1, `--port` to 8080 (0: any free
 * port); the first stdout line is `listening on http://HOST:PORT`. In your own code import from
 * 'softprompt' instead of '../ts/src/index.js'.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { type ModelSpec, RemoteError, Softprompt, ValidationError } from '../ts/src/index.js';

const MAX_BODY_BYTES = 1 << 20;
const MAX_TEXTS = 256;

/** A request error: the HTTP status and, for bad input, the field at fault. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message);
  }
}

/** Checks that `body[field]` is a non-empty array of at most MAX_TEXTS strings. */
function stringList(body: Record<string, unknown>, field: string): string[] {
  const value = body[field];
  if (!Array.isArray(value) || value.length === 0) throw new HttpError(400, `${field}: expected a non-empty array of strings`, field);
  if (value.length > MAX_TEXTS) throw new HttpError(400, `${field}: at most ${MAX_TEXTS} items, got ${value.length}`, field);
  const bad = value.findIndex((v) => typeof v !== 'string');
  if (bad >= 0) throw new HttpError(400, `${field}[${bad}]: expected a string`, `${field}[${bad}]`);
  return value as string[];
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body: larger than ${MAX_BODY_BYTES} bytes`, 'body');
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `body: not valid JSON (${(error as Error).message})`, 'body');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body: expected a JSON object', 'body');
  return body as Record<string, unknown>;
}

/** The prompt names this service loads its checkpoints under. */
const EMBED_PROMPT = 'embed';
const RERANK_PROMPT = 'rerank';

/** The request handler over a client whose prompts are loaded (`embed` and/or `rerank`). */
function handler(sp: Softprompt, loaded: ReadonlySet<string>) {
  const routes: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    '/embed': async (body) => {
      if (!loaded.has(EMBED_PROMPT)) throw new HttpError(404, 'no embedding prompt: start the service with --embed CHECKPOINT');
      const vectors = await sp.embed({ prompt: EMBED_PROMPT, texts: stringList(body, 'texts') });
      return { dim: vectors.dim, embeddings: vectors.toArray(), pooling: vectors.pooling, normalized: vectors.normalized };
    },
    '/rerank': async (body) => {
      if (!loaded.has(RERANK_PROMPT)) throw new HttpError(404, 'no reranking prompt: start the service with --rerank CHECKPOINT');
      if (typeof body['query'] !== 'string' || body['query'] === '') throw new HttpError(400, 'query: expected a non-empty string', 'query');
      const topK = body['topK'];
      if (topK !== undefined && (!Number.isInteger(topK) || (topK as number) < 1)) throw new HttpError(400, 'topK: expected a positive integer', 'topK');
      const ranked = await sp.rerank({
        prompt: RERANK_PROMPT,
        query: body['query'],
        passages: stringList(body, 'passages'),
        ...(topK === undefined ? {} : { topK: topK as number }),
      });
      return { passages: ranked.passages.map((p) => ({ index: p.index, passage: p.passage, score: p.meanLogLikelihood })) };
    },
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path === '/healthz' && req.method === 'GET') return send(200, { ok: true, prompts: [...loaded] });
      const route = routes[path];
      if (!route) throw new HttpError(404, `no route ${path}`);
      if (req.method !== 'POST') throw new HttpError(405, `${path}: use POST`);
      send(200, await route(await readJson(req)));
    } catch (error) {
      if (error instanceof HttpError) return send(error.status, { error: error.message, ...(error.field ? { field: error.field } : {}) });
      // The SDK's own checks (ValidationError: `input.texts: ...`) and the worker's (invalid_argument) are the caller's fault too.
      if (error instanceof ValidationError || (error instanceof RemoteError && error.code === 'invalid_argument')) {
        return send(400, { error: error.message });
      }
      console.error(error);
      send(500, { error: 'internal error' });
    }
  };
}

/** Reads `--name value` from argv, else the environment variable. */
function option(argv: readonly string[], name: string, envName?: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : envName ? process.env[envName] : undefined;
}

function parseModel(text: string): ModelSpec {
  if (text.startsWith('{')) return JSON.parse(text) as ModelSpec;
  if (text.startsWith('tiny:')) return { tiny: text.slice(5) } as ModelSpec;
  return { nameOrPath: text.startsWith('.') ? resolve(text) : text };
}

async function main(argv: readonly string[]): Promise<void> {
  const embed = option(argv, 'embed', 'SOFTPROMPT_EMBED_CHECKPOINT');
  const rerank = option(argv, 'rerank', 'SOFTPROMPT_RERANK_CHECKPOINT');
  if (!embed && !rerank) throw new Error('give --embed CHECKPOINT and/or --rerank CHECKPOINT (or SOFTPROMPT_EMBED_CHECKPOINT / SOFTPROMPT_RERANK_CHECKPOINT)');
  const modelText = option(argv, 'model');
  const model = modelText ? parseModel(modelText) : undefined;

  const sp = await Softprompt.start();
  const loaded = new Set<string>();
  let server: Server | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) =>
    (stopping ??= (async () => {
      console.error(`${signal}: closing`);
      if (server) {
        const closed = new Promise<void>((done) => server!.close(() => done())); // waits for open requests
        server.closeIdleConnections();
        await closed;
      }
      await sp.close();
    })());
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  try {
    for (const [name, path] of [[EMBED_PROMPT, embed], [RERANK_PROMPT, rerank]] as const) {
      if (!path) continue;
      const info = await sp.prompts.load(name, resolve(path), model ? { model } : {});
      console.error(`loaded ${name}: ${info.method} on ${info.model} (step ${info.step})`);
      loaded.add(name);
    }
    const listener = handler(sp, loaded);
    server = createServer((req, res) => void listener(req, res));
    const port = Number(option(argv, 'port', 'PORT') ?? 8080);
    const host = option(argv, 'host', 'HOST') ?? '127.0.0.1';
    await new Promise<void>((done, fail) => server!.once('error', fail).listen(port, host, done));
    const address = server.address() as AddressInfo;
    console.log(`listening on http://${address.address}:${address.port}`);
  } catch (error) {
    await stop('error');
    throw error;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
