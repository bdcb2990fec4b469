/**
 * Every fault `mailbridge sandbox fault` offers, observed by the mailbridge
 * command a user would run into it with, through the public CLI only: the
 * sandbox started by `sandbox start` as an unprivileged user, each fault set
 * by `sandbox fault`, and what the command did (retry, re-login, waiting out
 * a throttle, the diagnosis) read from its exit code, output and timing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mailbridge,
  newSandboxDir,
  parseExports,
  portBase,
  type Result,
  removeSandboxDir,
} from './cli-support.js';

interface ArchiveJson {
  ok: boolean;
  summary: { messagesNew: number };
  mailboxes: {
    ok: boolean;
    session: { connects: number; tokenRenewals: number; retries: number; throttledMs: number };
  }[];
}

describe('sandbox faults, each met by the matching mailbridge command', () => {
  const dir = newSandboxDir();
  let env: Record<string, string> = {};
  let archives = 0;

  const fault = async (...words: string[]) => {
    const set = await mailbridge(['sandbox', 'fault', ...words, '--dir', dir]);
    expect(set.stderr).toContain('fault set');
    expect(set.code).toBe(0);
  };
  /** A fresh archive of ceo@ (INBOX and Projects, three messages) as JSON. */
  const archive = async (): Promise<{ result: Result; json: ArchiveJson }> => {
    const out = `${dir}-archive-${archives++}`;
    const result = await mailbridge(
      ['archive', '--mailbox', 'ceo@contoso.test', '--out', out, '--json'],
      env,
    );
    return { result, json: JSON.parse(result.stdout || '{}') as ArchiveJson };
  };
  const send = (subject: string) =>
    mailbridge(
      [
        'send',
        '--from',
        'alerts@contoso.test',
        '--to',
        'alerts@contoso.test',
        '--subject',
        subject,
        '--text',
        'from the faults test',
      ],
      env,
    );

  beforeAll(async () => {
    const started = await mailbridge([
      'sandbox',
      'start',
      '--dir',
      dir,
      '--port-base',
      String(portBase(2)),
    ]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    env = parseExports(started.stdout);
  }, 90_000);

  afterAll(async () => {
    await mailbridge(['sandbox', 'stop', '--dir', dir]);
    removeSandboxDir(dir);
  }, 60_000);

  it('token 503 --count 2: token retries with backoff and succeeds', async () => {
    await fault('token', '503', '--count', '2');
    const token = await mailbridge(['token', '--json'], env);
    expect(token.stderr).toBe('');
    expect(token.code).toBe(0);
    expect(JSON.parse(token.stdout).roles).toContain('IMAP.AccessAsApp');
    // Two waits of the backoff (0.25-0.5 s, then 0.5-1 s) before the third request.
    expect(token.ms).toBeGreaterThanOrEqual(750);
  }, 60_000);

  // Each fault below is used up by the command (five token requests, three sends): none is left over.
  it('token 503 beyond the retry budget: exit 4, ENTRA_UNAVAILABLE', async () => {
    await fault('token', '503', '--count', '5');
    const token = await mailbridge(['token'], env);
    expect(token.stderr).toContain('ENTRA_UNAVAILABLE');
    expect(token.stderr).toContain('HTTP 503');
    expect(token.code).toBe(4);
  }, 60_000);

  it('token 429 --count 2: doctor retries the token request and is green', async () => {
    await fault('token', '429', '--count', '2');
    const doctor = await mailbridge(['doctor', '--mailbox', 'archive@contoso.test', '--imap'], env);
    expect(doctor.stdout).toContain('Result: all checks passed');
    expect(doctor.code).toBe(0);
    expect(doctor.ms).toBeGreaterThanOrEqual(750);
  }, 60_000);

  it('token 429 beyond the retry budget: doctor exits 4 with ENTRA_UNAVAILABLE', async () => {
    await fault('token', '429', '--count', '5');
    const doctor = await mailbridge(['doctor', '--mailbox', 'archive@contoso.test', '--imap'], env);
    expect(doctor.stdout).toContain('ENTRA_UNAVAILABLE');
    expect(doctor.stdout).toContain('HTTP 429');
    expect(doctor.code).toBe(4);
  }, 60_000);

  it('imap bye-expired: archive logs in again with a new token and completes', async () => {
    await fault('imap', 'bye-expired', '--count', '2');
    const { result, json } = await archive();
    expect(result.code, result.stderr).toBe(0);
    expect(json.summary.messagesNew).toBe(3);
    const session = json.mailboxes[0]?.session;
    expect(session?.retries).toBeGreaterThanOrEqual(2);
    expect(session?.connects).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('imap throttle --ms 1500: archive waits the suggested time and completes', async () => {
    await fault('imap', 'throttle', '--ms', '1500');
    const { result, json } = await archive();
    expect(result.code, result.stderr).toBe(0);
    expect(json.summary.messagesNew).toBe(3);
    // imapflow waits out the suggested time before the session sees the refusal and goes on.
    expect(json.mailboxes[0]?.session.retries).toBeGreaterThanOrEqual(1);
    expect(result.ms).toBeGreaterThanOrEqual(1500);
  }, 60_000);

  it('imap throttle: a one-shot imap command reports it (exit 4, IMAP_THROTTLED)', async () => {
    await fault('imap', 'throttle', '--ms', '1500');
    const folders = await mailbridge(['imap', 'folders', '--mailbox', 'archive@contoso.test'], env);
    expect(folders.stderr).toContain('IMAP_THROTTLED');
    expect(folders.stderr).toContain('Suggested Backoff Time: 1500 milliseconds');
    expect(folders.code).toBe(4);
  }, 60_000);

  it('smtp 535-5.7.139: send exits 3 and says SMTP AUTH is disabled for the tenant', async () => {
    await fault('smtp', '535-5.7.139');
    const sent = await send('refused');
    expect(sent.stderr).toContain('SMTP_AUTH_DISABLED_TENANT');
    expect(sent.stderr).toContain('SMTP AUTH');
    expect(sent.stderr).toContain('Set-TransportConfig -SmtpClientAuthenticationDisabled $false');
    expect(sent.code).toBe(3);
    await fault('clear');
  }, 60_000);

  it('smtp 4xx --count 2: send tries again and the message arrives', async () => {
    await fault('smtp', '4xx', '--count', '2');
    const subject = `after two 451 replies ${Date.now()}`;
    const sent = await send(subject);
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    const list = await mailbridge(
      ['imap', 'list', '--mailbox', 'alerts@contoso.test', '--folder', 'INBOX', '--json'],
      env,
    );
    expect(list.stdout).toContain(subject);
  }, 60_000);

  it('smtp 4xx beyond the retries: send exits 4 with SMTP_TEMPORARY_FAILURE, nothing sent', async () => {
    await fault('smtp', '4xx', '--count', '3');
    const sent = await send('never');
    expect(sent.stderr).toContain('SMTP_TEMPORARY_FAILURE');
    expect(sent.stderr).toContain('451 4.7.500');
    expect(sent.stderr).toContain('3 attempts');
    expect(sent.code).toBe(4);
  }, 60_000);

  it('refuses an unknown fault with the list of faults (exit 2)', async () => {
    const wrong = await mailbridge(['sandbox', 'fault', 'imap', 'bye', '--dir', dir]);
    expect(wrong.stderr).toContain('imap bye-expired');
    expect(wrong.code).toBe(2);
  });
});
