/**
 * scripts/install-packages.sh, README's first quick-start line and the
 * install step of scripts/test.sh: a no-op when everything is installed, and
 * otherwise `apt-get update` then `apt-get install` while policy-rc.d forbids
 * every service start, the previous policy-rc.d put back afterwards, even
 * when apt-get fails. apt-get, dpkg-query and debconf-set-selections are
 * stand-ins on PATH that record what they were asked and what a package
 * script starting Dovecot would have been told.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'install-packages.sh');
const POLICY = '/usr/sbin/policy-rc.d';
const root = process.getuid?.() === 0;
const stubs = mkdtempSync(join(tmpdir(), 'install-packages-'));

/** A package list of the script (`NAME=(a b …)`), read from it: the script is where the list lives. */
function scriptList(name: string): string[] {
  const match = new RegExp(`^${name}=\\(([^)]*)\\)`, 'm').exec(readFileSync(SCRIPT, 'utf8'));
  if (!match?.[1]) throw new Error(`no ${name}=(…) in ${SCRIPT}`);
  return match[1].split(/\s+/).filter(Boolean);
}
const SANDBOX_PACKAGES = scriptList('SANDBOX_PACKAGES');
const TEST_PACKAGES = scriptList('TEST_PACKAGES');
afterAll(() => rmSync(stubs, { recursive: true, force: true }));

function stub(name: string, body: string): void {
  const path = join(stubs, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/** Runs the script with the stand-ins first on PATH; `aptExit` is what `apt-get install` returns. */
function install(args: string[], aptExit = 0) {
  const log = join(stubs, 'log');
  rmSync(log, { force: true });
  stub('dpkg-query', 'exit 1'); // nothing is installed
  stub('debconf-set-selections', 'cat >/dev/null');
  stub(
    'apt-get',
    [
      `echo "apt-get $*" >>${log}`,
      `if [ "$1" = install ]; then ${POLICY} dovecot start; echo "service start answered $?" >>${log}; exit ${aptExit}; fi`,
    ].join('\n'),
  );
  const run = spawnSync(SCRIPT, args, {
    env: { ...process.env, PATH: `${stubs}:${process.env.PATH}` },
    encoding: 'utf8',
  });
  return { ...run, log: existsSync(log) ? readFileSync(log, 'utf8') : '' };
}

describe('scripts/install-packages.sh', () => {
  it('changes nothing when the packages are installed (this machine ran it)', () => {
    const check = spawnSync(SCRIPT, ['--check', '--tests'], { encoding: 'utf8' });
    expect(check.stdout).toContain('all installed');
    expect(check.status).toBe(0);
    const again = spawnSync(SCRIPT, [], { encoding: 'utf8' });
    expect(again.stdout).toContain(`all installed (${SANDBOX_PACKAGES.join(' ')})`);
    expect(again.status).toBe(0);
  });

  it('--check names what is missing and installs nothing', () => {
    const check = install(['--check']);
    expect(SANDBOX_PACKAGES).toContain('dovecot-imapd');
    expect(check.stderr).toContain(`missing: ${SANDBOX_PACKAGES.join(' ')}`);
    expect(check.status).toBe(1);
    expect(check.log).toBe('');
  });

  it.runIf(root && !existsSync(POLICY))(
    'updates, then installs with every service start refused, and removes its policy-rc.d',
    () => {
      const run = install(['--tests']);
      expect(run.status, run.stderr).toBe(0);
      expect(TEST_PACKAGES).toContain('redis-server');
      expect(run.log).toMatch(
        new RegExp(
          `^apt-get update\napt-get install -y ${[...SANDBOX_PACKAGES, ...TEST_PACKAGES].join(' ').replace(/[.+]/g, '\\$&')}\n`,
        ),
      );
      expect(run.log).toContain('service start answered 101');
      expect(existsSync(POLICY)).toBe(false);
    },
  );

  it.runIf(root && !existsSync(POLICY))(
    "puts the machine's own policy-rc.d back, also when apt-get fails",
    () => {
      const own = "#!/bin/sh\n# the administrator's own\nexit 0\n";
      writeFileSync(POLICY, own, { mode: 0o750 });
      try {
        const run = install([], 100);
        expect(run.status).not.toBe(0);
        expect(run.log).toContain('service start answered 101');
        expect(readFileSync(POLICY, 'utf8')).toBe(own);
        expect(statSync(POLICY).mode & 0o777).toBe(0o750);
      } finally {
        rmSync(POLICY, { force: true });
      }
    },
  );
});
