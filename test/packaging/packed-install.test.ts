/**
 * The package as users get it: `npm pack`, then `npm install -g` of the
 * tarball into a temporary prefix (no lock file, no overrides: npm resolves
 * package.json's ranges as it would for anyone), and the CLI run from that
 * prefix's bin/. Packs the built dist/ (`npm run build` first, as
 * scripts/test.sh does).
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mailboxDirName } from '../../src/jobs/archive/paths.js';
import {
  manifestRecords,
  messageWithAttachment,
  plainMessage,
  startArchiveTestEnv,
} from '../jobs/archive/support.js';
import { PUBLIC_VALUES } from './public-api.js';
import { npmEnvironment, packageVersionOf, ROOT, runProcess } from './support.js';

const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
};
const MAILBOX = 'archive@contoso.example';
/** What mailparser parses with: the archive must read headers with the same. */
const PARSERS = ['libmime', '@zone-eu/mailsplit'];

let dir: string;
let prefix: string;
let installed: string;

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` before the packaging tests');
  }
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-packed-'));
  prefix = join(dir, 'prefix');
  // dist/ is built: skip prepack's build.
  const pack = await runProcess(
    'npm',
    ['pack', '--ignore-scripts', '--pack-destination', dir, '--silent'],
    { env: npmEnvironment(), timeoutMs: 60_000 },
  );
  expect(pack.code, pack.stderr).toBe(0);
  const tarball = join(dir, `m365-mailbridge-${version}.tgz`);
  const install = await runProcess(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
    { env: npmEnvironment(), cwd: dir, timeoutMs: 240_000 },
  );
  expect(install.code, install.stderr).toBe(0);
  installed = join(prefix, 'lib', 'node_modules', 'm365-mailbridge');
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The installed CLI, run as a user runs it: by its path in the prefix's bin/. */
function mailbridge(args: string[], env: Record<string, string> = {}) {
  const inherited: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'NODE_EXTRA_CA_CERTS', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) inherited[name] = value;
  }
  return runProcess(join(prefix, 'bin', 'mailbridge'), args, {
    env: { ...inherited, ...env },
    cwd: dir,
    timeoutMs: 60_000,
  });
}

describe('npm install -g of the packed tarball', { tags: ['soak'] }, () => {
  it('puts mailbridge in bin/: --version', async () => {
    const result = await mailbridge(['--version']);
    expect(result.stderr).toBe('');
    expect(result).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('runs a command: token --help', async () => {
    const result = await mailbridge(['token', '--help']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Usage: mailbridge token');
  });

  it('exports exactly the supported API from the installed package', async () => {
    const entry = (await import(pathToFileURL(join(installed, 'dist', 'index.js')).href)) as object;
    expect(Object.keys(entry).sort()).toEqual([...PUBLIC_VALUES].sort());
  });

  it('installs runtime dependencies only', () => {
    const modules = readdirSync(join(installed, 'node_modules'));
    for (const dev of ['typescript', 'vitest', '@biomejs', 'tsx'])
      expect(modules).not.toContain(dev);
  });

  it('installs the very mailparser, libmime and mailsplit the tests here parse with', () => {
    const tested = createRequire(createRequire(import.meta.url).resolve('mailparser'));
    const users = createRequire(
      createRequire(join(installed, 'package.json')).resolve('mailparser'),
    );
    expect(packageVersionOf(users.resolve('mailparser'))).toBe(
      packageVersionOf(tested.resolve('mailparser')),
    );
    for (const name of PARSERS) {
      expect(packageVersionOf(users.resolve(name))).toBe(packageVersionOf(tested.resolve(name)));
    }
  });

  it("reads headers with the installed mailparser's own libmime and mailsplit", async () => {
    // Whatever npm hoisted beside them, the archive code must load mailparser's copies.
    const script = `
      import { createRequire } from 'node:module';
      const [pkg] = process.argv.slice(1);
      const parsers = await import(pkg + '/dist/jobs/archive/mailparser-parsers.js');
      const mailparsers = createRequire(createRequire(pkg + '/package.json').resolve('mailparser'));
      console.log(JSON.stringify([
        parsers.libmime === mailparsers('libmime'),
        parsers.MimeNode === mailparsers('@zone-eu/mailsplit').MimeNode,
      ]));`;
    const result = await runProcess(
      process.execPath,
      ['--input-type=module', '-e', script, installed],
      { env: process.env, timeoutMs: 30_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([true, true]);
  });

  it('archives a few messages', async () => {
    const env = await startArchiveTestEnv([MAILBOX]);
    const out = join(dir, 'archive');
    try {
      const seeder = await env.direct(MAILBOX);
      await seeder.append('INBOX', plainMessage(1, 'INBOX', MAILBOX));
      await seeder.append('INBOX', plainMessage(2, 'INBOX', MAILBOX));
      await seeder.append('INBOX', messageWithAttachment(3, MAILBOX, 20_000));
      await seeder.logout();

      const result = await mailbridge(['archive', '--mailbox', MAILBOX, '--out', out], env.env);
      expect(result.code, result.stderr).toBe(0);
      const records = await manifestRecords(join(out, mailboxDirName(MAILBOX)));
      expect(records.map((r) => [r.subject, r.attachments])).toEqual([
        ['Nachricht 1 über INBOX', []],
        ['Nachricht 2 über INBOX', []],
        [
          'Report 3',
          [{ filename: 'report-3.bin', contentType: 'application/octet-stream', size: 20_000 }],
        ],
      ]);
    } finally {
      await env.close();
    }
  }, 90_000);
});
