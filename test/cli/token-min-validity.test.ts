/**
 * `mailbridge token --cache FILE --min-validity MINUTES`, for senders that
 * need a token with minutes of life left (HVE wants 10 to 20): run as
 * separate processes, as mail tools start it, against the local token
 * service, which counts token requests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import { EXCHANGE_AUDIENCE, SMTP_ROLE } from '../helpers/mail-servers.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

let service: TokenService;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTokenService();
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-min-validity-'));
  env = appEnvironment(
    service,
    service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [SMTP_ROLE] } }),
  );
});

afterAll(async () => {
  await service?.close();
  await rm(dir, { recursive: true, force: true });
});

const token = (args: string[]) =>
  runCli(['token', '--show-token', ...args], env, { timeoutMs: 60_000 });

describe('token --min-validity', () => {
  it('serves a cached token with more life left than asked, and refreshes one with less', async () => {
    const cache = join(dir, 'hve.json');
    // Tokens of 20 minutes: after the first run, about 20 minutes are left in the file.
    service.setTokenLifetime(20 * 60);
    service.resetCounters();
    const first = await token(['--cache', cache]);
    expect(first.code).toBe(0);
    const enough = await token(['--cache', cache, '--min-validity', '15']);
    expect(enough.stdout).toBe(first.stdout);
    expect(service.tokenRequests).toBe(1);
    // The default margin (5 minutes) would serve it; 25 minutes asks for a new one.
    const tooShort = await token(['--cache', cache, '--min-validity', '25']);
    expect(tooShort.code).toBe(0);
    expect(tooShort.stdout).not.toBe(first.stdout);
    expect(service.tokenRequests).toBe(2);
  }, 120_000);

  it('refuses a value out of range, or without a cache (exit 2, no token request)', async () => {
    service.resetCounters();
    const cache = join(dir, 'refused.json');
    for (const value of ['0', '60', 'ten', '-5']) {
      const { code, stderr } = await token(['--cache', cache, `--min-validity=${value}`]);
      expect(code, value).toBe(2);
      expect(stderr).toContain('--min-validity takes a whole number of minutes from 1 to 59');
    }
    const uncached = await token(['--min-validity', '20']);
    expect(uncached.code).toBe(2);
    expect(uncached.stderr).toContain('--min-validity goes with --cache');
    expect(service.tokenRequests).toBe(0);
  }, 60_000);

  it('writes --min-validity into the token command of a --for snippet', async () => {
    const { code, stdout } = await runCli(
      ['token', '--for', 'msmtp', '--mailbox', 'bulk@contoso.example', '--min-validity', '20'],
      env,
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/'--cache' '[^']+' '--min-validity' '20'/);
  });
});
