/**
 * A destination folder deleted, or deleted and made again, between two runs:
 * the state says its messages were copied, but they are gone. The next run
 * copies them again, once, keeping any put back by hand.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import {
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  seedMessages,
  seedSource,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'judy@contoso.example';
const FOLDERS = ['INBOX', 'Projekte/Ä', 'x.y'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));

describe('migrate: a destination folder deleted or made again between runs', () => {
  let env: MigrateTestEnv;
  let work: string;
  const run = () =>
    migrateMailbox({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir: join(work, 'state'),
    });
  const same = async () =>
    expect(await snapshotOf(() => env.m365(DEST), FOLDERS)).toEqual(
      expected(await snapshotOf(env.source, FOLDERS), IDENTITY),
    );

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-vanished-'));
    await seedSource(env, seedMessages(FOLDERS, 90, 80_000));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('copies again into a folder made again empty, and into one deleted', async () => {
    expect(await run()).toMatchObject({ ok: true, copied: 90 });
    const dest = await env.m365(DEST);
    try {
      await dest.mailboxDelete('Projekte/Ä');
      await dest.mailboxCreate('Projekte/Ä');
      await dest.mailboxDelete('x.y');
    } finally {
      await dest.logout();
    }
    expect(await run()).toMatchObject({ ok: true, copied: 60, alreadyPresent: 0 });
    await same();
    expect(await run()).toMatchObject({ ok: true, copied: 0, alreadyPresent: 0 });
  }, 120_000);

  it('keeps what was put back by hand into a folder made again, copying the rest once', async () => {
    const dest = await env.m365(DEST);
    try {
      await dest.mailboxOpen('x.y');
      const kept = await dest.fetchAll('1:10', { source: true, flags: true, internalDate: true });
      await dest.mailboxClose();
      await dest.mailboxDelete('x.y');
      await dest.mailboxCreate('x.y');
      for (const m of kept) {
        await dest.append('x.y', m.source as Buffer, [...(m.flags ?? [])], m.internalDate as Date);
      }
    } finally {
      await dest.logout();
    }
    expect(await run()).toMatchObject({ ok: true, copied: 20, alreadyPresent: 10 });
    await same();
  }, 120_000);
});
