/**
 * scripts/mailbridge in a copy of the checkout: the first run builds, packs
 * and installs with runtime dependencies only; later runs start at once
 * until a source changes (a `git pull`), and then rebuild.
 */
import { cp, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npmEnvironment, ROOT, runProcess } from './support.js';

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

beforeAll(async () => {
  checkout = await mkdtemp(join(tmpdir(), 'mailbridge-checkout-'));
  for (const entry of COPIED)
    await cp(join(ROOT, entry), join(checkout, entry), { recursive: true });
  // A development checkout, as after `npm ci`: the script builds with its install.
  await symlink(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  ({ version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')));
});

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

describe('scripts/mailbridge', { tags: ['soak'] }, () => {
  it('builds and installs on the first run, runtime dependencies only', async () => {
    const result = await script(['--version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.stderr).toContain(BUILDING);
    const installed = join(checkout, '.mailbridge', 'lib', 'node_modules', 'm365-mailbridge');
    const modules = await readdir(join(installed, 'node_modules'));
    expect(modules).toContain('mailparser');
    for (const dev of ['typescript', 'vitest', '@biomejs', 'tsx'])
      expect(modules).not.toContain(dev);
    // The checkout's own dist/ is left alone.
    await expect(readdir(join(checkout, 'dist'))).rejects.toThrow(/ENOENT/);
  }, 300_000);

  it('starts without building while the sources are unchanged, touched or not', async () => {
    const file = join(checkout, 'src', 'cli', 'main.ts');
    const later = new Date(Date.now() + 60_000);
    await utimes(file, later, later);
    const result = await script(['--version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.stderr).not.toContain(BUILDING);
  }, 60_000);

  it('keeps the last install when the build fails, and shows why', async () => {
    const file = join(checkout, 'src', 'cli', 'main.ts');
    const source = await readFile(file, 'utf8');
    await writeFile(file, `${source}\nexport const broken: number = 'not a number';\n`);
    try {
      const result = await script(['--version']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(BUILDING);
      expect(result.stderr).toMatch(/src\/cli\/main\.ts.*error TS2322/);
      expect(result.stdout).toBe('');
      const last = await runProcess(
        join(checkout, '.mailbridge', 'bin', 'mailbridge'),
        ['--version'],
        {
          env: process.env,
          timeoutMs: 60_000,
        },
      );
      expect(last).toMatchObject({ code: 0, stdout: `${version}\n` });
    } finally {
      await writeFile(file, source);
    }
  }, 300_000);

  it('rebuilds after a source changed', async () => {
    const file = join(checkout, 'src', 'cli', 'main.ts');
    await writeFile(
      file,
      `${await readFile(file, 'utf8')}\nprocess.stderr.write('${EDITED}\\n');\n`,
    );
    const result = await script(['--version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.stderr).toContain(BUILDING);
    expect(result.stderr).toContain(EDITED);
  }, 300_000);
});
