/**
 * An app granted FullAccess on the source mailbox only: migrate's refusal says
 * that the --to destination refused, names that mailbox and points to doctor
 * for the exact cause, instead of the generic IMAP_AUTH_FAILED text alone. And
 * a password source refusing the login for its connection limit is not a wrong
 * password: it waits and ends as IMAP_TOO_MANY_CONNECTIONS (exit 4).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import {
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  SOURCE_USER,
  startMigrateTestEnv,
} from './support.js';

const SOURCE = 'alerts@contoso.example';
const DEST = 'ceo@contoso.example';

describe('migrate: a refused login names its side', () => {
  let env: MigrateTestEnv;
  let work: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([SOURCE]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-side-'));
  }, 60_000);
  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('exits 3 naming the --to destination and its mailbox, with doctor for the cause', async () => {
    const error = await migrateMailbox({
      from: `m365:${SOURCE}`,
      to: `m365:${DEST}`,
      fromConfig: env.config,
      stateDir: join(work, 'state'),
    }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string; exitCode?: number; remedy?: string },
    );
    expect(error).toMatchObject({ code: 'IMAP_AUTH_FAILED', exitCode: 3 });
    expect(error?.message).toMatch(
      new RegExp(`^The --to destination m365:${DEST} refused the login: `),
    );
    expect(error?.message).not.toContain('--from source');
    expect(error?.remedy).toContain(`mailbridge doctor --mailbox ${DEST}`);
  });

  it('reports a password source at its connection limit as IMAP_TOO_MANY_CONNECTIONS (exit 4), not a wrong password', async () => {
    // Dovecot's default mail_max_userip_connections: another run holding every one of them.
    const held: ImapFlow[] = [];
    try {
      for (let i = 0; i < 10; i++) held.push(await env.source());
      const error = await migrateMailbox({
        from: env.sourceUrl,
        to: `m365:${SOURCE}`,
        toConfig: env.config,
        fromPassword: SOURCE_PASSWORD,
        stateDir: join(work, 'state-limit'),
        dryRun: true,
      }).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string; exitCode?: number; remedy?: string },
      );
      expect(error).toMatchObject({ code: 'IMAP_TOO_MANY_CONNECTIONS', exitCode: 4 });
      expect(error?.message).toContain(
        `too many connections to the mailbox (mailbox ${SOURCE_USER};`,
      );
      expect(error?.remedy).toContain('lower --connections');
    } finally {
      await Promise.allSettled(held.map((client) => client.logout()));
    }
  }, 30_000);
});
