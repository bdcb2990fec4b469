import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/jobs/listener/cidr.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import {
  admitClient,
  decideSender,
  parseSenderPattern,
  senderMatches,
} from '../../../src/jobs/relay/policy.js';

const settings = parseRelaySettings(
  {
    spool: '/s',
    users: '/u',
    allowNetworks: ['192.168.10.0/24', '2001:db8:10::/48'],
    policy: [
      { user: 'scanner', senders: ['scans@contoso.com'], mailbox: 'scans@contoso.com' },
      { user: 'app', senders: ['*@apps.contoso.com'], mailbox: 'noreply@contoso.com' },
      { user: 'app', senders: ['alerts@contoso.com'] },
      {
        network: '192.168.10.0/24',
        senders: ['printer@contoso.com', '<>'],
        mailbox: 'printer@contoso.com',
      },
      { network: '2001:db8:10::/48', senders: ['*'] },
    ],
  },
  {},
);

describe('sender patterns', () => {
  it('matches addresses, domains, anything and the null sender, case-insensitively', () => {
    const p = (t: string) =>
      parseSenderPattern(t) as NonNullable<ReturnType<typeof parseSenderPattern>>;
    expect(senderMatches(p('Scans@Contoso.com'), 'scans@contoso.COM')).toBe(true);
    expect(senderMatches(p('*@contoso.com'), 'a@contoso.com')).toBe(true);
    expect(senderMatches(p('*@contoso.com'), 'a@evil-contoso.com')).toBe(false);
    expect(senderMatches(p('*@contoso.com'), 'a@sub.contoso.com')).toBe(false);
    expect(senderMatches(p('*'), 'x@y.z')).toBe(true);
    expect(senderMatches(p('*'), '')).toBe(false);
    expect(senderMatches(p('<>'), '')).toBe(true);
    expect(parseSenderPattern('a@*.com')).toBeUndefined();
    expect(parseSenderPattern('no-at-sign')).toBeUndefined();
  });
});

describe('decideSender', () => {
  it('gives an authenticated user its rules only, first match wins', () => {
    expect(
      decideSender(
        settings.policy,
        { user: 'scanner', remoteAddress: '192.168.10.5' },
        'scans@contoso.com',
      ),
    ).toEqual({
      ok: true,
      mailbox: 'scans@contoso.com',
      rule: 0,
    });
    expect(
      decideSender(
        settings.policy,
        { user: 'app', remoteAddress: '10.9.9.9' },
        'Billing@Apps.Contoso.com',
      ),
    ).toEqual({
      ok: true,
      mailbox: 'noreply@contoso.com',
      rule: 1,
    });
    // No mailbox in the rule: the sender sends as itself.
    expect(
      decideSender(
        settings.policy,
        { user: 'app', remoteAddress: '10.9.9.9' },
        'alerts@contoso.com',
      ),
    ).toEqual({
      ok: true,
      mailbox: 'alerts@contoso.com',
      rule: 2,
    });
  });

  it('refuses a sender outside the policy with 550 5.7.1 and a reason', () => {
    expect(
      decideSender(
        settings.policy,
        { user: 'scanner', remoteAddress: '192.168.10.5' },
        'ceo@contoso.com',
      ),
    ).toEqual({
      ok: false,
      responseCode: 550,
      message:
        '5.7.1 Sender <ceo@contoso.com> is not permitted for user scanner by the relay policy',
    });
    // The user's network rules do not apply to an authenticated session.
    expect(
      decideSender(
        settings.policy,
        { user: 'scanner', remoteAddress: '192.168.10.5' },
        'printer@contoso.com',
      ).ok,
    ).toBe(false);
  });

  it('judges unauthenticated clients by network, IPv4-mapped included', () => {
    expect(
      decideSender(
        settings.policy,
        { remoteAddress: '::ffff:192.168.10.7' },
        'printer@contoso.com',
      ),
    ).toMatchObject({ ok: true, mailbox: 'printer@contoso.com' });
    expect(decideSender(settings.policy, { remoteAddress: '192.168.10.7' }, '')).toMatchObject({
      ok: true,
      mailbox: 'printer@contoso.com',
    });
    expect(
      decideSender(settings.policy, { remoteAddress: '2001:db8:10::5' }, 'Any@Where.example'),
    ).toMatchObject({
      ok: true,
      mailbox: 'any@where.example',
    });
    expect(
      decideSender(settings.policy, { remoteAddress: '10.0.0.1' }, 'printer@contoso.com'),
    ).toEqual({
      ok: false,
      responseCode: 550,
      message: '5.7.1 Relaying denied: no relay policy covers clients from 10.0.0.1',
    });
  });

  it('never echoes control characters from the client', () => {
    const d = decideSender(
      settings.policy,
      { user: 'scanner', remoteAddress: '1.2.3.4' },
      'a\r\nb@c.d',
    );
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.message).not.toMatch(/[\r\n]/);
  });
});

describe('admitClient', () => {
  const allow = [parseCidr('10.0.0.0/8')].filter((c) => c !== undefined);
  it('lets allowed networks in, asks others to authenticate, or refuses them', () => {
    expect(admitClient(allow, false, '10.1.1.1')).toBe('network');
    expect(admitClient(allow, true, '192.0.2.1')).toBe('authenticate');
    expect(admitClient(allow, false, '192.0.2.1')).toBe('refuse');
  });
});
