/**
 * As root, Dovecot's processes run as its system users: a sandbox folder they
 * cannot reach would give only "Auth process broken" at the first login.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';

it.runIf(process.getuid?.() === 0)(
  'refuses, as root, a --dir below a folder others may not enter, naming that folder',
  async () => {
    const closed = mkdtempSync(join(tmpdir(), 'mailbridge-closed-')); // mode 0700
    try {
      const result = await runCli(
        ['sandbox', 'start', '--dir', join(closed, 'sandbox')],
        {},
        { timeoutMs: 60_000 },
      );
      expect(result.stderr).toContain('SANDBOX_START_FAILED');
      expect(result.stderr).toContain(`cannot pass through ${closed}`);
      expect(result.code).toBe(1);
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  },
  60_000,
);
