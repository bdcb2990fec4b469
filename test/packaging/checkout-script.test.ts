/**
 * scripts/mailbridge in a copy of the checkout: the first run builds, packs
 * and installs with runtime dependencies only; later runs start at once
 * until a source changes (a `git pull`), and then rebuild (incrementally,
 * replacing only the installed dist/), or pack and install again when
 * package.json or the lock file changed.
 */
import { cp, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npmEnvironment, type ProcessResult, ROOT, runProcess } from './support.js';

const COPIED = [
  'src',
  'scripts',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'LICENSE',
];
const BUILDING = 'mailbridge: building and installing';
const EDITED = 'src/cli/main.ts edited since the last build';

let checkout: string;
let version: string;
/** The first run of the script in the fresh copy, which every later test starts from. */
let first: ProcessResult;

beforeAll(async () => {
  checkout = await mkdtemp(join(tmpdir(), 'mailbridge-checkout-'));
  for (const entry of COPIED)
    await cp(join(ROOT, entry), join(checkout, entry), { recursive: true });
  // A development checkout, as after `npm ci`: the script builds with its install.
  await symlink(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  ({ version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')));
  first = await script(['--version']);
}, 300_000);

afterAll(async () => {
  if (checkout) await rm(checkout, { recursive: true, force: true });
});

function script(args: string[]) {
  return runProcess(join(checkout, 'scripts', 'mailbridge'), args, {
    env: npmEnvironment(),
    cwd: checkout,
    timeoutMs: 280_000,
  });
}

/** Runs `edit` on a file of the copy, then `check`, and puts the file back as it was. */
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

describe('scripts/mailbridge', { tags: ['soak'] }, () => {
  it('builds and installs on the first run, runtime dependencies only', async () => {
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(`${version}\n`);
    expect(first.stderr).toContain(BUILDING);
    const installed = join(checkout, '.mailbridge', 'lib', 'node_modules', 'm365-mailbridge');
    const modules = await readdir(join(installed, 'node_modules'));
    expect(modules).toContain('mailparser');
    for (const dev of ['typescript', 'vitest', '@biomejs', 'tsx'])
      expect(modules).not.toContain(dev);
    // The checkout's own dist/ is left alone.
    await expect(readdir(join(checkout, 'dist'))).rejects.toThrow(/ENOENT/);
  });

  it('starts without building while the sources are unchanged, touched or not', async () => {
    // Whatever an earlier test left to build is built here first.
    expect((await script(['--version'])).code).toBe(0);
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
        const last = await runProcess(
          join(checkout, '.mailbridge', 'bin', 'mailbridge'),
          ['--version'],
          { env: process.env, timeoutMs: 60_000 },
        );
        expect(last).toMatchObject({ code: 0, stdout: `${version}\n` });
      },
    );
  }, 300_000);

  it('rebuilds after a source changed', async () => {
    await withEdited(
      'src/cli/main.ts',
      (source) => `${source}\nprocess.stderr.write('${EDITED}\\n');\n`,
      async () => {
        const result = await script(['--version']);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout).toBe(`${version}\n`);
        expect(result.stderr).toContain(BUILDING);
        expect(result.stderr).toContain(EDITED);
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
