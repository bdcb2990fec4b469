/**
 * Archive into Azure Blob Storage (Azurite) against a local directory, same
 * run (results and how to read them: bench/README.md).
 *
 * One Dovecot mailbox of `--messages` messages (bench/archive-seed.ts, as
 * bench/archive.ts) is archived from cold by `archiveMailbox` into
 *   1. `disk`: an empty directory (fsync per file and per manifest batch);
 *   2. `blob`: an empty prefix of a container in Azurite, over HTTPS on
 *      loopback (test/helpers/azurite.ts): blocks with Content-MD5, one
 *      commit per message, the manifest an append blob under a lease.
 * `--rounds` rounds alternate the order; medians, the process's CPU time,
 * and the load average beside each run, since Azurite shares the machine.
 *
 * `--wan`: Azurite through test/helpers/shaping-proxy.ts (bench/wan.ts), a
 * storage account some distance away: each request pays the round trip.
 *
 *   npx tsx bench/archive-blob.ts [--messages 10000] [--rounds 2] [--wan] [--write-readme]
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { archiveMailbox, createImapClient, loadConfig } from '../src/index.js';
import { appEnvironment } from '../test/helpers/app-env.js';
import { startAzurite } from '../test/helpers/azurite.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE, startMailServers } from '../test/helpers/mail-servers.js';
import { type ShapingProxy, startShapingProxy } from '../test/helpers/shaping-proxy.js';
import { startTokenService } from '../test/helpers/token-service.js';
import { seedMaildir } from './archive-seed.js';
import { processTimes } from './process-cpu.js';
import {
  type CorpusBenchOptions,
  corpusBenchOptions,
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  README,
  runBench,
  writeReadmeSection,
} from './support.js';
import { describeWan } from './wan.js';

const MAILBOX = 'bench-blob@contoso.example';
const CONTAINER = 'bench';
const SIDES = ['disk', 'blob'] as const;
type Side = (typeof SIDES)[number];

const execFileAsync = promisify(execFile);
const progress = progressLogger('archive-blob');

interface Run {
  side: Side;
  ms: number;
  cpu: number;
  /** CPU seconds of the Azurite process meanwhile. */
  azuriteCpu: number;
  load: number;
}

async function measure(options: CorpusBenchOptions): Promise<number> {
  const service = await startTokenService();
  const work = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-blob-'));
  const servers = await startMailServers({ tokenService: service });
  const azurite = await startAzurite();
  let proxy: ShapingProxy | undefined;
  try {
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    await servers.grantMailbox(app.clientId, MAILBOX);
    const env = appEnvironment(service, app, { imap: servers.imap });
    const config = await loadConfig({ env });
    const azuritePort = new URL(azurite.endpoint).port;
    // --wan: the same Azurite, its requests and answers through the shaping proxy.
    let reach = (text: string) => text;
    if (options.wan) {
      const shaping = await startShapingProxy({ host: '127.0.0.1', port: Number(azuritePort) });
      proxy = shaping;
      reach = (text) => text.replace(`127.0.0.1:${azuritePort}/`, `127.0.0.1:${shaping.port}/`);
    }
    process.env.AZURE_STORAGE_CONNECTION_STRING = reach(azurite.connectionString);
    const azuritePid = await azuriteProcess(azuritePort);
    const azuriteCpu = async () => (await processTimes(azuritePid)).own;
    await azurite.createContainer(CONTAINER);

    progress(`seeding ${options.messages} messages`);
    const [user, domain] = MAILBOX.split('@') as [string, string];
    const [uid, gid] = await mailUser();
    const seeded = await seedMaildir(
      join(servers.dir, 'mail', domain, user, 'Maildir'),
      options.messages,
      MAILBOX,
      { uid, gid },
    );
    // Dovecot indexes the Maildir at the first SELECT: not measured.
    const warm = await createImapClient(config, { mailbox: MAILBOX });
    await warm.mailboxOpen('INBOX', { readOnly: true });
    await warm.logout();
    await execFileAsync('sync');

    const runs: Run[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? SIDES : [...SIDES].reverse();
      for (const side of order) {
        const out =
          side === 'disk'
            ? await mkdtemp(join(work, 'disk-'))
            : reach(azurite.url(CONTAINER, `round-${round}`));
        const load = os.loadavg()[0] ?? 0;
        const cpuStart = process.cpuUsage();
        const azuriteStart = await azuriteCpu();
        const start = performance.now();
        const result = await archiveMailbox(config, { mailbox: MAILBOX, outDir: out });
        const ms = performance.now() - start;
        const cpuUsed = process.cpuUsage(cpuStart);
        if (!result.ok || result.messagesNew !== seeded.messages) {
          throw new Error(`${side}: archived ${result.messagesNew} of ${seeded.messages}`);
        }
        runs.push({
          side,
          ms,
          cpu: (cpuUsed.user + cpuUsed.system) / 1e6,
          azuriteCpu: (await azuriteCpu()) - azuriteStart,
          load,
        });
        progress(
          `round ${round + 1}: ${side} ${(ms / 1000).toFixed(1)} s, ${(seeded.messages / (ms / 1000)).toFixed(0)} messages/s, load ${load.toFixed(1)}`,
        );
        await execFileAsync('sync');
      }
    }

    const rows = SIDES.map((side) => {
      const mine = runs.filter((r) => r.side === side);
      const seconds = median(mine.map((r) => r.ms / 1000));
      return [
        side === 'disk'
          ? 'local directory'
          : proxy
            ? `Azurite (HTTPS) through the shaping proxy, ${describeWan(proxy)}`
            : 'Azurite (HTTPS, loopback)',
        seconds.toFixed(1),
        (seeded.messages / seconds).toFixed(0),
        (seeded.bytes / 1e6 / seconds).toFixed(1),
        median(mine.map((r) => r.cpu)).toFixed(1),
        median(mine.map((r) => r.azuriteCpu)).toFixed(1),
        mine.map((r) => r.load.toFixed(1)).join(', '),
      ];
    });
    const table = markdownTable(
      [
        'archive into',
        'seconds',
        'messages/s',
        'MB/s',
        'CPU s (ours)',
        'CPU s (Azurite)',
        'load average at start',
      ],
      rows,
    );
    const azuriteVersion = await readFile(
      new URL('../node_modules/azurite/package.json', import.meta.url),
      'utf8',
    ).then((text) => (JSON.parse(text) as { version: string }).version);
    const machine = describeMachine([`Azurite ${azuriteVersion}`]);
    const text = `${machine}\n\n${options.messages} messages, ${(seeded.bytes / 1e6).toFixed(0)} MB, medians of ${options.rounds} round(s)\n\n${table}`;
    process.stdout.write(`${text}\n`);
    if (options.writeReadme) {
      await writeReadmeSection('archive-blob', text);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return 0;
  } finally {
    await proxy?.close();
    await azurite.stop();
    await servers.stop();
    await service.close();
    await rm(work, { recursive: true, force: true });
  }
}

/** The Azurite process listening on `port` (test/helpers/azurite.ts starts it with `--blobPort`). */
async function azuriteProcess(port: string): Promise<number> {
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const at = args.indexOf('--blobPort');
    if (at >= 0 && args[at + 1] === port) return Number(entry);
  }
  throw new Error(`no Azurite process listens on port ${port}`);
}

/** The mail user's uid and gid, who owns the Maildir. */
async function mailUser(): Promise<[number, number]> {
  const id = async (flag: string) => Number((await execFileAsync('id', [flag, 'mail'])).stdout);
  return [await id('-u'), await id('-g')];
}

runBench('archive-blob', (argv) => corpusBenchOptions(argv, { rounds: 2 }), measure);
