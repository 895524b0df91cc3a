import { describe, expect, it } from 'vitest';
import { levelOfLine, toLogFunction } from '../../../ts/src/core/logger.js';

describe('worker log levels', () => {
  it.each([
    ['2026-11-26 13:22:44,860 INFO softprompt_worker: an ERROR word inside', 'info'],
    ['2026-11-26 13:22:44,860 WARNING softprompt_worker: slow', 'warn'],
    ['2026-11-26 13:22:44,860 CRITICAL x: y', 'error'],
    ['Traceback (most recent call last):', 'error'],
    ['plain text', 'info'],
  ])('%s → %s', (line, level) => expect(levelOfLine(line)).toBe(level));
});

describe('toLogFunction', () => {
  it('adapts a console-like logger', () => {
    const seen: string[] = [];
    const log = toLogFunction({ debug: () => {}, info: (m) => seen.push(`i ${m}`), warn: (m) => seen.push(`w ${m}`), error: () => {} });
    log('info', 'a');
    log('warn', 'b');
    expect(seen).toEqual(['i a', 'w b']);
  });
});
