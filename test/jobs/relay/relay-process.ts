/**
 * `mailbridge relay` in a child process (the built CLI, as a user runs it),
 * with its JSON log lines parsed as they come: for the tests that kill it,
 * start two at once, or restart it on the same spool.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI_PATH, cliEnv, requireBuilt } from '../../helpers/run-cli.js';

export interface RelayProcess {
  child: ChildProcess;
  events: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
  waitFor(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Every relay process started, so that a failing test can kill what it left running. */
export const relayChildren: ChildProcess[] = [];

export function killRelayChildren(): void {
  for (const child of relayChildren) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export function spawnRelay(configFile: string, env: Record<string, string>): RelayProcess {
  const child = spawn(process.execPath, [requireBuilt(CLI_PATH), 'relay', '--config', configFile], {
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  relayChildren.push(child);
  const events: Record<string, unknown>[] = [];
  let stdout = '';
  let stderr = '';
  const listeners: (() => void)[] = [];
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    let index = stdout.indexOf('\n');
    while (index !== -1) {
      const line = stdout.slice(0, index);
      stdout = stdout.slice(index + 1);
      if (line.trim()) events.push(JSON.parse(line) as Record<string, unknown>);
      index = stdout.indexOf('\n');
    }
    for (const l of listeners) l();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    child,
    events,
    stderr: () => stderr,
    exited,
    waitFor(event, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const fail = (why: string) =>
          reject(
            new Error(
              `no ${event} event from the relay (${why}); events: ${JSON.stringify(events.slice(-5))}; stderr:\n${stderr}`,
            ),
          );
        const check = () => {
          const found = events.find((e) => e.event === event);
          if (found) {
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => fail('timeout'), timeoutMs);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          setTimeout(() => {
            check();
            fail(`exited with ${code ?? signal}`);
          }, 50);
        });
        listeners.push(check);
        check();
      });
    },
  };
}

/** The port in the relay's `started` event (`listen: "127.0.0.1:PORT"`). */
export function portOf(started: Record<string, unknown>): number {
  return Number(/:(\d+)$/.exec(String(started.listen))?.[1]);
}

/**
 * Writes `DIR/mailbridge.json` for a relay on a free loopback port with the
 * spool `DIR/spool`, taking mail from loopback for `sender`; returns its path.
 */
export async function writeRelayConfig(
  dir: string,
  sender: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const file = join(dir, 'mailbridge.json');
  await writeFile(
    file,
    JSON.stringify({
      relay: {
        // Port 0: a fixed port picked in advance could be taken by a parallel test before a restart.
        listen: ['127.0.0.1:0'],
        spool: 'spool',
        allowNetworks: ['127.0.0.1/32'],
        policy: [{ network: '127.0.0.1/32', senders: [sender] }],
        ...extra,
      },
    }),
  );
  return file;
}
