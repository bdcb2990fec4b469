/**
 * Proxy benchmark (results and how to read them: bench/README.md).
 *
 * `mailbridge proxy` runs as a child process from the build (dist/cli/main.js)
 * in front of the real Dovecot (implicit TLS, XOAUTH2 checked against the
 * local token service). One mailbox of `--messages` messages
 * (bench/archive-seed.ts: real MIME, 2 KB – 2 MB, median about 20 KB) is
 * fetched, in the same run, `--rounds` times in a rotated order, by one
 * minimal client (one `UID FETCH 1:* BODY.PEEK[]`, every byte read and
 * dropped) that logs in:
 *   1. direct: to Dovecot with AUTHENTICATE XOAUTH2 and the app's token;
 *   2. proxy, TLS: to the proxy's imaps:// listener with LOGIN and a local
 *      password; the proxy decrypts, splices and encrypts again towards Dovecot;
 *   3. proxy, plain: the same on the proxy's loopback listener without TLS.
 * Medians: throughput proxy / direct (goal ≥ 0.9×), and the proxy's CPU time
 * per message (/proc/PID/stat). Then `--logins` logins each way, alternating,
 * with the proxy's token cache warm: connect, greeting, login, `OK`; the
 * proxy's p50/p99 minus the direct ones is what it adds. The local password is
 * hashed at `proxy hash-password`'s cost (scrypt ln=15), as in production.
 * `--cpu-prof DIR` has the proxy write a V8 CPU profile there.
 *
 * Needs root (the mail servers of test/helpers/mail-servers.ts) and the build
 * (`npm run bench:proxy` builds first). Like bench/archive.ts it runs twice: a
 * launcher that makes a throwaway CA and a child that trusts it.
 *
 *   npx tsx bench/proxy.ts [--messages 10000] [--rounds 3] [--logins 200]
 *                          [--scrypt-ln 15] [--cpu-prof DIR] [--write-readme]
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { parseArgs, promisify } from 'node:util';
import { createTokenProvider, loadConfig } from '../src/index.js';
import { hashPassword } from '../src/jobs/listener/password.js';
import { appEnvironment } from '../test/helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../test/helpers/mail-servers.js';
import { issueServerCertificate } from '../test/helpers/pki.js';
import { loadTestCa } from '../test/helpers/test-ca.js';
import { startTokenService } from '../test/helpers/token-service.js';
import { type ProxyProcess, spawnProxy } from '../test/jobs/proxy/proxy-process.js';
import { seedMaildir } from './archive-seed.js';
import { mailUser, processTimes } from './process-cpu.js';
import {
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  README,
  runBench,
  wholeOption,
  writeReadmeSection,
} from './support.js';

const MAILBOX = 'bench-proxy@contoso.example';
const USER = { name: 'bench', password: 'a local password for the bench' };
const GOAL_RATIO = 0.9;
const execFileAsync = promisify(execFile);
const progress = progressLogger('proxy');

interface BenchOptions {
  messages: number;
  rounds: number;
  logins: number;
  /** log2 of scrypt's N for the local password: 15 is `proxy hash-password`'s. */
  scryptLn: number;
  cpuProf: string | undefined;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '3' },
      logins: { type: 'string', default: '200' },
      'scrypt-ln': { type: 'string', default: '15' },
      'cpu-prof': { type: 'string' },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  return {
    messages: wholeOption('messages', values.messages, 1, 100_000),
    rounds: wholeOption('rounds', values.rounds, 1, 20),
    logins: wholeOption('logins', values.logins, 2, 10_000),
    scryptLn: wholeOption('scrypt-ln', values['scrypt-ln'], 10, 20),
    cpuProf: values['cpu-prof'],
    writeReadme: values['write-readme'],
  };
}

type Side = 'direct' | 'proxy-tls' | 'proxy-plain';
const SIDES: readonly Side[] = ['direct', 'proxy-tls', 'proxy-plain'];
const SIDE_NAMES: Record<Side, string> = {
  direct: 'direct to Dovecot (XOAUTH2)',
  'proxy-tls': 'through the proxy, imaps:// (LOGIN)',
  'proxy-plain': 'through the proxy, plain loopback (LOGIN)',
};

interface Target {
  side: Side;
  port: number;
  /** The login command, tag `a`. */
  login: string;
}

function connect(target: Target): net.Socket {
  return target.side === 'proxy-plain'
    ? net.connect({ host: '127.0.0.1', port: target.port })
    : tls.connect({ host: '127.0.0.1', port: target.port });
}

/**
 * A minimal IMAP client: greeting, `steps` one after the other (each ends at
 * its tagged `OK`), literals skipped by their announced length; `afterLogin`
 * runs between the first step's `OK` and the second step. Resolves with the
 * time each step's reply came, the literal bytes and their count.
 */
function session(
  target: Target,
  steps: readonly string[],
  afterLogin: () => Promise<void> = async () => {},
): Promise<{ doneAt: number[]; bytes: number; literals: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(target);
    socket.setNoDelay(true);
    const doneAt: number[] = [];
    let step = -1;
    let pending = Buffer.alloc(0);
    let literalLeft = 0;
    let bytes = 0;
    let literals = 0;
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    const line = (text: string) => {
      const literal = /\{(\d+)\}\r\n$/.exec(text);
      if (literal) {
        literalLeft = Number(literal[1]);
        bytes += literalLeft;
        literals++;
      }
      const tag = step < 0 ? '* ' : `${String.fromCharCode(97 + step)} `;
      if (!text.startsWith(tag)) return;
      if (!(step < 0 ? /^\* OK/ : /^[a-z] OK/).test(text)) {
        fail(new Error(`${target.side}: ${text.trim()}`));
        return;
      }
      if (step >= 0) doneAt.push(performance.now());
      step++;
      const next = () => {
        if (step < steps.length) {
          socket.write(`${String.fromCharCode(97 + step)} ${steps[step]}\r\n`);
        } else {
          socket.end();
          resolve({ doneAt, bytes, literals });
        }
      };
      if (step === 1) afterLogin().then(next, fail);
      else next();
    };
    socket.on('data', (chunk: Buffer) => {
      let pos = 0;
      while (pos < chunk.length) {
        if (literalLeft > 0) {
          const take = Math.min(literalLeft, chunk.length - pos);
          literalLeft -= take;
          pos += take;
          continue;
        }
        const nl = chunk.indexOf(10, pos);
        if (nl === -1) {
          pending = Buffer.concat([pending, chunk.subarray(pos)]);
          return;
        }
        const text = Buffer.concat([pending, chunk.subarray(pos, nl + 1)]).toString('latin1');
        pending = Buffer.alloc(0);
        pos = nl + 1;
        line(text);
      }
    });
    socket.on('error', fail);
    socket.on('close', () => {
      if (step <= steps.length - 1) fail(new Error(`${target.side}: connection closed early`));
    });
  });
}

/**
 * One session: login, SELECT, the FETCH, LOGOUT. `ms` counts from the
 * login's `OK` to the LOGOUT's, `sessionMs` from connecting; `afterLogin`
 * runs in between, outside both.
 */
async function fetchAll(target: Target, afterLogin?: () => Promise<void>) {
  const start = performance.now();
  let loggedIn = start;
  const result = await session(
    target,
    [target.login, 'SELECT INBOX', 'UID FETCH 1:* BODY.PEEK[]', 'LOGOUT'],
    async () => {
      await afterLogin?.();
      loggedIn = performance.now();
    },
  );
  const end = result.doneAt[result.doneAt.length - 1] as number;
  const login = (result.doneAt[0] as number) - start;
  return { ...result, ms: end - loggedIn, sessionMs: end - loggedIn + login };
}

/** Milliseconds from connecting to the login's `OK`. */
async function loginTime(target: Target): Promise<number> {
  const start = performance.now();
  const { doneAt } = await session(target, [target.login, 'LOGOUT']);
  return (doneAt[0] as number) - start;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function loadAverage(): Promise<string> {
  return os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
}

async function startBenchProxy(
  work: string,
  servers: MailServers,
  env: Record<string, string>,
  cpuProf: string | undefined,
  scryptLn: number,
): Promise<{ proxy: ProxyProcess; ports: Record<string, number> }> {
  const issued = issueServerCertificate(loadTestCa());
  const cert = join(work, 'proxy-cert.pem');
  const key = join(work, 'proxy-key.pem');
  await writeFile(cert, issued.certificatePem);
  await writeFile(key, issued.keys.privateKeyPem, { mode: 0o600 });
  const configFile = join(work, 'proxy.json');
  await writeFile(
    configFile,
    JSON.stringify({
      proxy: {
        imap: { listen: ['imaps://127.0.0.1:0', '127.0.0.1:0'] },
        tls: { cert, key },
        // At proxy hash-password's cost (ln=15) the login latency is what users get.
        users: [
          {
            name: USER.name,
            passwordHash: await hashPassword(USER.password, { ln: scryptLn, r: 8, p: 1 }),
            mailboxes: [MAILBOX],
          },
        ],
      },
    }),
  );
  const proxy = spawnProxy(
    configFile,
    {
      ...env,
      MAILBRIDGE_IMAP_HOST: servers.imap.host,
      MAILBRIDGE_IMAP_PORT: String(servers.imap.port),
    },
    cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : [],
  );
  return { proxy, ports: await proxy.ports() };
}

interface Run {
  side: Side;
  /** From the login's `OK` to the end: SELECT, the FETCH, LOGOUT. */
  ms: number;
  /** The same with the connection and login before it. */
  sessionMs: number;
  /** The proxy's CPU seconds from the login's `OK` to the end (0 for direct). */
  proxyCpu: number;
  load: string;
}

async function measure(options: BenchOptions): Promise<number> {
  const service = await startTokenService();
  let servers: MailServers | undefined;
  let proxy: ProxyProcess | undefined;
  const work = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-proxy-'));
  try {
    progress('starting Dovecot');
    servers = await startMailServers({ tokenService: service });
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    await servers.grantMailbox(app.clientId, MAILBOX);
    const env = appEnvironment(service, app, { imap: servers.imap });
    const config = await loadConfig({ env });
    const token = (await createTokenProvider(config).getToken()).accessToken;
    const sasl = Buffer.from(`user=${MAILBOX}\x01auth=Bearer ${token}\x01\x01`).toString('base64');

    progress(`seeding ${options.messages} messages`);
    const [user, domain] = MAILBOX.split('@') as [string, string];
    const [uid, gid] = await mailUser();
    const seeded = await seedMaildir(
      join(servers.dir, 'mail', domain, user, 'Maildir'),
      options.messages,
      MAILBOX,
      { uid, gid },
    );
    await execFileAsync('sync');

    const started = await startBenchProxy(work, servers, env, options.cpuProf, options.scryptLn);
    proxy = started.proxy;
    const proxyLogin = `LOGIN ${USER.name} "${USER.password}"`;
    const targets: Record<Side, Target> = {
      direct: { side: 'direct', port: servers.imap.port, login: `AUTHENTICATE XOAUTH2 ${sasl}` },
      'proxy-tls': { side: 'proxy-tls', port: started.ports.imaps as number, login: proxyLogin },
      'proxy-plain': { side: 'proxy-plain', port: started.ports.imap as number, login: proxyLogin },
    };

    // Dovecot gives the files UIDs and builds its index at the first SELECT; the
    // proxy's first login fetches its token: neither is measured.
    progress('warm-up: one fetch each way');
    for (const side of SIDES) {
      const warm = await fetchAll(targets[side]);
      if (warm.literals !== seeded.messages || warm.bytes !== seeded.bytes) {
        throw new Error(
          `${side} read ${warm.literals} messages, ${warm.bytes} bytes; seeded ${seeded.messages}, ${seeded.bytes}`,
        );
      }
    }

    const runs: Run[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = SIDES.map((_, i) => SIDES[(i + round) % SIDES.length] as Side);
      for (const side of order) {
        const pid = proxy.pid;
        // From the login's OK: the local password check (scrypt) is the login's share.
        let cpuBefore = 0;
        const result = await fetchAll(targets[side], async () => {
          cpuBefore = (await processTimes(pid)).own;
        });
        const { ms, sessionMs } = result;
        const proxyCpu = side === 'direct' ? 0 : (await processTimes(pid)).own - cpuBefore;
        if (result.bytes !== seeded.bytes) throw new Error(`${side} read ${result.bytes} bytes`);
        const load = await loadAverage();
        runs.push({ side, ms, sessionMs, proxyCpu, load });
        progress(
          `round ${round + 1}: ${side} ${(ms / 1000).toFixed(2)} s (session ${(sessionMs / 1000).toFixed(2)} s), ${(seeded.bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s, proxy CPU ${proxyCpu.toFixed(2)} s, load ${load}`,
        );
      }
    }

    progress(`${options.logins} logins each way, alternating`);
    const logins: Record<'direct' | 'proxy-tls', number[]> = { direct: [], 'proxy-tls': [] };
    const loginLoadBefore = await loadAverage();
    for (let i = 0; i < options.logins; i++) {
      for (const side of i % 2 === 0
        ? (['direct', 'proxy-tls'] as const)
        : (['proxy-tls', 'direct'] as const)) {
        logins[side].push(await loginTime(targets[side]));
      }
    }
    const loginLoad = `${loginLoadBefore} → ${await loadAverage()}`;

    const report = render(options, seeded, runs, logins, loginLoad);
    process.stdout.write(`${report}\n`);
    if (options.writeReadme) {
      await writeReadmeSection('proxy', report);
      progress(`wrote ${README}`);
    }
    const ratio = ratioOf(runs, 'proxy-tls');
    return ratio >= GOAL_RATIO ? 0 : 1;
  } finally {
    if (proxy) {
      proxy.child.kill('SIGTERM');
      await proxy.exited;
    }
    await servers?.stop();
    await service.close();
    await rm(work, { recursive: true, force: true });
  }
}

type Span = 'ms' | 'sessionMs';

function medianMs(runs: readonly Run[], side: Side, span: Span = 'ms'): number {
  return median(runs.filter((r) => r.side === side).map((r) => r[span]));
}

function ratioOf(runs: readonly Run[], side: Side, span: Span = 'ms'): number {
  return medianMs(runs, 'direct', span) / medianMs(runs, side, span);
}

function render(
  options: BenchOptions,
  seeded: { messages: number; bytes: number },
  runs: readonly Run[],
  logins: Record<'direct' | 'proxy-tls', number[]>,
  loginLoad: string,
): string {
  const mb = seeded.bytes / 1e6;
  const fetchRows = SIDES.map((side) => {
    const own = runs.filter((r) => r.side === side);
    const ms = medianMs(runs, side);
    const cpu = median(own.map((r) => r.proxyCpu));
    return [
      SIDE_NAMES[side],
      `${(ms / 1000).toFixed(2)} s`,
      `${(mb / (ms / 1000)).toFixed(0)} MB/s`,
      side === 'direct' ? '' : `${ratioOf(runs, side).toFixed(2)}×`,
      `${(medianMs(runs, side, 'sessionMs') / 1000).toFixed(2)} s${side === 'direct' ? '' : ` (${ratioOf(runs, side, 'sessionMs').toFixed(2)}×)`}`,
      side === 'direct' ? '' : `${((cpu * 1e6) / seeded.messages).toFixed(0)} µs`,
      own.map((r) => `${(r.ms / 1000).toFixed(2)} s (load ${r.load.split(' ')[0]})`).join(', '),
    ];
  });
  const p = (side: 'direct' | 'proxy-tls', q: number) => percentile(logins[side], q);
  const loginRows = [50, 99].map((q) => [
    `p${q}`,
    `${p('direct', q).toFixed(1)} ms`,
    `${p('proxy-tls', q).toFixed(1)} ms`,
    `${(p('proxy-tls', q) - p('direct', q)).toFixed(1)} ms`,
  ]);
  const ratio = ratioOf(runs, 'proxy-tls');
  return [
    describeMachine(['Dovecot 2.3']),
    '',
    `${seeded.messages} messages, ${mb.toFixed(1)} MB, one \`UID FETCH 1:* BODY.PEEK[]\`, median of ${options.rounds} round(s); load average (1 min) after each run in brackets. Time and proxy CPU count from the login's \`OK\` (SELECT, FETCH, LOGOUT); the whole session adds connecting and logging in, whose cost is the login table's.`,
    '',
    markdownTable(
      [
        'fetch',
        'time',
        'throughput',
        'vs direct',
        'whole session',
        'proxy CPU per message',
        'rounds',
      ],
      fetchRows,
    ),
    '',
    `Goal ≥ ${GOAL_RATIO}× direct over TLS: ${ratio >= GOAL_RATIO ? 'met' : 'not met'} (${ratio.toFixed(2)}×).`,
    '',
    `${options.logins} logins each way, alternating, token cache warm, scrypt ln=${options.scryptLn}; load ${loginLoad}.`,
    '',
    markdownTable(
      ['login', 'direct (XOAUTH2)', 'proxy (LOGIN, imaps://)', 'added by the proxy'],
      loginRows,
    ),
  ].join('\n');
}

runBench('proxy', parseOptions, measure);
