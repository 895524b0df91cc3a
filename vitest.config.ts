import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/ts/**/*.test.ts'],
    // Integration files each start real workers (torch import ≈ 3 s of CPU); running them one at a
    // time keeps the suite predictable on small machines.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
