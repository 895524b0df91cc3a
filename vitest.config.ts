import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/ts/**/*.test.ts'],
    // Two files at a time: most integration files spend their time waiting on worker processes (each
    // starts its own, torch on one thread), so two at once about halve the suite on CI's 2 cores
    // (2026-12-06: 271 s vs ~400 s one at a time). More would oversubscribe a small machine.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
