/**
 * One large folder spreads over every connection: its batches of
 * neighbouring UIDs go to several connection pairs at once, the APPENDs of
 * each pipelined on a connection of its own. Every message still arrives
 * once, in its own folder, bytes, dates and flags equal, and the journal
 * holds each source message once.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import { type ShapingProxy, startShapingProxy } from '../../helpers/shaping-proxy.js';
import {
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  seedMessages,
  seedSource,
  snapshot,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'frank@contoso.example';
/** Four batches of neighbouring UIDs (200 each, the last one short): one for each connection pair. */
const IN_INBOX = 650;
const IN_WORK = 40;
const TOTAL = IN_INBOX + IN_WORK;

describe('migrate: a large folder over several connections', () => {
  let env: MigrateTestEnv;
  let proxy: ShapingProxy;
  let work: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST]);
    // Counts the destination's connections; 2 ms each way keeps the APPENDs of one connection overlapping.
    proxy = await startShapingProxy(env.servers.imap, {
      delayMs: 2,
      bytesPerSecond: 64 * 1024 * 1024,
    });
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-parallel-'));
    await seedSource(env, [
      ...seedMessages(['INBOX'], IN_INBOX),
      ...seedMessages(['Work.2024'], IN_WORK, IN_INBOX),
    ]);
  }, 180_000);
  afterAll(async () => {
    await proxy?.close();
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('copies every message once, into its own folder, with four connections at work', async () => {
    const stateDir = join(work, 'state');
    const result = await migrateMailbox({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: { ...env.config, imap: { host: proxy.host, port: proxy.port } },
      fromPassword: SOURCE_PASSWORD,
      stateDir,
      connections: 4,
    });
    expect(result).toMatchObject({ ok: true, copied: TOTAL, alreadyPresent: 0, skipped: 0 });

    const source = await env.source();
    const dest = await env.m365(DEST);
    try {
      const want = expected(await snapshot(source, ['INBOX', 'Work.2024']), {
        INBOX: 'INBOX',
        'Work.2024': 'Work.2024',
      });
      const got = await snapshot(dest, ['INBOX', 'Work.2024']);
      expect(got.get('INBOX')?.length).toBe(IN_INBOX);
      expect(got).toEqual(want);
    } finally {
      await source.logout();
      await dest.logout();
    }
    const lines = (await readFile(join(stateDir, 'journal.jsonl'), 'utf8')).trim().split('\n');
    const keys = lines.map((l) => {
      const r = JSON.parse(l) as { f: string; u: number; du: number };
      expect(r.du).toBeGreaterThan(0);
      return `${r.f}/${r.u}`;
    });
    expect(new Set(keys).size).toBe(TOTAL);
    expect(keys.length).toBe(TOTAL);
    // Four pipelined APPEND connections on the destination, one per pair, and a session to plan.
    expect(proxy.connections).toBeGreaterThanOrEqual(5);

    // A rerun finds everything done.
    const again = await migrateMailbox({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir,
      connections: 4,
    });
    expect(again).toMatchObject({ ok: true, copied: 0, alreadyPresent: 0 });
  }, 180_000);
});
