/**
 * `mailbridge credentials check [--graph]`, run as a child process against the
 * local token service, which also answers Microsoft Graph's
 * `GET /v1.0/applications(appId='…')` for the apps it knows.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import { issueCertificate } from '../helpers/pki.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const GRAPH = 'https://graph.microsoft.com';
const DAY = 86_400_000;

interface Listing {
  appId: string;
  within: number;
  expiring: number;
  credentials: {
    source: string;
    kind: string;
    endsOn?: string;
    daysLeft?: number;
    expiring: boolean;
    inUse: boolean;
    thumbprint?: string;
    hint?: string;
  }[];
}

let service: TokenService;
let dir: string;

beforeAll(async () => {
  service = await startTokenService();
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-credentials-'));
});

afterAll(async () => {
  await service?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('credentials check --graph', () => {
  const soon = new Date(Date.now() + 10 * DAY);
  const later = new Date(Date.now() + 400 * DAY);
  let env: Record<string, string>;

  beforeAll(() => {
    const app = service.registerApp({
      secrets: [
        { value: 'abcSecretThatEndsSoon0000000000000000000', expiresAt: soon },
        { value: 'xyzSecretThatEndsLater00000000000000000', expiresAt: later },
      ],
      roles: { [GRAPH]: ['Application.Read.All'] },
    });
    env = appEnvironment(service, app);
  });

  it('lists every secret with its end date and exits 1 when one ends within 30 days', async () => {
    const { code, stdout } = await runCli(
      ['credentials', 'check', '--graph', '--graph-url', service.url, '--json'],
      env,
    );
    const listing = JSON.parse(stdout) as Listing;
    expect(code).toBe(1);
    expect(listing.within).toBe(30);
    expect(listing.expiring).toBe(1);
    const graph = listing.credentials.filter((c) => c.source === 'graph');
    expect(graph.map((c) => [c.kind, c.hint, c.expiring])).toEqual([
      ['secret', 'abc', true],
      ['secret', 'xyz', false],
    ]);
    expect(new Date(graph[0]?.endsOn ?? '').getTime()).toBe(
      Math.floor(soon.getTime() / 1000) * 1000,
    );
    // The configured secret: its end date is Entra's to know.
    const local = listing.credentials.find((c) => c.source === 'local');
    expect(local).toMatchObject({ kind: 'secret', expiring: false, inUse: true });
    expect(local).not.toHaveProperty('endsOn');
  });

  it('exits 0 when nothing ends within --within days, and says so in text', async () => {
    const { code, stdout } = await runCli(
      ['credentials', 'check', '--graph', '--graph-url', service.url, '--within', '5'],
      env,
    );
    expect(stdout).toMatch(
      /\[ok\] {3}in Entra ID secret "secret 1" hint abc\.\.\.: ends .* \(in 1[01] days\)/,
    );
    expect(stdout).toContain('Result: nothing ends within 5 days');
    expect(code).toBe(0);
  });

  it('says what to grant when Graph refuses (403), and exits 3', async () => {
    const app = service.registerApp({});
    const { code, stderr } = await runCli(
      ['credentials', 'check', '--graph', '--graph-url', service.url],
      appEnvironment(service, app),
    );
    expect(code).toBe(3);
    expect(stderr).toContain('GRAPH_FORBIDDEN');
    expect(stderr).toContain('Authorization_RequestDenied');
    expect(stderr).toContain('Application.Read.All');
  });

  it('names an unreachable Graph (exit 4) and refuses a Graph URL that is not https (exit 2)', async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const unreachable = await runCli(
      ['credentials', 'check', '--graph', '--graph-url', `https://127.0.0.1:${closed}`],
      env,
    );
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toContain('GRAPH_UNREACHABLE');
    const plain = await runCli(
      ['credentials', 'check', '--graph', '--graph-url', service.url.replace('https:', 'http:')],
      env,
    );
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('--graph-url must be an https URL');
  });
});

describe('credentials check with a certificate credential', () => {
  it('knows its end date without Graph, and Graph marks the same certificate as the one in use', async () => {
    const notAfter = new Date(Math.floor((Date.now() + 10 * DAY) / 1000) * 1000);
    const cert = issueCertificate({ commonName: 'mailbridge expiring', notAfter });
    const other = issueCertificate({ commonName: 'mailbridge next' });
    const app = service.registerApp({
      certificates: [cert.certificatePem, other.certificatePem],
      roles: { [GRAPH]: ['Application.Read.All'] },
    });
    const path = join(dir, 'expiring.pem');
    await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`, { mode: 0o600 });
    const { AZURE_CLIENT_SECRET: _unused, ...rest } = appEnvironment(service, app);
    const env = { ...rest, AZURE_CLIENT_CERTIFICATE_PATH: path };

    const local = await runCli(['credentials', 'check', '--json'], env);
    expect(local.code).toBe(1);
    const [configured] = (JSON.parse(local.stdout) as Listing).credentials;
    expect(configured).toMatchObject({
      source: 'local',
      kind: 'certificate',
      endsOn: notAfter.toISOString(),
      expiring: true,
    });

    const graph = await runCli(
      ['credentials', 'check', '--graph', '--graph-url', service.url, '--json'],
      env,
    );
    const listing = JSON.parse(graph.stdout) as Listing;
    const inEntra = listing.credentials.filter((c) => c.source === 'graph');
    expect(inEntra).toHaveLength(2);
    expect(inEntra.filter((c) => c.inUse).map((c) => c.thumbprint)).toEqual([
      configured?.thumbprint,
    ]);
    expect(inEntra.map((c) => c.expiring)).toEqual([true, false]);
    expect(graph.code).toBe(1);
  });
});
