/**
 * `migrate.fromTokenCommand` / `toTokenCommand`: an imaps:// endpoint that
 * logs in with XOAUTH2 and the token a user's command prints, against the
 * real Dovecot harness (its XOAUTH2 check asks the token service). The
 * command here is a script of the kind a user writes for their provider
 * (for Gmail, `oauth2l fetch …` or their own): it asks the token service for
 * a client-credentials token over HTTPS in one Node process (`mailbridge
 * token` in a second one cost a CLI start per login) and counts its runs. Failing commands, silent ones and refused tokens each say
 * what happened; the token is never in a log line or an error.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailbridgeError } from '../../../src/errors.js';
import { readMigrateSection } from '../../../src/jobs/migrate/config-section.js';
import { migrateMailbox } from '../../../src/jobs/migrate/index.js';
import type { Logger } from '../../../src/log/logger.js';
import { EXCHANGE_AUDIENCE } from '../../helpers/mail-servers.js';
import { cliEnv, runCli } from '../../helpers/run-cli.js';
import {
  expected,
  type MigrateTestEnv,
  seedMessages,
  seedWith,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const SOURCE = 'gina@contoso.example';
const DEST = 'hugo@contoso.example';
const CLI_DEST = 'ida@contoso.example';
const FOLDERS = ['INBOX', 'Projekte/2024', 'Ünïcödé'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));
const MESSAGES = 60;

describe('migrate with an OAuth token from a command', () => {
  let env: MigrateTestEnv;
  let work: string;
  let counter: string;
  /** Prints a token from the harness's token service, counting its runs in `counter`. */
  let tokenCommand: string[];
  let sourceUrl: string;

  beforeAll(async () => {
    env = await startMigrateTestEnv([SOURCE, DEST, CLI_DEST], { faultProxy: true });
    work = await mkdtemp(join(tmpdir(), 'mailbridge-token-command-'));
    counter = join(work, 'runs');
    const script = join(work, 'print-token.cjs');
    await writeFile(
      script,
      [
        "const { appendFileSync } = require('node:fs');",
        "const { request } = require('node:https');",
        `appendFileSync(${JSON.stringify(counter)}, 'x');`,
        'const form = new URLSearchParams({',
        "  grant_type: 'client_credentials',",
        '  client_id: process.env.AZURE_CLIENT_ID,',
        '  client_secret: process.env.AZURE_CLIENT_SECRET,',
        `  scope: ${JSON.stringify(`${EXCHANGE_AUDIENCE}/.default`)},`,
        '}).toString();',
        `const req = request(${JSON.stringify(env.service.tokenEndpoint())}, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {`,
        "  let body = '';",
        "  res.setEncoding('utf8').on('data', (chunk) => { body += chunk; });",
        "  res.on('end', () => {",
        '    const token = res.statusCode === 200 ? JSON.parse(body).access_token : undefined;',
        "    if (token) process.stdout.write(token + '\\n');",
        "    else { process.stderr.write('token service: HTTP ' + res.statusCode + '\\n'); process.exitCode = 1; }",
        '  });',
        '});',
        "req.on('error', (error) => { process.stderr.write(error.message + '\\n'); process.exitCode = 1; });",
        'req.end(form);',
      ].join('\n'),
    );
    tokenCommand = [process.execPath, script];
    // Through the fault proxy, so the test can cut the source's connections.
    const proxy = env.proxy as NonNullable<MigrateTestEnv['proxy']>;
    sourceUrl = `imaps://${encodeURIComponent(SOURCE)}@127.0.0.1:${proxy.port}`;
    await seedWith(() => env.m365(SOURCE), seedMessages(FOLDERS, MESSAGES, 90_000));
  }, 300_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  const runs = async () => (await readFile(counter, 'utf8').catch(() => '')).length;
  const migrateWith = (command: string[], logger?: Logger) =>
    migrateMailbox({
      from: sourceUrl,
      fromTokenCommand: command,
      to: `m365:${DEST}`,
      toConfig: env.config,
      stateDir: join(work, `state-${command.length}-${Math.random()}`),
      env: cliEnv(env.env),
      connections: 1,
      ...(logger ? { logger } : {}),
    });
  const refusal = (command: string[], logger?: Logger) =>
    migrateWith(command, logger).then(
      () => expect.unreachable('migrated'),
      (error: MailbridgeError) => error,
    );

  it('logs in with the command’s token, and runs it again when the connection is cut', async () => {
    const proxy = env.proxy as NonNullable<MigrateTestEnv['proxy']>;
    let seen = 0;
    const result = await migrateMailbox({
      from: sourceUrl,
      fromTokenCommand: tokenCommand,
      to: `m365:${DEST}`,
      toConfig: env.config,
      stateDir: join(work, 'state'),
      env: cliEnv(env.env),
      connections: 1,
      onProgress(event) {
        if (event.type === 'message' && ++seen === MESSAGES / 2) proxy.dropAll();
      },
    });
    // The cut also takes the destination's APPENDs in flight: found there afterwards, not sent again.
    expect(result).toMatchObject({ ok: true, skipped: 0 });
    expect(result.copied + result.alreadyPresent).toBe(MESSAGES);
    // The source's first login, and its login again after the cut.
    expect(await runs()).toBeGreaterThanOrEqual(2);
    expect(await snapshotOf(() => env.m365(DEST), FOLDERS)).toEqual(
      expected(await snapshotOf(() => env.m365(SOURCE), FOLDERS), IDENTITY),
    );
  }, 120_000);

  it('says why when the command fails, prints nothing, cannot start, or its token is refused', async () => {
    const failed = await refusal([
      process.execPath,
      '-e',
      "process.stderr.write('no refresh token for gina\\x1b[31m\\n'); process.exit(3)",
    ]);
    expect(failed).toMatchObject({ code: 'MIGRATE_TOKEN_COMMAND_FAILED', exitCode: 3 });
    expect(failed.message).toContain('migrate.fromTokenCommand');
    expect(failed.message).toContain('exit 3');
    expect(failed.message).toContain('no refresh token for gina');
    // The command's words go through displayText: no terminal escape reaches the message.
    expect(failed.message).not.toContain('\x1b');

    const silent = await refusal([process.execPath, '-e', '']);
    expect(silent).toMatchObject({ code: 'MIGRATE_TOKEN_COMMAND_FAILED', exitCode: 3 });
    expect(silent.message).toContain('printed nothing');

    const missing = await refusal([join(work, 'no-such-program')]);
    expect(missing).toMatchObject({ code: 'MIGRATE_TOKEN_COMMAND_FAILED', exitCode: 3 });
    expect(missing.message).toContain('could not be started');

    const lines: string[] = [];
    const logger: Logger = {
      log: (level, message, fields) => lines.push(JSON.stringify({ level, message, fields })),
    };
    const secret = 'ya29.not-a-valid-token-but-a-secret';
    const refused = await refusal(
      [process.execPath, '-e', `console.log(${JSON.stringify(secret)})`],
      logger,
    );
    expect(refused).toMatchObject({ code: 'MIGRATE_LOGIN_REFUSED', exitCode: 3 });
    expect(refused.message).toContain('XOAUTH2');
    expect(
      JSON.stringify({ ...refused, message: refused.message, remedy: refused.remedy }),
    ).not.toContain(secret);
    expect(lines.join('\n')).not.toContain(secret);
  }, 120_000);

  it('is read from the config file by the CLI, as a list run without a shell', async () => {
    const config = join(work, 'migrate.yaml');
    const yaml = (command: string) =>
      `migrate:\n  from: ${sourceUrl}\n  to: m365:${CLI_DEST}\n  fromTokenCommand: ${command}\n`;
    await writeFile(config, yaml(JSON.stringify(tokenCommand)));
    const run = await runCli(
      ['migrate', '--config', config, '--state', join(work, 'cli-state'), '--json'],
      env.env,
      { timeoutMs: 120_000 },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      copied: MESSAGES,
      skipped: 0,
    });

    await writeFile(config, yaml(JSON.stringify(tokenCommand.join(' '))));
    await expect(readMigrateSection(config, 8)).rejects.toMatchObject({
      code: 'MIGRATE_OPTION_INVALID',
      problems: [expect.objectContaining({ field: 'migrate.fromTokenCommand' })],
    });
    await writeFile(config, `${yaml(JSON.stringify(tokenCommand))}  fromPasswordFile: pw.txt\n`);
    await expect(readMigrateSection(config, 8)).rejects.toMatchObject({
      code: 'MIGRATE_OPTION_INVALID',
      problems: [expect.objectContaining({ field: 'migrate.fromTokenCommand' })],
    });
    await expect(
      migrateMailbox({
        from: `m365:${SOURCE}`,
        fromConfig: env.config,
        fromTokenCommand: tokenCommand,
        to: `m365:${CLI_DEST}`,
      }),
    ).rejects.toMatchObject({ code: 'MIGRATE_OPTION_INVALID', exitCode: 2 });
  }, 180_000);
});
