/**
 * Ctrl-C: the first SIGINT aborts the command's signal (a training job is cancelled cleanly: the
 * worker writes a checkpoint and the job ends `cancelled`); a second one exits at once with 130
 * (the worker process is killed with us).
 */
import { EXIT } from './exit-codes.js';
import type { Output } from './output.js';

export interface Interrupts {
  readonly signal: AbortSignal;
  dispose(): void;
}

export function handleInterrupts(out: Output, exit: (code: number) => void = (code) => process.exit(code)): Interrupts {
  const controller = new AbortController();
  const onSigint = () => {
    if (!controller.signal.aborted) {
      out.note('softprompt: cancelling (press Ctrl-C again to quit now)');
      controller.abort(new Error('interrupted (SIGINT)'));
      return;
    }
    out.note('softprompt: quitting');
    exit(EXIT.cancelled);
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}
