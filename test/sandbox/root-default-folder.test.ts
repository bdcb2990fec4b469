/**
 * The README quick start as root, as admins and CI containers run it: root's
 * home (0700) is closed to Dovecot's users, so the default folder moves to
 * one they can reach; a --dir they cannot reach is refused with one error
 * naming every folder in the way; and commands given no --dir find the
 * sandbox the last `start --dir` started.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, mailbridge, newSandboxDir, removeSandboxDir, root } from './cli-support.js';

const asRoot = { asSelf: true, timeoutMs: 60_000 };
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A home as root's: mode 0700. */
function closedHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'mailbridge-root-home-'));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

describe.runIf(root)('the sandbox as root', () => {
  it.runIf(!existsSync('/var/lib/mailbridge/sandbox/state.json'))(
    'starts as printed with a home closed to others, and status and stop find it',
    async () => {
      const env = { HOME: closedHome() };
      // Leave the machine as found: the folder stays only if it was there before.
      if (!existsSync('/var/lib/mailbridge')) {
        cleanups.push(() => rmSync('/var/lib/mailbridge', { recursive: true, force: true }));
      }
      cleanups.push(() => mailbridge(['sandbox', 'reset'], env, asRoot));
      const start = await mailbridge(['sandbox', 'start'], env, asRoot);
      expect(start.stderr).toBe('');
      expect(start.code).toBe(0);
      expect(start.stdout).toContain('# mailbridge sandbox in /var/lib/mailbridge/sandbox');
      const status = await mailbridge(['sandbox', 'status', '--json'], env, asRoot);
      expect(status.code).toBe(0);
      const { pid } = JSON.parse(status.stdout) as { pid: number };
      const stop = await mailbridge(['sandbox', 'stop'], env, asRoot);
      expect(stop.stderr).toContain('stopped the sandbox in /var/lib/mailbridge/sandbox');
      expect(isAlive(pid)).toBe(false);
    },
    90_000,
  );

  it('refuses a --dir closed to Dovecot once, naming every folder that needs o+x', async () => {
    const outer = closedHome();
    const inner = join(outer, 'inner');
    mkdirSync(inner, { mode: 0o700 });
    chmodSync(inner, 0o700);
    const dir = join(inner, 'sandbox');
    const result = await mailbridge(['sandbox', 'start', '--dir', dir], {}, asRoot);
    expect(result.code).toBe(1);
    expect(result.stderr.match(/mailbridge: error/g)).toHaveLength(1);
    expect(result.stderr).toContain(`SANDBOX_START_FAILED: Dovecot's users`);
    expect(result.stderr).toContain(`cannot pass through ${outer} to reach`);
    expect(result.stderr).toContain(`chmod o+x ${outer} ${inner}.`);
    expect(result.stderr).not.toMatch(/port/i);
  }, 60_000);

  it('finds the sandbox of the last `start --dir` for env, status and stop without --dir', async () => {
    const stateHome = mkdtempSync(join(tmpdir(), 'mailbridge-state-'));
    chmodSync(stateHome, 0o711);
    cleanups.push(() => rmSync(stateHome, { recursive: true, force: true }));
    const env = { XDG_STATE_HOME: stateHome };
    const dir = newSandboxDir({ asSelf: true });
    cleanups.push(() => removeSandboxDir(dir));
    cleanups.push(() => mailbridge(['sandbox', 'stop', '--dir', dir], env, asRoot));
    const start = await mailbridge(['sandbox', 'start', '--dir', dir], env, asRoot);
    expect(start.code, start.stderr).toBe(0);
    const printed = await mailbridge(['sandbox', 'env'], env, asRoot);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toBe(start.stdout);
    const status = await mailbridge(['sandbox', 'status', '--json'], env, asRoot);
    expect(status.code, status.stderr).toBe(0);
    const { pid } = JSON.parse(status.stdout) as { pid: number };
    const stop = await mailbridge(['sandbox', 'stop'], env, asRoot);
    expect(stop.stderr).toContain(`stopped the sandbox in ${dir}`);
    expect(isAlive(pid)).toBe(false);
  }, 90_000);
});
