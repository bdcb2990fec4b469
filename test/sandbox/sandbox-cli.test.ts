/**
 * `mailbridge sandbox` as a user runs it: started as an unprivileged user
 * (nobody, when the tests run as root), in the background, driven through
 * the public CLI only; `doctor`, `send` and `token` pointed at it by the
 * `export` lines it prints.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/error-codes.js';
import { checkSandboxPackages } from '../../src/sandbox/packages.js';
import { CLI_PATH } from '../helpers/run-cli.js';

const root = process.getuid?.() === 0;
/** uid of nobody, who owns the folders when the tests run as root. */
const NOBODY = 65534;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI as the unprivileged user, with only PATH and the given settings. */
function mailbridge(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const [command, prefix] = root
    ? ['runuser', ['-u', 'nobody', '--', process.execPath]]
    : [process.execPath, []];
  return new Promise((resolve) => {
    execFile(
      command as string,
      [...(prefix as string[]), CLI_PATH, ...args],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...env },
        cwd: tmpdir(),
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The `export NAME='value'` lines `sandbox start` and `sandbox env` print. */
function parseExports(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export ([A-Z_0-9]+)='((?:[^']|'\\'')*)'$/gm)) {
    env[m[1] as string] = (m[2] as string).replaceAll("'\\''", "'");
  }
  return env;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-sandbox-test-'));
  if (root) chownSync(dir, NOBODY, NOBODY);
  return join(dir, 'sandbox');
}

/** Two bases far apart from each other and from the kernel's ephemeral range on this machine. */
const BASE_A = 20_000 + (process.pid % 2000) * 5;
const BASE_B = BASE_A + 10_000;

describe('mailbridge sandbox, started by an unprivileged user', () => {
  const dirA = newDir();
  const dirB = newDir();
  let env: Record<string, string> = {};
  let pids: number[] = [];

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
    for (const dir of [dirA, dirB]) rmSync(join(dir, '..'), { recursive: true, force: true });
  }, 60_000);

  it('prints the settings as export lines, on loopback ports from --port-base', () => {
    expect(env).toMatchObject({
      AZURE_TENANT_ID: '7d3b5c1e-2f4a-4b6c-8d9e-0a1b2c3d4e5f',
      AZURE_CLIENT_ID: '11111111-1111-4111-8111-111111111111',
      AZURE_AUTHORITY_HOST: `https://127.0.0.1:${BASE_A}`,
      MAILBRIDGE_IMAP_HOST: '127.0.0.1',
      MAILBRIDGE_IMAP_PORT: String(BASE_A + 1),
      MAILBRIDGE_SMTP_PORT: String(BASE_A + 2),
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

    const grant = await mailbridge([
      'sandbox',
      'grant',
      '--dir',
      dirA,
      '--app',
      'alerts-only',
      '--mailbox',
      'archive@contoso.test',
    ]);
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

  it('a token 503 fault reaches the token endpoint and mailbridge token reports it', async () => {
    expect(
      (await mailbridge(['sandbox', 'fault', 'token', '503', '--count', '20', '--dir', dirA])).code,
    ).toBe(0);
    const token = await mailbridge(['token'], env);
    expect(token.code).not.toBe(0);
    expect(token.stderr).toMatch(/503|temporarily|unavailable/i);
    expect((await mailbridge(['sandbox', 'fault', 'clear', '--dir', dirA])).code).toBe(0);
    expect((await mailbridge(['token'], env)).code).toBe(0);
  }, 60_000);

  it("an smtp 535-5.7.139 fault makes send fail with Exchange's reply", async () => {
    expect(
      (await mailbridge(['sandbox', 'fault', 'smtp', '535-5.7.139', '--count', '5', '--dir', dirA]))
        .code,
    ).toBe(0);
    const send = await mailbridge(
      [
        'send',
        '--from',
        'archive@contoso.test',
        '--to',
        'ceo@contoso.test',
        '--subject',
        'x',
        '--text',
        'y',
      ],
      env,
    );
    expect(send.stderr).toContain('5.7.139');
    expect(send.code).toBe(3);
    expect((await mailbridge(['sandbox', 'fault', 'clear', '--dir', dirA])).code).toBe(0);
  }, 60_000);

  it("an imap throttle fault gives Exchange's backoff reply, which imap folders reports", async () => {
    expect(
      (await mailbridge(['sandbox', 'fault', 'imap', 'throttle', '--ms', '1500', '--dir', dirA]))
        .code,
    ).toBe(0);
    const folders = await mailbridge(['imap', 'folders', '--mailbox', 'archive@contoso.test'], env);
    expect(folders.stderr).toContain('IMAP_THROTTLED');
    expect(folders.stderr).toContain('Suggested Backoff Time: 1500 milliseconds');
    expect(folders.code).toBe(4);
  }, 60_000);

  it('refuses an unknown app with SANDBOX_APP_UNKNOWN (exit 2)', async () => {
    const grant = await mailbridge([
      'sandbox',
      'grant',
      '--dir',
      dirA,
      '--app',
      'archivr',
      '--mailbox',
      'a@contoso.test',
    ]);
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
