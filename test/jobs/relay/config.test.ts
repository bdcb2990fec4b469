import { describe, expect, it } from 'vitest';
import type { ConfigurationError } from '../../../src/errors.js';
import {
  EXCHANGE_MAX_MESSAGE_SIZE,
  openRelayProblems,
  parseDuration,
  parseListenAddress,
  parseRelaySettings,
  parseSize,
  type RelaySettings,
} from '../../../src/jobs/relay/config.js';

const minimal = {
  spool: '/var/spool/mailbridge',
  allowNetworks: ['127.0.0.1/32'],
  policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
};

function problemsOf(raw: unknown, options = {}): { field: string; message: string }[] {
  try {
    parseRelaySettings(raw, options);
  } catch (error) {
    expect((error as ConfigurationError).code).toBe('RELAY_CONFIG_INVALID');
    expect((error as ConfigurationError).exitCode).toBe(2);
    return (error as ConfigurationError).problems;
  }
  throw new Error('expected a ConfigurationError');
}

describe('parseRelaySettings', () => {
  it('fills Exchange-shaped defaults', () => {
    const s = parseRelaySettings(minimal);
    expect(s.listen).toEqual([
      { host: '127.0.0.1', port: 2525, implicitTls: false, text: '127.0.0.1:2525' },
    ]);
    expect(s.maxMessageSize).toBe(EXCHANGE_MAX_MESSAGE_SIZE);
    expect(s.maxRecipients).toBe(500);
    expect(s.rateLimitPerMinute).toBe(30);
    expect(s.connectionsPerMailbox).toBe(2);
    expect(s.retryFor).toBe(24 * 3600 * 1000);
    expect(s.bounce).toBe(false);
    expect(s.policy[0]).toMatchObject({ index: 0, senders: [{ kind: 'address' }] });
    expect(s.policy[0]?.mailbox).toBeUndefined();
  });

  it('resolves relative paths against the config file directory', () => {
    const s = parseRelaySettings(
      {
        ...minimal,
        spool: 'spool',
        users: 'users',
        tls: { cert: 'tls/cert.pem', key: '/abs/key.pem' },
      },
      { baseDir: '/etc/mailbridge' },
    );
    expect(s.spool).toBe('/etc/mailbridge/spool');
    expect(s.users).toBe('/etc/mailbridge/users');
    expect(s.tls).toEqual({ cert: '/etc/mailbridge/tls/cert.pem', key: '/abs/key.pem' });
  });

  it('reads sizes, durations, false for no rate limit, and --listen overrides', () => {
    const s = parseRelaySettings(
      {
        ...minimal,
        maxMessageSize: '10MB',
        retryFor: '2h',
        retryBackoff: { initial: '5s', max: '10m' },
        rateLimitPerMinute: false,
        shutdownTimeout: 5,
        http: '127.0.0.1:9025',
        tls: { cert: '/c.pem', key: '/k.pem' },
      },
      { listen: ['[::1]:2526', 'smtps://127.0.0.1:4650'] },
    );
    expect(s.maxMessageSize).toBe(10 * 1024 * 1024);
    expect(s.retryFor).toBe(7_200_000);
    expect(s.retryBackoff).toEqual({ initialMs: 5000, maxMs: 600_000 });
    expect(s.rateLimitPerMinute).toBe(false);
    expect(s.shutdownTimeout).toBe(5000);
    expect(s.http).toEqual({ host: '127.0.0.1', port: 9025 });
    expect(s.listen.map((l) => [l.host, l.port, l.implicitTls])).toEqual([
      ['::1', 2526, false],
      ['127.0.0.1', 4650, true],
    ]);
  });

  it('reads the connection limits, the session deadline and the auth penalty, with defaults', () => {
    const d = parseRelaySettings(minimal);
    expect([d.maxConnections, d.maxConnectionsPerAddress, d.sessionTimeout]).toEqual([
      100, 20, 600_000,
    ]);
    expect(d.authPenalty).toEqual({ initialMs: 1000, maxMs: 15_000 });
    const s = parseRelaySettings({
      ...minimal,
      maxConnections: 5,
      maxConnectionsPerAddress: 2,
      sessionTimeout: '90s',
      authPenalty: { initial: '100ms', max: '2s' },
    });
    expect([s.maxConnections, s.maxConnectionsPerAddress, s.sessionTimeout]).toEqual([
      5, 2, 90_000,
    ]);
    expect(s.authPenalty).toEqual({ initialMs: 100, maxMs: 2000 });
    const problems = problemsOf({
      ...minimal,
      maxConnections: 0,
      sessionTimeout: '0s',
      authPenalty: { initial: '1m', max: '1s' },
    });
    expect(problems.map((p) => p.field)).toEqual([
      'relay.authPenalty',
      'relay.maxConnections',
      'relay.sessionTimeout',
    ]);
  });

  it('does not quote a sender or network entry it cannot read: it could be a pasted secret', () => {
    const secret = 'Tr0ub4dor&3-horse';
    const problems = problemsOf({
      allowNetworks: [secret],
      spool: '/var/spool/mailbridge',
      policy: [{ network: '10.0.0.0/8', senders: [secret, `${secret} x@y.z`], mailbox: 'a@b.c' }],
    });
    const text = problems.map((p) => `${p.field}: ${p.message}`).join('\n');
    expect(text).not.toContain('Tr0ub4dor');
    expect(problems).toContainEqual({
      field: 'relay.allowNetworks[0]',
      message: 'this entry is not an IPv4 or IPv6 network (CIDR).',
    });
    expect(problems).toContainEqual({
      field: 'relay.policy[0].senders[0]',
      message: "this entry is not an address, '*@domain', '*' or '<>' (it has no @).",
    });
    expect(problems).toContainEqual({
      field: 'relay.policy[0].senders[1]',
      message: "this entry is not an address, '*@domain', '*' or '<>' (it contains a space).",
    });
  });

  it('reports every problem at once, each by its key', () => {
    const problems = problemsOf({
      listen: ['127.0.0.1', 'http://x:1'],
      lisen: [],
      maxMessageSize: '200MB',
      maxRecipients: 0,
      rateLimitPerMinute: 'fast',
      retryFor: 'forever',
      http: '0.0.0.0:9025',
      allowNetworks: ['10.0.0.0/33'],
      policy: [
        { senders: ['a@b.c'] },
        { user: 'scanner', network: '10.0.0.0/8', senders: [] },
        { network: '192.168.0.0/16', senders: ['not an address'], mailbox: 'nope' },
        { user: 'printer', senders: ['<>'] },
      ],
    });
    const fields = problems.map((p) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'relay.lisen',
        'relay.listen[0]',
        'relay.listen[1]',
        'relay.spool',
        'relay.allowNetworks[0]',
        'relay.maxMessageSize',
        'relay.maxRecipients',
        'relay.rateLimitPerMinute',
        'relay.retryFor',
        'relay.http',
        'relay.policy[0]',
        'relay.policy[1]',
        'relay.policy[1].senders',
        'relay.policy[2].senders[0]',
        'relay.policy[2].mailbox',
        'relay.policy[3].mailbox',
      ]),
    );
    expect(problems.find((p) => p.field === 'relay.lisen')?.message).toBe(
      "Unknown setting 'relay.lisen': did you mean 'relay.listen'?",
    );
    expect(problems.find((p) => p.field === 'relay.http')?.message).toMatch(/loopback only/);
  });

  it('names an unknown key only when it looks like a setting name, never one that may be a secret', () => {
    const secret = 'SUPERSECRET~xyz.123_ABC';
    const problems = problemsOf({
      ...minimal,
      [secret]: 1,
      tls: { cert: '/c.pem', key: '/k.pem', [secret]: 1 },
      policy: [{ network: '127.0.0.1/32', senders: ['*'], [secret]: 1 }],
    });
    expect(JSON.stringify(problems)).not.toContain('SUPERSECRET');
    expect(problems.map((p) => p.field)).toEqual(
      expect.arrayContaining(['relay.(unknown key)', 'relay.tls.(unknown key)']),
    );
  });

  it('refuses a user rule without a users file and a network rule outside allowNetworks', () => {
    const problems = problemsOf({
      ...minimal,
      policy: [
        { user: 'scanner', senders: ['*@contoso.com'], mailbox: 'scans@contoso.com' },
        { network: '10.1.0.0/16', senders: ['*'] },
      ],
    });
    expect(problems).toEqual([
      {
        field: 'relay.policy[0].user',
        message: "the rule names user 'scanner' but relay.users (the users file) is not set.",
      },
      {
        field: 'relay.policy[1].network',
        message:
          '10.1.0.0/16 is not inside relay.allowNetworks: its clients are refused before the policy applies. Add it to relay.allowNetworks.',
      },
    ]);
  });

  it('requires a relay section, a spool and a policy', () => {
    expect(problemsOf(undefined).map((p) => p.field)).toEqual([
      'relay',
      'relay.spool',
      'relay.policy',
    ]);
  });

  it('requires tls for an implicit-TLS listener', () => {
    expect(problemsOf(minimal, { listen: ['smtps://127.0.0.1:465'] })).toEqual([
      {
        field: 'relay.listen',
        message:
          'smtps://127.0.0.1:465 asks for implicit TLS, but relay.tls (cert and key) is not set.',
      },
    ]);
  });
});

describe('no open relay', () => {
  const base: Pick<RelaySettings, 'listen' | 'tls' | 'users' | 'allowNetworks'> = {
    listen: [{ host: '0.0.0.0', port: 25, implicitTls: false, text: '0.0.0.0:25' }],
    allowNetworks: [],
  };

  it('refuses a listener beyond loopback without TLS+AUTH or an allow-list, naming what is missing', () => {
    expect(openRelayProblems(base)).toEqual([
      {
        field: 'relay.listen',
        message:
          "Refusing to listen on 0.0.0.0:25 (beyond loopback) as an open relay: set relay.allowNetworks to the devices' networks, or relay.tls and relay.users so that clients must authenticate over TLS.",
      },
    ]);
    expect(openRelayProblems({ ...base, users: '/u' })[0]?.message).toMatch(
      /or relay\.tls so that/,
    );
    expect(openRelayProblems({ ...base, tls: { cert: 'c', key: 'k' } })[0]?.message).toMatch(
      /or relay\.users so that/,
    );
  });

  it('accepts an allow-list, or TLS with users, and anything on loopback', () => {
    const allow = parseRelaySettings(minimal).allowNetworks;
    expect(openRelayProblems({ ...base, allowNetworks: allow })).toEqual([]);
    expect(openRelayProblems({ ...base, users: '/u', tls: { cert: 'c', key: 'k' } })).toEqual([]);
    expect(
      openRelayProblems({
        ...base,
        listen: [
          { host: '127.0.0.1', port: 25, implicitTls: false, text: '127.0.0.1:25' },
          { host: '::1', port: 25, implicitTls: false, text: '[::1]:25' },
        ],
      }),
    ).toEqual([]);
  });

  it('refuses an allow-list that admits everyone', () => {
    const problems = problemsOf({
      ...minimal,
      listen: ['[::]:2525'],
      allowNetworks: ['0.0.0.0/0', '127.0.0.1/32'],
    });
    expect(problems).toEqual([
      {
        field: 'relay.allowNetworks',
        message:
          '0.0.0.0/0 admits every address: with a listener beyond loopback ([::]:2525) that is an open relay. List only the networks of the devices that send.',
      },
    ]);
  });

  it('is part of parseRelaySettings', () => {
    expect(
      problemsOf(
        { ...minimal, allowNetworks: [], policy: undefined },
        { listen: ['0.0.0.0:25'] },
      ).map((p) => p.field),
    ).toEqual(['relay.policy', 'relay.listen']);
  });
});

describe('value parsers', () => {
  it('parses listen addresses', () => {
    expect(parseListenAddress('[2001:db8::1]:25')).toMatchObject({ host: '2001:db8::1', port: 25 });
    expect(parseListenAddress('relay.lan:2525')).toMatchObject({ host: 'relay.lan', port: 2525 });
    expect(parseListenAddress('127.0.0.1:70000')).toBe(
      "'127.0.0.1:70000': the port must be 0-65535.",
    );
    expect(parseListenAddress('::1:25')).toMatch(/not HOST:PORT/);
  });

  it('parses durations and sizes', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration(90)).toBe(90_000);
    expect(parseDuration('1 week')).toBeUndefined();
    expect(parseSize('35MB')).toBe(35 * 1024 * 1024);
    expect(parseSize('512k')).toBe(512 * 1024);
    expect(parseSize(1000)).toBe(1000);
    expect(parseSize('-1')).toBeUndefined();
  });
});

describe('examples/relay/mailbridge.yaml', () => {
  it('is a valid relay section', async () => {
    const { readConfigFile } = await import('../../../src/config/file.js');
    const path = new URL('../../../examples/relay/mailbridge.yaml', import.meta.url).pathname;
    const settings = await readConfigFile(path);
    const relay = parseRelaySettings(settings.relay, { baseDir: '/etc/mailbridge' });
    expect(relay.listen[0]?.text).toBe('0.0.0.0:2525');
    expect(relay.policy).toHaveLength(3);
    expect(relay.http).toEqual({ host: '127.0.0.1', port: 9025 });
  });
});
