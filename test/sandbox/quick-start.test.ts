/**
 * The newcomer's first minutes in CI: scripts/try-sandbox.sh clones this
 * checkout and runs README's quick-start block line by line, exactly as
 * printed (`./scripts/mailbridge sandbox start`, the eval, doctor, send,
 * archive, stop), then checks what the lines printed. A README edit that
 * breaks the quick start fails here.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { npmEnvironment, runProcess } from '../packaging/support.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('README quick start', { tags: ['soak'] }, () => {
  it('works as printed in a clean clone', { timeout: 420_000 }, async () => {
    const result = await runProcess(join(ROOT, 'scripts', 'try-sandbox.sh'), [], {
      // The clone's first run installs from the registry: npm needs the machine's CA, not the tests'.
      env: npmEnvironment(),
      cwd: ROOT,
      timeoutMs: 400_000,
    });
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain('try-sandbox: the quick start works as printed');
  });
});
