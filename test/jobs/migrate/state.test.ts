import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultStateDir, MigrationState } from '../../../src/jobs/migrate/state.js';

const pair = { from: 'imaps://a@x:993', to: 'm365:b@contoso.com' };

describe('migration state', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'migrate-state-')), 'pair');
  });
  afterEach(async () => {
    await rm(join(dir, '..'), { recursive: true, force: true });
  });

  it('remembers what was copied across opens, per folder and UIDVALIDITY', async () => {
    const state = await MigrationState.open(dir, pair);
    await state.record({ f: 'INBOX', v: '7', u: 1, df: 'INBOX', dv: '3', du: 10, s: 'copied' });
    await state.record({ f: 'INBOX', v: '7', u: 2, df: 'INBOX', dv: '3', du: 12, s: 'present' });
    await state.close();
    const again = await MigrationState.open(dir, pair);
    expect([...again.copied('INBOX', '7')]).toEqual([1, 2]);
    expect(again.copied('INBOX', '8').size).toBe(0);
    expect(again.knowsFolder('INBOX')).toBe(true);
    expect(again.destinationUidNext('INBOX', '3')).toBe(13);
    await again.close();
  });

  it('drops a last line cut short by a crash, and appends cleanly after it', async () => {
    const state = await MigrationState.open(dir, pair);
    await state.record({ f: 'A', v: '1', u: 5, df: 'A', s: 'copied' });
    await state.close();
    await appendFile(join(dir, 'journal.jsonl'), '{"f":"A","v":"1","u":6,"df"');
    const reopened = await MigrationState.open(dir, pair);
    expect([...reopened.copied('A', '1')]).toEqual([5]);
    await reopened.record({ f: 'A', v: '1', u: 7, df: 'A', s: 'copied' });
    await reopened.close();
    const lines = (await readFile(join(dir, 'journal.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).u)).toEqual([5, 7]);
  });

  it('refuses a state folder of another pair', async () => {
    await (await MigrationState.open(dir, pair)).close();
    await expect(
      MigrationState.open(dir, { ...pair, to: 'm365:c@contoso.com' }),
    ).rejects.toMatchObject({
      code: 'MIGRATE_STATE_MISMATCH',
      exitCode: 2,
    });
  });

  it('lives under the XDG state directory by default, one folder per pair', () => {
    const a = defaultStateDir(pair.from, pair.to, { XDG_STATE_HOME: '/s' });
    expect(a.startsWith('/s/mailbridge/migrate/imaps_a@x_993--m365_b@contoso.com-')).toBe(true);
    expect(defaultStateDir(pair.from, 'm365:c@contoso.com', { XDG_STATE_HOME: '/s' })).not.toBe(a);
    expect(defaultStateDir(pair.from, pair.to, { HOME: '/h' })).toContain(
      '/.local/state/mailbridge/migrate/',
    );
  });
});
