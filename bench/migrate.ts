/**
 * Migration benchmark (results and how to read them: bench/README.md).
 *
 * One Dovecot, two users: the source logs in with a password (another
 * provider), the destination with XOAUTH2 (the Microsoft 365 side). The
 * source's INBOX holds `--messages` messages of the archive bench's corpus
 * (bench/archive-seed.ts: real MIME, 2 KB – 2 MB, median about 20 KB). Each
 * client copies it, in the same run, into an empty destination mailbox of its
 * own, over implicit TLS, in two network profiles:
 *   - loopback: straight to Dovecot;
 *   - WAN: through test/helpers/shaping-proxy.ts (a process of its own, as a
 *     network is: in ours' process it would share our event loop), 15 ms each way and 2 MB/s
 *     per connection each way, on both sides (Exchange Online serves one
 *     IMAP connection far slower than a loopback Dovecot).
 * The clients:
 *   1. ours: `migrateMailbox` with its defaults (the state in a new folder);
 *   2. mbsync (Debian's isync): an IMAP↔IMAP channel, `Sync Pull`,
 *      `Create Near`, PLAIN on the source, XOAUTH2 on the destination through
 *      the Cyrus SASL plugin of `libsasl2-modules-kdexoauth2`;
 *   3. offlineimap3 (`--offlineimap`): an IMAP → IMAP account, the source
 *      read-only, XOAUTH2 on the destination with the token given in its
 *      configuration. Slow enough that it is left out unless asked for.
 * imapsync is not packaged in Debian 12 and is not measured.
 *
 *   npx tsx bench/migrate.ts [--messages 10000] [--rounds 1]
 *     [--profiles loopback,wan] [--clients ours,mbsync] [--capabilities exchange|dovecot]
 *     [--offlineimap] [--write-readme]
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import {
  createImapClient,
  createTokenProvider,
  loadConfig,
  type MailbridgeConfig,
  migrateMailbox,
} from '../src/index.js';
import { appEnvironment } from '../test/helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../test/helpers/mail-servers.js';
import {
  DEFAULT_BYTES_PER_SECOND,
  DEFAULT_DELAY_MS,
  startShapingProxy,
} from '../test/helpers/shaping-proxy.js';
import { startTokenService, type TokenService } from '../test/helpers/token-service.js';
import { seedMaildir } from './archive-seed.js';
import {
  childrenCpuSeconds,
  dovecotMaster,
  mailUser,
  ownCpuSeconds,
  serverCpuSeconds,
} from './process-cpu.js';
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

const SOURCE = 'bench-source@oldhost.example';
const SOURCE_PASSWORD = 'bench source password';
const SASL_PLUGIN_DIRS = ['/usr/lib/x86_64-linux-gnu/sasl2', '/usr/lib/aarch64-linux-gnu/sasl2'];
/** Goals from the issue: ours / mbsync, messages per second, per profile. */
const GOALS: Record<Profile, number> = { loopback: 1, wan: 3 };

const execFileAsync = promisify(execFile);

type Profile = 'loopback' | 'wan';
type Side = 'ours' | 'mbsync' | 'offlineimap';
const SIDE_NAMES: Record<Side, string> = {
  ours: 'ours: `migrateMailbox`, defaults',
  mbsync: 'mbsync (isync), IMAP → IMAP',
  offlineimap: 'offlineimap3, IMAP → IMAP',
};

interface BenchOptions {
  messages: number;
  rounds: number;
  profiles: Profile[];
  /** Which clients to run: ours and mbsync by default, offlineimap3 only when asked. */
  clients: Side[];
  writeReadme: boolean;
  /**
   * What Dovecot advertises: Exchange Online's capability list (no
   * MULTIAPPEND), as the tests use, or Dovecot's own (`--capabilities dovecot`:
   * two Dovecot users as they are).
   */
  capabilities: 'exchange' | 'dovecot';
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '1' },
      profiles: { type: 'string', default: 'loopback,wan' },
      clients: { type: 'string', default: 'ours,mbsync' },
      capabilities: { type: 'string', default: 'exchange' },
      offlineimap: { type: 'boolean', default: false },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  const profiles = values.profiles.split(',').map((p) => p.trim());
  for (const p of profiles) {
    if (p !== 'loopback' && p !== 'wan') throw new Error(`--profiles: unknown profile ${p}`);
  }
  const clients = values.clients.split(',').map((c) => c.trim());
  for (const c of clients) {
    if (!(c in SIDE_NAMES)) throw new Error(`--clients: unknown client ${c}`);
  }
  if (values.offlineimap && !clients.includes('offlineimap')) clients.push('offlineimap');
  return {
    messages: wholeOption('messages', values.messages, 1, 100_000),
    rounds: wholeOption('rounds', values.rounds, 1, 20),
    profiles: profiles as Profile[],
    clients: clients as Side[],
    writeReadme: values['write-readme'],
    capabilities: capabilitiesOption(values.capabilities),
  };
}

function capabilitiesOption(value: string): BenchOptions['capabilities'] {
  if (value !== 'exchange' && value !== 'dovecot') {
    throw new Error(`--capabilities: exchange or dovecot, not ${value}`);
  }
  return value;
}

interface Run {
  profile: Profile;
  side: Side;
  round: number;
  ms: number;
  /** CPU seconds (user + system) of the client: the bench process, or the tool's process. */
  cpu: number;
  serverCpu: number;
  /** Load average (1 min) when the run started: other work on the machine distorts the figures. */
  load: number;
}

interface Context {
  service: TokenService;
  servers: MailServers;
  app: { tenantId: string; clientId: string; secret: string | undefined };
  /** What mbsync trusts (see bench/archive.ts: isync checks no IP address names). */
  mbsyncTrust: string;
  work: string;
  dovecot: number;
}

// ---------------------------------------------------------------------------

let destinations = 0;

/** A new, empty destination mailbox the app may open. */
async function newDestination(ctx: Context, profile: Profile, side: Side): Promise<string> {
  const mailbox = `dest-${profile}-${side}-${++destinations}@contoso.example`;
  await ctx.servers.grantMailbox(ctx.app.clientId, mailbox);
  return mailbox;
}

async function configFor(ctx: Context, imap: { host: string; port: number }) {
  return loadConfig({ env: appEnvironment(ctx.service, ctx.app, { imap }) });
}

async function runOurs(
  ctx: Context,
  endpoint: { host: string; port: number },
  dest: string,
  dir: string,
): Promise<void> {
  const config = await configFor(ctx, endpoint);
  const result = await migrateMailbox({
    from: `imaps://${encodeURIComponent(SOURCE)}@${endpoint.host}:${endpoint.port}`,
    to: `m365:${dest}`,
    toConfig: config,
    fromPassword: SOURCE_PASSWORD,
    stateDir: join(dir, 'state'),
  });
  if (!result.ok) throw new Error(`migrateMailbox did not finish: ${result.skipped} skipped`);
}

async function token(config: MailbridgeConfig): Promise<string> {
  return (await createTokenProvider(config).getToken()).accessToken;
}

async function runTool(command: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const keep = (d: Buffer) => {
      text = (text + d.toString()).slice(-20_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}:\n${text}`)),
    );
  });
}

async function runMbsync(
  ctx: Context,
  endpoint: { host: string; port: number },
  dest: string,
  dir: string,
  accessToken: string,
): Promise<void> {
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, accessToken, { mode: 0o600 });
  const passwordFile = join(dir, 'password');
  await writeFile(passwordFile, SOURCE_PASSWORD, { mode: 0o600 });
  await mkdir(join(dir, 'sync-state'));
  const account = (name: string, user: string, secret: string, mech: string) => [
    `IMAPAccount ${name}`,
    `Host ${endpoint.host}`,
    `Port ${endpoint.port}`,
    `User ${user}`,
    `PassCmd "cat ${secret}"`,
    'SSLType IMAPS',
    `CertificateFile ${ctx.mbsyncTrust}`,
    'SystemCertificates no',
    `AuthMechs ${mech}`,
    '',
    `IMAPStore ${name}`,
    `Account ${name}`,
    '',
  ];
  const configFile = join(dir, 'mbsyncrc');
  await writeFile(
    configFile,
    [
      'FSync yes',
      '',
      ...account('source', SOURCE, passwordFile, 'PLAIN'),
      ...account('destination', dest, tokenFile, 'XOAUTH2'),
      'Channel bench',
      'Far :source:',
      'Near :destination:',
      'Patterns *',
      'Sync Pull',
      'Create Near',
      `SyncState ${join(dir, 'sync-state')}/`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  await runTool('mbsync', ['-c', configFile, 'bench']);
}

async function runOfflineimap(
  ctx: Context,
  endpoint: { host: string; port: number },
  dest: string,
  dir: string,
  accessToken: string,
): Promise<void> {
  const configFile = join(dir, 'offlineimaprc');
  const repository = (name: string, user: string, auth: string[]) => [
    `[Repository ${name}]`,
    'type = IMAP',
    `remotehost = ${endpoint.host}`,
    `remoteport = ${endpoint.port}`,
    `remoteuser = ${user}`,
    'ssl = yes',
    `sslcacertfile = ${join(ctx.servers.dir, 'tls', 'ca.pem')}`,
    ...auth,
    '',
  ];
  await writeFile(
    configFile,
    [
      '[general]',
      'accounts = bench',
      `metadata = ${join(dir, 'metadata')}`,
      'ui = quiet',
      '',
      '[Account bench]',
      'remoterepository = source',
      'localrepository = destination',
      '',
      ...repository('source', SOURCE, [`remotepass = ${SOURCE_PASSWORD}`, 'readonly = True']),
      ...repository('destination', dest, [
        'auth_mechanisms = XOAUTH2',
        `oauth2_access_token = ${accessToken}`,
      ]),
    ].join('\n'),
    { mode: 0o600 },
  );
  await runTool('offlineimap', ['-c', configFile, '-o', '-u', 'quiet']);
}

/** Messages in the destination's INBOX, read straight from Dovecot. */
async function destinationCount(ctx: Context, dest: string): Promise<number> {
  const config = await configFor(ctx, ctx.servers.imap);
  const client = await createImapClient(config, { mailbox: dest });
  try {
    const status = await client.status('INBOX', { messages: true });
    return status ? (status.messages ?? 0) : 0;
  } finally {
    await client.logout();
  }
}

// ---------------------------------------------------------------------------

async function measure(options: BenchOptions): Promise<number> {
  const missing = await missingTools(options);
  if (missing.length > 0) {
    process.stderr.write(`bench:migrate needs ${missing.join(' and ')}\n`);
    return 2;
  }
  const service = await startTokenService();
  let servers: MailServers | undefined;
  let proxy: ProxyProcess | undefined;
  const work = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-migrate-'));
  try {
    progress('starting Dovecot');
    servers = await startMailServers({
      tokenService: service,
      passwordUsers: { [SOURCE]: SOURCE_PASSWORD },
      capabilities: options.capabilities,
    });
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const mbsyncTrust = join(work, 'mbsync-trust.pem');
    const tlsDir = join(servers.dir, 'tls');
    await writeFile(
      mbsyncTrust,
      (await readFile(join(tlsDir, 'ca.pem'), 'utf8')) +
        (await readFile(join(tlsDir, 'server.pem'), 'utf8')),
    );
    const dovecot = await dovecotMaster(join(servers.dir, 'dovecot', 'dovecot.conf'));
    const ctx: Context = { service, servers, app, mbsyncTrust, work, dovecot };

    progress(`seeding ${options.messages} messages`);
    const [domain, user] = [SOURCE.split('@')[1] as string, SOURCE.split('@')[0] as string];
    const [uid, gid] = await mailUser();
    const seeded = await seedMaildir(
      join(servers.dir, 'mail', domain, user, 'Maildir'),
      options.messages,
      SOURCE,
      { uid, gid },
    );
    await execFileAsync('sync');
    // Dovecot gives the files UIDs and builds its index at the first SELECT: not measured.
    await warmUp(servers, options.messages);
    proxy = await startProxyProcess(servers.imap);
    progress(
      `seeded ${seeded.messages} messages, ${mb(seeded.bytes)} MB; WAN: ${proxy.delayMs} ms each way, ${mb(proxy.bytesPerSecond)} MB/s per connection`,
    );

    const sides = options.clients;
    const runs: Run[] = [];
    for (let round = 0; round < options.rounds; round++) {
      for (const profile of options.profiles) {
        const endpoint = profile === 'wan' ? proxy : servers.imap;
        const order = sides.map((_, i) => sides[(i + round) % sides.length] as Side);
        for (const side of order) {
          const dir = await mkdtemp(join(work, `${profile}-${side}-`));
          const dest = await newDestination(ctx, profile, side);
          const accessToken =
            side === 'ours' ? '' : await token(await configFor(ctx, servers.imap));
          await execFileAsync('sync');
          const load = os.loadavg()[0] as number;
          const childCpu = await childrenCpuSeconds();
          const serverStart = await serverCpuSeconds(dovecot);
          const cpuStart = process.cpuUsage();
          const start = performance.now();
          if (side === 'ours') await runOurs(ctx, endpoint, dest, dir);
          else if (side === 'mbsync') await runMbsync(ctx, endpoint, dest, dir, accessToken);
          else await runOfflineimap(ctx, endpoint, dest, dir, accessToken);
          const ms = performance.now() - start;
          const cpu =
            side === 'ours' ? ownCpuSeconds(cpuStart) : (await childrenCpuSeconds()) - childCpu;
          const serverCpu = (await serverCpuSeconds(dovecot)) - serverStart;
          const copied = await destinationCount(ctx, dest);
          if (copied !== options.messages) {
            throw new Error(
              `${side} (${profile}) copied ${copied} of ${options.messages} messages`,
            );
          }
          runs.push({ profile, side, round, ms, cpu, serverCpu, load });
          progress(
            `round ${round + 1} ${profile}: ${side} ${(ms / 1000).toFixed(2)} s, ${(options.messages / (ms / 1000)).toFixed(0)} messages/s, load ${load.toFixed(1)}`,
          );
        }
      }
    }

    const machine = describeMachine(await softwareVersions());
    const table = render(runs, options, sides, seeded.bytes, proxy);
    process.stdout.write(`${machine}\n\n${table}\n`);
    if (options.writeReadme) {
      await writeReadmeSection('migrate', `${machine}\n\n${table}`);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return 0;
  } finally {
    await proxy?.close();
    await servers?.stop();
    await service.close();
    await rm(work, { recursive: true, force: true });
  }
}

async function warmUp(servers: MailServers, messages: number): Promise<void> {
  const client = new ImapFlow({
    host: servers.imap.host,
    port: servers.imap.port,
    secure: true,
    auth: { user: SOURCE, pass: SOURCE_PASSWORD },
    logger: false,
  });
  await client.connect();
  try {
    const status = await client.mailboxOpen('INBOX', { readOnly: true });
    if (status.exists !== messages) {
      throw new Error(`Dovecot serves ${status.exists} messages; seeded ${messages}`);
    }
    // Sizes and dates come from the index once it is built.
    await client.fetchAll('1:*', { uid: true, size: true, internalDate: true, flags: true });
  } finally {
    await client.logout();
  }
}

function render(
  runs: Run[],
  options: BenchOptions,
  sides: Side[],
  bytes: number,
  proxy: ProxyProcess,
): string {
  const x = (v: number) => `${v.toFixed(2)}×`;
  const of = (profile: Profile, side: Side) =>
    runs.filter((r) => r.profile === profile && r.side === side);
  const rate = (profile: Profile, side: Side) =>
    options.messages / median(of(profile, side).map((r) => r.ms / 1000));
  const sections: string[] = [];
  for (const profile of options.profiles) {
    const name =
      profile === 'wan'
        ? `WAN: ${proxy.delayMs} ms each way, ${mb(proxy.bytesPerSecond)} MB/s per connection`
        : 'loopback';
    const table = markdownTable(
      [
        `${name}; ${options.messages} messages, ${mb(bytes)} MB, median of ${options.rounds} round(s)`,
        ...sides.map((s) => SIDE_NAMES[s]),
      ],
      [
        ['Messages/s', ...sides.map((s) => rate(profile, s).toFixed(0))],
        [
          'MB/s',
          ...sides.map((s) =>
            ((rate(profile, s) * bytes) / options.messages / 1024 / 1024).toFixed(1),
          ),
        ],
        [
          'Wall time (s), every round',
          ...sides.map((s) =>
            of(profile, s)
              .map((r) => (r.ms / 1000).toFixed(1))
              .join(', '),
          ),
        ],
        [
          'Load average (1 min) at the start, every round',
          ...sides.map((s) =>
            of(profile, s)
              .map((r) => r.load.toFixed(1))
              .join(', '),
          ),
        ],
        [
          'CPU per message (µs), median',
          ...sides.map((s) =>
            ((median(of(profile, s).map((r) => r.cpu)) / options.messages) * 1e6).toFixed(0),
          ),
        ],
        [
          "Dovecot's CPU per message (µs), median",
          ...sides.map((s) =>
            ((median(of(profile, s).map((r) => r.serverCpu)) / options.messages) * 1e6).toFixed(0),
          ),
        ],
      ],
    );
    const perRound = (other: Side) =>
      Array.from({ length: options.rounds }, (_, round) => {
        const ms = (s: Side) => of(profile, s).find((r) => r.round === round)?.ms ?? Number.NaN;
        return ms(other) / ms('ours');
      });
    const ratios = markdownTable(
      ['Ratio (messages/s)', 'of the medians', 'range over the rounds', 'goal', 'met'],
      sides
        .filter((s) => s !== 'ours')
        .map((other) => {
          const ratio = rate(profile, 'ours') / rate(profile, other);
          const values = perRound(other);
          const goal = other === 'mbsync' ? GOALS[profile] : undefined;
          return [
            `ours / ${other}`,
            x(ratio),
            `${x(Math.min(...values))} – ${x(Math.max(...values))}`,
            goal !== undefined ? `≥ ${x(goal)}` : '',
            goal === undefined ? '' : ratio >= goal ? 'yes' : '**no**',
          ];
        }),
    );
    sections.push(table);
    if (sides.includes('ours') && sides.length > 1) sections.push(ratios);
  }
  sections.push(
    `Messages: bench/archive-seed.ts, ${options.messages} in the source's INBOX (${bytes} bytes as ` +
      'Dovecot serves them), copied into a new, empty destination mailbox per run. Source: ' +
      'password login (PLAIN); destination: XOAUTH2 with a token of the local token service. ' +
      (options.capabilities === 'dovecot'
        ? 'Dovecot advertises its own capabilities (MULTIAPPEND among them). '
        : "Dovecot advertises Exchange Online's capability list (no MULTIAPPEND). ") +
      'WAN: both sides through test/helpers/shaping-proxy.ts, run in a process of its own. ' +
      "CPU time is the client's own " +
      "(the bench process, or the tool's process); Dovecot's, on the same two cores, is on its " +
      'own row. imapsync is not packaged in Debian 12 and is not measured.',
  );
  return sections.join('\n\n');
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

async function missingTools(options: BenchOptions): Promise<string[]> {
  const missing: string[] = [];
  const has = async (file: string, args: string[]) =>
    execFileAsync(file, args).then(
      () => true,
      () => false,
    );
  const mbsync = options.clients.includes('mbsync');
  if (mbsync && !(await has('mbsync', ['--version'])))
    missing.push('mbsync (apt-get install isync)');
  if (mbsync && !SASL_PLUGIN_DIRS.some((dir) => existsSync(join(dir, 'libkdexoauth2.so')))) {
    missing.push('the SASL XOAUTH2 plugin (apt-get install libsasl2-modules-kdexoauth2)');
  }
  if (options.clients.includes('offlineimap') && !(await has('offlineimap', ['--version']))) {
    missing.push('offlineimap (apt-get install offlineimap3)');
  }
  return missing;
}

async function softwareVersions(): Promise<string[]> {
  const command = async (file: string, args: string[]) =>
    (await execFileAsync(file, args).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  const dovecot = (await command('dovecot', ['--version'])).split(' ')[0];
  const isync = (await command('mbsync', ['--version'])).replace(/^isync\s*/, '');
  const load = os.loadavg().map((l) => l.toFixed(1));
  return [`Dovecot ${dovecot}`, `isync ${isync}`, `load average at the end ${load.join(' ')}`];
}

const progress = progressLogger('migrate');

// ---------------------------------------------------------------------------

/** Set in the child that runs the shaping proxy: `host:port` of the server behind it. */
const PROXY_CHILD = 'MAILBRIDGE_BENCH_MIGRATE_PROXY_TARGET';

interface ProxyProcess {
  host: '127.0.0.1';
  port: number;
  delayMs: number;
  bytesPerSecond: number;
  close(): Promise<void>;
}

/**
 * The shaping proxy in a process of its own, as a network is: in the bench's
 * process it would share ours' event loop and CPU (forwarding every byte of
 * both sides) while mbsync, a process of its own, had the proxy elsewhere.
 */
async function startProxyProcess(target: { host: string; port: number }): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string], {
    env: { ...process.env, [PROXY_CHILD]: `${target.host}:${target.port}` },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [line] = (await new Promise<string[]>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(text.split('\n'));
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`the shaping proxy exited with ${code}`)));
  })) as [string];
  const port = Number(line);
  return {
    host: '127.0.0.1',
    port,
    delayMs: DEFAULT_DELAY_MS,
    bytesPerSecond: DEFAULT_BYTES_PER_SECOND,
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

/** The proxy child: prints its port, runs until its stdin closes. */
async function runProxyChild(target: string): Promise<void> {
  const [host, port] = target.split(':') as [string, string];
  const proxy = await startShapingProxy({ host, port: Number(port) });
  process.stdout.write(`${proxy.port}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void proxy.close().then(() => process.exit(0)));
}

const proxyTarget = process.env[PROXY_CHILD];
if (proxyTarget) void runProxyChild(proxyTarget);
else runBench('migrate', parseOptions, measure);
