import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  describeEndpoint,
  parseEndpoint,
  resolvePassword,
} from '../../../src/jobs/migrate/endpoint.js';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';

function refusal(fn: () => unknown): { code: string; exitCode: number; message: string } {
  try {
    fn();
  } catch (error) {
    return error as { code: string; exitCode: number; message: string };
  }
  throw new Error('no error');
}

describe('migrate endpoints', () => {
  it('reads a Microsoft 365 mailbox of our configuration', () => {
    expect(parseEndpoint('m365:user@contoso.com', 'to')).toEqual({
      kind: 'm365',
      mailbox: 'user@contoso.com',
    });
  });

  it('reads an IMAP URL with a percent-encoded user name and the default ports', () => {
    expect(parseEndpoint('imaps://bob%40example.org@mail.example.org', 'from')).toEqual({
      kind: 'imap',
      host: 'mail.example.org',
      port: 993,
      user: 'bob@example.org',
      security: 'implicit',
    });
    expect(parseEndpoint('imap://bob@mail.example.org', 'from')).toMatchObject({
      port: 143,
      security: 'starttls',
    });
    expect(parseEndpoint('imap://bob@127.0.0.1:1143', 'from')).toMatchObject({
      port: 1143,
      security: 'starttls-if-offered',
    });
    expect(describeEndpoint(parseEndpoint('imaps://bob%40x.org@[::1]:993', 'from'))).toBe(
      'imaps://bob%40x.org@[::1]:993',
    );
  });

  it('refuses a password in the URL without echoing it', () => {
    const error = refusal(() => parseEndpoint('imaps://bob:hunter2@mail.example.org', 'from'));
    expect(error.code).toBe('MIGRATE_ENDPOINT_INVALID');
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain('--from-password-file');
    expect(error.message).not.toContain('hunter2');
  });

  it('says what to give for an endpoint it does not know', () => {
    for (const text of [
      'user@contoso.com',
      'm365:not-an-address',
      'imaps://mail.example.org',
      'imaps://a@b/INBOX',
    ]) {
      const error = refusal(() => parseEndpoint(text, 'to'));
      expect(error.code).toBe('MIGRATE_ENDPOINT_INVALID');
      expect(error.message).toMatch(/^--to: /);
    }
  });

  it('takes archive:DIR as a source only, made absolute; refuses it as a destination and azblob://', () => {
    expect(parseEndpoint('archive:/srv/archive/alice%40contoso.com', 'from')).toEqual({
      kind: 'archive',
      dir: '/srv/archive/alice%40contoso.com',
    });
    expect(parseEndpoint('archive:backup/a', 'from')).toEqual({
      kind: 'archive',
      dir: resolve('backup/a'),
    });
    const destination = refusal(() => parseEndpoint('archive:/srv/archive', 'to'));
    expect(destination).toMatchObject({ code: 'MIGRATE_ENDPOINT_UNSUPPORTED', exitCode: 2 });
    expect(destination.message).toContain('mailbridge archive');
    const blob = refusal(() => parseEndpoint('archive:azblob://acct/container', 'from'));
    expect(blob).toMatchObject({ code: 'MIGRATE_ENDPOINT_UNSUPPORTED', exitCode: 2 });
    expect(refusal(() => parseEndpoint('archive:', 'from')).code).toBe('MIGRATE_ENDPOINT_INVALID');
  });

  it('takes the password from the file first, then the environment, never elsewhere', () => {
    expect(
      resolvePassword('from', {
        file: { path: 'p', text: 'secret one\nignored\n' },
        env: { MAILBRIDGE_FROM_PASSWORD: 'env' },
      }),
    ).toBe('secret one');
    expect(resolvePassword('to', { env: { MAILBRIDGE_TO_PASSWORD: 'env' } })).toBe('env');
    const missing = refusal(() =>
      resolvePassword('to', { env: { MAILBRIDGE_FROM_PASSWORD: 'x' } }),
    );
    expect(missing).toMatchObject({ code: 'MIGRATE_PASSWORD_MISSING', exitCode: 2 });
    expect(missing.message).toContain('MAILBRIDGE_TO_PASSWORD');
    expect(refusal(() => resolvePassword('to', { file: { path: 'p', text: '\n' } })).code).toBe(
      'MIGRATE_PASSWORD_MISSING',
    );
  });
});

describe('a mailbox into itself', () => {
  it.each([
    ['m365:bob@contoso.example', 'm365:Bob@Contoso.example'],
    [
      'imaps://bob%40example.org@mail.example.org',
      'imaps://bob%40example.org@MAIL.example.org:993',
    ],
  ])('%s → %s is refused before anything connects', async (from, to) => {
    await expect(migrateMailbox({ from, to })).rejects.toMatchObject({
      code: 'MIGRATE_ENDPOINT_INVALID',
      exitCode: 2,
      message: expect.stringContaining('same mailbox'),
    });
  });
});
