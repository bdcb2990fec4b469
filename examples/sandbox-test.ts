/**
 * A test of your own code against Microsoft 365's behaviour, on this
 * machine: `startSandbox()` starts an Entra-like token service, IMAP and
 * SMTP on loopback (Dovecot from the Debian packages, no root needed), with
 * the seeded tenant contoso.test. Copy it into your suite (vitest shown; jest
 * and mocha work the same way with their own hooks).
 *
 *   sudo apt-get install -y dovecot-imapd dovecot-lmtpd dovecot-auth-lua
 *   npx vitest run examples/sandbox-test.ts
 */
import {
  createImapClient,
  isMailbridgeError,
  loadConfig,
  type Sandbox,
  startSandbox,
} from 'm365-mailbridge';
import { afterAll, beforeAll, expect, it } from 'vitest';

/** The code under test: counts the messages of a mailbox's INBOX. */
async function countInbox(env: Record<string, string>, mailbox: string): Promise<number> {
  const config = await loadConfig({ env });
  const client = await createImapClient(config, { mailbox });
  try {
    const status = await client.status('INBOX', { messages: true });
    return status ? (status.messages ?? 0) : 0;
  } finally {
    await client.logout();
  }
}

let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await startSandbox(); // a temporary folder and free ports; stop() removes both
}, 60_000);

afterAll(() => sandbox?.stop());

it('reads the seeded INBOX of archive@contoso.test', async () => {
  expect(await countInbox(sandbox.env, 'archive@contoso.test')).toBe(3);
});

it('is refused until the app is granted the mailbox, as in Exchange Online', async () => {
  const env = sandbox.envFor('alerts-only');
  await expect(countInbox(env, 'archive@contoso.test')).rejects.toSatisfy(
    (error) => isMailbridgeError(error) && error.exitCode === 3,
  );
  await sandbox.grant('alerts-only', 'archive@contoso.test'); // Add-MailboxPermission
  expect(await countInbox(env, 'archive@contoso.test')).toBe(3);
});

it('survives Entra throttling the token endpoint', async () => {
  sandbox.fault({ kind: 'token', status: 429, count: 1, retryAfterSeconds: 1 });
  // mailbridge retries a 429 after Retry-After; your code sees the count, not the error.
  expect(await countInbox(sandbox.envFor('cert-app'), 'archive@contoso.test')).toBe(3);
});
