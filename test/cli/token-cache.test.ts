/**
 * `mailbridge token --cache FILE`: runs as separate processes, as mail tools
 * start it, against the local token service, which counts token requests.
 */
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE } from '../helpers/mail-servers.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

let service: TokenService;
let dir: string;
let env: Record<string, string>;
let clientId: string;
let n = 0;
/** A cache file the first test's runs wrote, for the refusals to start from. */
let written: string;

beforeAll(async () => {
  service = await startTokenService();
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-token-cache-'));
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  clientId = app.clientId;
  env = appEnvironment(service, app);
});

afterAll(async () => {
  await service?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  service.resetCounters();
});

/** A new cache file path for each test. */
const newCache = () => join(dir, `cache-${++n}`, 'token.json');

const showToken = (cache: string, extraEnv: Record<string, string> = {}) =>
  runCli(
    ['token', '--show-token', '--cache', cache],
    { ...env, ...extraEnv },
    { timeoutMs: 120_000 },
  );

/** `count` runs one after another share one token request; the file they share is private and holds no secret. */
async function runsInARow(count: number): Promise<string> {
  const cache = newCache();
  const tokens = new Set<string>();
  for (let i = 0; i < count; i++) {
    const { code, stdout, stderr } = await showToken(cache);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    tokens.add(stdout.trim());
  }
  expect(service.tokenRequests).toBe(1);
  expect(tokens.size).toBe(1);
  const [token] = tokens;
  expect(service.verifyAccessToken(token ?? '').appid).toBe(clientId);
  expect((await stat(cache)).mode & 0o777).toBe(0o600);
  expect((await stat(join(cache, '..'))).mode & 0o777).toBe(0o700);
  const record = JSON.parse(await readFile(cache, 'utf8')) as Record<string, unknown>;
  expect(Object.keys(record).sort()).toEqual([
    'accessToken',
    'authority',
    'clientId',
    'expiresOn',
    'scope',
    'version',
  ]);
  expect(JSON.stringify(record)).not.toContain(env.AZURE_CLIENT_SECRET);
  return cache;
}

/** `count` processes started at once still make one token request between them. */
async function startedTogether(count: number): Promise<void> {
  const cache = newCache();
  const runs = await Promise.all(Array.from({ length: count }, () => showToken(cache)));
  expect(runs.map((run) => run.code)).toEqual(Array(count).fill(0));
  expect(new Set(runs.map((run) => run.stdout.trim())).size).toBe(1);
  expect(service.tokenRequests).toBe(1);
}

describe('token --cache', () => {
  it('2 runs in a row make one token request and print the same token; the file is 0600 and holds no secret', async () => {
    written = await runsInARow(2);
  });

  // Many processes on purpose (20 in a row, 20 at once): the soak tier.
  it('20 runs in a row make one token request', { tags: ['soak'], timeout: 300_000 }, () =>
    runsInARow(20),
  );

  it('3 processes started together make one token request', () => startedTogether(3));

  it(
    '20 processes started together make one token request',
    { tags: ['soak'], timeout: 300_000 },
    () => startedTogether(20),
  );

  it('takes the file from MAILBRIDGE_TOKEN_CACHE', async () => {
    const cache = newCache();
    const run = () =>
      runCli(['token', '--json'], { ...env, MAILBRIDGE_TOKEN_CACHE: cache }, { timeoutMs: 60_000 });
    expect((await run()).code).toBe(0);
    expect((await run()).code).toBe(0);
    expect(service.tokenRequests).toBe(1);
    expect((await stat(cache)).isFile()).toBe(true);
  }, 120_000);

  it('asks again when the cached token has 5 minutes or less left, or is for another app', async () => {
    const cache = newCache();
    service.setTokenLifetime(200);
    expect((await showToken(cache)).code).toBe(0);
    expect((await showToken(cache)).code).toBe(0);
    expect(service.tokenRequests).toBe(2);
    service.setTokenLifetime(3600);
    const other = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const { stdout } = await showToken(cache, {
      AZURE_CLIENT_ID: other.clientId,
      AZURE_CLIENT_SECRET: other.secret ?? '',
    });
    expect(service.verifyAccessToken(stdout.trim()).appid).toBe(other.clientId);
    expect(service.tokenRequests).toBe(3);
  }, 120_000);

  it('refuses a file group or others can read, with exit 2 and no token request', async () => {
    // A copy of a cache file a run wrote, then made readable by the group.
    const cache = newCache();
    await mkdir(join(cache, '..'), { mode: 0o700 });
    await copyFile(written, cache);
    await chmod(cache, 0o640);
    const { code, stdout, stderr } = await showToken(cache);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('TOKEN_CACHE_INSECURE');
    expect(stderr).toContain('mode 0640');
    expect(stderr).toContain(`chmod 600 ${cache}`);
    expect(stderr).not.toMatch(/eyJ[\w-]+\./);
    expect(service.tokenRequests).toBe(0);
  }, 60_000);

  it('refuses a symbolic link and a folder it cannot create', async () => {
    const link = join(dir, 'link.json');
    await symlink(written, link);
    const linked = await showToken(link);
    expect(linked.code).toBe(2);
    expect(linked.stderr).toContain('TOKEN_CACHE_INSECURE');
    expect(linked.stderr).toContain('is a symbolic link');
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, '');
    const unusable = await showToken(join(blocker, 'token.json'));
    expect(unusable.code).toBe(2);
    expect(unusable.stderr).toContain('TOKEN_CACHE_UNUSABLE');
  }, 60_000);
});
