/**
 * The state folder of a pair is locked by the run writing it: a second run
 * is refused (two runs appending to one journal would copy messages twice),
 * and the kernel frees the lock when its holder is killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MigrationState } from '../../../src/jobs/migrate/state.js';

const pair = { from: 'imaps://a@x:993', to: 'm365:b@contoso.com' };

/** A child process that opens the state of `pair` in `dir` and holds it until killed. */
async function holdStateInChild(dir: string): Promise<ChildProcess> {
  const script = `
    import { MigrationState } from ${JSON.stringify(new URL('../../../src/jobs/migrate/state.ts', import.meta.url).pathname)};
    await MigrationState.open(process.argv[1], ${JSON.stringify(pair)});
    console.log('held');
    setInterval(() => {}, 60_000);`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script, dir],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const [line] = (await once(createInterface({ input: child.stdout as Readable }), 'line')) as [
    string,
  ];
  expect(line).toBe('held');
  return child;
}

describe('migration state lock', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'migrate-lock-')), 'pair');
  });
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    child = undefined;
    await rm(join(dir, '..'), { recursive: true, force: true });
  });

  it('refuses a second run while another process holds the state, naming its pid', async () => {
    child = await holdStateInChild(dir);
    const refused = await MigrationState.open(dir, pair).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: 'MIGRATE_STATE_LOCKED', exitCode: 1 });
    expect((refused as Error).message).toContain(`in use by process ${child.pid}`);
    // A dry run only reads whole lines: it may look while the other run writes.
    const readOnly = await MigrationState.open(dir, pair, { readOnly: true });
    await readOnly.close();
  }, 30_000);

  it('is free again once the holder is killed with SIGKILL', async () => {
    child = await holdStateInChild(dir);
    child.kill('SIGKILL');
    await once(child, 'exit');
    const state = await MigrationState.open(dir, pair);
    await state.record({ f: 'INBOX', v: '1', u: 1, df: 'INBOX', s: 'copied' });
    await state.close();
  }, 30_000);

  it('is let go by close(), for the next run of this process', async () => {
    const first = await MigrationState.open(dir, pair);
    await expect(MigrationState.open(dir, pair)).rejects.toMatchObject({
      code: 'MIGRATE_STATE_LOCKED',
    });
    await first.close();
    const second = await MigrationState.open(dir, pair);
    await second.close();
  });
});
