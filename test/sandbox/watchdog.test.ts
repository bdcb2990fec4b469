/**
 * The library's sandbox in a process that dies without a word (SIGKILL):
 * its mail servers must not outlive it, holding ports and a folder.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const SANDBOX_MODULE = fileURLToPath(new URL('../../dist/sandbox/sandbox.js', import.meta.url));

/**
 * Running, as opposed to gone or a zombie: a killed server whose parent died
 * waits as a zombie until the machine's init reaps it, which can take seconds.
 */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
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

const MAIL_SERVERS_MODULE = fileURLToPath(
  new URL('../../dist/sandbox/mail-servers.js', import.meta.url),
);
const TOKEN_SERVICE_MODULE = fileURLToPath(
  new URL('../../dist/sandbox/token-service.js', import.meta.url),
);

/** The processes whose parent is `pid`, with their command names (from /proc: quicker than ps). */
function childrenOf(pid: number): { pid: number; command: string }[] {
  const found: { pid: number; command: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === pid)
        found.push({ pid: Number(entry), command: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      // Gone since the listing.
    }
  }
  return found;
}

/**
 * Starts the mail servers in a child process and kills it (SIGKILL) in the
 * window between Dovecot's start and Postfix's: the moment Dovecot is its
 * child and Postfix's master is not yet. Returns Dovecot's pid, or undefined
 * when the window was missed.
 */
async function killWhileStarting(): Promise<number | undefined> {
  const script = `const { startMailServers } = await import(${JSON.stringify(MAIL_SERVERS_MODULE)});
const { startTokenService } = await import(${JSON.stringify(TOKEN_SERVICE_MODULE)});
await startMailServers({ tokenService: await startTokenService(), submission: 'postfix' });
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  let dovecot: number | undefined;
  while (child.exitCode === null && Date.now() < deadline) {
    const children = childrenOf(child.pid as number);
    if (children.some((c) => c.command === 'master')) break;
    // Dovecot with its watchdog beside it: not the instant between the two
    // spawns, which no watchdog started by the same process can cover.
    const found = children.find((c) => c.command === 'dovecot')?.pid;
    if (found !== undefined && children.some((c) => c.command === 'sh')) {
      dovecot = found;
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  if (dovecot === undefined) {
    // Missed: let the servers' own watchdogs end them before the next try.
    await new Promise((r) => setTimeout(r, 1_500));
  }
  return dovecot;
}

it('ends Dovecot when the process is killed while Postfix is still starting', async () => {
  let dovecot: number | undefined;
  for (let attempt = 0; attempt < 10 && dovecot === undefined; attempt++) {
    dovecot = await killWhileStarting();
  }
  expect(dovecot, 'Dovecot seen before Postfix').toBeDefined();
  const pid = dovecot as number;
  const gone = Date.now() + 10_000;
  while (Date.now() < gone && isAlive(pid)) await new Promise((r) => setTimeout(r, 100));
  const alive = isAlive(pid);
  if (alive) process.kill(-pid, 'SIGKILL');
  expect(alive).toBe(false);
}, 120_000);
