/**
 * An app granted FullAccess on the source mailbox only: migrate's refusal says
 * that the --to destination refused, names that mailbox and points to doctor
 * for the exact cause, instead of the generic IMAP_AUTH_FAILED text alone.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import { type MigrateTestEnv, startMigrateTestEnv } from './support.js';

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
});
