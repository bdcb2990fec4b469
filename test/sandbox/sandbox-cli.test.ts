/**
 * `mailbridge sandbox` as a user runs it: started as an unprivileged user
 * (nobody, when the tests run as root), in the background, driven through
 * the public CLI only; `doctor`, `send` and `token` pointed at it by the
 * `export` lines it prints.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/error-codes.js';
import { checkSandboxPackages } from '../../src/sandbox/packages.js';
import { runTool } from '../jobs/proxy/tools.js';
import {
  isAlive,
  mailbridge,
  NOBODY,
  newSandboxDir,
  parseExports,
  portBase,
  removeSandboxDir,
  root,
} from './cli-support.js';

const BASE_A = portBase(0);
const BASE_B = portBase(1);

describe('mailbridge sandbox, started by an unprivileged user', () => {
  const dirA = newSandboxDir();
  const dirB = newSandboxDir();
  let env: Record<string, string> = {};
  let pids: number[] = [];
  /** `mailbridge sandbox WORDS --dir dirA`. */
  const inA = (...words: string[]) => mailbridge(['sandbox', ...words, '--dir', dirA]);

  beforeAll(async () => {
    const started = await mailbridge([
      'sandbox',
      'start',
      '--dir',
      dirA,
      '--port-base',
      String(BASE_A),
    ]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    env = parseExports(started.stdout);
    const state = JSON.parse(readFileSync(join(dirA, 'state.json'), 'utf8'));
    pids = [state.pid, ...state.serverPids];
  }, 90_000);

  afterAll(async () => {
    await mailbridge(['sandbox', 'stop', '--dir', dirA]);
    await mailbridge(['sandbox', 'stop', '--dir', dirB]);
    for (const dir of [dirA, dirB]) removeSandboxDir(dir);
  }, 60_000);

  it('prints the settings as export lines, on loopback ports from --port-base', () => {
    expect(env).toMatchObject({
      AZURE_TENANT_ID: '7d3b5c1e-2f4a-4b6c-8d9e-0a1b2c3d4e5f',
      AZURE_CLIENT_ID: '11111111-1111-4111-8111-111111111111',
      AZURE_AUTHORITY_HOST: `https://127.0.0.1:${BASE_A}`,
      MAILBRIDGE_IMAP_HOST: '127.0.0.1',
      MAILBRIDGE_IMAP_PORT: String(BASE_A + 1),
      MAILBRIDGE_SMTP_PORT: String(BASE_A + 2),
      MAILBRIDGE_POP_HOST: '127.0.0.1',
      MAILBRIDGE_POP_PORT: String(BASE_A + 5),
    });
    expect(env.AZURE_CLIENT_SECRET).toMatch(/^sbx~/);
    expect(env.MAILBRIDGE_CA_FILE).toBe(join(dirA, 'ca', 'ca.pem'));
  });

  it('keeps running after the starting command is gone, as the unprivileged user', () => {
    // The serving process and Dovecot's master; Dovecot's short-lived workers may have gone.
    expect(isAlive(pids[0] as number)).toBe(true);
    const live = pids.filter(isAlive);
    expect(live.length).toBeGreaterThan(1);
    if (root) {
      for (const pid of live) {
        const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
        expect(Number(uid)).toBe(NOBODY);
      }
    }
  });

  it('doctor is green for the granted app, on IMAP and SMTP', async () => {
    const doctor = await mailbridge(['doctor', '--mailbox', 'archive@contoso.test'], env);
    expect(doctor.stdout).toContain('Result: all checks passed');
    expect(doctor.code).toBe(0);
  }, 60_000);

  it('doctor exits 3 at imap authenticate for an app without the mailbox, and is green after sandbox grant', async () => {
    const alerts = parseExports(
      (await mailbridge(['sandbox', 'env', '--dir', dirA, '--app', 'alerts-only'])).stdout,
    );
    expect(alerts.AZURE_CLIENT_ID).toBe('44444444-4444-4444-8444-444444444444');
    const before = await mailbridge(
      ['doctor', '--mailbox', 'archive@contoso.test', '--imap'],
      alerts,
    );
    expect(before.stdout).toContain('[FAIL] imap authenticate');
    expect(before.code).toBe(3);

    const grant = await inA('grant', '--app', 'alerts-only', '--mailbox', 'archive@contoso.test');
    expect(grant.code).toBe(0);
    const after = await mailbridge(
      ['doctor', '--mailbox', 'archive@contoso.test', '--imap'],
      alerts,
    );
    expect(after.stdout).toContain('Result: all checks passed');
    expect(after.code).toBe(0);
  }, 60_000);

  it('serves the seeded mail in several folders', async () => {
    const folders = await mailbridge(
      ['imap', 'folders', '--mailbox', 'archive@contoso.test', '--json'],
      env,
    );
    expect(folders.code).toBe(0);
    const rows = JSON.parse(folders.stdout) as { path: string; messages?: number }[];
    expect(rows.map((r) => r.path)).toEqual(
      expect.arrayContaining(['INBOX', 'Archive/2024', 'Sent Items']),
    );
  }, 60_000);

  it('serves POP3 over implicit TLS: curl logs in with XOAUTH2 and the token mailbridge prints', async () => {
    /** README's line: the token goes to curl on its standard input (`-K -`), never in its arguments. */
    const pop = async (appEnv: Record<string, string>) => {
      const token = await mailbridge(['token', '--show-token'], appEnv);
      expect(token.code).toBe(0);
      return runTool(
        'curl',
        [
          '-sS',
          '-K',
          '-',
          '--user',
          'archive@contoso.test:',
          '--cacert',
          env.MAILBRIDGE_CA_FILE as string,
          `pop3s://${env.MAILBRIDGE_POP_HOST}:${env.MAILBRIDGE_POP_PORT}/`,
        ],
        { input: `oauth2-bearer = "${token.stdout.trim()}"\n` },
      );
    };
    const list = await pop(env);
    expect(list.stderr).toBe('');
    // POP3 shows INBOX only: the three seeded messages, numbered, with their sizes.
    expect(list.stdout.trim().split(/\r?\n/)).toHaveLength(3);
    // An app without POP.AccessAsApp is refused, as Exchange refuses it.
    const noPop = parseExports(
      (await mailbridge(['sandbox', 'env', '--dir', dirA, '--app', 'cert-app'])).stdout,
    );
    expect((await pop(noPop)).code).not.toBe(0);
  }, 60_000);

  it("has a second tenant: sandbox env --tenant prints its app, green on its own mailbox, refused on the other tenant's", async () => {
    const printed = await mailbridge([
      'sandbox',
      'env',
      '--dir',
      dirA,
      '--tenant',
      'fabrikam.test',
    ]);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain('app fabrikam-archiver, tenant fabrikam.test');
    const fabrikam = parseExports(printed.stdout);
    expect(fabrikam.AZURE_TENANT_ID).toBe('9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b');
    expect(fabrikam.AZURE_CLIENT_ID).toBe('55555555-5555-4555-8555-555555555555');
    expect(fabrikam.AZURE_AUTHORITY_HOST).toBe(env.AZURE_AUTHORITY_HOST);

    const own = await mailbridge(
      ['doctor', '--mailbox', 'archive@fabrikam.test', '--imap'],
      fabrikam,
    );
    expect(own.stdout).toContain('Result: all checks passed');
    expect(own.code).toBe(0);

    // Its token is refused on contoso's mailbox, and Exchange's grant cannot cross tenants.
    const other = await mailbridge(
      ['doctor', '--mailbox', 'archive@contoso.test', '--imap'],
      fabrikam,
    );
    expect(other.stdout).toContain('[FAIL] imap authenticate');
    expect(other.code).toBe(3);
    const grant = await inA(
      'grant',
      '--app',
      'fabrikam-archiver',
      '--mailbox',
      'archive@contoso.test',
    );
    expect(grant.stderr).toContain('SANDBOX_GRANT_CROSS_TENANT');
    expect(grant.stderr).toContain('archive@contoso.test is in tenant contoso.test');
    expect(grant.code).toBe(2);

    // contoso's settings with fabrikam's tenant id: Entra does not know the app there.
    const crossed = await mailbridge(['token'], {
      ...env,
      AZURE_TENANT_ID: fabrikam.AZURE_TENANT_ID as string,
    });
    expect(crossed.code).not.toBe(0);
    expect(crossed.stderr).toContain('AADSTS700016');

    const unknown = await mailbridge(['sandbox', 'env', '--dir', dirA, '--tenant', 'fabrikam.tst']);
    expect(unknown.stderr).toContain('SANDBOX_TENANT_UNKNOWN');
    expect(unknown.stderr).toContain('did you mean fabrikam.test');
    expect(unknown.code).toBe(2);
  }, 90_000);

  it('refuses an unknown app with SANDBOX_APP_UNKNOWN (exit 2)', async () => {
    const grant = await inA('grant', '--app', 'archivr', '--mailbox', 'a@contoso.test');
    expect(grant.stderr).toContain('SANDBOX_APP_UNKNOWN');
    expect(grant.stderr).toContain('archiver');
    expect(grant.code).toBe(2);
  });

  it('runs a second sandbox with another --port-base at the same time', async () => {
    const second = await mailbridge([
      'sandbox',
      'start',
      '--dir',
      dirB,
      '--port-base',
      String(BASE_B),
      '--json',
    ]);
    expect(second.code).toBe(0);
    const { env: envB } = JSON.parse(second.stdout) as { env: Record<string, string> };
    expect(envB.MAILBRIDGE_IMAP_PORT).toBe(String(BASE_B + 1));
    const [a, b] = await Promise.all([
      mailbridge(['sandbox', 'status', '--dir', dirA]),
      mailbridge(['sandbox', 'status', '--dir', dirB]),
    ]);
    expect(a.stdout).toContain(`https://127.0.0.1:${BASE_A}`);
    expect(b.stdout).toContain(`https://127.0.0.1:${BASE_B}`);
    const stopB = await mailbridge(['sandbox', 'stop', '--dir', dirB]);
    expect(stopB.code).toBe(0);
  }, 90_000);

  it('stop leaves no process behind, and a second stop is harmless', async () => {
    const stop = await mailbridge(['sandbox', 'stop', '--dir', dirA]);
    expect(stop.code).toBe(0);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    const again = await mailbridge(['sandbox', 'stop', '--dir', dirA]);
    expect(again.code).toBe(0);
    const env2 = await mailbridge(['sandbox', 'env', '--dir', dirA]);
    expect(env2.stderr).toContain('SANDBOX_NOT_RUNNING');
    expect(env2.code).toBe(2);
  }, 60_000);
});

describe('the packages the sandbox needs', () => {
  it('names each missing package with the apt-get line that installs it (exit 2)', () => {
    const check = () =>
      checkSandboxPackages((path) => !path.includes('lua') && !path.endsWith('/lmtp'));
    expect(check).toThrow(/apt-get install -y dovecot-lmtpd dovecot-auth-lua/);
    try {
      check();
    } catch (error) {
      expect((error as { code: string }).code).toBe('SANDBOX_PACKAGES_MISSING');
      expect(ERROR_CODES.SANDBOX_PACKAGES_MISSING.exit).toBe(2);
    }
  });
});
