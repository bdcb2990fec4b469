/**
 * /healthz and /metrics of the proxy: degraded while no token comes, and the
 * client told the service is unavailable, not that its password is wrong.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { TokenProvider } from '../../../src/auth/token-provider.js';
import { loadConfig } from '../../../src/config/load.js';
import { NetworkError } from '../../../src/errors.js';
import { hashPassword } from '../../../src/jobs/listener/password.js';
import { parseProxySettings } from '../../../src/jobs/proxy/config.js';
import { startProxy } from '../../../src/jobs/proxy/proxy.js';

describe('proxy health', () => {
  it('says degraded on /healthz while token requests fail, and counts the login and the failure', async () => {
    const config = await loadConfig({
      env: {
        AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
        AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000002',
        AZURE_CLIENT_SECRET: 'not-a-real-secret',
      },
    });
    const failing: TokenProvider = {
      scope: config.scope,
      getToken: () =>
        Promise.reject(
          new NetworkError({
            code: 'AUTHORITY_UNREACHABLE',
            message: 'Entra ID cannot be reached',
            remedy: 'Check the network.',
          }),
        ),
    };
    const settings = parseProxySettings({
      imap: { listen: ['127.0.0.1:0'] },
      users: [
        {
          name: 'alice',
          passwordHash: await hashPassword('pw', { ln: 10, r: 8, p: 1 }),
          mailboxes: ['alice@contoso.example'],
        },
      ],
      http: '127.0.0.1:0',
    });
    const proxy = await startProxy(config, { settings, tokenProvider: failing });
    try {
      const reply = await new Promise<string>((resolve) => {
        const socket = connect(proxy.listeners[0]?.port as number, '127.0.0.1');
        let text = '';
        let sent = false;
        socket.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('* OK') && !sent) {
            socket.write('a LOGIN alice pw\r\n');
            sent = true;
          }
          const done = /\r\na (NO|OK)[^\r]*\r\n/.exec(text);
          if (done) {
            socket.destroy();
            resolve(done[0].trim());
          }
        });
      });
      expect(reply).toBe('a NO [UNAVAILABLE] The proxy cannot sign in to the mail service now');
      const base = `http://127.0.0.1:${proxy.http?.port}`;
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'degraded' });
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain('mailbridge_proxy_logins_total{outcome="token_failed"} 1');
      // The same credential metrics as the relay's (src/auth/credential-metrics.ts).
      expect(metrics).toContain(
        'mailbridge_token_failures_total{reason="AUTHORITY_UNREACHABLE"} 1',
      );
    } finally {
      await proxy.close();
    }
  });
});
