/**
 * The relay under an AUTH flood (results and how to read them: bench/README.md).
 *
 * `mailbridge relay` runs as a child process (test/jobs/relay/run-relay.ts)
 * with a users file at the real cost (scrypt ln=15, as `relay hash-password`
 * makes it), `127.0.0.1/32` allowed to send without auth and the defaults
 * for everything the flood meets (auth penalty, connection limits). First
 * quiet, then while `--connections` (24) connections from 8 loopback
 * addresses loop `AUTH PLAIN` with wrong passwords for the user `scanner`
 * (reconnecting when refused), it times:
 *   - DATA→250 of an allowed-network client (127.0.0.1, no auth);
 *   - a legitimate AUTH PLAIN of `scanner` from its usual address (127.0.0.2,
 *     which signed in once before the flood);
 *   - one AUTH of `scanner` from an address it never used (127.0.0.3): the
 *     bounded delay an attacker guessing that user costs the real user there.
 * Nothing is delivered (the upstream is a closed port): only acceptance counts.
 *
 * `--checkout DIR` runs the relay of another checkout (e.g. an export of
 * main) with the same clients, for a before/after in one sitting.
 *
 *   npx tsx bench/relay-flood.ts [--connections 24] [--seconds 20]
 *                                [--checkout DIR] [--write-readme]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { hashPassword } from '../src/jobs/listener/password.js';
import { openSmtp } from '../test/jobs/relay/smtp-dialog.js';
import {
  delay,
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  README,
  wholeOption,
  writeReadmeSection,
} from './support.js';

const progress = progressLogger('relay-flood');
const PASSWORD = 'Scan-2-Mail!';
const ATTACKER_ADDRESSES = 8;
const SAMPLES = 10;

interface Options {
  connections: number;
  seconds: number;
  checkout: string;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '24' },
      seconds: { type: 'string', default: '20' },
      checkout: { type: 'string', default: fileURLToPath(new URL('..', import.meta.url)) },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  return {
    connections: wholeOption('connections', values.connections, 1, 1000),
    seconds: wholeOption('seconds', values.seconds, 4, 600),
    checkout: resolve(values.checkout),
    writeReadme: values['write-readme'],
  };
}

interface Phase {
  dataMs: number[];
  authMs: number[];
  freshAuthMs?: number;
  freshReply?: string;
  /** Attacker replies by code. */
  replies: Map<string, number>;
  seconds: number;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const dir = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-flood-'));
  let child: ChildProcess | undefined;
  try {
    const users = join(dir, 'users');
    await writeFile(users, `scanner:${await hashPassword(PASSWORD)}\n`);
    const configFile = join(dir, 'mailbridge.json');
    await writeFile(
      configFile,
      JSON.stringify({
        relay: {
          listen: ['127.0.0.1:0'],
          spool: join(dir, 'spool'),
          users,
          allowNetworks: ['127.0.0.1/32'],
          policy: [
            { network: '127.0.0.1/32', senders: ['printer@contoso.example'] },
            { user: 'scanner', senders: ['scans@contoso.example'] },
          ],
        },
      }),
    );
    progress(`starting the relay of ${options.checkout}`);
    const started = await startRelay(options.checkout, configFile, (c) => {
      child = c;
    });
    const port = Number(/:(\d+)$/.exec(started)?.[1]);

    // What one check costs on this machine now, outside the relay: the floor of any AUTH.
    const scryptStarted = performance.now();
    await hashPassword(PASSWORD);
    const scryptMs = performance.now() - scryptStarted;
    const login = await timeAuth(port, '127.0.0.2');
    if (!login.reply.startsWith('235')) throw new Error(`the first login failed: ${login.reply}`);
    progress('quiet phase');
    const quiet = await phase(port, 0, options.seconds);
    progress(`flood phase: ${options.connections} connections for ${options.seconds} s`);
    const flood = await phase(port, options.connections, options.seconds);

    const machine = describeMachine([`load average ${os.loadavg()[0]?.toFixed(1)} at the end`]);
    const table = render(quiet, flood, options, scryptMs);
    process.stdout.write(`${machine}\n\n${table}\n`);
    if (options.writeReadme) {
      await writeReadmeSection('relay-flood', `${machine}\n\n${table}`);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return 0;
  } finally {
    child?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

function startRelay(
  checkout: string,
  configFile: string,
  onChild: (child: ChildProcess) => void,
): Promise<string> {
  const runRelay = join(checkout, 'test/jobs/relay/run-relay.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', runRelay, '--config', configFile], {
    cwd: checkout,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      AZURE_TENANT_ID: 'contoso.onmicrosoft.com',
      AZURE_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
      AZURE_CLIENT_SECRET: 'not-used-here',
      // Nothing listens there: deliveries are deferred, acceptance is what is measured.
      MAILBRIDGE_SMTP_HOST: '127.0.0.1',
      MAILBRIDGE_SMTP_PORT: '9',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onChild(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  return new Promise((resolveStarted, reject) => {
    let pending = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const event = JSON.parse(line) as Record<string, unknown>;
        if (event.event === 'started') resolveStarted(String(event.listen));
      }
    });
    child.once('exit', (code) => reject(new Error(`the relay exited (${code})\n${stderr}`)));
  });
}

async function timeAuth(port: number, localAddress: string) {
  const smtp = await openSmtp(port, { localAddress });
  await smtp.send('EHLO device');
  const plain = Buffer.from(`\0scanner\0${PASSWORD}`).toString('base64');
  const started = performance.now();
  const reply = await smtp.send(`AUTH PLAIN ${plain}`);
  const ms = performance.now() - started;
  smtp.close();
  return { reply, ms };
}

async function timeData(port: number, n: number): Promise<number> {
  const smtp = await openSmtp(port);
  await smtp.send('EHLO printer');
  await smtp.send('MAIL FROM:<printer@contoso.example>');
  await smtp.send('RCPT TO:<archive@contoso.example>');
  const started = performance.now();
  const reply = await smtp.data(`Message-ID: <flood-${n}@bench>\r\nSubject: scan\r\n\r\nscan\r\n`);
  const ms = performance.now() - started;
  smtp.close();
  if (!reply.startsWith('250')) throw new Error(`DATA refused: ${reply}`);
  return ms;
}

/** Times DATA and AUTH while `connections` attackers guess, for `seconds`. */
async function phase(port: number, connections: number, seconds: number): Promise<Phase> {
  const until = Date.now() + seconds * 1000;
  const over = delay(seconds * 1000).then(() => 'over' as const);
  const replies = new Map<string, number>();
  let n = 0;
  const attacker = async (localAddress: string) => {
    while (Date.now() < until) {
      const smtp = await openSmtp(port, { localAddress }).catch(() => undefined);
      if (!smtp) continue;
      if (smtp.greeting.startsWith('220')) {
        await smtp.send('EHLO bot');
        while (Date.now() < until) {
          const guess = Buffer.from(`\0scanner\0guess-${n++}`).toString('base64');
          const reply = await Promise.race([smtp.send(`AUTH PLAIN ${guess}`), smtp.closed, over]);
          if (reply === undefined || reply === 'over') break;
          const code = reply.slice(0, 3);
          replies.set(code, (replies.get(code) ?? 0) + 1);
          if (code !== '535') break;
        }
      } else {
        const code = smtp.greeting.slice(0, 3);
        replies.set(`${code} at connect`, (replies.get(`${code} at connect`) ?? 0) + 1);
      }
      smtp.close();
    }
  };
  const flood = Array.from({ length: connections }, (_, i) =>
    attacker(`127.0.0.${10 + (i % ATTACKER_ADDRESSES)}`),
  );
  // Let the flood build up before timing.
  await delay(Math.min(2000, (seconds * 1000) / 4));
  const spacing = ((seconds * 1000) / 2 / SAMPLES) | 0;
  const dataMs: number[] = [];
  const authMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    dataMs.push(await timeData(port, i + (connections ? 1000 : 0)));
    const auth = await timeAuth(port, '127.0.0.2');
    if (!auth.reply.startsWith('235')) throw new Error(`legitimate AUTH refused: ${auth.reply}`);
    authMs.push(auth.ms);
    await delay(spacing);
  }
  const result: Phase = { dataMs, authMs, replies, seconds };
  if (connections > 0) {
    const fresh = await timeAuth(port, '127.0.0.3');
    result.freshAuthMs = fresh.ms;
    result.freshReply = fresh.reply.slice(0, 3);
  }
  await Promise.all(flood);
  return result;
}

function render(quiet: Phase, flood: Phase, options: Options, scryptMs: number): string {
  const s = (ms: number) => (ms / 1000).toFixed(3);
  const row = (label: string, values: (p: Phase) => number[]) => [
    label,
    `${s(median(values(quiet)))} / ${s(Math.max(...values(quiet)))}`,
    `${s(median(values(flood)))} / ${s(Math.max(...values(flood)))}`,
  ];
  const attempts = [...flood.replies.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, count]) => `${count} × ${code}`)
    .join(', ');
  const checked = flood.replies.get('535') ?? 0;
  return [
    markdownTable(
      [`s (median / max of ${SAMPLES})`, 'quiet', `${options.connections} connections guessing`],
      [
        row('Allowed-network client: DATA → 250', (p) => p.dataMs),
        row('Legitimate AUTH PLAIN from its usual address → 235', (p) => p.authMs),
        [
          'Same user from an address it never used → 235',
          '',
          flood.freshAuthMs === undefined ? '' : `${s(flood.freshAuthMs)} (${flood.freshReply})`,
        ],
      ],
    ),
    '',
    `Attackers: ${options.connections} connections from ${ATTACKER_ADDRESSES} addresses for ${options.seconds} s, ` +
      `replies ${attempts || 'none'}; ${(checked / options.seconds).toFixed(2)} wrong passwords answered 535 per second. ` +
      `One scrypt check (ln=15) alone in the bench process, before the run: ${s(scryptMs)} s.`,
  ].join('\n');
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `bench:relay-flood failed: ${error instanceof Error ? error.stack : error}\n`,
    );
    process.exitCode = 1;
  },
);
