/**
 * `mailbridge sandbox start --directory FILE` replaces the seeded tenants
 * with the user's own, and `--token-lifetime S` makes tokens short-lived:
 * a long archive then outlives several tokens. The sandbox runs as the
 * test's own user here (root in CI, where Dovecot's processes take the
 * system users: the seeded folders must be theirs), and a bad file is
 * refused before anything starts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mailbridge,
  newSandboxDir,
  parseExports,
  portBase,
  removeSandboxDir,
} from './cli-support.js';

const files = mkdtempSync(join(tmpdir(), 'mailbridge-directory-'));
afterAll(() => rmSync(files, { recursive: true, force: true }));

function directoryFile(name: string, content: unknown): string {
  const path = join(files, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const TENANT = { id: '0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f', domain: 'northwind.test' };
const APP = {
  name: 'bulk-archiver',
  clientId: '66666666-6666-4666-8666-666666666666',
  credential: 'secret',
  roles: ['IMAP.AccessAsApp'],
  mailboxes: ['bulk@northwind.test'],
};
/**
 * Enough mail that archiving it outlives a 2-second token even on a quiet
 * machine (1,400 messages took 2.3 s there: too few).
 */
const FOLDERS = { INBOX: 1000, 'Archive/2024': 1000, 'Archive/2023': 800, 'Sent Items': 400 };
const TOKEN_LIFETIME_S = 2;

describe('sandbox start --directory FILE --token-lifetime S', () => {
  const dir = newSandboxDir({ asSelf: true });
  let env: Record<string, string> = {};

  beforeAll(async () => {
    const file = directoryFile('northwind.json', {
      tenant: TENANT,
      mailboxes: [{ address: 'bulk@northwind.test', folders: FOLDERS }],
      apps: [APP],
    });
    const started = await mailbridge(
      [
        'sandbox',
        'start',
        '--dir',
        dir,
        '--port-base',
        String(portBase(3)),
        '--directory',
        file,
        '--token-lifetime',
        String(TOKEN_LIFETIME_S),
      ],
      {},
      { asSelf: true },
    );
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    env = parseExports(started.stdout);
  }, 90_000);

  afterAll(async () => {
    await mailbridge(['sandbox', 'stop', '--dir', dir], {}, { asSelf: true });
    removeSandboxDir(dir);
  }, 60_000);

  it("serves the file's tenant, app and mail instead of contoso.test", async () => {
    expect(env.AZURE_TENANT_ID).toBe(TENANT.id);
    expect(env.AZURE_CLIENT_ID).toBe(APP.clientId);
    const status = await mailbridge(['sandbox', 'status', '--dir', dir], {}, { asSelf: true });
    expect(status.stdout).toContain('tenant northwind.test');
    expect(status.stdout).not.toContain('contoso.test');
    const folders = await mailbridge(
      ['imap', 'folders', '--mailbox', 'bulk@northwind.test', '--json'],
      env,
      { asSelf: true },
    );
    expect(folders.code, folders.stderr).toBe(0);
    const counts = Object.fromEntries(
      (JSON.parse(folders.stdout) as { path: string; messages: number }[]).map((f) => [
        f.path,
        f.messages,
      ]),
    );
    expect(counts).toMatchObject(FOLDERS);
  }, 60_000);

  it('a long archive outlives several tokens and archives everything', async () => {
    const archived = await mailbridge(
      ['archive', '--mailbox', 'bulk@northwind.test', '--out', `${dir}-archive`, '--json'],
      env,
      { asSelf: true, timeoutMs: 300_000 },
    );
    expect(archived.code, archived.stderr).toBe(0);
    const json = JSON.parse(archived.stdout) as {
      summary: { messagesNew: number; durationMs: number };
      mailboxes: { session: { connects: number; tokenRenewals: number } }[];
    };
    expect(json.summary.messagesNew).toBe(3200);
    const session = json.mailboxes[0]?.session;
    // Each connection logs in with a token of TOKEN_LIFETIME_S, its exp rounded up
    // to the whole second (up to one more): a run of D seconds needs at least
    // D / (TOKEN_LIFETIME_S + 1) of them, and never fewer than two, as it outlives the first.
    const { durationMs } = json.summary;
    expect(durationMs).toBeGreaterThan((TOKEN_LIFETIME_S + 1) * 1000);
    expect(session?.connects).toBeGreaterThanOrEqual(
      Math.max(2, Math.floor(durationMs / ((TOKEN_LIFETIME_S + 1) * 1000))),
    );
    expect(session?.tokenRenewals).toBeGreaterThanOrEqual(1);
  }, 300_000);
});

describe('a --directory file that cannot be used', () => {
  const start = (file: string) =>
    mailbridge(
      ['sandbox', 'start', '--dir', join(files, 'never'), '--directory', file],
      {},
      {
        asSelf: true,
      },
    );
  const valid = { tenant: TENANT, mailboxes: [{ address: 'bulk@northwind.test' }], apps: [APP] };

  it('names the field and what to give instead (exit 2), before starting anything', async () => {
    const file = directoryFile('bad-credential.json', {
      ...valid,
      apps: [{ ...APP, credential: 'password' }],
    });
    const result = await start(file);
    expect(result.stderr).toContain('SANDBOX_DIRECTORY_INVALID');
    expect(result.stderr).toContain(file);
    expect(result.stderr).toContain('apps.0.credential: expected ("secret" | "certificate")');
    expect(result.stderr).toContain('Give a JSON object with tenant {id, domain}');
    expect(result.code).toBe(2);
  });

  it('refuses JSON that does not parse, and a file that cannot be read', async () => {
    const broken = await start(directoryFile('broken.json', '{"tenant": '));
    expect(broken.stderr).toContain('SANDBOX_DIRECTORY_INVALID');
    expect(broken.code).toBe(2);
    const missing = await start(join(files, 'missing.json'));
    expect(missing.stderr).toContain('cannot be read (ENOENT)');
    expect(missing.code).toBe(2);
  });

  it('refuses a grant across tenants and an app in a tenant not declared', async () => {
    const file = directoryFile('cross.json', {
      ...valid,
      otherTenants: [{ id: '1c2d3e4f-5061-4728-9930-4b5c6d7e8f90', domain: 'tailspin.test' }],
      mailboxes: [{ address: 'bulk@northwind.test' }, { address: 'ops@tailspin.test' }],
      apps: [
        { ...APP, mailboxes: ['bulk@northwind.test', 'ops@tailspin.test'] },
        {
          ...APP,
          name: 'lost',
          clientId: '77777777-7777-4777-8777-777777777777',
          tenant: 'x.test',
        },
      ],
    });
    const result = await start(file);
    expect(result.stderr).toContain(
      'apps.0.mailboxes.1: ops@tailspin.test is in tenant tailspin.test, and app bulk-archiver is registered in northwind.test',
    );
    expect(result.stderr).toContain('apps.1.tenant: expected the domain of a declared tenant');
    expect(result.code).toBe(2);
  });
});
