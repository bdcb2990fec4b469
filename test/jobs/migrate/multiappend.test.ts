/**
 * Into a server that offers MULTIAPPEND (Dovecot's own capabilities), the
 * pipeline sends neighbouring messages in one APPEND each: every message
 * arrives once with its bytes, date and flags, each journal line names the
 * destination UID that holds that very message (APPENDUID's uid-set mapped
 * in order), and a group the server refuses (one message over its limit)
 * stores none: the others are sent again and copied, the big one reported.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uidList } from '../../../src/clients/imap-append-pipeline.js';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import type { JournalRecord } from '../../../src/jobs/migrate/state.js';
import {
  deliverTooBig,
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  seedMessages,
  seedSource,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'erin@contoso.example';

/** UID → SHA-256 of its bytes, in one folder. */
async function hashesByUid(
  open: () => Promise<import('imapflow').ImapFlow>,
  folder: string,
): Promise<Map<number, string>> {
  const client = await open();
  try {
    await client.mailboxOpen(folder, { readOnly: true });
    const out = new Map<number, string>();
    for await (const m of client.fetch('1:*', { uid: true, source: true })) {
      out.set(
        m.uid,
        createHash('sha256')
          .update(m.source as Buffer)
          .digest('hex'),
      );
    }
    return out;
  } finally {
    await client.logout();
  }
}

describe('migrate into a server with MULTIAPPEND', () => {
  let env: MigrateTestEnv;
  let work: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST], { dovecotCapabilities: true });
    work = await mkdtemp(join(tmpdir(), 'mailbridge-multiappend-'));
    // The big one lands between two runs of small ones: inside an APPEND group.
    await seedSource(env, seedMessages(['INBOX'], 45));
    await deliverTooBig(env, 'INBOX', () => '.');
    await seedSource(env, seedMessages(['INBOX'], 45, 45));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('reads APPENDUID uid-sets in order', () => {
    expect(uidList('7')).toEqual([7]);
    expect(uidList('5:8,12')).toEqual([5, 6, 7, 8, 12]);
    expect(uidList('9:7')).toEqual([9, 8, 7]);
    expect(uidList('0:3')).toBeUndefined();
    expect(uidList('1:x')).toBeUndefined();
    expect(uidList('1:4294967295')).toBeUndefined();
  });

  it('copies each message once, journals the UID that holds it, and reports the refused one', async () => {
    const state = join(work, 'state');
    const options = {
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir: state,
      connections: 1,
    };
    const result = await migrateMailbox(options);
    expect(result).toMatchObject({ ok: false, copied: 90, skipped: 1, alreadyPresent: 0 });
    expect(result.folders[0]?.skipped[0]?.reason.toLowerCase()).toContain('size');

    const source = await snapshotOf(env.source, ['INBOX']);
    const dest = await snapshotOf(() => env.m365(DEST), ['INBOX']);
    const sourceHashes = await hashesByUid(env.source, 'INBOX');
    const destHashes = await hashesByUid(() => env.m365(DEST), 'INBOX');
    const wanted = expected(source, { INBOX: 'INBOX' }).get('INBOX') ?? [];
    // All but the refused message (the only one over 256 KB).
    expect(new Set(dest.get('INBOX'))).toHaveProperty('size', 90);
    for (const line of dest.get('INBOX') ?? []) expect(wanted).toContain(line);

    const lines = (await readFile(join(state, 'journal.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as JournalRecord);
    expect(lines).toHaveLength(90);
    for (const line of lines) {
      expect(line.du).toBeDefined();
      expect(destHashes.get(line.du as number)).toBe(sourceHashes.get(line.u));
    }

    const again = await migrateMailbox(options);
    expect(again).toMatchObject({ copied: 0, alreadyPresent: 0, skipped: 1 });
  }, 120_000);
});
