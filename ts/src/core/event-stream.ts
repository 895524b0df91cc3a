/**
 * A stream of events from one remote operation, ending in a final result.
 */
import { SoftpromptError } from './errors.js';

/** How the owner of an {@link EventStream} feeds it. Handed to the `start` callback once. */
export interface StreamController<T, R> {
  /** Delivers one event (dropped when nobody iterates). */
  event(value: T): void;
  /** Ends the stream with its final result. */
  end(result: R): void;
  /** Ends the stream with an error: iteration throws it (after buffered events), `result()` rejects. */
  fail(error: Error): void;
}

/**
 * Events of one remote operation (`T`), then its final result (`R`).
 *
 * - Iterate it once with `for await`; events arriving faster than you consume them are buffered.
 * - `result()` resolves with the final result. Called without iterating, it consumes the stream and
 *   drops the events.
 * - Leaving the loop early (`break`, `return`, a throw) asks the worker to cancel the operation;
 *   `result()` then settles as the operation ends (a cancelled training run still resolves with its
 *   summary, other operations reject with {@link AbortError}).
 * - {@link cancel} does the same without leaving the loop: the loop ends when the worker has stopped.
 * - Errors are thrown as typed {@link SoftpromptError}s, from the loop and from `result()` alike.
 *
 * @example
 * const stream = client.trainPrompt({ ... });
 * for await (const event of stream) console.log(event.step, event.loss);
 * const summary = await stream.result();
 */
export class EventStream<T, R> implements AsyncIterable<T> {
  readonly #queue: T[] = [];
  readonly #result: Promise<R>;
  readonly #onCancel: () => void;
  #resolve!: (result: R) => void;
  #reject!: (error: Error) => void;
  #wake: (() => void) | undefined;
  #settled = false;
  #error: Error | undefined;
  #consumed = false;
  #iterating = false;
  #cancelRequested = false;

  /**
   * @param start receives the controller that feeds the stream (called synchronously, once).
   * @param onCancel asks the remote side to stop; called at most once, and only before the end.
   */
  constructor(start: (controller: StreamController<T, R>) => void, onCancel: () => void = () => {}) {
    this.#onCancel = onCancel;
    this.#result = new Promise<R>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#result.catch(() => {}); // reported through result() or the iterator, never as unhandled
    start({
      event: (value) => {
        if (this.#settled || (this.#consumed && !this.#iterating)) return;
        this.#queue.push(value);
        this.#notify();
      },
      end: (result) => {
        if (this.#settled) return;
        this.#settled = true;
        this.#resolve(result);
        this.#notify();
      },
      fail: (error) => {
        if (this.#settled) return;
        this.#settled = true;
        this.#error = error;
        this.#reject(error);
        this.#notify();
      },
    });
  }

  /** The final result. Rejects with the stream's error. */
  result(): Promise<R> {
    if (!this.#iterating) {
      this.#consumed = true;
      this.#queue.length = 0;
    }
    return this.#result.then((r) => r);
  }

  /** Asks the worker to stop this operation; the stream then ends as the operation defines. */
  cancel(): void {
    if (this.#settled || this.#cancelRequested) return;
    this.#cancelRequested = true;
    this.#onCancel();
  }

  /** True once the final result or error has arrived. */
  get done(): boolean {
    return this.#settled;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#consumed) throw new SoftpromptError('invalid_state', 'An EventStream can be consumed only once');
    this.#consumed = true;
    this.#iterating = true;
    let finished = false;
    const finish = (): IteratorReturnResult<undefined> => {
      finished = true;
      this.#iterating = false;
      this.#queue.length = 0;
      return { done: true, value: undefined };
    };
    return {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (finished) return { done: true, value: undefined };
          if (this.#queue.length > 0) return { done: false, value: this.#queue.shift()! };
          if (this.#settled) {
            finish();
            if (this.#error) throw this.#error;
            return { done: true, value: undefined };
          }
          await new Promise<void>((wake) => (this.#wake = wake));
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        if (!finished && !this.#settled) this.cancel();
        this.#notify();
        return finish();
      },
    };
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
