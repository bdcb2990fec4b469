/**
 * Secrets, passwords, private keys, assertions and tokens must never reach
 * logs, error messages or --json output. The only real guard is to capture
 * everything a run prints, failing and succeeding, and search it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../src/auth/token-provider.js';
import { describeConfig, loadConfig } from '../../src/config/load.js';
import type { MailbridgeConfig } from '../../src/config/types.js';
import type { Logger } from '../../src/log/logger.js';
import { encryptPrivateKey, issueCertificate } from '../helpers/pki.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const SECRET = 'Leak~Canary~Secret~8f2e41c9d7b3a6';
const WRONG_SECRET = 'Leak~Canary~Wrong~Secret~5a1c9e';
const PASSWORD = 'Leak-Canary-Password-33d91f';
const WRONG_PASSWORD = 'Leak-Canary-Wrong-Password-17ab';
/** Any JWT: access tokens and client assertions alike. */
const JWT = /eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]{10,}/;

let service: TokenService;
let dir: string;
let keyLines: string[];
let secretEnv: Record<string, string>;
let certEnv: Record<string, string>;

beforeAll(async () => {
  service = await startTokenService();
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-leak-'));
  const secretApp = service.registerApp({ secrets: [{ value: SECRET }] });
  secretEnv = {
    AZURE_TENANT_ID: secretApp.tenantId,
    AZURE_CLIENT_ID: secretApp.clientId,
    AZURE_CLIENT_SECRET: SECRET,
    AZURE_AUTHORITY_HOST: service.url,
  };
  const cert = issueCertificate({ commonName: 'leak-test' });
  const certApp = service.registerApp({ certificates: [cert.certificatePem] });
  const path = join(dir, 'encrypted.pem');
  await writeFile(
    path,
    `${encryptPrivateKey(cert.keys.privateKeyPem, PASSWORD)}${cert.certificatePem}`,
  );
  certEnv = {
    AZURE_TENANT_ID: certApp.tenantId,
    AZURE_CLIENT_ID: certApp.clientId,
    AZURE_CLIENT_CERTIFICATE_PATH: path,
    AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD,
    AZURE_AUTHORITY_HOST: service.url,
  };
  // Any full line of the key's base64 body is a leak.
  keyLines = cert.keys.privateKeyPem
    .split('\n')
    .filter((line) => line.length > 40 && !line.startsWith('-----'));
});

afterAll(async () => {
  await service.close();
  await rm(dir, { recursive: true, force: true });
});

function expectClean(text: string, label: string): void {
  for (const canary of [SECRET, WRONG_SECRET, PASSWORD, WRONG_PASSWORD, ...keyLines]) {
    expect(text.includes(canary), `${label} contains a secret`).toBe(false);
  }
  expect(JWT.test(text), `${label} contains a JWT`).toBe(false);
}

describe('the CLI prints no secret, failing or succeeding', () => {
  const cases: [string, () => Record<string, string>, string[], () => void][] = [
    ['success', () => secretEnv, [], () => {}],
    ['success --json', () => secretEnv, ['--json'], () => {}],
    ['certificate success', () => certEnv, [], () => {}],
    ['wrong secret', () => ({ ...secretEnv, AZURE_CLIENT_SECRET: WRONG_SECRET }), [], () => {}],
    [
      'wrong secret --json',
      () => ({ ...secretEnv, AZURE_CLIENT_SECRET: WRONG_SECRET }),
      ['--json'],
      () => {},
    ],
    [
      'wrong password',
      () => ({ ...certEnv, AZURE_CLIENT_CERTIFICATE_PASSWORD: WRONG_PASSWORD }),
      [],
      () => {},
    ],
    ['two credentials', () => ({ ...certEnv, AZURE_CLIENT_SECRET: SECRET }), ['--json'], () => {}],
    ['secret pasted as client id', () => ({ ...secretEnv, AZURE_CLIENT_ID: SECRET }), [], () => {}],
    ['secret pasted as tenant', () => ({ ...secretEnv, AZURE_TENANT_ID: SECRET }), [], () => {}],
    ['Entra unavailable', () => secretEnv, [], () => service.failNext(20, { status: 503 })],
  ];

  it.each(cases)(
    '%s (with --debug)',
    async (label, env, extra, arrange) => {
      service.clearFaults();
      arrange();
      const result = await runCli(['token', '--debug', ...extra], env(), { timeoutMs: 60_000 });
      service.clearFaults();
      expectClean(result.stdout + result.stderr, label);
    },
    60_000,
  );
});

describe('the guard itself', () => {
  it('sees a token when one is printed on purpose, and sees the debug log', async () => {
    const shown = await runCli(['token', '--show-token', '--debug'], secretEnv);
    expect(JWT.test(shown.stdout)).toBe(true);
    expect(shown.stderr).toContain('mailbridge: debug: token acquired');
  });
});

describe('the library logs and throws no secret', () => {
  function capture(): { logger: Logger; lines: string[] } {
    const lines: string[] = [];
    return {
      lines,
      logger: {
        log: (level, message, fields) =>
          lines.push(`${level} ${message} ${JSON.stringify(fields)}`),
      },
    };
  }

  async function everything(config: MailbridgeConfig, arrange = () => {}): Promise<string> {
    const { logger, lines } = capture();
    const out: string[] = [
      inspect(config, { depth: 10 }),
      JSON.stringify(config),
      JSON.stringify(describeConfig(config)),
    ];
    arrange();
    try {
      await createTokenProvider(config, {
        logger,
        retry: { baseDelayMs: 10, maxAttempts: 3 },
      }).getToken();
    } catch (error) {
      out.push(String(error), JSON.stringify(error), inspect(error, { depth: 10 }));
    } finally {
      service.clearFaults();
    }
    return [...out, ...lines].join('\n');
  }

  it('with a secret, right and wrong', async () => {
    expectClean(await everything(await loadConfig({ env: secretEnv })), 'right secret');
    expectClean(
      await everything(
        await loadConfig({ env: { ...secretEnv, AZURE_CLIENT_SECRET: WRONG_SECRET } }),
      ),
      'wrong secret',
    );
  });

  it('with an encrypted certificate key, and with Entra failing', async () => {
    const config = await loadConfig({ env: certEnv });
    expectClean(await everything(config), 'certificate');
    expectClean(await everything(config, () => service.failNext(5, { status: 503 })), '503');
  });

  it('in configuration errors', async () => {
    for (const env of [
      { ...certEnv, AZURE_CLIENT_CERTIFICATE_PASSWORD: WRONG_PASSWORD },
      { ...certEnv, AZURE_CLIENT_SECRET: SECRET },
      { ...secretEnv, AZURE_CLIENT_ID: SECRET, AZURE_TENANT_ID: WRONG_SECRET },
    ]) {
      const error = await loadConfig({ env }).catch((e: unknown) => e);
      expectClean(
        `${String(error)}\n${JSON.stringify(error)}\n${inspect(error, { depth: 10 })}`,
        'config error',
      );
    }
  });
});
