/**
 * One clean clone of this checkout, built once and then taken through what a
 * user does with it:
 * - the newcomer's first minutes: scripts/try-sandbox.sh clones into it and
 *   runs README's quick-start block line by line, exactly as printed
 *   (`./scripts/mailbridge sandbox start`, the eval, doctor, send, archive,
 *   stop), then checks what the lines printed. A README edit that breaks the
 *   quick start fails here;
 * - that first `./scripts/mailbridge` run built the package, packed it and
 *   installed it with `npm install -g` into the clone's .mailbridge/ (no lock
 *   file, no overrides: npm resolves package.json's ranges as it would for
 *   anyone), so the installed package is checked as users get it;
 * - later runs of scripts/mailbridge start at once until a source changes (a
 *   `git pull`), then rebuild (incrementally, replacing only the installed
 *   dist/), or pack and install again when package.json or the lock file
 *   changed.
 * One clone for all three, because each first build and install costs about
 * 50 s of CPU.
 */
import { existsSync, readdirSync } from 'node:fs';
import {
  lstat,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
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
import {
  npmEnvironment,
  type ProcessResult,
  packageVersionOf,
  ROOT,
  runProcess,
} from './support.js';

const BUILDING = 'mailbridge: building and installing';
const EDITED = 'src/cli/main.ts edited since the last build';
const MAILBOX = 'archive@contoso.example';
/** What mailparser parses with: the archive must read headers with the same. */
const PARSERS = ['libmime', '@zone-eu/mailsplit'];

const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
};

let dir: string;
let checkout: string;
/** The clone's install, made by its first `./scripts/mailbridge` run in the quick start. */
let prefix: string;
let installed: string;
/** scripts/try-sandbox.sh, which every later test starts from. */
let quickStart: ProcessResult;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-checkout-'));
  checkout = join(dir, 'clone');
  prefix = join(checkout, '.mailbridge');
  installed = join(prefix, 'lib', 'node_modules', 'm365-mailbridge');
  quickStart = await runProcess(join(ROOT, 'scripts', 'try-sandbox.sh'), [checkout], {
    // The clone's first run installs from the registry: npm needs the machine's CA, not the tests'.
    env: npmEnvironment(),
    cwd: ROOT,
    timeoutMs: 560_000,
  });
}, 600_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function script(args: string[]) {
  return runProcess(join(checkout, 'scripts', 'mailbridge'), args, {
    env: npmEnvironment(),
    cwd: checkout,
    timeoutMs: 280_000,
  });
}

/** Runs `edit` on a file of the clone, then `check`, and puts the file back as it was. */
async function withEdited(
  path: string,
  edit: (text: string) => string,
  check: () => Promise<void>,
): Promise<void> {
  const file = join(checkout, path);
  const text = await readFile(file, 'utf8');
  await writeFile(file, edit(text));
  try {
    await check();
  } finally {
    await writeFile(file, text);
  }
}

describe('README quick start', { tags: ['soak'] }, () => {
  it('works as printed in a clean clone', () => {
    expect(quickStart.code, `${quickStart.stdout}\n${quickStart.stderr}`).toBe(0);
    expect(quickStart.stdout).toContain('try-sandbox: the quick start works as printed');
  });
});

describe('scripts/mailbridge', { tags: ['soak'] }, () => {
  it('builds and installs on the first run, runtime dependencies only', async () => {
    expect(quickStart.code, quickStart.stderr).toBe(0);
    // A clone without `npm ci`: the build had its own compiler, outside the install.
    expect(existsSync(join(prefix, 'build', 'tsbuildinfo'))).toBe(true);
    const modules = await readdir(join(installed, 'node_modules'));
    expect(modules).toContain('mailparser');
    for (const dev of ['typescript', 'vitest', '@biomejs', 'tsx'])
      expect(modules).not.toContain(dev);
    // The checkout's own dist/ is left alone.
    await expect(readdir(join(checkout, 'dist'))).rejects.toThrow(/ENOENT/);
  });
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

// Before the tests below edit the clone and install again.
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

describe('scripts/mailbridge', { tags: ['soak'] }, () => {
  it('starts without building while the sources are unchanged, touched or not', async () => {
    const file = join(checkout, 'src', 'cli', 'main.ts');
    const later = new Date(Date.now() + 60_000);
    await utimes(file, later, later);
    const result = await script(['--version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.stderr).not.toContain(BUILDING);
  }, 120_000);

  it('keeps the last install when the build fails, and shows why', async () => {
    await withEdited(
      'src/cli/main.ts',
      (source) => `${source}\nexport const broken: number = 'not a number';\n`,
      async () => {
        const result = await script(['--version']);
        expect(result.code).not.toBe(0);
        expect(result.stderr).toContain(BUILDING);
        expect(result.stderr).toMatch(/src\/cli\/main\.ts.*error TS2322/);
        expect(result.stdout).toBe('');
        const last = await runProcess(join(prefix, 'bin', 'mailbridge'), ['--version'], {
          env: process.env,
          timeoutMs: 60_000,
        });
        expect(last).toMatchObject({ code: 0, stdout: `${version}\n` });
      },
    );
  }, 300_000);

  it('rebuilds after a source changed', async () => {
    // From here on a development checkout, as after `npm ci`: the script builds with its install.
    await symlink(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
    await withEdited(
      'src/cli/main.ts',
      (source) => `${source}\nprocess.stderr.write('${EDITED}\\n');\n`,
      async () => {
        const result = await script(['--version']);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout).toBe(`${version}\n`);
        expect(result.stderr).toContain(BUILDING);
        expect(result.stderr).toContain(EDITED);
        expect((await lstat(join(prefix, 'build', 'node_modules'))).isSymbolicLink()).toBe(true);
      },
    );
  }, 300_000);

  it('packs and installs again after package.json changed', async () => {
    // The installed CLI reads its version from its own package.json: only a new install shows it.
    const changed = `${version}-edited`;
    await withEdited(
      'package.json',
      (text) => text.replace(`"version": "${version}"`, `"version": "${changed}"`),
      async () => {
        const result = await script(['--version']);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain(BUILDING);
        expect(result.stdout).toBe(`${changed}\n`);
      },
    );
  }, 300_000);
});
