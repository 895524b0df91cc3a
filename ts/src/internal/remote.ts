/**
 * The link to a shared worker on another machine (`softprompt-worker serve`, `Softprompt.connect`).
 * The process is not ours: nothing is started, supervised or stopped. Instead:
 *
 * - the DEALER is a CURVE client (TCP always runs with CURVE, WIRE.md "Shared workers");
 * - ZMTP heartbeats notice a silent peer; a lost connection fails the open calls with
 *   {@link ConnectionLostError}, and ZeroMQ reconnects by itself (backing off to 2 s);
 * - after each reconnect the link says `hello` again (the worker names connections by routing id, which
 *   changed) with the client id it made at start, so the worker still knows whose prompts are whose;
 *   calls made meanwhile wait for that, up to `reconnectWaitMs`;
 * - if the worker restarted meanwhile (another pid), the restart hooks replay what it lost (the
 *   prompts `sp.prompts` loaded) before other calls reach it.
 */
import { randomUUID } from 'node:crypto';
import type { SocketOptions, Dealer } from 'zeromq';
import { ClientClosedError, ConnectionLostError, RemoteError, WorkerStartError } from '../core/errors.js';
import type { LogFunction } from '../core/logger.js';
import type { CurveKeys, ResolvedConnectOptions } from './connect-options.js';
import { type HelloInfo, helloBody, parseHello, unary } from './handshake.js';
import type { LinkConnection, RestartHook, WorkerLink } from './link.js';
import { packageVersion } from './package.js';
import { Transport } from './transport.js';
import { PROTOCOL_VERSION } from './wire.js';

interface Waiter {
  resolve(conn: LinkConnection): void;
  reject(error: Error): void;
}

export class RemoteLink implements WorkerLink {
  readonly #endpoint: string;
  readonly #transport: Transport;
  readonly #options: ResolvedConnectOptions;
  readonly #log: LogFunction;
  readonly #clientId = randomUUID();
  readonly #hooks: RestartHook[] = [];
  readonly #waiters = new Set<Waiter>();
  #current: LinkConnection | undefined;
  #hello: HelloInfo | undefined;
  #closed = false;
  /** Why the latest handshake failed (for error messages), e.g. the server refused our key. */
  #problem: string | undefined;
  /** Rejects the first hello at once when the ZMTP handshake fails (set only during `connect`). */
  #refused: ((error: Error) => void) | undefined;
  /** A handshake happened that no hello has answered yet; `#helloLoop` runs while this is pending. */
  #helloDue = false;
  #helloLoop: Promise<void> | undefined;
  /** Counts disconnects, so a hello that raced one is not trusted. */
  #drops = 0;

  private constructor(endpoint: string, transport: Transport, options: ResolvedConnectOptions, log: LogFunction) {
    this.#endpoint = endpoint;
    this.#transport = transport;
    this.#options = options;
    this.#log = log;
    const events = transport.events;
    events.on('disconnect', () => {
      this.#drops++;
      this.#lost('the connection closed, or heartbeats went unanswered');
    });
    events.on('handshake', () => this.#handshake());
    events.on('handshake:error:auth', (e) =>
      this.#refuse(
        `the worker refused this client's key (authentication failed, status ${e.error.status}): copy the client's ` +
          "public key file (NAME.key) into the server's --allow folder, then send the server SIGHUP",
      ),
    );
    events.on('handshake:error:protocol', (e) =>
      this.#refuse(
        e.error.code === 'ERR_ZMTP_MECHANISM_MISMATCH'
          ? 'the worker does not use CURVE security, or this client does not: serve TCP with --server-key and --allow, and connect with keys'
          : `the security handshake failed (${e.error.code}): is serverPublicKey the server's server.key?`,
      ),
    );
  }

  /**
   * Connects and says hello. Throws {@link WorkerStartError} when no hello reply comes within
   * `connectTimeoutMs` (the server is unreachable or refused the keys; the message says which when
   * ZeroMQ reported it), or when the worker speaks another protocol or lacks torch.
   */
  static async connect(endpoint: string, options: ResolvedConnectOptions, keys: CurveKeys | undefined, log: LogFunction): Promise<RemoteLink> {
    const transport = Transport.connect(endpoint, log, socketOptions(options, keys), true);
    const link = new RemoteLink(endpoint, transport, options, log);
    try {
      const hello = await Promise.race([
        link.#sayHello(options.connectTimeoutMs),
        new Promise<never>((_, reject) => (link.#refused = reject)),
      ]);
      link.#hello = hello;
      link.#current = { transport, hello };
      return link;
    } catch (error) {
      link.#closed = true;
      transport.close(new ClientClosedError());
      throw error instanceof WorkerStartError ? error : new WorkerStartError(`Connecting to ${endpoint} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      link.#refused = undefined;
    }
  }

  get current(): LinkConnection | undefined {
    return this.#current;
  }

  get hello(): HelloInfo {
    return this.#hello!; // set by connect before anyone holds the link
  }

  get log(): LogFunction {
    return this.#log;
  }

  /** The client id this link sends in `hello`; the worker keys this client's prompts by it. */
  get clientId(): string {
    return this.#clientId;
  }

  connection(): Promise<LinkConnection> {
    if (this.#closed) return Promise.reject(new ClientClosedError());
    if (this.#current) return Promise.resolve(this.#current);
    const waitMs = this.#options.reconnectWaitMs;
    return new Promise<LinkConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        const why = this.#problem ? `, ${this.#problem}` : '';
        reject(new ConnectionLostError(this.#endpoint, `not back within reconnectWaitMs ${waitMs} ms${why}`));
      }, waitMs);
      const waiter: Waiter = {
        resolve: (conn) => (clearTimeout(timer), resolve(conn)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
      this.#waiters.add(waiter);
    });
  }

  onRestart(hook: RestartHook): void {
    this.#hooks.push(hook);
  }

  /** Fails open and waiting calls with {@link ClientClosedError} and closes the socket; the worker keeps running. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#current = undefined;
    for (const waiter of this.#waiters) waiter.reject(new ClientClosedError());
    this.#waiters.clear();
    this.#transport.close(new ClientClosedError());
  }

  #lost(reason: string): void {
    if (this.#closed || this.#current === undefined) return;
    this.#current = undefined;
    this.#log('warn', `lost the connection to the worker at ${this.#endpoint} (${reason}); reconnecting`);
    this.#transport.failAll(new ConnectionLostError(this.#endpoint, reason));
  }

  #refuse(problem: string): void {
    this.#problem = problem;
    if (this.#refused) this.#refused(new WorkerStartError(`Connecting to ${this.#endpoint} failed: ${problem}.`));
    else this.#log('error', `reconnecting to ${this.#endpoint}: ${problem}`);
  }

  /** A ZMTP handshake succeeded: after a reconnect, say hello again (once per handshake, in order). */
  #handshake(): void {
    this.#problem = undefined;
    if (this.#closed || this.#hello === undefined) return; // the first hello is connect's
    this.#helloDue = true;
    this.#helloLoop ??= this.#rehello().finally(() => (this.#helloLoop = undefined));
  }

  async #rehello(): Promise<void> {
    while (this.#helloDue && !this.#closed) {
      this.#helloDue = false;
      const drops = this.#drops;
      let hello: HelloInfo;
      try {
        hello = await this.#sayHello(this.#options.connectTimeoutMs);
      } catch (error) {
        // No answer on a connection that is still up (a worker slow to answer, e.g. one just restarted on a
        // busy machine; its late reply is dropped): ask again, as no new handshake will come to prompt it.
        // Lost meanwhile: the next handshake says hello anew. Any other failure waits for the next handshake.
        const again = error instanceof HelloUnanswered && this.#drops === drops;
        this.#log('warn', `hello after reconnecting to ${this.#endpoint} failed: ${(error as Error).message}${again ? ' Asking again.' : ''}`);
        if (again) this.#helloDue = true;
        continue;
      }
      const conn: LinkConnection = { transport: this.#transport, hello };
      if (hello.pid !== this.#hello?.pid) await this.#replay(conn); // another worker process: its state is gone
      if (this.#closed || this.#helloDue || this.#drops !== drops) continue; // lost again: the next handshake retries
      this.#hello = hello;
      this.#current = conn;
      this.#log('info', `reconnected to the worker at ${this.#endpoint} (pid ${hello.pid})`);
      for (const waiter of this.#waiters) waiter.resolve(conn);
      this.#waiters.clear();
    }
  }

  async #replay(conn: LinkConnection): Promise<void> {
    for (const hook of this.#hooks) {
      try {
        await hook(conn);
      } catch (error) {
        this.#log('error', `restoring this client's state on the restarted worker failed: ${(error as Error).message}`);
      }
    }
  }

  async #sayHello(timeoutMs: number): Promise<HelloInfo> {
    const body = helloBody(this.#clientId);
    const noAnswer = () =>
      new HelloUnanswered(
        `No answer from the worker at ${this.#endpoint} within ${timeoutMs} ms (connectTimeoutMs): authentication failed or ` +
          'the server is unreachable. Check that `softprompt-worker serve` runs there, that this machine can reach the ' +
          "port, that keys.serverPublicKey is the server's server.key, and that this client's NAME.key is in the server's --allow folder." +
          (this.#problem ? ` ZeroMQ said: ${this.#problem}.` : ''),
      );
    let reply;
    try {
      reply = await unary(this.#transport, 'hello', body, timeoutMs, noAnswer);
    } catch (error) {
      if (error instanceof RemoteError && error.code === 'protocol_version_mismatch') {
        throw new WorkerStartError(
          `The worker at ${this.#endpoint} speaks protocol ${String(error.details['worker'] ?? 'another version')}, this SDK ` +
            `(softprompt-ts/${packageVersion()}) speaks ${PROTOCOL_VERSION}: install one softprompt release on both machines.`,
          { cause: error },
        );
      }
      throw error;
    }
    const hello = parseHello(reply);
    const missing = hello.capabilities.missing ?? (hello.capabilities.torch ? [] : ['torch']);
    if (missing.length > 0) {
      throw new WorkerStartError(
        `The worker at ${this.#endpoint} lacks ${missing.join(', ')}. ${hello.capabilities.installHint ?? ''} (on the server's Python)`,
      );
    }
    return hello;
  }
}

/** A hello got no reply within its timeout (to the user, a {@link WorkerStartError} like any other). */
class HelloUnanswered extends WorkerStartError {}

/** CURVE client keys, heartbeats (3 silent intervals = gone) and reconnect backoff for the DEALER. */
function socketOptions(options: ResolvedConnectOptions, keys: CurveKeys | undefined): SocketOptions<Dealer> {
  const beat = options.heartbeatMs;
  return {
    heartbeatInterval: beat,
    heartbeatTimeout: 3 * beat,
    heartbeatTimeToLive: 3 * beat,
    connectTimeout: 3 * beat,
    reconnectInterval: 100,
    reconnectMaxInterval: 2_000,
    ...(keys ? { curveServerKey: keys.serverPublicKey, curvePublicKey: keys.clientPublicKey, curveSecretKey: keys.clientSecretKey } : {}),
  };
}
