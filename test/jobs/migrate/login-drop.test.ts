/**
 * A connection cut while it logs in (before the server's greeting) is a
 * dropped connection like any other: the session connects again and the
 * migration goes on. Found by the fault soak: a drop that hit one of the
 * frequent reconnections (short tokens) ended the whole run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import { issueServerCertificate } from '../../helpers/pki.js';
import { loadTestCa } from '../../helpers/test-ca.js';
import {
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  seedMessages,
  seedSource,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'grace@contoso.example';

/** A TLS front of Dovecot that closes its first `cut` connections right after the handshake. */
async function cutFirstConnections(
  upstream: { host: string; port: number },
  cut: number,
): Promise<{ server: Server; port: number; accepted: () => number }> {
  const certificate = issueServerCertificate(loadTestCa());
  let accepted = 0;
  const server = createServer(
    { key: certificate.keys.privateKeyPem, cert: certificate.certificatePem },
    (client) => {
      accepted++;
      client.on('error', () => {});
      if (accepted <= cut) {
        client.destroy();
        return;
      }
      const server = tlsConnect({ host: upstream.host, port: upstream.port });
      server.on('error', () => client.destroy());
      client.on('close', () => server.destroy());
      server.on('close', () => client.destroy());
      client.pipe(server).pipe(client);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, accepted: () => accepted };
}

describe('migrate: a connection cut during login', () => {
  let env: MigrateTestEnv;
  let work: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-login-drop-'));
    await seedSource(env, seedMessages(['INBOX'], 20));
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  /** Migrates with one side (`through`) behind a front that cuts its first connection. */
  const migrateThroughCut = async (through: 'from' | 'to', stateDir: string) => {
    const front = await cutFirstConnections(env.servers.imap, 1);
    try {
      const result = await migrateMailbox({
        from:
          through === 'from'
            ? env.sourceUrl.replace(`:${env.servers.imap.port}`, `:${front.port}`)
            : env.sourceUrl,
        to: `m365:${DEST}`,
        toConfig:
          through === 'to'
            ? { ...env.config, imap: { host: '127.0.0.1', port: front.port } }
            : env.config,
        fromPassword: SOURCE_PASSWORD,
        stateDir: join(work, stateDir),
        connections: 1,
      });
      // The cut one and the session's next; the destination also opens its APPEND lane.
      expect(front.accepted()).toBe(through === 'to' ? 3 : 2);
      return result;
    } finally {
      await new Promise((resolve) => front.server.close(resolve));
    }
  };

  it('connects again and copies everything', async () => {
    expect(await migrateThroughCut('to', 'state')).toMatchObject({
      ok: true,
      copied: 20,
      skipped: 0,
    });
    expect(await snapshotOf(() => env.m365(DEST), ['INBOX'])).toEqual(
      expected(await snapshotOf(env.source, ['INBOX']), { INBOX: 'INBOX' }),
    );
  });

  it('connects again on the password side too', async () => {
    // Everything is there already: found by identity, nothing copied twice.
    expect(await migrateThroughCut('from', 'password-side')).toMatchObject({
      ok: true,
      copied: 0,
      alreadyPresent: 20,
    });
  });
});
