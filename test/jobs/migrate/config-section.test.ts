/**
 * `mailbridge migrate --config FILE`: the file's `migrate:` section fills
 * what the flags leave out, flags win, a bad value exits 2 naming its field;
 * and a second run of a pair whose state another run holds exits 1.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MigrationState } from '../../../src/jobs/migrate/state.js';
import { runCli } from '../../helpers/run-cli.js';
import {
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  seedMessages,
  seedSource,
  snapshot,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'carol@contoso.example';
const OTHER = 'erin@contoso.example';

describe('migrate: the config file’s migrate section', () => {
  let env: MigrateTestEnv;
  /** The app's settings without the source password: the section's password file gives it. */
  let appEnv: Record<string, string>;
  let work: string;
  let n = 0;
  /** Writes a config file (JSON) holding `migrate` in a folder of its own; returns its path. */
  const configFile = async (migrate: unknown): Promise<string> => {
    const dir = join(work, `config-${++n}`);
    await mkdir(dir);
    await writeFile(join(dir, 'source-password'), `${SOURCE_PASSWORD}\n`, { mode: 0o600 });
    const path = join(dir, 'mailbridge.json');
    await writeFile(path, JSON.stringify({ migrate }));
    return path;
  };
  const folders = async (mailbox: string) => {
    const client = await env.m365(mailbox);
    try {
      const shot = await snapshot(client);
      return Object.fromEntries([...shot].map(([folder, lines]) => [folder, lines.length]));
    } finally {
      await client.logout();
    }
  };

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST, OTHER]);
    const { MAILBRIDGE_FROM_PASSWORD: _, ...rest } = env.env;
    appEnv = rest;
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-config-'));
    await seedSource(env, seedMessages(['INBOX', 'Work', 'Old'], 12));
  }, 120_000);
  afterAll(() => Promise.all([env?.close(), rm(work, { recursive: true, force: true })]));

  it('runs a migration from the section alone, without --from and --to', async () => {
    const file = await configFile({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      folders: ['INBOX', 'Work'],
      map: { Work: 'Projects' },
      state: 'state',
      connections: 2,
      fromPasswordFile: 'source-password',
      syncFlags: false,
    });
    const result = await runCli(['migrate', '--config', file, '--json'], appEnv, {
      timeoutMs: 60_000,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1) as string);
    expect(summary).toMatchObject({ copied: 8, skipped: 0 });
    // `state: state` is the folder next to the config file, not in the working directory.
    expect(summary.stateDir).toBe(join(file, '..', 'state'));
    const there = await folders(DEST);
    expect(there).toMatchObject({ INBOX: 4, Projects: 4 });
    expect(there).not.toHaveProperty('Old');
  }, 60_000);

  it('lets flags win over the section', async () => {
    const file = await configFile({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      folders: ['No such folder'],
      state: 'state',
      fromPasswordFile: 'source-password',
    });
    const state = join(work, 'flag-state');
    const result = await runCli(
      ['migrate', '--config', file, '--to', `m365:${OTHER}`, '--folder', 'Old', '--state', state],
      appEnv,
      { timeoutMs: 60_000 },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`State: ${state}`);
    expect(await folders(OTHER)).toMatchObject({ INBOX: 0, Old: 4 });
  }, 60_000);

  it('refuses a bad section value with exit 2, naming the field', async () => {
    // The schema's problems are all named by one run; the cap on connections and the endpoint
    // are checked once the schema is satisfied, each in a run of its own.
    const runs: [Record<string, unknown>, [string, RegExp][]][] = [
      [
        { since: '2024-02-30', syncFlags: 'yes', foldrs: ['INBOX'] },
        [
          ['migrate.since', /must be a date/],
          ['migrate.syncFlags', /true or false/],
          ['migrate.foldrs', /did you mean 'migrate.folders'/],
        ],
      ],
      [{ connections: 12 }, [['migrate.connections', /from 1 to 8/]]],
      [{ from: 'alice@oldhost.example' }, [['migrate.from', /is not an endpoint/]]],
    ];
    for (const [section, fields] of runs) {
      const file = await configFile({ from: env.sourceUrl, to: `m365:${DEST}`, ...section });
      const result = await runCli(['migrate', '--config', file], appEnv);
      for (const [field, message] of fields) {
        expect(result.code, field).toBe(2);
        expect(result.stderr, field).toContain(field);
        expect(result.stderr, field).toMatch(message);
      }
    }
    const neither = await runCli(['migrate', '--config', await configFile({})], appEnv);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('--from SOURCE is required (or migrate.from');
  }, 60_000);

  it('refuses a second run of a pair while another holds its state, exit 1', async () => {
    const state = join(work, 'held-state');
    const holder = await MigrationState.open(state, { from: env.sourceUrl, to: `m365:${DEST}` });
    try {
      const result = await runCli(
        ['migrate', '--from', env.sourceUrl, '--to', `m365:${DEST}`, '--state', state],
        env.env,
        { timeoutMs: 60_000 },
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('MIGRATE_STATE_LOCKED');
      expect(result.stderr).toContain(`in use by process ${process.pid}`);
    } finally {
      await holder.close();
    }
  }, 60_000);
});
