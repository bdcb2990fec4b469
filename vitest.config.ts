import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Workers must be processes: NODE_EXTRA_CA_CERTS (set by global setup) is
    // read only at process start, so worker threads would never trust the test CA.
    pool: 'forks',
    // Most of a test's time is spent waiting on servers, child processes and
    // timers, not on the CPU, so more files run at once than there are cores
    // (vitest's default is one fewer than the cores: a single worker on a
    // 2-core machine). Every harness takes free ports and a folder of its own.
    maxWorkers: 4,
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // `npm run test:quick` leaves these out; `npm test` (CI) runs everything.
    tags: [
      {
        name: 'soak',
        description:
          'Runs long on purpose: wall-clock soaks, kill-and-restart rounds, memory ceilings, package builds',
      },
    ],
  },
});
