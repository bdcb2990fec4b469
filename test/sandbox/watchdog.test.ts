/**
 * The library's sandbox in a process that dies without a word (SIGKILL):
 * its mail servers must not outlive it, holding ports and a folder.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const SANDBOX_MODULE = fileURLToPath(new URL('../../dist/sandbox/sandbox.js', import.meta.url));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it('ends the mail servers and removes the temporary folder when the starting process is killed', async () => {
  const script = `const { startSandbox } = await import(${JSON.stringify(SANDBOX_MODULE)});
const sandbox = await startSandbox();
console.log(JSON.stringify({ dir: sandbox.dir, pids: await sandbox.processIds() }));
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`the sandbox process exited (${code})`)));
  });
  const { dir, pids } = JSON.parse(line) as { dir: string; pids: number[] };
  expect(pids.length).toBeGreaterThan(0);
  child.kill('SIGKILL');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (pids.some(isAlive) || existsSync(dir))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(pids.filter(isAlive)).toEqual([]);
  expect(existsSync(dir)).toBe(false);
}, 60_000);
