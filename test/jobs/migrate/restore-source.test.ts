/**
 * The archive read as a migrate source, without servers: a large message in
 * pieces (the copy engine's partial FETCH), damage found as files are read,
 * UID sets, --since, and the newest UIDVALIDITY of a folder archived twice.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { folderDirName, messagePath } from '../../../src/jobs/mailbox-read/archive-paths.js';
import { ArchiveSource } from '../../../src/jobs/migrate/archive-source.js';

const PIECE = 2 * 1024 * 1024;

describe('ArchiveSource', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-source-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function archive(
    messages: { folder: string; uidValidity: number; uid: number; body: Buffer; at: string }[],
  ): Promise<void> {
    const lines: string[] = [];
    for (const m of messages) {
      const path = messagePath(folderDirName(m.folder), m.uidValidity, m.uid);
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), m.body);
      lines.push(
        JSON.stringify({
          folder: m.folder,
          uidValidity: m.uidValidity,
          uid: m.uid,
          internalDate: m.at,
          flags: ['\\Seen'],
          size: m.body.length,
          sha256: createHash('sha256').update(m.body).digest('hex'),
          path,
          archivedAt: m.at,
        }),
      );
    }
    await writeFile(join(dir, 'manifest.jsonl'), `${lines.join('\n')}\n`);
  }

  const message = (n: number, extra = 0) =>
    Buffer.from(`Subject: m${n}\r\nMessage-ID: <m${n}@x>\r\n\r\n${'y'.repeat(extra)}body ${n}\r\n`);

  it('hands out a large message in pieces, checked as a whole first', async () => {
    const large = message(1, 9 * 1024 * 1024);
    await archive([
      { folder: 'INBOX', uidValidity: 7, uid: 1, body: large, at: '2020-01-01T00:00:00.000Z' },
    ]);
    const source = new ArchiveSource(dir);
    const session = source.session();
    await session.open('INBOX');
    const pieces: Buffer[] = [];
    for (let start = 0; ; start += PIECE) {
      const piece = await session.run((c) =>
        c.fetchOne('1', { uid: true, source: { start, maxLength: PIECE } }, { uid: true }),
      );
      const bytes = piece ? piece.source : undefined;
      if (!bytes) throw new Error('no piece');
      pieces.push(bytes);
      if (bytes.length < PIECE) break;
    }
    expect(Buffer.concat(pieces).equals(large)).toBe(true);

    await writeFile(
      join(dir, messagePath('INBOX', 7, 1)),
      Buffer.concat([large, Buffer.from('!')]),
    );
    const refused = await session.run((c) =>
      c.fetchOne('1', { uid: true, source: { start: 0, maxLength: PIECE } }, { uid: true }),
    );
    expect(refused).toBe(false);
    expect(source.takeDamaged('INBOX')).toEqual([
      expect.objectContaining({ uid: 1, reason: expect.stringContaining('altered') }),
    ]);
    expect(source.takeDamaged('INBOX')).toEqual([]);
  });

  it('answers UID sets and --since, and restores the newest UIDVALIDITY of a folder', async () => {
    await archive([
      { folder: 'Old', uidValidity: 3, uid: 9, body: message(9), at: '2019-05-01T00:00:00.000Z' },
      ...[1, 2, 3, 5, 8].map((uid) => ({
        folder: 'Old',
        uidValidity: 4,
        uid,
        body: message(uid),
        at: `202${uid % 5}-01-01T00:00:00.000Z`,
      })),
    ]);
    const session = new ArchiveSource(dir).session();
    const status = await session.open('Old');
    expect(status).toMatchObject({ uidValidity: 4n, exists: 5, uidNext: 9 });
    const uids = (range: string) =>
      session.run(async (c) =>
        (await c.fetchAll(range, { uid: true }, { uid: true })).map((m) => m.uid),
      );
    expect(await uids('1:3,8')).toEqual([1, 2, 3, 8]);
    expect(await uids('4:*')).toEqual([5, 8]);
    expect(await uids('1:*')).toEqual([1, 2, 3, 5, 8]);
    const since = await session.run((c) =>
      c.search({ since: new Date('2023-01-01T00:00:00Z') }, { uid: true }),
    );
    expect(since).toEqual([3, 8]);
  });
});
