/**
 * The sandbox's CLI tests run `mailbridge` as a user would: as an
 * unprivileged user (nobody, when the tests run as root), with only PATH,
 * HOME and the settings the sandbox printed, against a sandbox started with
 * `mailbridge sandbox start`.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH } from '../helpers/run-cli.js';

export const root = process.getuid?.() === 0;
/** uid of nobody, who owns the folders when the tests run as root. */
export const NOBODY = 65534;

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the command. */
  ms: number;
}

export interface RunAs {
  /** Run as the test's own user even when it is root (default: nobody when root). */
  asSelf?: boolean;
  timeoutMs?: number;
}

/** The CLI as the unprivileged user, with only PATH and the given settings. */
export function mailbridge(
  args: string[],
  env: Record<string, string> = {},
  options: RunAs = {},
): Promise<Result> {
  const [command, prefix] =
    root && !options.asSelf
      ? ['runuser', ['-u', 'nobody', '--', process.execPath]]
      : [process.execPath, []];
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      command as string,
      [...(prefix as string[]), CLI_PATH, ...args],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...env },
        cwd: tmpdir(),
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** The `export NAME='value'` lines `sandbox start` and `sandbox env` print. */
export function parseExports(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export ([A-Z_0-9]+)='((?:[^']|'\\'')*)'$/gm)) {
    env[m[1] as string] = (m[2] as string).replaceAll("'\\''", "'");
  }
  return env;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A new folder for one sandbox (owned by nobody when root), inside a temporary parent. */
export function newSandboxDir(options: RunAs = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-sandbox-test-'));
  if (root && !options.asSelf) chownSync(dir, NOBODY, NOBODY);
  // As root, Dovecot's own users must pass through to the sandbox's folder.
  if (root && options.asSelf) chmodSync(dir, 0o711);
  return join(dir, 'sandbox');
}

export function removeSandboxDir(dir: string): void {
  rmSync(join(dir, '..'), { recursive: true, force: true });
}

/** A base of six ports (N to N+5) per slot, below the kernel's ephemeral range (32768 up here). */
export function portBase(slot: number): number {
  return 20_000 + ((process.pid + slot * 677) % 2000) * 6;
}
