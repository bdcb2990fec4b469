import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Workers must be processes: NODE_EXTRA_CA_CERTS (set by global setup) is
    // read only at process start, so worker threads would never trust the test CA.
    pool: 'forks',
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
