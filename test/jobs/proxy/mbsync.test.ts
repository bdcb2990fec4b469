/**
 * A full sync with a real IMAP sync tool logging in with a password: mbsync
 * pulls a folder of 1,000 messages through the proxy from Dovecot, and every
 * message arrives byte for byte.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyHandle } from '../../../src/jobs/proxy/proxy.js';
import { testCaPath } from '../../helpers/test-ca.js';
import {
  ALICE,
  ALICE_MAILBOX,
  listenerPort,
  type ProxyFixture,
  seed,
  showLogs,
  startFixture,
} from './fixture.js';
import { runTool } from './tools.js';

const COUNT = 1000;
let fx: ProxyFixture;
let proxy: ProxyHandle;
let messages: string[];

beforeAll(async () => {
  // No SMTP here: submission by this process, not Postfix (about 1 s of CPU a start).
  fx = await startFixture({ mailServers: { submission: 'node' } });
  proxy = await fx.start({ pop3: { listen: [] } });
  messages = await seed(fx, ALICE_MAILBOX, COUNT, 'mbsync');
}, 300_000);
afterAll(async () => {
  await fx?.stop();
});
afterEach((context) => {
  if (context.task.result?.state === 'fail') return showLogs(fx);
});

describe('mbsync through the proxy', () => {
  it('pulls 1,000 messages, bytes equal', async () => {
    const local = join(fx.dir, 'mail');
    mkdirSync(local, { recursive: true });
    const rc = join(fx.dir, 'mbsyncrc');
    writeFileSync(
      rc,
      [
        'IMAPAccount proxy',
        // The certificate names localhost; mbsync checks names only.
        'Host localhost',
        `Port ${listenerPort(proxy, 'imap', true)}`,
        `User ${ALICE.name}`,
        `Pass "${ALICE.password}"`,
        'SSLType IMAPS',
        `CertificateFile ${testCaPath()}`,
        '',
        'IMAPStore remote',
        'Account proxy',
        '',
        'MaildirStore local',
        `Path ${local}/`,
        `Inbox ${local}/INBOX`,
        '',
        'Channel pull',
        'Far :remote:',
        'Near :local:',
        'Patterns INBOX',
        'Create Near',
        'Sync Pull',
        `SyncState ${fx.dir}/mbsync-state/`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    mkdirSync(join(fx.dir, 'mbsync-state'), { recursive: true });
    const result = await runTool('mbsync', ['-c', rc, '-a'], { timeoutMs: 240_000 });
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    const dir = join(local, 'INBOX', 'new');
    // mbsync adds its X-TUID header (its own bookkeeping, RFC 822 header) to each file it writes.
    const files = readdirSync(dir).map((name) =>
      readFileSync(join(dir, name), 'utf8').replace(/^X-TUID: \S+\n/m, ''),
    );
    expect(files).toHaveLength(COUNT);
    // Maildir files have LF line ends (IMAP sends CRLF): otherwise byte for byte.
    expect(new Set(files)).toEqual(new Set(messages.map((m) => m.replace(/\r\n/g, '\n'))));
  }, 300_000);
});
