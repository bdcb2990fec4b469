/**
 * Answers no real Entra gives (an endless body, a proxy's HTML page, a
 * numeric access_token), through the real request path: each gets its own
 * code and exit code 4 (a broken or foreign service), never INTERNAL.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';
import { tokenError } from './token-error.js';

const EXCHANGE = 'https://outlook.office365.com';
/** The child writes its peak RSS (KiB) on its way out: `maxrss=123456`. */
const REPORT_MAX_RSS =
  "--import=data:text/javascript,process.on('exit',()=>process.stderr.write('maxrss='+process.resourceUsage().maxRSS+'\\n'))";

let service: TokenService;

beforeAll(async () => {
  service = await startTokenService();
});
afterAll(async () => {
  await service.close();
});
beforeEach(() => {
  service.clearFaults();
});

/** An app in a tenant of its own: msal-node keeps each authority's metadata for the process. */
function freshApp(): Record<string, string> {
  const app = service.registerApp({
    tenantId: randomUUID(),
    roles: { [EXCHANGE]: ['IMAP.AccessAsApp'] },
  });
  return appEnvironment(service, app);
}

describe('an answer without end', () => {
  it('stops reading a token answer at 1 MiB and says so, with exit 4; the process stays small', async () => {
    service.answerNext(1, { kind: 'endless' });
    const { code, stderr } = await runCli(['token'], {
      ...freshApp(),
      NODE_OPTIONS: REPORT_MAX_RSS,
    });
    expect(code).toBe(4);
    expect(stderr).toContain('error AUTHORITY_RESPONSE_TOO_LARGE');
    expect(stderr).toContain('longer than 1 MiB');
    expect(stderr).not.toContain('could not be reached');
    const maxRssKiB = Number(/maxrss=(\d+)/.exec(stderr)?.[1]);
    // Node's own footprint is 50-90 MB here; before the bound this answer took gigabytes.
    expect(maxRssKiB).toBeGreaterThan(0);
    expect(maxRssKiB).toBeLessThan(200 * 1024);
  });

  it('bounds the OpenID metadata request too, without retrying it', async () => {
    const env = freshApp();
    service.answerNext(3, { kind: 'endless' }, 'metadata');
    const before = service.metadataRequests;
    const error = await tokenError(env);
    expect(error.code).toBe('AUTHORITY_RESPONSE_TOO_LARGE');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('/v2.0/.well-known/openid-configuration');
    expect(service.metadataRequests - before).toBe(1);
  });
});

describe('an answer that is not JSON', () => {
  it("names it, exit 4, quoting a proxy's page only with its escapes made visible", async () => {
    service.answerNext(1, {
      kind: 'body',
      status: 200,
      body: '<html><title>Proxy\x1b]0;owned\x07 login</title>\n<body>Sign in to the proxy</body></html>',
    });
    const { code, stdout, stderr } = await runCli(['token'], freshApp());
    expect(code).toBe(4);
    expect(stderr).toContain('error AUTHORITY_ANSWER_NOT_JSON');
    expect(stderr).toContain('HTTP 200');
    expect(stderr).toContain('Proxy\\x1b]0;owned\\x07 login');
    expect(stdout + stderr).not.toContain('\x1b');
    expect(stdout + stderr).not.toContain('\x07');
  });

  it('a 403 page from something in between is not an authentication failure', async () => {
    service.answerNext(1, { kind: 'body', status: 403, body: '<h1>Forbidden</h1>' });
    const error = await tokenError(freshApp());
    expect(error.code).toBe('AUTHORITY_ANSWER_NOT_JSON');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('HTTP 403');
  });
});

describe('a token answer of the wrong shape', () => {
  it('access_token: 123 is TOKEN_RESPONSE_INVALID with exit 4, not an internal error', async () => {
    service.answerNext(1, {
      kind: 'body',
      contentType: 'application/json',
      body: JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: 123 }),
    });
    const { code, stderr } = await runCli(['token'], freshApp());
    expect(stderr).toContain('error TOKEN_RESPONSE_INVALID');
    expect(stderr).toContain('access_token is a number, not a string');
    expect(stderr).not.toContain('internal error');
    expect(code).toBe(4);
  });

  it('a token answer without expires_in is refused the same way', async () => {
    service.answerNext(1, {
      kind: 'body',
      contentType: 'application/json',
      body: JSON.stringify({ token_type: 'Bearer', access_token: 'a.b.c' }),
    });
    const error = await tokenError(freshApp());
    expect(error.code).toBe('TOKEN_RESPONSE_INVALID');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('expires_in');
  });
});
