/**
 * Messages for bench/archive.ts, written straight into the Dovecot mailbox's
 * Maildir the way Dovecot's own delivery leaves them (LF line ends, `,S=` and
 * `,W=` in the file name, owned by the mail user), so 10,000 messages take
 * seconds instead of the minutes APPEND takes. Dovecot gives them UIDs at the
 * first SELECT; the bench does that, untimed, before measuring.
 *
 * Sizes are log-normal (median 20 KB, sigma 1.2) clipped to 2 KB – 2 MB, from
 * a seeded generator, so every run archives the same mailbox. Every message
 * is real MIME: multipart/alternative text and HTML, and above 24 KB (and for
 * one small message in eight) inside multipart/mixed with a base64
 * attachment that makes up the rest of the size.
 */
import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const MIN_SIZE = 2 * 1024;
export const MAX_SIZE = 2 * 1024 * 1024;
const MEDIAN_SIZE = 20 * 1024;
const SIGMA = 1.2;
const ATTACHMENT_ABOVE = 24 * 1024;
const WRITE_CONCURRENCY = 16;

/** mulberry32: small, fast and the same everywhere. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The sizes (as Dovecot serves them, CRLF line ends) of `count` messages. */
export function messageSizes(count: number, seed = 20_240_401): number[] {
  const next = random(seed);
  return Array.from({ length: count }, () => {
    // Box–Muller.
    const u = Math.max(next(), Number.EPSILON);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    const size = Math.round(MEDIAN_SIZE * Math.exp(SIGMA * z));
    return Math.min(MAX_SIZE, Math.max(MIN_SIZE, size));
  });
}

const WORDS = (
  'the quarterly report shows revenue growth across all regions while operating costs ' +
  'remained stable please review the attached figures before our meeting on thursday ' +
  'and let me know whether the forecast for the next period needs another revision'
).split(' ');

/** Pseudo-random bytes for attachments: one pool, sliced at different offsets. */
const POOL = (() => {
  const next = random(7);
  const pool = Buffer.alloc(MAX_SIZE);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((next() * 2 ** 32) >>> 0, i);
  return pool;
})();

function prose(bytes: number, next: () => number): string {
  const lines: string[] = [];
  let length = 0;
  while (length < bytes) {
    let line = '';
    while (line.length < 66) line += `${WORDS[Math.floor(next() * WORDS.length)]} `;
    lines.push(line.trimEnd());
    length += line.length + 1;
  }
  return lines.join('\n').slice(0, Math.max(0, bytes));
}

function base64Lines(bytes: number, offset: number): string {
  const raw = Math.max(0, Math.floor((bytes * 57) / 78));
  const start = offset % Math.max(1, POOL.length - raw);
  return (
    POOL.subarray(start, start + raw)
      .toString('base64')
      .match(/.{1,76}/g)
      ?.join('\n') ?? ''
  );
}

/**
 * One message of about `size` bytes as served (CRLF); returned with LF line
 * ends, as Dovecot stores it in a Maildir.
 */
export function buildMessage(i: number, size: number, to: string): string {
  const next = random(i + 1);
  const withAttachment = size > ATTACHMENT_ABOVE || i % 8 === 0;
  const date = new Date(Date.UTC(2024, 0, 1) + i * 3_600_000).toUTCString().replace('GMT', '+0000');
  const headers = [
    'Return-Path: <sender@fabrikam.example>',
    `Received: from mail.fabrikam.example by mx.contoso.example; ${date}`,
    `From: "Sender ${i % 97}" <sender${i % 97}@fabrikam.example>`,
    `To: ${to}`,
    `Subject: Quarterly figures ${i}`,
    `Message-ID: <bench-${i}@fabrikam.example>`,
    `Date: ${date}`,
    'MIME-Version: 1.0',
  ];
  const head = headers.join('\n').length + 400;
  // Text and HTML share what the attachment leaves; without one they fill the message.
  const bodyBudget = Math.max(600, size - head);
  const textBudget = withAttachment ? Math.min(bodyBudget / 2, 3000) : bodyBudget * 0.92;
  const text = prose(Math.floor(textBudget * 0.4), next);
  const htmlText = prose(Math.floor(textBudget * 0.6) - 60, next);
  const html = `<html><body><p>${htmlText.split('\n').join('</p>\n<p>')}</p></body></html>`;
  const alternative = [
    'Content-Type: multipart/alternative; boundary="alt"',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    text,
    '--alt',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    html,
    '--alt--',
  ];
  let body: string[];
  if (withAttachment) {
    const used = head + textBudget + 200;
    const lines = base64Lines(Math.max(200, size - used), i * 7919);
    body = [
      'Content-Type: multipart/mixed; boundary="mixed"',
      '',
      '--mixed',
      ...alternative,
      '--mixed',
      `Content-Type: application/pdf; name="report-${i}.pdf"`,
      `Content-Disposition: attachment; filename="report-${i}.pdf"`,
      'Content-Transfer-Encoding: base64',
      '',
      lines,
      '--mixed--',
      '',
    ];
  } else {
    body = [...alternative, ''];
  }
  return [...headers, ...body].join('\n');
}

export interface SeededMailbox {
  messages: number;
  /** Sum of the sizes as served (CRLF), what a client downloads. */
  bytes: number;
}

/**
 * Writes `count` messages into `maildir` (created with cur/, new/, tmp/),
 * owned by uid/gid. File names carry the sizes as Dovecot's own would.
 */
export async function seedMaildir(
  maildir: string,
  count: number,
  to: string,
  owner: { uid: number; gid: number },
): Promise<SeededMailbox> {
  for (const sub of ['', 'cur', 'new', 'tmp']) {
    const dir = join(maildir, sub);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chown(dir, owner.uid, owner.gid);
  }
  // The parents up to the user's home (Dovecot's `home=…/%Ld/%Ln`).
  for (const parent of [join(maildir, '..'), join(maildir, '..', '..')]) {
    await chown(parent, owner.uid, owner.gid);
  }
  const sizes = messageSizes(count);
  let bytes = 0;
  let next = 0;
  const base = Math.floor(Date.UTC(2024, 0, 1) / 1000);
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const data = Buffer.from(buildMessage(i, sizes[i] as number, to), 'utf8');
      let lines = 0;
      for (let j = data.indexOf(10); j >= 0; j = data.indexOf(10, j + 1)) lines++;
      const served = data.length + lines;
      bytes += served;
      const flags = i % 5 === 0 ? '' : 'S';
      const name = `${base + i}.M${i}P1.bench,S=${data.length},W=${served}:2,${flags}`;
      const file = join(maildir, 'cur', name);
      await writeFile(file, data, { mode: 0o600 });
      await chown(file, owner.uid, owner.gid);
    }
  };
  await Promise.all(Array.from({ length: WRITE_CONCURRENCY }, worker));
  return { messages: count, bytes };
}
