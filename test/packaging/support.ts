/**
 * For the packaging tests: running programs (npm, the installed CLI, the
 * checkout's scripts) in child processes, and what npm needs to reach the
 * package registry.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRESET_CA_ENV } from '../helpers/test-ca.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runProcess(
  file: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<ProcessResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        env: options.env,
        cwd: options.cwd ?? ROOT,
        timeout: options.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * This process's environment with NODE_EXTRA_CA_CERTS as the machine set it:
 * the test CA in its place would leave npm unable to reach the registry.
 */
export function npmEnvironment(): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _testCa, [PRESET_CA_ENV]: preset, ...env } = process.env;
  return preset === undefined ? env : { ...env, NODE_EXTRA_CA_CERTS: preset };
}

/** The version of the package a resolved file belongs to (its nearest package.json with a name). */
export function packageVersionOf(file: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name && pkg.version) return `${pkg.name}@${pkg.version}`;
    } catch {
      // No package.json here: look further up.
    }
  }
  throw new Error(`no package.json above ${file}`);
}
