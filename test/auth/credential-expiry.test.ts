import { describe, expect, it } from 'vitest';
import {
  credentialExpiresOn,
  credentialExpiryWarning,
  daysUntil,
} from '../../src/auth/credential-expiry.js';
import { Secret } from '../../src/config/secret.js';
import type { CertificateCredential, Credential } from '../../src/config/types.js';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const DAY = 86_400_000;

function certificate(notAfter: Date): CertificateCredential {
  return {
    kind: 'certificate',
    path: '/etc/mailbridge/mailbridge.pem',
    privateKey: new Secret('not a key'),
    certificatePem: '',
    chainPem: [],
    thumbprintSha256: 'AB'.repeat(32),
    thumbprintSha1: 'CD'.repeat(20),
    subject: 'CN=mailbridge',
    notBefore: new Date(NOW.getTime() - 300 * DAY),
    notAfter,
    keyBits: 2048,
    sendCertificateChain: false,
  };
}

describe('credential expiry', () => {
  it("is a certificate's notAfter, and unknown locally for a secret or a federated credential", () => {
    const end = new Date(NOW.getTime() + 10 * DAY);
    expect(credentialExpiresOn(certificate(end))).toEqual(end);
    const secret: Credential = { kind: 'secret', clientSecret: new Secret('s') };
    expect(credentialExpiresOn(secret)).toBeUndefined();
    expect(credentialExpiresOn({ kind: 'federated', federatedTokenFile: '/t' })).toBeUndefined();
    expect(credentialExpiryWarning(secret, NOW)).toBeUndefined();
  });

  it.each([
    [10, /expires in 10 days, on 2026-12-16T12:00:00\.000Z/],
    [1, /expires in 1 day,/],
    [30, /expires in 30 days/],
    [0, /has expired/],
    [-3, /has expired/],
  ])('warns %i days ahead', (days, text) => {
    const warning = credentialExpiryWarning(certificate(new Date(NOW.getTime() + days * DAY)), NOW);
    expect(warning).toMatch(text);
    expect(warning).toContain(`thumbprint ${'CD'.repeat(20)}`);
    expect(warning).toContain('mailbridge setup cert');
  });

  it('says nothing beyond the threshold, which a caller may choose', () => {
    const in31 = certificate(new Date(NOW.getTime() + 31 * DAY));
    expect(credentialExpiryWarning(in31, NOW)).toBeUndefined();
    expect(credentialExpiryWarning(in31, NOW, 60)).toMatch(/expires in 31 days/);
    expect(daysUntil(new Date(NOW.getTime() + DAY / 2), NOW)).toBe(1);
  });
});
