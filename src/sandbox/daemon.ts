/**
 * The sandbox as a background service of its folder: `mailbridge sandbox run`
 * keeps it in the foreground, writes `state.json` (what `env` and `status`
 * print) and answers the other commands on `control.sock`, an HTTP server on
 * a Unix socket only this user can open. `start` spawns `run` detached; the
 * mail servers' watchdog ends Dovecot if this process dies however it dies.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { ConfigurationError } from '../errors.js';
import type { SandboxDirectory } from './directory.js';
import { type Sandbox, type SandboxFault, type SandboxOptions, startSandbox } from './sandbox.js';

export interface SandboxState {
  /** The process serving the sandbox (`mailbridge sandbox run`). */
  pid: number;
  /** Its mail server processes. */
  serverPids: number[];
  startedAt: string;
  endpoints: Sandbox['endpoints'];
  directory: SandboxDirectory;
  /** Settings per app name. */
  env: Record<string, Record<string, string>>;
}

export const STATE_FILE = 'state.json';
export const CONTROL_SOCKET = 'control.sock';
export const LOG_FILE = 'sandbox.log';

type ControlRequest =
  | { action: 'grant' | 'revoke'; app: string; mailbox: string }
  | { action: 'fault'; fault: SandboxFault }
  | { action: 'stop' };

/** Runs the sandbox until `stop` or a signal; resolves when everything has stopped. */
export async function serveSandbox(options: SandboxOptions & { dir: string }): Promise<void> {
  const sandbox = await startSandbox(options);
  const statePath = join(options.dir, STATE_FILE);
  const socketPath = join(options.dir, CONTROL_SOCKET);
  const writeState = async () => {
    const state: SandboxState = {
      pid: process.pid,
      serverPids: await sandbox.processIds(),
      startedAt: new Date().toISOString(),
      endpoints: sandbox.endpoints,
      directory: sandbox.directory,
      env: Object.fromEntries(sandbox.directory.apps.map((a) => [a.name, sandbox.envFor(a.name)])),
    };
    // Holds the apps' secrets: this user only, replaced whole.
    writeFileSync(`${statePath}.next`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(`${statePath}.next`, statePath);
  };

  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const shutdown = async () => {
    control.close();
    rmSync(statePath, { force: true });
    rmSync(socketPath, { force: true });
    await sandbox.stop();
    finish();
  };

  const control = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', async () => {
      try {
        const command = JSON.parse(body) as ControlRequest;
        if (command.action === 'stop') {
          res.end('{"ok":true}');
          await shutdown();
          return;
        }
        if (command.action === 'fault') sandbox.fault(command.fault);
        else await sandbox[command.action](command.app, command.mailbox);
        await writeState();
        res.end('{"ok":true}');
      } catch (error) {
        res.statusCode = 400;
        res.end(JSON.stringify({ ok: false, error: errorJson(error) }));
      }
    });
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(socketPath, () => resolve());
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(signal, () => void shutdown());
  }
  await writeState();
  return finished;
}

/** The state of the sandbox running in `dir`, or undefined when none runs there. */
export function readSandboxState(dir: string): SandboxState | undefined {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return undefined;
  const state = JSON.parse(readFileSync(path, 'utf8')) as SandboxState;
  return isAlive(state.pid) ? state : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends one command to the sandbox running in `dir`; its refusal comes back as the error it was. */
export function controlSandbox(dir: string, command: ControlRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: join(dir, CONTROL_SOCKET), path: '/', method: 'POST' },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => {
          if (res.statusCode === 200) return resolve();
          const error = (
            JSON.parse(body) as { error: { code?: string; message: string; remedy?: string } }
          ).error;
          reject(
            error.code?.startsWith('SANDBOX_')
              ? new ConfigurationError({
                  code: error.code as 'SANDBOX_APP_UNKNOWN',
                  message: error.message,
                  remedy: error.remedy ?? '',
                })
              : new Error(error.message),
          );
        });
      },
    );
    req.on('error', () => reject(notRunning(dir)));
    req.end(JSON.stringify(command));
  });
}

export function notRunning(dir: string): ConfigurationError {
  return new ConfigurationError({
    code: 'SANDBOX_NOT_RUNNING',
    message: `No sandbox is running in ${dir}`,
    remedy: `Start one with \`mailbridge sandbox start --dir ${dir}\`.`,
  });
}

function errorJson(error: unknown): { code?: string; message: string; remedy?: string } {
  if (error instanceof ConfigurationError) {
    // The message already ends with the remedy; send them apart so the CLI can rebuild the error.
    return {
      code: error.code,
      message: error.message.replace(error.remedy, '').trim(),
      remedy: error.remedy,
    };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}
