import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolEnvelope } from '../../../src/jobs/relay/spool.js';

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-spool-'));
  spool = new Spool(dir, { hostname: 'relay.test' });
  await spool.init();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const input = {
  from: 'scans@contoso.com',
  to: ['a@contoso.com', 'b@contoso.com'],
  mailbox: 'scans@contoso.com',
  client: { address: '127.0.0.1' },
  maxBytes: 1024 * 1024,
};

/** Data split into awkward chunks, as a socket delivers it. */
function chunked(data: Buffer, size = 7): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

async function receive(data: string | Buffer, extra = {}): Promise<SpoolEnvelope> {
  const result = await spool.receive(chunked(Buffer.from(data)), { ...input, ...extra });
  if (!result.ok) throw new Error('refused');
  return result.envelope;
}

describe('receive', () => {
  it('keeps the bytes and the Message-ID, commits .eml and .json to the queue', async () => {
    const body = Buffer.concat([
      Buffer.from('Subject: scan\r\nMessage-ID: <scan-1@printer.lan>\r\n\r\n'),
      Buffer.from([0, 1, 2, 255, 13, 10, 46, 46, 13, 10]),
    ]);
    const envelope = await receive(body);
    expect(envelope).toMatchObject({
      messageId: '<scan-1@printer.lan>',
      messageIdAdded: false,
      size: body.length,
      attempts: 0,
      to: input.to,
      mailbox: 'scans@contoso.com',
    });
    expect(Buffer.compare(await readFile(spool.queuePath(envelope.id, 'eml')), body)).toBe(0);
    expect(JSON.parse(await readFile(spool.queuePath(envelope.id, 'json'), 'utf8'))).toEqual(
      envelope,
    );
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('adds a Message-ID when the message has none, so a duplicate stays recognisable', async () => {
    const envelope = await receive('Subject: no id\r\nX-Long: a\r\n b\r\n\r\nbody\r\n');
    expect(envelope.messageIdAdded).toBe(true);
    expect(envelope.messageId).toBe(`<${envelope.id}@relay.test>`);
    expect(await readFile(spool.queuePath(envelope.id, 'eml'), 'latin1')).toBe(
      `Message-ID: <${envelope.id}@relay.test>\r\nSubject: no id\r\nX-Long: a\r\n b\r\n\r\nbody\r\n`,
    );
  });

  it('finds a folded Message-ID and ignores one in the body', async () => {
    expect((await receive('Message-Id:\r\n <folded@x>\r\n\r\n')).messageId).toBe('<folded@x>');
    expect((await receive('Subject: x\r\n\r\nMessage-ID: <body@x>\r\n')).messageIdAdded).toBe(true);
  });

  it('refuses an oversized message, writes nothing, and drains the stream', async () => {
    const stream = chunked(Buffer.alloc(5000, 'a'), 1000);
    const result = await spool.receive(stream, { ...input, maxBytes: 2000 });
    expect(result).toEqual({ ok: false, reason: 'too-large', bytes: 5000 });
    expect(stream.readableEnded).toBe(true);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('leaves nothing behind when the client goes away mid-message', async () => {
    const stream = new Readable({ read() {} });
    const pending = spool.receive(stream, input);
    stream.push(Buffer.from('Subject: x\r\n\r\npartial'));
    await new Promise((r) => setTimeout(r, 20));
    stream.destroy(new Error('Connection closed before the message was received in full'));
    await expect(pending).rejects.toThrow(/Connection closed/);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
  });
});

describe('delivery record, dead letters and release', () => {
  it('records a delivery before removing the message', async () => {
    const e = await receive('Message-ID: <m@x>\r\n\r\nhi\r\n');
    await spool.recordDelivery({
      id: e.id,
      messageId: e.messageId,
      mailbox: e.mailbox,
      from: e.from,
      to: e.to,
      size: e.size,
      receivedAt: e.receivedAt,
      deliveredAt: new Date().toISOString(),
      attempts: 1,
      response: '250 2.0.0 Ok',
      complete: true,
    });
    expect(await spool.listQueue()).toEqual([]);
    const line = JSON.parse((await readFile(join(dir, 'delivered.jsonl'), 'utf8')).trim());
    expect(line).toMatchObject({ id: e.id, messageId: '<m@x>', complete: true });
  });

  it('moves a message to dead/ with the reason beside it, and back with release', async () => {
    const e = await receive('Message-ID: <d@x>\r\n\r\nhi\r\n');
    await spool.moveToDead(
      { ...e, attempts: 1 },
      'permanent failure SMTP_PERMANENT_FAILURE: 553 5.7.1 no',
    );
    expect(await spool.listQueue()).toEqual([]);
    const [dead] = await spool.listDead();
    expect(dead).toMatchObject({ id: e.id, reason: expect.stringContaining('553 5.7.1 no') });
    expect(await readFile(spool.deadPath(e.id, 'reason.txt'), 'utf8')).toMatch(
      /Message-ID: {2}<d@x>[\s\S]*Reason: {6}permanent failure SMTP_PERMANENT_FAILURE: 553 5\.7\.1 no/,
    );
    expect(await spool.release(e.id)).toBe('released');
    const [back] = await spool.listQueue();
    expect(back).toMatchObject({ id: e.id, attempts: 0 });
    expect(back?.deadAt).toBeUndefined();
    expect(await spool.listKicks()).toEqual([e.id]);
    expect(await spool.release(e.id)).toBe('kicked');
    expect(await spool.release('../../etc/passwd')).toBe('unknown');
  });
});

describe('recover', () => {
  it('discards unacknowledged receptions and keeps committed messages', async () => {
    const kept = await receive('Message-ID: <k@x>\r\n\r\nk\r\n');
    // A reception interrupted before commit: tmp files, and an .eml renamed without its .json.
    await writeFile(join(dir, 'tmp', '0000000000000000001.eml'), 'partial');
    const half = await receive('Message-ID: <h@x>\r\n\r\nh\r\n');
    await rm(spool.queuePath(half.id, 'json'));
    const report = await spool.recover();
    expect(report).toEqual({ queued: 1, discarded: 2, alreadyDelivered: 0, repaired: 0 });
    expect((await spool.listQueue()).map((e) => e.id)).toEqual([kept.id]);
  });

  it('does not send again what the delivery record says went out, fully or in part', async () => {
    const done = await receive('Message-ID: <done@x>\r\n\r\n.\r\n');
    const partial = await receive('Message-ID: <part@x>\r\n\r\n.\r\n');
    const record = (e: SpoolEnvelope, to: string[], complete: boolean) =>
      `${JSON.stringify({ id: e.id, messageId: e.messageId, to, complete })}\n`;
    await writeFile(
      join(dir, 'delivered.jsonl'),
      `${record(done, done.to, true)}${record(partial, ['a@contoso.com'], false)}{"id":"cut-short`,
    );
    const report = await spool.recover();
    expect(report).toMatchObject({ queued: 1, alreadyDelivered: 1 });
    const [left] = await spool.listQueue();
    expect(left).toMatchObject({
      id: partial.id,
      to: ['b@contoso.com'],
      delivered: ['a@contoso.com'],
    });
  });

  it('finishes an interrupted move to dead/ and undoes an interrupted release', async () => {
    const a = await receive('Message-ID: <a@x>\r\n\r\na\r\n');
    const b = await receive('Message-ID: <b@x>\r\n\r\nb\r\n');
    // a: the .eml reached dead/, the .json did not.
    await rename(spool.queuePath(a.id, 'eml'), spool.deadPath(a.id, 'eml'));
    // b: dead, then a release moved only the .eml back.
    await spool.moveToDead(b, 'x');
    await rename(spool.deadPath(b.id, 'eml'), spool.queuePath(b.id, 'eml'));
    const report = await spool.recover();
    expect(report).toMatchObject({ queued: 0, repaired: 2 });
    expect((await spool.listDead()).map((e) => e.id).sort()).toEqual([a.id, b.id].sort());
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
  });
});

describe('lock', () => {
  it('refuses a spool held by a live process and takes over a stale lock', async () => {
    await writeFile(join(dir, 'lock'), `${process.ppid}\n`);
    await expect(spool.lock()).rejects.toMatchObject({ code: 'RELAY_SPOOL_LOCKED', exitCode: 2 });
    await writeFile(join(dir, 'lock'), '999999999\n');
    await spool.lock();
    expect(await readFile(join(dir, 'lock'), 'utf8')).toBe(`${process.pid}\n`);
    await spool.unlock();
  });
});
