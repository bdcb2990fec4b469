/**
 * A large migration into the Microsoft 365 side while its connections are cut
 * (the fault proxy drops them mid-APPEND) and its sessions may end with
 * `BYE … AccessTokenExpired` as 8-second tokens expire, and Exchange's
 * throttling reply answers the reconnections' SELECT and FETCH: the run
 * completes, and every message is at the destination exactly once. With
 * 1,000 messages a run on a quiet machine can end before a token expires;
 * the session's recovery from that BYE mid-job is asserted on its own in
 * test/clients/imap-session.test.ts.
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

const DEST = 'carol@contoso.example';
const SELECTING = 'carol.select@contoso.example';
const FOLDERS = ['INBOX', 'Lists/dev', 'Archiv.2019', 'Kunden/Müller & Söhne', 'Reports'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));
// Enough for four cuts and the throttling in one run.
const MESSAGES = 1_000;
/** A cut every so many messages copied; at the second, the reconnections are throttled too. */
const CUT_EVERY = 225;

describe('migrate under faults', { tags: ['soak'] }, () => {
  let env: MigrateTestEnv;
  let work: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST, SELECTING], {
      faultProxy: true,
      tokenLifetimeSeconds: 8,
    });
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-faults-'));
    await seedSource(env, seedMessages(FOLDERS, MESSAGES, 20_000));
  }, 300_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it(`copies ${MESSAGES} messages exactly once through dropped connections, expiring tokens and throttling`, async () => {
    const proxy = env.proxy;
    if (!proxy) throw new Error('no fault proxy');
    let seen = 0;
    const started = Date.now();
    const result = await migrateMailbox({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir: join(work, 'state'),
      onProgress(event) {
        if (event.type !== 'message') return;
        seen++;
        // Cut while the next APPEND is on its way: the server may or may not have stored it.
        if (seen % CUT_EVERY === 0) {
          // Once, the reconnections are throttled too: their re-SELECT, or the FETCH that
          // looks for the cut APPEND's message.
          if (seen === 2 * CUT_EVERY) proxy.throttleNext(2, 1_500, /^\S+ (UID )?(SELECT|FETCH) /i);
          setImmediate(() => proxy.dropAll());
        }
      },
    });
    const seconds = (Date.now() - started) / 1000;
    expect(result).toMatchObject({ ok: true, skipped: 0 });
    expect(result.copied + result.alreadyPresent).toBe(MESSAGES);
    expect(proxy.connections).toBeGreaterThan(4);
    expect(proxy.throttlesSent).toBe(2);

    expect(await snapshotOf(() => env.m365(DEST), FOLDERS)).toEqual(
      expected(await snapshotOf(env.source, FOLDERS), IDENTITY),
    );
    console.log(
      `migrate soak: ${MESSAGES} messages in ${seconds.toFixed(1)} s (${(MESSAGES / seconds).toFixed(0)} msg/s), ${proxy.connections} connections, ${proxy.byesSent} BYEs, ${proxy.throttlesSent} throttled, ${result.alreadyPresent} found present after a cut`,
    );
  }, 600_000);

  // Dovecot opens a folder anew for each APPEND into one not selected, reading its index and
  // uidlist every time: a quarter of its CPU per message at 3,000 messages (bench/README.md).
  it('selects the destination folder on the APPEND connection; a refused SELECT stops no APPEND', async () => {
    const proxy = env.proxy;
    if (!proxy) throw new Error('no fault proxy');
    const refusedBefore = proxy.refusalsSent;
    // Only the pipelined connection tags its commands L…; imapflow's tags are hexadecimal.
    proxy.refuseNext(1, 'NO [SERVERBUG] not now', /^L\d+ SELECT "Reports"/);
    const result = await migrateMailbox({
      from: env.sourceUrl,
      to: `m365:${SELECTING}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir: join(work, 'state-select'),
      folders: ['Reports'],
      connections: 1,
    });
    // 8-second tokens end the APPEND connection now and then: what it had in flight is found present.
    expect(result).toMatchObject({ ok: true, skipped: 0 });
    expect(proxy.refusalsSent - refusedBefore).toBe(1);
    expect(await snapshotOf(() => env.m365(SELECTING), ['Reports'])).toEqual(
      expected(await snapshotOf(env.source, ['Reports']), { Reports: 'Reports' }),
    );
  }, 300_000);
});
