/**
 * What `mailbridge proxy` refuses before it listens (exit 2), and the
 * hash-password command its users need.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readConfigFile } from '../../../src/config/file.js';
import { ConfigurationError } from '../../../src/errors.js';
import { parsePasswordHash, verifyPassword } from '../../../src/jobs/listener/password.js';
import { parseProxySettings } from '../../../src/jobs/proxy/config.js';
import { runCli } from '../../helpers/run-cli.js';

const HASH = '$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA';
const USERS = [{ name: 'alice', passwordHash: HASH, mailboxes: ['alice@contoso.example'] }];
const TLS = { cert: '/etc/mailbridge/cert.pem', key: '/etc/mailbridge/key.pem' };

function problems(section: Record<string, unknown>): string[] {
  try {
    parseProxySettings(section);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('PROXY_CONFIG_INVALID');
    return (error as ConfigurationError).problems.map((p) => `${p.field}: ${p.message}`);
  }
  return [];
}

describe('proxy settings', () => {
  it('listens on loopback IMAP by default, TLS 1.2 at least when TLS is set', () => {
    const settings = parseProxySettings({ users: USERS, tls: TLS });
    expect(settings.listen).toEqual([
      {
        host: '127.0.0.1',
        port: 1143,
        implicitTls: false,
        text: '127.0.0.1:1143',
        protocol: 'imap',
      },
    ]);
    expect(settings.tls?.minVersion).toBe('TLSv1.2');
    expect(settings.users[0]?.mailboxes).toEqual(['alice@contoso.example']);
  });

  it('refuses plain IMAP or POP3 beyond loopback, and a listener beyond loopback without allowNetworks', () => {
    expect(
      problems({ imap: { listen: ['0.0.0.0:143'] }, users: USERS, allowNetworks: ['10.0.0.0/8'] }),
    ).toEqual([
      'proxy.imap.listen: Refusing to listen on 0.0.0.0:143 (beyond loopback) without TLS: passwords would cross the network in clear. Set proxy.tls (cert and key), or listen on 127.0.0.1.',
    ]);
    expect(problems({ pop3: { listen: ['pop3s://0.0.0.0:995'] }, users: USERS, tls: TLS })).toEqual(
      [
        'proxy.pop3.listen: Refusing to listen on pop3s://0.0.0.0:995 (beyond loopback) for every address: set proxy.allowNetworks to the networks of the clients.',
      ],
    );
    expect(
      problems({
        imap: { listen: ['imaps://0.0.0.0:993'] },
        users: USERS,
        tls: TLS,
        allowNetworks: ['0.0.0.0/0'],
      }),
    ).toHaveLength(1);
    expect(
      problems({
        imap: { listen: ['imaps://0.0.0.0:993'] },
        users: USERS,
        tls: TLS,
        allowNetworks: ['10.0.0.0/8'],
      }),
    ).toEqual([]);
  });

  it('refuses a user with no mailbox, a plain password, a wrong scheme and implicit TLS without a certificate', () => {
    const found = problems({
      imap: { listen: ['imaps://127.0.0.1:993', 'smtp://127.0.0.1:25'] },
      users: [
        { name: 'alice', passwordHash: 'secret', mailboxes: ['a@contoso.example'] },
        { name: 'bob', passwordHash: HASH, mailboxes: [] },
      ],
    });
    expect(found.join('\n')).toContain('proxy.users[1].mailboxes');
    expect(found.join('\n')).toContain('the scheme must be imap:// or imaps://');
    expect(found.join('\n')).toContain('asks for implicit TLS, but proxy.tls');
    expect(found.join('\n')).not.toContain('secret');
    // The proxy's users make their hashes with the proxy's command.
    const plain = problems({
      users: [{ name: 'alice', passwordHash: 'secret', mailboxes: ['a@contoso.example'] }],
    }).join('\n');
    expect(plain).toContain('proxy.users[0].passwordHash');
    expect(plain).toContain('mailbridge proxy hash-password');
    expect(plain).not.toContain('relay');
  });
});

describe('examples/proxy/mailbridge.yaml', () => {
  it('is a valid proxy section', async () => {
    const path = new URL('../../../examples/proxy/mailbridge.yaml', import.meta.url).pathname;
    const file = (await readConfigFile(path)) as { proxy: unknown };
    const settings = parseProxySettings(file.proxy);
    expect(settings.listen.map((l) => l.text)).toEqual([
      'imaps://0.0.0.0:10993',
      '0.0.0.0:10143',
      'pop3s://0.0.0.0:10995',
      '0.0.0.0:10110',
    ]);
    expect(settings.users.map((u) => u.mailboxes[0])).toEqual([
      'invoices@contoso.com',
      'scans@contoso.com',
    ]);
  });
});

describe('mailbridge proxy (CLI)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailbridge-proxy-cli-'));
  });

  it('prints a scrypt hash of the password read on stdin', async () => {
    const result = await runCli(['proxy', 'hash-password'], {}, { input: 'pässword\n' });
    expect(result.code, result.stderr).toBe(0);
    const parsed = parsePasswordHash(result.stdout.trim());
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(await verifyPassword('pässword', parsed.value)).toBe(true);
  });

  it('names the command that was run when the password is empty', async () => {
    const result = await runCli(['proxy', 'hash-password'], {}, { input: '\n' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('mailbridge proxy hash-password');
    expect(result.stderr).not.toContain('relay');
  });

  it('exits 2 before listening when a plain listener is beyond loopback', async () => {
    const file = join(dir, 'plain.yaml');
    writeFileSync(
      file,
      [
        'tenantId: 00000000-0000-0000-0000-000000000001',
        'clientId: 00000000-0000-0000-0000-000000000002',
        'clientSecret: not-a-real-secret',
        'proxy:',
        '  imap: { listen: ["0.0.0.0:1143"] }',
        '  allowNetworks: ["10.0.0.0/8"]',
        '  users:',
        `    - { name: alice, passwordHash: "${HASH}", mailboxes: [alice@contoso.example] }`,
        '',
      ].join('\n'),
    );
    const result = await runCli(['proxy', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('PROXY_CONFIG_INVALID');
    expect(result.stderr).toContain('without TLS');
  });
});
