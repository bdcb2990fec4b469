/**
 * Start-up checks of the addresses in relay.policy: invalid ones stop the
 * relay (exit 2, each named by its key); mailboxes without a delivery on
 * record in the spool are named in one warning.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { ConfigurationError } from '../../../src/errors.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { isValidMailboxAddress } from '../../../src/jobs/relay/policy-check.js';
import { startRelay } from '../../../src/jobs/relay/relay.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { collectText } from './upstream.js';

let dir: string;
let config: MailbridgeConfig;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-policy-check-'));
  config = await loadConfig({
    env: {
      AZURE_TENANT_ID: 'contoso.onmicrosoft.com',
      AZURE_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
      AZURE_CLIENT_SECRET: 'not-used-here',
    },
  });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A relay whose upstream accepts everything; the token source is never asked for more. */
function start(policy: unknown[], spool: string, output = collectText()) {
  return startRelay(config, {
    settings: parseRelaySettings({
      listen: ['127.0.0.1:0'],
      spool,
      allowNetworks: ['127.0.0.1/32'],
      policy,
    }),
    logger: createJsonLogger(output.stream),
    tokenProvider: {
      scope: 'x',
      getToken: async () => ({ accessToken: 'unused', expiresOn: new Date() }),
    },
    transportFor: () => ({
      sendMail: async (message) => ({
        accepted: (message.envelope as { to: string[] }).to,
        rejected: [],
        response: '250 2.0.0 OK',
      }),
      close() {},
    }),
  });
}

describe('isValidMailboxAddress', () => {
  it.each([
    'scans@contoso.example',
    'first.last+tag@sub.contoso.example',
    'root@localhost',
    'jürgen@müller.example',
  ])('accepts %s', (address) => {
    expect(isValidMailboxAddress(address)).toBe(true);
  });

  it.each([
    'scans..2f@contoso.example',
    '.scans@contoso.example',
    'scans.@contoso.example',
    'scans@contoso..example',
    'scans@-contoso.example',
    'scans@contoso.example.',
    `${'a'.repeat(65)}@contoso.example`,
    'sc=ans@@contoso.example',
  ])('refuses %s', (address) => {
    expect(isValidMailboxAddress(address)).toBe(false);
  });
});

describe('at start-up', () => {
  it('refuses to start when a policy address is not a valid address, naming each', async () => {
    const error = await start(
      [
        { network: '127.0.0.1/32', senders: ['scans..2f@contoso.example', '*@contoso.example'] },
        {
          network: '127.0.0.1/32',
          senders: ['printer@contoso.example'],
          mailbox: 'desk@-x.example',
        },
      ],
      join(dir, 'never'),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).exitCode).toBe(2);
    expect((error as ConfigurationError).problems).toEqual([
      {
        field: 'relay.policy[0].senders[0]',
        message:
          "'scans..2f@contoso.example' is not a valid mail address (local@domain, no spaces, quotes or empty dot-separated parts).",
      },
      {
        field: 'relay.policy[1].mailbox',
        message:
          "'desk@-x.example' is not a valid mail address (local@domain, no spaces, quotes or empty dot-separated parts).",
      },
    ]);
  });

  it('warns about the mailboxes with no delivery on record, until one works', async () => {
    const spool = join(dir, 'spool');
    const policy = [
      { network: '127.0.0.1/32', senders: ['printer@contoso.example'] },
      {
        network: '127.0.0.1/32',
        senders: ['scanner@contoso.example'],
        mailbox: 'desk@contoso.example',
      },
      { network: '127.0.0.1/32', senders: ['*@fabrikam.example'] },
    ];
    const first = collectText();
    const relay = await start(policy, spool, first);
    expect(first.text()).toMatch(
      /"msg":"policy mailboxes never seen to work","event":"mailboxes-unproven","count":2,"mailboxes":"desk@contoso.example printer@contoso.example"/,
    );
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: relay.listeners[0]?.port,
      ignoreTLS: true,
    });
    await client.sendMail({ from: 'printer@contoso.example', to: 'a@contoso.example', text: 'x' });
    client.close();
    const deadline = Date.now() + 5000;
    while (relay.metrics.delivered === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await relay.stop({ timeoutMs: 1000 });

    const second = collectText();
    const again = await start(policy, spool, second);
    await again.stop({ timeoutMs: 1000 });
    expect(second.text()).toMatch(/"count":1,"mailboxes":"desk@contoso.example"/);
  });
});
