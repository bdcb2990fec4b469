/**
 * Every connection a run opens to a mailbox counts against that mailbox's
 * budget (the session layer's cap per mailbox), the pipelined APPEND
 * connections too: with `connections` at the budget, Dovecot never holds more
 * sessions for either mailbox than the budget, sampled with `doveadm who`
 * through the whole run, and every message still arrives once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import { sessionsNow } from '../queue/support.js';
import {
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  SOURCE_USER,
  seedMessages,
  seedSource,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'gina@contoso.example';
const BUDGET = 3;
const FOLDERS = ['INBOX', 'Work', 'Travel'];

describe('migrate: the connection budget per mailbox', () => {
  let env: MigrateTestEnv;
  let work: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-budget-'));
    // A large INBOX (three batches of at most 200: every pair helps with it) and two folders that start pairs of their own.
    await seedSource(env, [
      ...seedMessages(['INBOX'], 450),
      ...seedMessages(['Work', 'Travel'], 80, 450),
    ]);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('never holds more sessions to either mailbox than the budget, APPEND connections included', async () => {
    const most = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const [user, n] of await sessionsNow(env.servers)) {
          most.set(user, Math.max(most.get(user) ?? 0, n));
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const messages: string[] = [];
    const result = await migrateMailbox({
      logger: { log: (_level, message) => messages.push(message) },
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir: join(work, 'state'),
      connections: BUDGET,
      maxConnections: BUDGET,
    }).finally(() => {
      sampling = false;
    });
    await sampler;
    expect(result).toMatchObject({ ok: true, copied: 530, skipped: 0 });
    console.log(`budget ${BUDGET}: at most ${JSON.stringify(Object.fromEntries(most))} sessions`);
    expect(most.get(DEST)).toBeGreaterThan(0);
    expect(most.get(DEST)).toBeLessThanOrEqual(BUDGET);
    expect(most.get(SOURCE_USER)).toBeLessThanOrEqual(BUDGET);
    // Within the budget by the pipeline's taking the session's place, not by doing without it.
    expect(messages).not.toContain('pipelined APPEND connection failed to open');

    const want = expected(
      await snapshotOf(env.source, FOLDERS),
      Object.fromEntries(FOLDERS.map((f) => [f, f])),
    );
    expect(await snapshotOf(() => env.m365(DEST), FOLDERS)).toEqual(want);
  }, 120_000);
});
