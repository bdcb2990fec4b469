/**
 * `mailbridge proxy` in a child process, from the build (dist/cli/main.js),
 * with its JSON log lines parsed as they come: for the tests that signal it
 * or read its memory, and for bench/proxy.ts, which reads its CPU time.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { CLI_PATH, cliEnv } from '../../helpers/run-cli.js';

export interface ProxyProcess {
  child: ChildProcess;
  pid: number;
  events: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
  waitFor(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** The listeners of its `started` line: `imap`, `imaps`, `pop3`, `pop3s` → port. */
  ports(): Promise<Record<string, number>>;
}

/** Every proxy started, so that a failing test can kill what it left running. */
const children: ChildProcess[] = [];

export function killProxyChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export function spawnProxy(
  configFile: string,
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): ProxyProcess {
  if (!existsSync(CLI_PATH)) {
    throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
  }
  const child = spawn(process.execPath, [...nodeArgs, CLI_PATH, 'proxy', '--config', configFile], {
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const events: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (let index = stdout.indexOf('\n'); index !== -1; index = stdout.indexOf('\n')) {
      const line = stdout.slice(0, index);
      stdout = stdout.slice(index + 1);
      if (line.trim()) events.push(JSON.parse(line) as Record<string, unknown>);
    }
    for (const listener of listeners) listener();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      resolve(code);
      for (const listener of listeners) listener();
    }),
  );
  const waitFor = (event: string, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = events.find((e) => e.event === event);
        if (found) {
          done();
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`the proxy exited before ${event}; stderr:\n${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${event} from the proxy in ${timeoutMs} ms; stderr:\n${stderr}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  return {
    child,
    pid: child.pid as number,
    events,
    stderr: () => stderr,
    exited,
    waitFor,
    async ports() {
      const started = await waitFor('started');
      const ports: Record<string, number> = {};
      for (const m of String(started.listen).matchAll(
        /(imaps|pop3s|imap|pop3)(?::\/\/| )[^ ]*?:(\d+)/g,
      )) {
        ports[m[1] as string] = Number(m[2]);
      }
      return ports;
    },
  };
}

/** Resident memory of a process in bytes (VmRSS of /proc/PID/status, Linux). */
export async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}
