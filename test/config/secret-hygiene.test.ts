/**
 * Config errors never echo a free-form value that may be a misplaced secret,
 * and a config file holding a secret is private. Each failing command's whole
 * output (stdout and stderr, human, --json and --debug) is searched for the
 * secrets: the only real guard against a secret slipping into a message.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';

const TENANT = '11111111-2222-4333-8444-555555555555';
const CLIENT = '66666666-7777-4888-9999-aaaaaaaaaaaa';
/** A portal-style secret (holds `~`) and an older style one (letters, digits, `.`, `_`, `-`). */
const SECRETS = ['SUPERSECRET~xyz.123_ABC', 'k7Qp.R2-sT9_vWx3yZ4aB5cD6eF7gH8iJ9kL0mN1o'];

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-hygiene-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, lines: string[], mode = 0o600): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `${lines.join('\n')}\n`);
  await chmod(file, mode);
  return file;
}

/** Every way the command can print: human, JSON, and with --debug stack traces. */
async function allOutput(args: string[], env: Record<string, string> = {}): Promise<string[]> {
  const runs = await Promise.all([
    runCli(args, env),
    runCli([...args, '--json'], env),
    runCli([...args, '--debug'], env),
  ]);
  for (const run of runs) expect(run.code).toBe(2);
  return runs.map((run) => run.stdout + run.stderr);
}

describe('misplaced secrets in the config file', () => {
  it('an unknown key that may be a secret is described, not quoted', async () => {
    const file = await configFile('keys.yaml', [
      `tenantId: ${TENANT}`,
      `clientId: ${CLIENT}`,
      `${SECRETS[0]}: 1`,
      'imap:',
      `  ${SECRETS[1]}: 1`,
    ]);
    for (const output of await allOutput(['token', '--config', file])) {
      for (const secret of SECRETS) expect(output).not.toContain(secret);
      expect(output).toContain('a key of 23 characters that is no setting name');
      expect(output).toContain('in imap, (a key of 41 characters');
    }
  });

  it('still names an unknown key that looks like a setting, with a suggestion', async () => {
    const file = await configFile('typo.yaml', [
      `tenantId: ${TENANT}`,
      `clientId: ${CLIENT}`,
      'clientSecrett: x',
    ]);
    const { code, stderr } = await runCli(['token', '--config', file]);
    expect(code).toBe(2);
    expect(stderr).toContain("Unknown setting 'clientSecrett' — did you mean 'clientSecret'?");
  });

  it('a secret pasted into tenantId, clientId or scope is not quoted', async () => {
    const file = await configFile('values.yaml', [
      `tenantId: ${SECRETS[1]?.slice(0, 30).replace(/[._]/g, '-')}`,
      `clientId: "${SECRETS[0]}"`,
      `scope: "${SECRETS[1]}"`,
      'clientSecret: x',
    ]);
    const tenantLike = SECRETS[1]?.slice(0, 30).replace(/[._]/g, '-') as string;
    for (const output of await allOutput(['token', '--config', file])) {
      for (const secret of [...SECRETS, tenantLike, tenantLike.toLowerCase()]) {
        expect(output).not.toContain(secret);
      }
      expect(output).toContain('tenantId is neither a GUID nor a domain name');
      expect(output).toContain('scope is a delegated permission');
    }
  });
});

describe('YAML alias bombs', () => {
  it('are a configuration error of the file (exit 2), not an internal error', async () => {
    const file = await configFile('bomb.yaml', [
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    ]);
    const { code, stderr } = await runCli(['token', '--config', file]);
    expect(stderr).toContain('error CONFIG_FILE_INVALID');
    expect(stderr).toContain('resource exhaustion attack');
    expect(stderr).not.toContain('internal error');
    expect(code).toBe(2);
  });
});

describe('a config file holding a secret', () => {
  const lines = [`tenantId: ${TENANT}`, `clientId: ${CLIENT}`, `clientSecret: "${SECRETS[0]}"`];

  it('warns when group or others can read it, naming the key and never the value', async () => {
    const file = await configFile('shared.yaml', lines, 0o644);
    // --help-free way to load the settings and stop: an unreachable authority.
    const { stderr, stdout } = await runCli([
      'token',
      '--config',
      file,
      '--authority-host',
      'https://127.0.0.1:1',
    ]);
    expect(stderr).toContain(
      `warning: The config file ${file} holds clientSecret and can be read by its group and all users (mode 0644): run chmod 600 ${file}`,
    );
    expect(stdout + stderr).not.toContain(SECRETS[0]);
  });

  it('says nothing when only its owner can read it', async () => {
    const file = await configFile('private.yaml', lines, 0o600);
    const { stderr } = await runCli([
      'token',
      '--config',
      file,
      '--authority-host',
      'https://127.0.0.1:1',
    ]);
    expect(stderr).not.toContain('warning');
  });
});
