/**
 * The app credential on the relay's `/metrics` and `/healthz`, against the
 * local token service and the real Postfix/Dovecot upstream: a certificate
 * that expires in 10 days shows its notAfter (and doctor warns), a secret
 * shows no end date, and failed token requests are counted by our error code
 * while `/healthz` says `degraded`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../../src/auth/token-provider.js';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { runDoctor } from '../../../src/doctor/run.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { appEnvironment } from '../../helpers/app-env.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE, SMTP_ROLE } from '../../helpers/mail-servers.js';
import { issueCertificate } from '../../helpers/pki.js';
import { startUpstream, type Upstream } from './upstream.js';

const PRINTER = 'printer@contoso.example';
const DAY = 86_400_000;
const EXPIRY = 'mailbridge_credential_expiry_timestamp_seconds';
const FAILURES = 'mailbridge_token_failures_total';

let upstream: Upstream;
let dir: string;

beforeAll(async () => {
  upstream = await startUpstream([PRINTER]);
  dir = await mkdtemp(join(tmpdir(), 'relay-credential-metrics-'));
}, 60_000);

afterAll(async () => {
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function relayWith(config: MailbridgeConfig, name: string): Promise<RelayHandle> {
  return startRelay(config, {
    settings: parseRelaySettings({
      listen: ['127.0.0.1:0'],
      spool: join(dir, `spool-${name}`),
      http: '127.0.0.1:0',
      allowNetworks: ['127.0.0.1/32'],
      policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
      retryBackoff: { initial: '200ms', max: '1s' },
    }),
    // Few, fast retries: a failure is one token request whatever its retries.
    tokenProvider: createTokenProvider(config, {
      retry: { baseDelayMs: 20, maxDelayMs: 50, maxAttempts: 2 },
    }),
  });
}

async function get(relay: RelayHandle, path: string): Promise<{ code: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${relay.http?.port}${path}`);
  return { code: response.status, text: await response.text() };
}

describe('relay /metrics: the credential', () => {
  it('shows the notAfter of a certificate that expires in 10 days, and doctor warns', async () => {
    const notAfter = new Date(Math.floor((Date.now() + 10 * DAY) / 1000) * 1000);
    const cert = issueCertificate({ commonName: 'expiring-relay', notAfter });
    const { service, servers } = upstream;
    const app = service.registerApp({
      certificates: [cert.certificatePem],
      roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] },
    });
    await servers.grantMailbox(app.clientId, PRINTER);
    const path = join(dir, 'expiring.pem');
    await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`, { mode: 0o600 });
    const { AZURE_CLIENT_SECRET: _secret, ...env } = appEnvironment(service, app, {
      imap: servers.imap,
      smtp: servers.smtp,
    });
    const config = await loadConfig({ env: { ...env, AZURE_CLIENT_CERTIFICATE_PATH: path } });
    if (config.credential.kind !== 'certificate') throw new Error('expected a certificate');
    const thumbprint = config.credential.thumbprintSha1;

    const relay = await relayWith(config, 'certificate');
    try {
      const metrics = await get(relay, '/metrics');
      expect(metrics.code).toBe(200);
      expect(metrics.text).toContain(`# TYPE ${EXPIRY} gauge`);
      expect(metrics.text).toContain(
        `${EXPIRY}{kind="certificate",thumbprint="${thumbprint}"} ${notAfter.getTime() / 1000}\n`,
      );
      expect(metrics.text).toContain(`# TYPE ${FAILURES} counter`);
      expect(metrics.text).not.toContain(`${FAILURES}{`);
    } finally {
      await relay.stop({ timeoutMs: 1000 });
    }

    const report = await runDoctor(config, { mailbox: PRINTER, imap: true });
    expect(report.ok).toBe(true);
    const warning = report.steps.find((step) => step.name === 'configuration')?.warning;
    expect(warning).toMatch(/expires in 1[01] days/);
    expect(warning).toContain(notAfter.toISOString());
  }, 60_000);

  it('has no end date for a secret, counts failed token requests by code, and /healthz is degraded', async () => {
    const relay = await (async () => {
      upstream.service.dropNext(1000);
      return relayWith(upstream.config, 'secret');
    })();
    try {
      const degraded = await get(relay, '/healthz');
      expect(degraded.code).toBe(503);
      expect(JSON.parse(degraded.text)).toMatchObject({
        status: 'degraded',
        credential: { status: 'unreachable', code: 'AUTHORITY_UNREACHABLE' },
      });
      const metrics = (await get(relay, '/metrics')).text;
      expect(metrics).not.toContain(EXPIRY);
      // The start-up check: one token request (with its retry) failed.
      expect(metrics).toContain(`${FAILURES}{reason="AUTHORITY_UNREACHABLE"} 1\n`);
    } finally {
      upstream.service.clearFaults();
      await relay.stop({ timeoutMs: 1000 });
    }
  }, 60_000);
});
