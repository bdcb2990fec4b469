/**
 * A real Redis for queue tests: Debian's `redis-server` (7.0) on 127.0.0.1
 * and a free port, its whole state (AOF included) in one temporary folder.
 * AOF with `appendfsync always`, as the README's examples set it up, so a
 * restart — even after SIGKILL — loses no acknowledged write: the tests of
 * "Redis restarted mid-run" rely on that.
 *
 * Like the Dovecot harness (mail-servers.ts): the server leads its own
 * process group, and a watchdog shell kills it and removes the folder when
 * the test process dies without cleaning up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { delay, freePorts, waitUntilReady } from '../../src/sandbox/server-readiness.js';
import { signalProcessGroup } from '../../src/util/process.js';

export interface RedisServerOptions {
  /** `requirepass`: clients must AUTH with it. @default none */
  password?: string;
  /**
   * A TLS port besides the plain one (which the harness keeps for its
   * readiness check), serving this certificate and key (PEM). Clients are
   * not asked for certificates.
   */
  tls?: { certificatePem: string; privateKeyPem: string; caPem: string };
}

export interface RedisServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:PORT/0`, without the password (give that through the environment). */
  readonly url: string;
  /** With `tls`: `rediss://127.0.0.1:TLSPORT/0`. */
  readonly tlsUrl: string | undefined;
  readonly dir: string;
  /**
   * Stops the server and starts it again on the same port from its AOF.
   * `kill`: SIGKILL instead of a clean SHUTDOWN. `downMs`: how long it stays down.
   */
  restart(options?: { kill?: boolean; downMs?: number }): Promise<void>;
  /** The server's log, for the message of a failing test. */
  log(): string;
  /** Stops the server and removes the folder. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const SERVER_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-redis-'));
  const [port = 0, tlsPort] = await freePorts(options.tls ? 2 : 1);
  const config = join(dir, 'redis.conf');
  if (options.tls) {
    writeFileSync(join(dir, 'tls-cert.pem'), options.tls.certificatePem);
    writeFileSync(join(dir, 'tls-key.pem'), options.tls.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'tls-ca.pem'), options.tls.caPem);
  }
  writeFileSync(
    config,
    [
      'bind 127.0.0.1',
      `port ${port}`,
      `dir ${dir}`,
      `logfile ${join(dir, 'redis.log')}`,
      'daemonize no',
      'protected-mode yes',
      'appendonly yes',
      'appendfsync always',
      'save ""',
      // BullMQ's requirement: keys with a TTL or not, never evicted.
      'maxmemory-policy noeviction',
      ...(options.password ? [`requirepass ${options.password}`] : []),
      ...(tlsPort
        ? [
            `tls-port ${tlsPort}`,
            `tls-cert-file ${join(dir, 'tls-cert.pem')}`,
            `tls-key-file ${join(dir, 'tls-key.pem')}`,
            `tls-ca-cert-file ${join(dir, 'tls-ca.pem')}`,
            'tls-auth-clients no',
          ]
        : []),
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const server = new RunningRedis(dir, port, config, tlsPort);
  try {
    await server.start();
    return server;
  } catch (error) {
    const log = server.log();
    await server.stop();
    if (error instanceof Error && log) error.message += `\n--- redis log ---\n${log}`;
    throw error;
  }
}

class RunningRedis implements RedisServer {
  readonly host = '127.0.0.1';
  private child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private stopped = false;
  private readonly onExit = () => this.killNow();

  constructor(
    readonly dir: string,
    readonly port: number,
    private readonly config: string,
    private readonly tlsPort: number | undefined,
  ) {
    process.on('exit', this.onExit);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  get tlsUrl(): string | undefined {
    return this.tlsPort ? `rediss://127.0.0.1:${this.tlsPort}/0` : undefined;
  }

  async start(): Promise<void> {
    const output = openSync(join(this.dir, 'output.log'), 'a');
    try {
      const child = spawn('redis-server', [this.config], {
        detached: true,
        stdio: ['ignore', output, output],
        env: SERVER_ENV,
      });
      child.on('error', () => {});
      this.child = child;
    } finally {
      closeSync(output);
    }
    this.startWatchdog();
    await waitUntilReady(
      this.child,
      'redis-server',
      () => answersPing(this.port),
      READY_TIMEOUT_MS,
    );
  }

  async restart(options: { kill?: boolean; downMs?: number } = {}): Promise<void> {
    await this.halt(options.kill === true);
    if (options.downMs) await delay(options.downMs);
    await this.start();
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'redis.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.halt(true);
    process.off('exit', this.onExit);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGTERM makes Redis flush the AOF and exit; SIGKILL is a crash. */
  private async halt(kill: boolean): Promise<void> {
    const child = this.child;
    if (this.watchdog) signalProcessGroup(this.watchdog, 'SIGKILL');
    this.watchdog = undefined;
    if (!child?.pid) return;
    const exited =
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((resolve) => child.once('exit', () => resolve()));
    signalProcessGroup(child, kill ? 'SIGKILL' : 'SIGTERM');
    await Promise.race([exited, delay(STOP_TIMEOUT_MS)]);
    signalProcessGroup(child, 'SIGKILL');
    await Promise.race([exited, delay(STOP_TIMEOUT_MS)]);
    this.child = undefined;
  }

  private killNow(): void {
    if (this.child) signalProcessGroup(this.child, 'SIGKILL');
    if (this.watchdog) signalProcessGroup(this.watchdog, 'SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills the server and removes the folder when the test process dies without stop(). */
  private startWatchdog(): void {
    const group = this.child?.pid;
    if (!group) return;
    const script =
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "-$3" 2>/dev/null; rm -rf "$2"';
    this.watchdog = spawn(
      'sh',
      ['-c', script, 'mailbridge-redis-watchdog', String(process.pid), this.dir, String(group)],
      { detached: true, stdio: 'ignore', env: SERVER_ENV },
    );
    this.watchdog.on('error', () => {});
    this.watchdog.unref();
  }
}

/**
 * Whether Redis answers PING as a server that has loaded its data: `+PONG`,
 * or `-NOAUTH` with a password set. `-LOADING` while it reads the AOF.
 */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      reply += data.toString('latin1');
      if (!reply.includes('\r\n')) return;
      socket.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(reply));
    });
    socket.once('error', () => resolve(false));
  });
}
