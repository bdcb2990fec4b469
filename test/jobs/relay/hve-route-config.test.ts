/**
 * `relay.routes.hve` as the config file writes it, and which recipients each
 * route takes (route.ts): internal ones through HVE in parts of HVE's
 * recipient limit, the rest through the mailbox, a message too large for HVE
 * through the mailbox whole.
 */
import { describe, expect, it } from 'vitest';
import type { ConfigurationError } from '../../../src/errors.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { createRecipientRouter, isInternal } from '../../../src/jobs/relay/route.js';
import {
  HVE_HOST,
  HVE_MAX_MESSAGE_SIZE,
  HVE_MAX_RECIPIENTS,
  HVE_TOKEN_REFRESH_MARGIN_MS,
  type HveRoute,
  tokenRefreshMarginMs,
} from '../../../src/jobs/relay/route-config.js';

const minimal = {
  spool: '/var/spool/mailbridge',
  allowNetworks: ['127.0.0.1/32'],
  policy: [{ network: '127.0.0.1/32', senders: ['*@contoso.com'], mailbox: 'app@contoso.com' }],
};

function problemsOf(raw: unknown): { field: string; message: string }[] {
  try {
    parseRelaySettings(raw);
  } catch (error) {
    expect((error as ConfigurationError).code).toBe('RELAY_CONFIG_INVALID');
    expect((error as ConfigurationError).exitCode).toBe(2);
    return (error as ConfigurationError).problems;
  }
  throw new Error('expected a ConfigurationError');
}

describe('relay.routes.hve', () => {
  it('takes HVE defaults: Microsoft’s endpoint, its limits, a 20-minute token margin', () => {
    const s = parseRelaySettings({
      ...minimal,
      routes: {
        hve: { account: ' Notify@Contoso.com ', internalDomains: ['Contoso.com', '@fabrikam.com'] },
      },
    });
    expect(s.routes.hve).toEqual({
      account: 'notify@contoso.com',
      host: HVE_HOST,
      port: 587,
      internalDomains: ['contoso.com', 'fabrikam.com'],
      maxRecipients: HVE_MAX_RECIPIENTS,
      maxMessageSize: HVE_MAX_MESSAGE_SIZE,
      tokenRefreshMarginMs: HVE_TOKEN_REFRESH_MARGIN_MS,
    });
    expect(HVE_HOST).toBe('smtp.hve.mx.microsoft');
    expect(tokenRefreshMarginMs(s.routes)).toBe(20 * 60_000);
  });

  it('no routes: the mailbox route alone, and the token provider’s own margin', () => {
    const s = parseRelaySettings(minimal);
    expect(s.routes).toEqual({});
    expect(tokenRefreshMarginMs(s.routes)).toBeUndefined();
  });

  it('reads host, port, limits and margin', () => {
    const s = parseRelaySettings({
      ...minimal,
      routes: {
        hve: {
          account: 'notify@contoso.com',
          host: 'smtp-hve.office365.com',
          port: 2587,
          internalDomains: ['contoso.com'],
          maxRecipients: 10,
          maxMessageSize: '5MB',
          tokenRefreshMargin: '15m',
        },
      },
    });
    expect(s.routes.hve).toMatchObject({
      host: 'smtp-hve.office365.com',
      port: 2587,
      maxRecipients: 10,
      maxMessageSize: 5 * 1024 * 1024,
      tokenRefreshMarginMs: 15 * 60_000,
    });
  });

  it('an hve route without an account says what the account is', () => {
    const problems = problemsOf({
      ...minimal,
      routes: { hve: { internalDomains: ['contoso.com'] } },
    });
    expect(problems).toEqual([
      {
        field: 'relay.routes.hve.account',
        message: expect.stringMatching(
          /relay\.routes\.hve\.account is required: the address of the HVE account/,
        ),
      },
    ]);
  });

  it('a bad domain, a missing domain list, a bad margin and an unknown key are each named', () => {
    const problems = problemsOf({
      ...minimal,
      routes: {
        hve: {
          account: 'not an address',
          internalDomains: ['contoso.com', 'not a domain', 42],
          tokenRefreshMargin: '2h',
          acount: 'x',
        },
      },
    });
    const fields = problems.map((p) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'relay.routes.hve.account',
        'relay.routes.hve.internalDomains[1]',
        'relay.routes.hve.internalDomains[2]',
        'relay.routes.hve.tokenRefreshMargin',
      ]),
    );
    const text = problems.map((p) => `${p.field}: ${p.message}`).join('\n');
    expect(text).toMatch(/internalDomains\[1\]: this entry is not a domain name/);
    expect(text).toMatch(/from 5m to 30m/);
    expect(text).toMatch(/acount/);
    // The wrong entry is described, not quoted.
    expect(text).not.toMatch(/not a domain'/);
    expect(
      problemsOf({ ...minimal, routes: { hve: { account: 'notify@contoso.com' } } }).map(
        (p) => p.field,
      ),
    ).toEqual(['relay.routes.hve.internalDomains']);
    expect(problemsOf({ ...minimal, routes: { smtp: {} } })[0]?.field).toMatch(/relay\.routes/);
  });
});

describe('createRecipientRouter', () => {
  const hve: HveRoute = {
    account: 'notify@contoso.com',
    host: HVE_HOST,
    port: 587,
    internalDomains: ['contoso.com'],
    maxRecipients: 2,
    maxMessageSize: 1000,
    tokenRefreshMarginMs: HVE_TOKEN_REFRESH_MARGIN_MS,
  };
  const envelope = (to: string[], size = 100) => ({
    from: 'scanner@contoso.com',
    mailbox: 'app@contoso.com',
    to,
    size,
  });

  it('without an HVE route, one part through the mailbox', () => {
    const router = createRecipientRouter(undefined);
    expect(router.parts(envelope(['a@contoso.com', 'x@example.org']))).toEqual([
      {
        route: 'mailbox',
        key: 'app@contoso.com',
        account: 'app@contoso.com',
        from: 'scanner@contoso.com',
        to: ['a@contoso.com', 'x@example.org'],
      },
    ]);
  });

  it('internal recipients through HVE as the HVE account, in parts of maxRecipients, then the rest', () => {
    const router = createRecipientRouter(hve);
    const parts = router.parts(
      envelope(['a@contoso.com', 'x@example.org', 'B@CONTOSO.COM', 'c@contoso.com']),
    );
    expect(parts.map((p) => [p.route, p.key, p.from, p.to])).toEqual([
      ['hve', 'hve:notify@contoso.com', 'notify@contoso.com', ['a@contoso.com', 'B@CONTOSO.COM']],
      ['hve', 'hve:notify@contoso.com', 'notify@contoso.com', ['c@contoso.com']],
      ['mailbox', 'app@contoso.com', 'scanner@contoso.com', ['x@example.org']],
    ]);
    // The first recipient's route goes first.
    expect(router.parts(envelope(['x@example.org', 'a@contoso.com'])).map((p) => p.route)).toEqual([
      'mailbox',
      'hve',
    ]);
    expect(router.key(envelope(['x@example.org']))).toBe('app@contoso.com');
    expect(router.key(envelope(['a@contoso.com']))).toBe('hve:notify@contoso.com');
  });

  it('a message larger than HVE takes goes through the mailbox whole, saying why', () => {
    const [part, ...more] = createRecipientRouter(hve).parts(envelope(['a@contoso.com'], 1001));
    expect(more).toEqual([]);
    expect(part).toMatchObject({ route: 'mailbox', to: ['a@contoso.com'] });
    expect(part?.fallback).toMatch(/1001 bytes\) is larger than High Volume Email takes/);
  });

  it('counts a domain as internal only when it is listed, subdomains and look-alikes included', () => {
    expect(isInternal('a@contoso.com', ['contoso.com'])).toBe(true);
    expect(isInternal('a@sub.contoso.com', ['contoso.com'])).toBe(false);
    expect(isInternal('a@contoso.com.evil.example', ['contoso.com'])).toBe(false);
    expect(isInternal('"a@contoso.com"@evil.example', ['contoso.com'])).toBe(false);
    expect(isInternal('no-at-sign', ['contoso.com'])).toBe(false);
  });
});
