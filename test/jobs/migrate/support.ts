/**
 * Shared by the migration tests: one Dovecot holding a password mailbox on
 * "another provider" (the source) and token-only mailboxes standing in for
 * Microsoft 365 (the destination), seeding over IMAP, and snapshots of
 * folders to compare: per folder the multiset of (SHA-256 of the bytes,
 * INTERNALDATE, flags).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { expect } from 'vitest';
import { createImapClient } from '../../../src/clients/imap-client.js';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { appEnvironment } from '../../helpers/app-env.js';
import { type ImapFaultProxy, startImapFaultProxy } from '../../helpers/imap-fault-proxy.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { CLI_PATH, cliEnv } from '../../helpers/run-cli.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { startTokenService, type TokenService } from '../../helpers/token-service.js';

export const SOURCE_USER = 'alice@oldhost.example';
export const SOURCE_PASSWORD = 'correct horse battery staple';
export const MAX_MESSAGE_SIZE = 256 * 1024;

export interface MigrateTestEnv {
  service: TokenService;
  servers: MailServers;
  /** Settings of the Microsoft 365 side: through the fault proxy when one was asked for. */
  config: MailbridgeConfig;
  proxy: ImapFaultProxy | undefined;
  /** The app's settings plus the source password, as a user would set them for the CLI. */
  env: Record<string, string>;
  sourceUrl: string;
  source(): Promise<ImapFlow>;
  m365(mailbox: string): Promise<ImapFlow>;
  close(): Promise<void>;
}

export async function startMigrateTestEnv(
  m365Mailboxes: string[],
  options: {
    faultProxy?: boolean;
    tokenLifetimeSeconds?: number;
    unlimitedSize?: boolean;
    /** Dovecot's own IMAP capabilities (MULTIAPPEND among them) rather than Exchange's. */
    dovecotCapabilities?: boolean;
    /** More password users of the source's provider, each with a password of its own. */
    passwordUsers?: Readonly<Record<string, string>>;
  } = {},
): Promise<MigrateTestEnv> {
  const service = await startTokenService(
    options.tokenLifetimeSeconds ? { tokenLifetimeSeconds: options.tokenLifetimeSeconds } : {},
  );
  const servers = await startMailServers({
    tokenService: service,
    // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
    submission: 'node',
    passwordUsers: { [SOURCE_USER]: SOURCE_PASSWORD, ...options.passwordUsers },
    ...(options.unlimitedSize ? {} : { maxMessageSize: MAX_MESSAGE_SIZE }),
    ...(options.dovecotCapabilities ? { capabilities: 'dovecot' as const } : {}),
  });
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  for (const mailbox of m365Mailboxes) await servers.grantMailbox(app.clientId, mailbox);
  const proxy = options.faultProxy ? await startImapFaultProxy(servers.imap) : undefined;
  const appEnv = appEnvironment(service, app, { imap: proxy ?? servers.imap });
  const config = await loadConfig({ env: appEnv });
  const direct = { ...config, imap: { host: servers.imap.host, port: servers.imap.port } };
  return {
    service,
    servers,
    config,
    proxy,
    env: { ...appEnv, MAILBRIDGE_FROM_PASSWORD: SOURCE_PASSWORD },
    sourceUrl: `imaps://${encodeURIComponent(SOURCE_USER)}@127.0.0.1:${servers.imap.port}`,
    source: async () => {
      const client = new ImapFlow({
        host: '127.0.0.1',
        port: servers.imap.port,
        secure: true,
        auth: { user: SOURCE_USER, pass: SOURCE_PASSWORD },
        logger: false,
      });
      await client.connect();
      return client;
    },
    // Straight to Dovecot, which checks the token at login only: for seeding and checking.
    m365: (mailbox) => createImapClient(direct, { mailbox }),
    async close() {
      await proxy?.close();
      await servers.stop();
      await service.close();
    },
  };
}

export interface SeedMessage {
  folder: string;
  raw: string;
  flags: string[];
  date: Date;
}

export function seedMessages(folders: string[], count: number, start = 0): SeedMessage[] {
  const flagSets = [
    [],
    ['\\Seen'],
    ['\\Seen', '\\Answered'],
    ['\\Flagged'],
    ['\\Draft'],
    ['\\Seen', '$Forwarded'],
    ['\\Seen', '\\Deleted'],
  ];
  return Array.from({ length: count }, (_, k) => {
    const i = start + k;
    const folder = folders[i % folders.length] as string;
    const withId = i % 9 !== 0;
    const raw = [
      `From: "Sender ${i % 17}" <sender${i % 17}@fabrikam.example>`,
      'To: alice@oldhost.example',
      `Subject: =?UTF-8?Q?Nachricht_${i}_=C3=BCber?= ${folder.replace(/[^\x20-\x7e]/g, '?')}`,
      ...(withId ? [`Message-ID: <m${i}@fabrikam.example>`] : []),
      `Date: Mon, ${1 + (i % 27)} Apr 20${10 + (i % 14)} 09:${String(i % 60).padStart(2, '0')}:00 +0200`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `Message ${i}.`,
      'x'.repeat(50 + ((i * 37) % 700)),
      '',
    ].join('\r\n');
    return {
      folder,
      raw,
      flags: flagSets[i % flagSets.length] as string[],
      date: new Date(Date.UTC(2005 + (i % 19), i % 12, 1 + (i % 28), i % 24, (i * 7) % 60, 0)),
    };
  });
}

export async function seed(client: ImapFlow, messages: SeedMessage[]): Promise<void> {
  const existing = new Set((await client.list()).map((f) => f.path));
  for (const m of messages) {
    if (!existing.has(m.folder)) {
      await client.mailboxCreate(m.folder);
      existing.add(m.folder);
    }
    await client.append(m.folder, m.raw, m.flags, m.date);
  }
}

/** Seeds a mailbox over a connection of its own, logged out after. */
export async function seedWith(
  open: () => Promise<ImapFlow>,
  messages: SeedMessage[],
): Promise<void> {
  const client = await open();
  try {
    await seed(client, messages);
  } finally {
    await client.logout();
  }
}

/** Seeds the password source mailbox over its own connection. */
export function seedSource(env: MigrateTestEnv, messages: SeedMessage[]): Promise<void> {
  return seedWith(env.source, messages);
}

/**
 * A message over the server's limit in a source folder: it cannot be
 * APPENDed to the source either, so it is delivered as a file, as mail
 * arrives. `maildirName` picks the folder's directory among the Maildir's.
 */
export function deliverTooBig(
  env: MigrateTestEnv,
  folder: string,
  maildirName: (names: string[]) => string,
): Promise<void> {
  const big = `Subject: too big\r\nMessage-ID: <big.${Date.now()}@fabrikam.example>\r\n\r\n${'y'.repeat(MAX_MESSAGE_SIZE + 1000)}\r\n`;
  return deliverAsFile(env, folder, big, maildirName);
}

/** Files delivered so far: each gets a name of its own. */
let delivered = 0;

/**
 * Puts `raw` into a source folder as a file of its Maildir (marked \\Seen), as
 * mail arrives: no IMAP APPEND to parse it. `maildirName` picks the folder's
 * directory among the Maildir's; without it, INBOX.
 */
export async function deliverAsFile(
  env: MigrateTestEnv,
  folder: string,
  raw: string,
  maildirName?: (names: string[]) => string,
): Promise<void> {
  const source = await env.source();
  try {
    await source.mailboxOpen(folder);
    const maildir = join(env.servers.dir, 'mail', 'oldhost.example', 'alice', 'Maildir');
    const cur = join(maildir, maildirName ? maildirName(readdirSync(maildir)) : '', 'cur');
    const owner = statSync(cur);
    const file = join(cur, `${Math.floor(Date.now() / 1000)}.${++delivered}.mailbridge:2,S`);
    writeFileSync(file, raw);
    chownSync(file, owner.uid, owner.gid);
    await source.noop();
  } finally {
    await source.logout();
  }
}

/** Per folder: sorted `sha256 internalDate flags` lines, one per message. */
export async function snapshot(
  client: ImapFlow,
  folders?: string[],
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const paths =
    folders ?? (await client.list()).filter((f) => !f.flags.has('\\Noselect')).map((f) => f.path);
  for (const path of paths) {
    const status = await client.mailboxOpen(path, { readOnly: true });
    const lines: string[] = [];
    if (status.exists > 0) {
      for await (const m of client.fetch('1:*', {
        uid: true,
        source: true,
        flags: true,
        internalDate: true,
      })) {
        const flags = [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort();
        const date = new Date(m.internalDate as Date).toISOString();
        lines.push(
          [
            createHash('sha256')
              .update(m.source as Buffer)
              .digest('hex'),
            date,
            ...flags,
          ].join(' '),
        );
      }
    }
    out.set(path, lines.sort());
  }
  return out;
}

/** `snapshot` over a connection of its own, logged out after. */
export async function snapshotOf(
  open: () => Promise<ImapFlow>,
  folders?: string[],
): Promise<Map<string, string[]>> {
  const client = await open();
  try {
    return await snapshot(client, folders);
  } finally {
    await client.logout();
  }
}

/** Source snapshot lines as the destination must hold them, under `mapped` names: \\Deleted is never copied. */
export function expected(
  source: Map<string, string[]>,
  mapped: Readonly<Record<string, string>>,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [folder, lines] of source) {
    const dest = mapped[folder];
    if (!dest) continue;
    const kept = lines.map((l) => {
      const [hash, date, ...flags] = l.split(' ');
      return [hash, date, ...flags.filter((f) => f !== '\\Deleted')].join(' ');
    });
    out.set(dest, kept.sort());
  }
  return out;
}

export interface EndedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The CLI in a child process, as a user runs it; `done` once it has ended, however. */
export function startCliRun(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; done: Promise<EndedRun> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<EndedRun>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

async function journalLines(stateDir: string): Promise<number> {
  const text = await readFile(join(stateDir, 'journal.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').length - 1;
}

/**
 * Kills runs of `start` with SIGKILL after a random number of journal lines
 * plus a few random milliseconds (so a kill lands between an APPEND and its
 * line too), until `kills` runs were killed or one ended by itself (exit 0
 * expected); with `loseState` the state folder is deleted before each rerun.
 * The seed (MIGRATE_KILL_SEED replays one) and each round are in the log.
 */
export async function killAtRandomPoints(options: {
  start: () => { child: ChildProcess; done: Promise<EndedRun> };
  stateDir: string;
  messages: number;
  kills: number;
  loseState: boolean;
}): Promise<{ kills: number; log: string[] }> {
  const { stateDir, kills: wanted } = options;
  const seed = Number(process.env.MIGRATE_KILL_SEED ?? Date.now() % 1_000_000);
  const next = seededRandom(seed);
  const log = [`seed ${seed}`];
  let kills = 0;
  let done = 0;
  for (let round = 0; round < wanted * 3 && kills < wanted; round++) {
    // Spread over the run: each kill comes after up to a further share of the messages still to
    // copy (with the state deleted, the rerun first writes again the lines of what it finds
    // already there). The last third is kept out of reach: the lines written between the poll
    // and the kill (up to 80 seen under load) must not take a run to its end, so every round is
    // killed mid-run with a few hundred messages rather than a thousand.
    const room = Math.max(1, Math.floor((options.messages * 2) / 3) - done);
    const target = done + 1 + Math.floor((next() * room) / (wanted - kills));
    const extraMs = Math.floor(next() * 30);
    const run = options.start();
    let killed = false;
    const poll = setInterval(async () => {
      if (killed || (await journalLines(stateDir)) < target) return;
      killed = true;
      setTimeout(() => run.child.kill('SIGKILL'), extraMs);
    }, 15);
    const ended = await run.done;
    clearInterval(poll);
    done = await journalLines(stateDir);
    log.push(
      `round ${round}: ${ended.signal ?? `exit ${ended.code}`} at ${target} lines + ${extraMs} ms; journal ${done}`,
    );
    if (ended.signal === 'SIGKILL') kills++;
    else {
      expect(ended.code, `${log.join('\n')}\n${ended.stderr}`).toBe(0);
      break;
    }
    if (options.loseState) await rm(stateDir, { recursive: true, force: true });
  }
  return { kills, log };
}
