import { spawn } from 'node:child_process';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DeliveryRecord, Spool, type SpoolEnvelope } from '../../../src/jobs/relay/spool.js';
import { requireBuilt } from '../../helpers/run-cli.js';

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-spool-'));
  spool = new Spool(dir, { hostname: 'relay.test' });
  await spool.init();
});
afterEach(async () => {
  // Closes delivered.jsonl, which the spool keeps open between records.
  await spool.unlock();
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

  it('writes a message bigger than it keeps in memory in pieces, byte for byte', async () => {
    const body = Buffer.concat([
      Buffer.from('Message-ID: <big@printer.lan>\r\n\r\n'),
      Buffer.alloc(700 * 1024, 'x'),
      Buffer.from('\r\nend\r\n'),
    ]);
    const result = await spool.receive(chunked(body, 64 * 1024), input);
    if (!result.ok) throw new Error('refused');
    expect(result.content).toBeUndefined();
    expect(Buffer.compare(await readFile(spool.queuePath(result.envelope.id, 'eml')), body)).toBe(
      0,
    );
    expect(result.envelope.size).toBe(body.length);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('a spool it cannot write to: the reception fails and leaves no message file in queue/', async () => {
    // The .eml is created in queue/ as the reception starts; the envelope cannot be.
    await rm(join(dir, 'tmp'), { recursive: true });
    await writeFile(join(dir, 'tmp'), 'not a folder');
    await expect(
      spool.receive(chunked(Buffer.from('Subject: x\r\n\r\nx\r\n')), input),
    ).rejects.toThrow(/ENOTDIR/);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
  });

  it.runIf(process.platform === 'linux')(
    'keeps queue/ open for its flushes, one handle for many receptions, closed by unlock',
    async () => {
      const openOnQueue = async () => {
        let count = 0;
        for (const fd of await readdir('/proc/self/fd')) {
          const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
          if (target === join(dir, 'queue')) count++;
        }
        return count;
      };
      await Promise.all([1, 2, 3].map((n) => receive(`Message-ID: <${n}@x>\r\n\r\n${n}\r\n`)));
      await receive('Message-ID: <4@x>\r\n\r\n4\r\n');
      expect(await openOnQueue()).toBe(1);
      await spool.unlock();
      expect(await openOnQueue()).toBe(0);
    },
  );

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

  it('leaves nothing behind when the client goes away mid-message, and says so (not a spool failure)', async () => {
    const stream = new Readable({ read() {} });
    const pending = spool.receive(stream, input);
    stream.push(Buffer.from('Subject: x\r\n\r\npartial'));
    await new Promise((r) => setTimeout(r, 20));
    stream.destroy(new Error('Connection closed before the message was received in full'));
    await expect(pending).resolves.toMatchObject({
      ok: false,
      reason: 'disconnected',
      error: { message: expect.stringMatching(/Connection closed/) },
    });
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
  });
});

/** The record of a delivery to every recipient on the first attempt. */
function completeRecord(e: SpoolEnvelope): DeliveryRecord {
  return {
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
  };
}

describe('delivery record, dead letters and release', () => {
  it('records a delivery before removing the message', async () => {
    const e = await receive('Message-ID: <m@x>\r\n\r\nhi\r\n');
    await spool.recordDelivery(completeRecord(e));
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
    expect(report).toEqual({
      queued: 1,
      discarded: 2,
      alreadyDelivered: 0,
      repaired: 0,
      quarantined: 0,
    });
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

describe('unreadable envelope', () => {
  it('goes to quarantine/ with its message and a reason, instead of vanishing', async () => {
    const good = await Promise.all(
      [1, 2, 3, 4].map((n) => receive(`Message-ID: <g${n}@x>\r\n\r\n.\r\n`)),
    );
    const bad = await receive('Message-ID: <bad@x>\r\n\r\nkeep me\r\n');
    const json = spool.queuePath(bad.id, 'json');
    await writeFile(json, (await readFile(json)).subarray(0, 40));
    const report = await spool.recover();
    expect(report).toMatchObject({ queued: 4, quarantined: 1 });
    expect((await spool.listQueue()).map((e) => e.id).sort()).toEqual(good.map((e) => e.id).sort());
    const [q] = await spool.listQuarantine();
    expect(q).toMatchObject({
      id: bad.id,
      reason: expect.stringMatching(/cannot be read \(not JSON/),
    });
    expect(await readFile(q?.path as string, 'utf8')).toContain('keep me');
    // A crash between the two renames: the .json left in queue/ joins its message.
    await rename(join(dir, 'quarantine', `${bad.id}.json`), json);
    expect(await spool.recover()).toMatchObject({ queued: 4, repaired: 1, quarantined: 0 });
    expect(await readdir(join(dir, 'quarantine'))).toHaveLength(3);
  });

  it('a JSON envelope without recipients is unreadable too', async () => {
    const e = await receive('Message-ID: <n@x>\r\n\r\n.\r\n');
    await writeFile(spool.queuePath(e.id, 'json'), JSON.stringify({ ...e, to: undefined }));
    expect(await spool.recover()).toMatchObject({ queued: 0, quarantined: 1 });
    expect((await spool.listQuarantine())[0]?.reason).toMatch(/no valid to/);
  });
});

describe('a delivery record the disk refuses', () => {
  it('holds the message in the queue, blocks delivery and acceptance, and resumes once written', async () => {
    const states: string[] = [];
    const blocking = new Spool(dir, { onRecordState: (state) => states.push(state) });
    await blocking.lock();
    try {
      const e = await receive('Message-ID: <r@x>\r\n\r\n.\r\n');
      // The record's path is taken by a folder: appending fails as on a full disk.
      await mkdir(join(dir, 'delivered.jsonl'));
      await blocking.recordDelivery(completeRecord(e));
      expect(blocking.deliveryBlocked).toBe(true);
      expect(states).toEqual(['blocked']);
      // Still queued (the record is not on disk), but `relay retry` cannot send it again.
      expect((await blocking.listQueue()).map((x) => x.id)).toEqual([e.id]);
      await writeFile(blocking.queuePath(e.id, 'kick'), '');
      expect(await blocking.listKicks()).toEqual([]);
      const refused = blocking.receive(chunked(Buffer.from('Subject: x\r\n\r\nx\r\n')), input);
      await expect(refused).rejects.toMatchObject({ code: 'RELAY_DELIVERY_RECORD_UNWRITABLE' });

      await rm(join(dir, 'delivered.jsonl'), { recursive: true });
      const deadline = Date.now() + 5000;
      while (blocking.deliveryBlocked && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(blocking.deliveryBlocked).toBe(false);
      expect(states).toEqual(['blocked', 'resumed']);
      expect(await blocking.listQueue()).toEqual([]);
      const line = JSON.parse((await readFile(join(dir, 'delivered.jsonl'), 'utf8')).trim());
      expect(line).toMatchObject({ id: e.id, complete: true });
    } finally {
      await blocking.unlock();
    }
  });

  it('ends a line a crash left unfinished before appending, so no record is lost', async () => {
    const e = await receive('Message-ID: <c@x>\r\n\r\n.\r\n');
    await writeFile(join(dir, 'delivered.jsonl'), '{"id":"cut-sho');
    const record = { id: e.id, messageId: e.messageId, to: e.to, complete: true };
    await spool.recordDelivery(record as never);
    const text = await readFile(join(dir, 'delivered.jsonl'), 'utf8');
    expect(text.split('\n')[1]).toBe(JSON.stringify(record));
    expect((await spool.readDeliveryRecords(new Set([e.id]))).get(e.id)).toMatchObject({
      complete: true,
    });
  });
});

describe('lock', () => {
  it('is an OS lock: a lock file naming a live pid (1) does not block, nor does a dead one', async () => {
    await writeFile(join(dir, 'lock'), '1\n');
    await spool.lock();
    expect(await readFile(join(dir, 'lock'), 'utf8')).toBe(`${process.pid}\n`);
    await spool.unlock();
    await expect(readFile(join(dir, 'lock'))).rejects.toThrow(/ENOENT/);
    await writeFile(join(dir, 'lock'), '999999999\n');
    await spool.lock();
    await spool.unlock();
  });

  it('refuses a second holder, naming the live pid and what to do', async () => {
    const holder = await startLockers(1, dir);
    try {
      expect(await holder.round({ keep: true })).toEqual([true]);
      const [pid] = holder.pids;
      await expect(spool.lock()).rejects.toMatchObject({
        code: 'RELAY_SPOOL_LOCKED',
        exitCode: 2,
        message: expect.stringContaining(`in use by process ${pid}`),
        remedy: expect.stringContaining(`kill -TERM ${pid}`),
      });
      expect(await spool.lockHolder()).toEqual({ pid });
    } finally {
      holder.close();
    }
  });

  it('two processes locking at the same instant: exactly one wins, 50 of 50 trials', {
    tags: ['soak'],
    timeout: 60_000,
  }, async () => {
    const pair = await startLockers(2, dir);
    try {
      const winners: number[] = [];
      for (let trial = 0; trial < 50; trial++) {
        const results = await pair.round();
        winners.push(results.filter(Boolean).length);
      }
      expect(winners).toEqual(new Array(50).fill(1));
    } finally {
      pair.close();
    }
  });

  it('is free again at once after its holder is killed with SIGKILL', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const holder = await startLockers(1, dir);
      expect(await holder.round({ keep: true })).toEqual([true]);
      holder.kill();
      await holder.exited;
      await spool.lock();
      await spool.unlock();
    }
  }, 60_000);
});

interface Lockers {
  pids: number[];
  /** Tells every process to lock at once; each answers whether it got the lock. */
  round(options?: { keep?: boolean }): Promise<boolean[]>;
  kill(): void;
  exited: Promise<unknown>;
  close(): void;
}

/**
 * Child processes that each lock `spoolDir` when told `go` on stdin (all at the
 * same instant, start-up already behind them) and release it on `release`.
 */
async function startLockers(count: number, spoolDir: string): Promise<Lockers> {
  const built = requireBuilt(
    fileURLToPath(new URL('../../../dist/jobs/relay/spool.js', import.meta.url)),
  );
  const script = `
    import { Spool } from ${JSON.stringify(built)};
    import { createInterface } from 'node:readline';
    const spool = new Spool(process.argv[1]);
    console.log('ready');
    for await (const line of createInterface({ input: process.stdin })) {
      if (line === 'go') {
        const ok = await spool.lock().then(() => true, (e) => (e.code === 'RELAY_SPOOL_LOCKED' ? false : String(e)));
        console.log(JSON.stringify(ok));
      } else if (line === 'release') {
        await spool.unlock();
        console.log('released');
      }
    }`;
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--input-type=module', '-e', script, spoolDir], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const lines = children.map((child) => {
    const queue: string[] = [];
    const waiters: ((line: string) => void)[] = [];
    createInterface({ input: child.stdout as Readable }).on('line', (line) => {
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else queue.push(line);
    });
    return () =>
      new Promise<string>((resolve) => {
        const line = queue.shift();
        if (line !== undefined) resolve(line);
        else waiters.push(resolve);
      });
  });
  const all = () => Promise.all(lines.map((next) => next()));
  const say = (text: string) => {
    for (const child of children) child.stdin?.write(`${text}\n`);
  };
  expect(await all()).toEqual(new Array(count).fill('ready'));
  return {
    pids: children.map((c) => c.pid as number),
    async round(options = {}) {
      say('go');
      const results = (await all()).map((line) => JSON.parse(line) as boolean | string);
      if (results.some((r) => typeof r === 'string')) throw new Error(`lock failed: ${results}`);
      if (!options.keep) {
        say('release');
        await all();
      }
      return results as boolean[];
    },
    kill: () => {
      for (const child of children) child.kill('SIGKILL');
    },
    exited: Promise.all(children.map((c) => new Promise((r) => c.once('exit', r)))),
    close: () => {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}
