import { describe, expect, it } from 'vitest';
import {
  addressBytes,
  anyCidrContains,
  type Cidr,
  cidrContains,
  isEverywhere,
  isLoopbackAddress,
  parseCidr,
  parseIPv6,
} from '../../../src/jobs/listener/cidr.js';

const cidr = (text: string): Cidr => {
  const parsed = parseCidr(text);
  if (!parsed) throw new Error(`bad test CIDR ${text}`);
  return parsed;
};

describe('parseCidr', () => {
  it('parses IPv4 and IPv6 networks and single addresses', () => {
    expect(cidr('10.0.0.0/8')).toMatchObject({ family: 4, prefix: 104 });
    expect(cidr('192.0.2.7')).toMatchObject({ family: 4, prefix: 128 });
    expect(cidr('2001:db8::/32')).toMatchObject({ family: 6, prefix: 32 });
    expect(cidr('::1')).toMatchObject({ family: 6, prefix: 128 });
  });

  it('clears host bits', () => {
    expect(cidrContains(cidr('10.1.2.3/8'), '10.200.0.1')).toBe(true);
  });

  it.each([
    '10.0.0.0/33',
    '10.0.0/8',
    '256.0.0.1',
    '010.0.0.1',
    '10.0.0.0/08',
    '2001:db8::/129',
    '2001:db8:::1',
    '1:2:3:4:5:6:7:8:9',
    'localhost',
    '',
    '10.0.0.0/',
  ])('refuses %j', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });
});

describe('cidrContains', () => {
  it('matches IPv4 clients, also as IPv4-mapped IPv6 from a dual-stack socket', () => {
    const lan = cidr('192.168.10.0/24');
    expect(cidrContains(lan, '192.168.10.42')).toBe(true);
    expect(cidrContains(lan, '::ffff:192.168.10.42')).toBe(true);
    expect(cidrContains(lan, '::FFFF:c0a8:0a2a')).toBe(true);
    expect(cidrContains(lan, '192.168.11.1')).toBe(false);
    expect(cidrContains(cidr('127.0.0.1/32'), '::ffff:127.0.0.1')).toBe(true);
  });

  it('matches IPv6 networks and ignores a zone', () => {
    expect(cidrContains(cidr('fe80::/10'), 'fe80::1%eth0')).toBe(true);
    expect(cidrContains(cidr('2001:db8:abcd::/48'), '2001:db8:abcd:12::5')).toBe(true);
    expect(cidrContains(cidr('2001:db8:abcd::/48'), '2001:db8:abce::5')).toBe(false);
  });

  it('does not match an IPv6 network with an unrelated IPv4 address, nor garbage', () => {
    expect(cidrContains(cidr('::/96'), '10.0.0.1')).toBe(false);
    expect(cidrContains(cidr('10.0.0.0/8'), 'not-an-ip')).toBe(false);
    expect(anyCidrContains([], '10.0.0.1')).toBe(false);
  });

  it('reads the compressed forms the same', () => {
    expect(addressBytes('2001:db8::1')).toEqual(parseIPv6('2001:0db8:0:0:0:0:0:1'));
    expect(addressBytes('[::1]')).toEqual(parseIPv6('0:0:0:0:0:0:0:1'));
  });
});

describe('isLoopbackAddress / isEverywhere', () => {
  it('knows loopback in every spelling', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', 'localhost']) {
      expect(isLoopbackAddress(a)).toBe(true);
    }
    for (const a of ['0.0.0.0', '::', '10.0.0.1', 'relay.example']) {
      expect(isLoopbackAddress(a)).toBe(false);
    }
  });

  it('recognises networks that admit everyone', () => {
    expect(isEverywhere(cidr('0.0.0.0/0'))).toBe(true);
    expect(isEverywhere(cidr('::/0'))).toBe(true);
    expect(isEverywhere(cidr('::ffff:0:0/96'))).toBe(true);
    expect(isEverywhere(cidr('10.0.0.0/8'))).toBe(false);
    expect(isEverywhere(cidr('2001:db8::/32'))).toBe(false);
  });
});
