/**
 * Shared by the archive integration tests: Dovecot behind the Exchange-like
 * fault proxy (sessions end when their 5-second tokens expire), seeding by
 * APPEND straight into Dovecot, and snapshots of the server and an archive to
 * compare.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ContainerClient } from '@azure/storage-blob';
import type { ImapFlow } from 'imapflow';
import { createImapClient } from '../../../src/clients/imap-client.js';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import {
  type ManifestRecord,
  readManifest,
  readManifestChunks,
} from '../../../src/jobs/archive/manifest.js';
import type { Logger } from '../../../src/log/logger.js';
import { appEnvironment } from '../../helpers/app-env.js';
import { type ImapFaultProxy, startImapFaultProxy } from '../../helpers/imap-fault-proxy.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { requireBuilt } from '../../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../../helpers/token-service.js';

export interface ArchiveTestEnv {
  service: TokenService;
  servers: MailServers;
  proxy: ImapFaultProxy;
  /** Settings reaching Dovecot through the proxy, as the job sees the server. */
  config: MailbridgeConfig;
  /** The same as environment variables, for child processes and the CLI. */
  env: Record<string, string>;
  /** A connection straight to Dovecot, for seeding and checking. */
  direct(mailbox: string): Promise<ImapFlow>;
  close(): Promise<void>;
}

export async function startArchiveTestEnv(mailboxes: string[]): Promise<ArchiveTestEnv> {
  const service = await startTokenService();
  // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
  const servers = await startMailServers({ tokenService: service, submission: 'node' });
  const proxy = await startImapFaultProxy(servers.imap);
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  for (const mailbox of mailboxes) await servers.grantMailbox(app.clientId, mailbox);
  const env = appEnvironment(service, app, { imap: proxy });
  const config = await loadConfig({ env });
  const directConfig = { ...config, imap: { host: servers.imap.host, port: servers.imap.port } };
  return {
    service,
    servers,
    proxy,
    config,
    env,
    // Dovecot checks the token at login only: a short-lived token is fine here.
    direct: (mailbox) => createImapClient(directConfig, { mailbox }),
    async close() {
      await proxy.close();
      await servers.stop();
      await service.close();
    },
  };
}

export function plainMessage(i: number, folder: string, to: string): string {
  return [
    `From: "Sender ${i}" <sender${i}@fabrikam.example>`,
    `To: ${to}`,
    `Subject: =?UTF-8?Q?Nachricht_${i}_=C3=BCber_${encodeURIComponent(folder).replace(/%/g, '=')}?=`,
    `Message-ID: <m${i}.${Buffer.from(folder).toString('hex').slice(0, 16)}@fabrikam.example>`,
    `Date: Mon, ${1 + (i % 27)} Apr 2024 09:${String(i % 60).padStart(2, '0')}:00 +0200`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    `Grüße aus ${folder}, Nachricht ${i}.`,
    'x'.repeat(100 + ((i * 37) % 900)),
    '',
  ].join('\r\n');
}

export function messageWithAttachment(i: number, to: string, attachmentBytes: number): string {
  const data = Buffer.alloc(attachmentBytes);
  for (let j = 0; j < data.length; j++) data[j] = (j * 31 + i) % 256;
  const base64 = data.toString('base64').replace(/.{76}/g, '$&\r\n');
  return [
    `From: reports@fabrikam.example`,
    `To: ${to}`,
    `Subject: Report ${i}`,
    `Message-ID: <report${i}@fabrikam.example>`,
    'Date: Tue, 2 Apr 2024 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    '--outer',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Report ${i} attached.`,
    '--outer',
    `Content-Type: application/octet-stream; name="report-${i}.bin"`,
    `Content-Disposition: attachment; filename="report-${i}.bin"`,
    'Content-Transfer-Encoding: base64',
    '',
    base64,
    '--outer--',
    '',
  ].join('\r\n');
}

/** Broken MIME that mailparser gives up on: more parts than it accepts. */
export function malformedMessage(to: string): string {
  const parts = Array.from(
    { length: 1100 },
    (_, i) => `--b0\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`,
  ).join('');
  return `From: broken@fabrikam.example\r\nTo: ${to}\r\nSubject: broken MIME\r\nMessage-ID: <broken@fabrikam.example>\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n${parts}`;
}

export interface ServerFolder {
  uidValidity: number;
  messages: Map<number, { sha256: string; size: number }>;
}

/** Every selectable folder with each message's SHA-256 and size as Dovecot returns BODY[]. */
export async function serverSnapshot(
  env: ArchiveTestEnv,
  mailbox: string,
): Promise<Map<string, ServerFolder>> {
  const client = await env.direct(mailbox);
  const out = new Map<string, ServerFolder>();
  try {
    for (const folder of await client.list()) {
      if ([...folder.flags].some((f) => /^\\(noselect|nonexistent)$/i.test(f))) continue;
      const status = await client.mailboxOpen(folder.path, { readOnly: true });
      const messages = new Map<number, { sha256: string; size: number }>();
      if (status.exists > 0) {
        const uids = (await client.search({ all: true }, { uid: true })) || [];
        for (const uid of uids) {
          const download = await client.download(String(uid), undefined, { uid: true });
          const hash = createHash('sha256');
          let size = 0;
          for await (const chunk of download.content as AsyncIterable<Buffer>) {
            hash.update(chunk);
            size += chunk.length;
          }
          messages.set(uid, { sha256: hash.digest('hex'), size });
        }
      }
      out.set(folder.path, { uidValidity: Number(status.uidValidity), messages });
    }
  } finally {
    await client.logout();
  }
  return out;
}

/** A logger that keeps the warnings, each as its message and its fields in JSON. */
export function warningCollector(): { logger: Logger; text(): string } {
  const warnings: string[] = [];
  return {
    logger: {
      log(level, message, fields) {
        if (level === 'warn') warnings.push(`${message} ${JSON.stringify(fields)}`);
      },
    },
    text: () => warnings.join('\n'),
  };
}

export async function manifestRecords(mailboxDir: string): Promise<ManifestRecord[]> {
  const records: ManifestRecord[] = [];
  await readManifest(`${mailboxDir}/manifest.jsonl`, (r) => records.push(r));
  return records;
}

/** The manifest lines of a mailbox archived into a container (`root`: its prefix, ending in `/`); none when there is no manifest yet. */
export async function blobManifestRecords(
  container: ContainerClient,
  root: string,
): Promise<ManifestRecord[]> {
  const records: ManifestRecord[] = [];
  const blob = container.getBlobClient(`${root}manifest.jsonl`);
  if (!(await blob.exists())) return records;
  const download = await blob.download();
  await readManifestChunks(download.readableStreamBody as AsyncIterable<Buffer>, (r) =>
    records.push(r),
  );
  return records;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const CHILD = fileURLToPath(new URL('./fixtures/archive-child.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The project's build (`dist/`), which the test command makes before the
 * tests: child processes run it as users run it, without a TypeScript loader
 * in their memory or start-up. (Each file compiling its own copy cost a tsc
 * run of 20-40 s of CPU, and a synchronous one starved the harness's
 * readiness checks running beside it.)
 */
export function projectBuild(): { dir: string } {
  requireBuilt(join(ROOT, 'dist', 'jobs', 'archive', 'runner.js'));
  return { dir: join(ROOT, 'dist') };
}

export interface ChildRun {
  /** Resolves when the process ends. */
  done: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>;
  kill(): void;
}

/** Starts `archiveMailbox` from `build` (see buildForChildren) in a child process. */
export function startArchiveChild(
  build: string,
  env: Record<string, string>,
  mailbox: string,
  outDir: string,
  options: Record<string, unknown> = {},
  onMessage?: (count: number) => void,
): ChildRun {
  const child = spawn(process.execPath, [CHILD, build, mailbox, outDir], {
    env: {
      ...process.env,
      ...env,
      ARCHIVE_TEST_OPTIONS: JSON.stringify(options),
      ARCHIVE_TEST_PROGRESS: onMessage ? '1' : '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let messages = 0;
  let line = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
    const lines = (line + c).split('\n');
    line = lines.pop() ?? '';
    for (const l of lines) if (/^message \d+$/.test(l)) onMessage?.(++messages);
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const done = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { done, kill: () => child.kill('SIGKILL') };
}
