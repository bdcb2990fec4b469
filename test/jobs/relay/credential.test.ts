/**
 * The relay's app credential, against the local token service and the real
 * Postfix/Dovecot upstream: a secret Entra refuses stops the relay at
 * start-up (the real `mailbridge relay` process, exit 3); an unreachable
 * Entra only degrades it; a credential refused at run time shows as our
 * diagnosis, in `/healthz` (503) and as 451 to new mail; and senders that are
 * no mailbox (sender-as-mailbox rules, 535 from Postfix through Dovecot SASL)
 * end as dead letters with the diagnosis after at most one forced refresh.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { appEnvironment } from '../../helpers/app-env.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE, SMTP_ROLE } from '../../helpers/mail-servers.js';
import { CLI_PATH, cliEnv, requireBuilt } from '../../helpers/run-cli.js';
import { DEFAULT_TOKEN_LIFETIME_SECONDS } from '../../helpers/token-service.js';
import { openSmtp } from './smtp-dialog.js';
import { collectText, startUpstream, type Upstream } from './upstream.js';

const PRINTER = 'printer@contoso.example';
const RECIPIENT = 'desk@contoso.example';

let upstream: Upstream;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  upstream = await startUpstream([PRINTER, RECIPIENT]);
  dir = await mkdtemp(join(tmpdir(), 'relay-credential-'));
}, 60_000);

afterAll(async () => {
  // A relay a failing test left running must not outlive the run.
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `mailbridge relay --config FILE` as a child process, with `env` on top of the upstream's. */
async function runRelay(name: string, env: Record<string, string>) {
  const configFile = join(dir, `${name}.json`);
  await writeFile(
    configFile,
    JSON.stringify({
      relay: {
        listen: ['127.0.0.1:0'],
        spool: `spool-${name}`,
        http: '127.0.0.1:0',
        allowNetworks: ['127.0.0.1/32'],
        policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
        retryBackoff: { initial: '200ms', max: '1s' },
      },
    }),
  );
  const child = spawn(process.execPath, [requireBuilt(CLI_PATH), 'relay', '--config', configFile], {
    env: cliEnv({ ...upstream.env, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const events = () =>
    stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    exited,
    stderr: () => stderr,
    events,
    async started(timeoutMs = 30_000): Promise<Record<string, unknown>> {
      const found = await eventually(
        () => events().find((e) => e.event === 'started'),
        timeoutMs,
        () => `no started event; stdout:\n${stdout}\nstderr:\n${stderr}`,
      );
      return found;
    },
  };
}

async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function healthz(port: number): Promise<{ code: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { code: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('at start-up', () => {
  it('refuses to start with exit 3 and the Entra diagnosis when the secret is wrong', async () => {
    const relay = await runRelay('wrong-secret', { AZURE_CLIENT_SECRET: 'not-the-secret' });
    const timeout = new Promise<'running'>((r) => setTimeout(() => r('running'), 25_000));
    const code = await Promise.race([relay.exited, timeout]);
    if (code === 'running') relay.child.kill('SIGKILL');
    expect(code, relay.stderr()).toBe(3);
    expect(relay.stderr()).toContain('SECRET_INVALID');
    expect(relay.stderr()).toContain('AADSTS7000215');
    expect(relay.stderr()).not.toContain('not-the-secret');
    expect(relay.events().map((e) => e.event)).not.toContain('started');
    expect(relay.events()).toContainEqual(
      expect.objectContaining({ event: 'start-failed', code: 'SECRET_INVALID' }),
    );
  }, 40_000);

  it('starts degraded (503) while Entra is unreachable and turns ok when it answers', async () => {
    upstream.service.dropNext(1000);
    try {
      const relay = await runRelay('unreachable', {});
      const started = await relay.started(60_000);
      expect(started.credential).toBe('unreachable');
      const port = Number(/:(\d+)$/.exec(String(started.http))?.[1]);
      const degraded = await healthz(port);
      expect(degraded.code).toBe(503);
      expect(degraded.body).toMatchObject({
        status: 'degraded',
        credential: { status: 'unreachable', code: 'AUTHORITY_UNREACHABLE' },
      });
      upstream.service.clearFaults();
      const ok = await eventually(
        async () => {
          const h = await healthz(port);
          return h.code === 200 ? h : undefined;
        },
        30_000,
        () => 'healthz never turned ok',
      );
      expect(ok.body).toMatchObject({ status: 'ok', credential: { status: 'ok' } });
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    } finally {
      upstream.service.clearFaults();
    }
  }, 90_000);
});

describe('at run time', () => {
  it('a credential refused later: our code on the deferred message, /healthz 503, 451 to new mail', async () => {
    const { service, servers } = upstream;
    const expiresAt = new Date(Date.now() + 6000);
    const app = service.registerApp({
      secrets: [{ value: 'expiring-secret-value', expiresAt }],
      roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] },
    });
    await servers.grantMailbox(app.clientId, PRINTER);
    const config = await loadConfig({
      env: appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp }),
    });
    // Short-lived tokens, so that the relay needs a new one soon after the secret expires.
    service.setTokenLifetime(4);
    const output = collectText();
    let relay: RelayHandle | undefined;
    try {
      relay = await startRelay(config, {
        settings: parseRelaySettings({
          listen: ['127.0.0.1:0'],
          spool: join(dir, 'spool-expiring'),
          http: '127.0.0.1:0',
          allowNetworks: ['127.0.0.1/32'],
          policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
          retryBackoff: { initial: '200ms', max: '1s' },
          rateLimitPerMinute: false,
        }),
        logger: createJsonLogger(output.stream),
      });
      const port = relay.listeners[0]?.port as number;
      const httpPort = relay.http?.port as number;
      expect((await healthz(httpPort)).code).toBe(200);
      // Past the secret's expiry by more than a token's life (4 s, its exp rounded up
      // to the whole second by the token service): the relay's token is gone by then.
      await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() + 6000));

      const client = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
      const info = await client.sendMail({
        from: PRINTER,
        to: RECIPIENT,
        subject: 'after the secret expired',
        text: 'x',
      });
      client.close();
      expect(info.response).toMatch(/^250 /);
      const queued = await eventually(
        async () => (await relay?.spool.listQueue())?.find((e) => e.lastError),
        15_000,
        () => output.text(),
      );
      expect(queued.lastError?.code).toBe('SECRET_EXPIRED');
      // The spool records the deferral before the log line about it is written.
      await eventually(
        () => /"event":"deferred".*"code":"SECRET_EXPIRED"/.test(output.text()) || undefined,
        5_000,
        () => output.text(),
      );
      expect(output.text()).not.toContain('"code":"EAUTH"');

      const health = await healthz(httpPort);
      expect(health.code).toBe(503);
      expect(health.body).toMatchObject({
        status: 'degraded',
        credential: { status: 'refused', code: 'SECRET_EXPIRED' },
      });

      const smtp = await openSmtp(port);
      await smtp.send('EHLO device.lan');
      expect(await smtp.send(`MAIL FROM:<${PRINTER}>`)).toBe(
        '451 4.3.2 The relay cannot submit mail upstream now, try again later',
      );
      await smtp.send('QUIT');
      smtp.close();
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      expect(metrics).toContain('mailbridge_relay_refused_total{reason="credential"} 1');
      expect(output.text()).not.toContain('expiring-secret-value');
    } finally {
      service.setTokenLifetime(DEFAULT_TOKEN_LIFETIME_SECONDS);
      await relay?.stop({ timeoutMs: 1000 });
    }
  }, 60_000);

  it('nonexistent senders as mailboxes (535): dead letters with the diagnosis, one forced refresh at most', async () => {
    const output = collectText();
    const relay = await startRelay(upstream.config, {
      settings: parseRelaySettings({
        listen: ['127.0.0.1:0'],
        spool: join(dir, 'spool-ghosts'),
        allowNetworks: ['127.0.0.1/32'],
        // No mailbox: each sender signs in as itself.
        policy: [{ network: '127.0.0.1/32', senders: ['*@contoso.example'] }],
        retryBackoff: { initial: '200ms', max: '1s' },
        rateLimitPerMinute: false,
      }),
      logger: createJsonLogger(output.stream),
    });
    try {
      const before = upstream.service.tokenRequests;
      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port: relay.listeners[0]?.port,
        ignoreTLS: true,
        pool: true,
        maxConnections: 4,
      });
      const GHOSTS = 30;
      const sends = Array.from({ length: GHOSTS }, (_, i) =>
        client.sendMail({
          from: `ghost-${i}@contoso.example`,
          to: RECIPIENT,
          subject: `ghost ${i}`,
          text: 'x',
        }),
      );
      const realId = `<real-${Date.now()}@printer.lan>`;
      sends.push(
        client.sendMail({
          from: PRINTER,
          to: RECIPIENT,
          subject: 'real',
          text: 'x',
          messageId: realId,
        }),
      );
      for (const info of await Promise.all(sends)) expect(info.response).toMatch(/^250 /);
      client.close();

      const dead = await eventually(
        async () => {
          const list = await relay.spool.listDead();
          return list.length >= GHOSTS ? list : undefined;
        },
        20_000,
        () =>
          `dead letters missing after ${upstream.service.tokenRequests - before} token requests; log:\n${output.text().slice(-2000)}`,
      );
      // Counted before reading the mailbox: the IMAP reader asks for tokens of its own.
      const requests = upstream.service.tokenRequests - before;
      await upstream.waitForMessage(RECIPIENT, realId);
      expect(relay.queueDepth()).toBe(0);
      expect(dead.map((e) => e.from).sort()).toEqual(
        Array.from({ length: GHOSTS }, (_, i) => `ghost-${i}@contoso.example`).sort(),
      );
      const reason = await readFile(
        relay.spool.deadPath(dead[0]?.id as string, 'reason.txt'),
        'utf8',
      );
      expect(reason).toMatch(/SMTP_AUTH_FAILED: 535 /);
      expect(reason).toContain('its login was refused with a fresh token');
      // On main: a forced refresh per message per attempt (40-45 in 20 s). Here: one in all.
      expect(requests).toBeLessThanOrEqual(1);
    } finally {
      await relay.stop({ timeoutMs: 1000 });
    }
  }, 60_000);
});
