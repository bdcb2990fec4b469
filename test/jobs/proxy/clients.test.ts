/**
 * Real clients through `mailbridge proxy` to the real Dovecot: curl over
 * imaps:// and pop3s:// (list, fetch), and the refusals a local user meets
 * (wrong password with a growing delay, another user's mailbox), none of
 * which tells whether a user exists.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyHandle } from '../../../src/jobs/proxy/proxy.js';
import { testCaPath } from '../../helpers/test-ca.js';
import {
  ALICE,
  ALICE_MAILBOX,
  BOB,
  BOB_MAILBOX,
  listenerPort,
  type ProxyFixture,
  SHARED_MAILBOX,
  seed,
  showLogs,
  startFixture,
} from './fixture.js';
import { runTool } from './tools.js';

let fx: ProxyFixture;
let proxy: ProxyHandle;
let aliceMessages: string[];
let sharedMessages: string[];

beforeAll(async () => {
  // No SMTP here: submission by this process, not Postfix (about 1 s of CPU a start).
  fx = await startFixture({ mailServers: { submission: 'node' } });
  proxy = await fx.start();
  aliceMessages = await seed(fx, ALICE_MAILBOX, 3, 'alice');
  sharedMessages = await seed(fx, SHARED_MAILBOX, 2, 'shared');
  await seed(fx, BOB_MAILBOX, 1, 'bob');
}, 60_000);
afterAll(async () => {
  await fx?.stop();
});
afterEach((context) => {
  if (context.task.result?.state === 'fail') return showLogs(fx);
});

const port = (protocol: 'imap' | 'pop3', implicitTls: boolean) =>
  listenerPort(proxy, protocol, implicitTls);

function curl(url: string, user: string, password: string, extra: string[] = []) {
  return runTool('curl', [
    '-sS',
    '--cacert',
    testCaPath(),
    '--user',
    `${user}:${password}`,
    ...extra,
    url,
  ]);
}

describe('curl through the proxy', () => {
  it('lists and fetches over imaps:// as alice, reading her first mailbox', async () => {
    const base = `imaps://127.0.0.1:${port('imap', true)}`;
    const list = await curl(`${base}/INBOX?ALL`, ALICE.name, ALICE.password, ['-X', 'SEARCH ALL']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.trim()).toBe('* SEARCH 1 2 3');
    const fetched = await curl(`${base}/INBOX;UID=2`, ALICE.name, ALICE.password);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.stdout).toBe(aliceMessages[1]);
  });

  it('reads another mailbox of the user as name#mailbox', async () => {
    const base = `imaps://127.0.0.1:${port('imap', true)}`;
    const fetched = await curl(
      `${base}/INBOX;UID=1`,
      `${ALICE.name}#${SHARED_MAILBOX}`,
      ALICE.password,
    );
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.stdout).toBe(sharedMessages[0]);
  });

  it('lists and retrieves over pop3s://, and with STLS on the plain port', async () => {
    const list = await curl(`pop3s://127.0.0.1:${port('pop3', true)}/`, ALICE.name, ALICE.password);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.trim().split(/\r?\n/)).toHaveLength(3);
    const retrieved = await curl(
      `pop3://127.0.0.1:${port('pop3', false)}/3`,
      ALICE.name,
      ALICE.password,
      ['--ssl-reqd'],
    );
    expect(retrieved.code, retrieved.stderr).toBe(0);
    expect(retrieved.stdout).toBe(aliceMessages[2]);
  });

  it('logs one JSON line per login with user, mailbox, address and outcome, never a secret', async () => {
    const logins = fx.logs.filter((l) => l.event === 'login' && l.outcome === 'ok');
    expect(logins.length).toBeGreaterThan(0);
    expect(logins[0]).toMatchObject({
      user: ALICE.name,
      mailbox: ALICE_MAILBOX,
      client: '127.0.0.1',
      protocol: 'imap',
    });
    const all = JSON.stringify(fx.logs);
    expect(all).not.toContain(ALICE.password);
    expect(all).not.toContain(BOB.password);
    expect(all).not.toContain(await fx.token());
  });
});

describe('refusals', () => {
  it("refuses another user's mailbox as it refuses a wrong password", async () => {
    const base = `imaps://127.0.0.1:${port('imap', true)}`;
    const other = await curl(`${base}/INBOX`, `${ALICE.name}#${BOB_MAILBOX}`, ALICE.password, [
      '-v',
    ]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/NO \[AUTHENTICATIONFAILED\] Authentication failed/);
    const login = fx.logs.filter((l) => l.event === 'login').at(-1);
    expect(login).toMatchObject({ outcome: 'mailbox_refused', mailbox: BOB_MAILBOX });
  });

  it('answers an unknown user and a wrong password alike, the delay growing', async () => {
    const base = `imaps://127.0.0.1:${port('imap', true)}`;
    const timed = async (user: string, password: string) => {
      const started = Date.now();
      const result = await curl(`${base}/INBOX`, user, password, ['-v']);
      const reply = /< A\d+ (NO .*)/.exec(result.stderr)?.[1];
      return { ms: Date.now() - started, reply };
    };
    const first = await timed('mallory', 'guess');
    const second = await timed(BOB.name, 'wrong');
    const third = await timed(BOB.name, 'wrong again');
    expect(first.reply).toBe('NO [AUTHENTICATIONFAILED] Authentication failed');
    expect(second.reply).toBe(first.reply);
    expect(third.reply).toBe(first.reply);
    // 200 ms doubling: the second attempt waits at least 200 ms, the third 400 ms.
    expect(second.ms).toBeGreaterThan(150);
    expect(third.ms).toBeGreaterThan(second.ms);
    const failed = fx.logs.filter((l) => l.event === 'login' && l.outcome === 'refused');
    expect(failed.map((l) => l.user)).toContain(BOB.name);
    // The unknown name is logged as a keyed tag: it may be a password typed in the wrong field.
    expect(JSON.stringify(failed)).not.toContain('mallory');
  });

  it('takes LOGIN in clear on a loopback listener, where nothing crosses a network', async () => {
    const result = await runTool('curl', [
      '-sS',
      '-v',
      '--user',
      `${BOB.name}:${BOB.password}`,
      `imap://127.0.0.1:${port('imap', false)}/INBOX;UID=1`,
    ]);
    // Loopback: LOGIN in clear is allowed (nothing crosses a network).
    expect(result.code, result.stderr).toBe(0);
  });
});
