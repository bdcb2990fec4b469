/**
 * The disk side without a server: manifest lines, temp files, locks, orphan
 * recovery input, metadata parsing and verify.
 */
import { createHash } from 'node:crypto';
import {
  appendFile,
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  formatManifestLine,
  ManifestIndex,
  type ManifestRecord,
  ManifestWriter,
  readManifest,
} from '../../../src/jobs/archive/manifest.js';
import { parseMessageMetadata } from '../../../src/jobs/archive/metadata.js';
import { messagePath } from '../../../src/jobs/archive/paths.js';
import { hashFile } from '../../../src/jobs/archive/store/file-hash.js';
import { LocalArchiveStore as ArchiveStore } from '../../../src/jobs/archive/store.js';
import { verifyArchive } from '../../../src/jobs/archive/verify.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-store-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function record(folder: string, uidValidity: number, uid: number, data: string): ManifestRecord {
  return {
    folder,
    uidValidity,
    uid,
    internalDate: null,
    flags: [],
    size: Buffer.byteLength(data),
    sha256: sha256(data),
    path: messagePath(folder.replace(/\//g, '%2F'), uidValidity, uid),
    messageId: null,
    date: null,
    from: [],
    to: [],
    cc: [],
    subject: null,
    attachments: [],
    archivedAt: new Date(0).toISOString(),
  };
}

describe('manifest', () => {
  it('derives each folder checkpoint from the lines', async () => {
    const file = join(dir, 'manifest.jsonl');
    const index = new ManifestIndex();
    const { writer } = await ManifestWriter.open(file, index);
    await writer.append([record('INBOX', 7, 1, 'a'), record('INBOX', 7, 5, 'b')]);
    await writer.append([record('INBOX', 9, 2, 'c'), record('Sent', 3, 4, 'd')]);
    await writer.close();
    const again = new ManifestIndex();
    await readManifest(file, (r) => again.add(r));
    expect(again.ranges('INBOX')).toEqual(
      new Map([
        [7, { lastUid: 5, count: 2 }],
        [9, { lastUid: 2, count: 1 }],
      ]),
    );
    expect(again.has('Sent', 3, 4)).toBe(true);
    expect(again.messages).toBe(4);
    // A second line for one message is not counted twice.
    expect(again.add(record('INBOX', 7, 5, 'b'))).toBe(false);
  });

  it('ignores a last line cut short by a crash and cuts it off before appending', async () => {
    const file = join(dir, 'manifest.jsonl');
    const full = formatManifestLine(record('INBOX', 7, 1, 'a'));
    const torn = formatManifestLine(record('INBOX', 7, 2, 'b')).slice(0, 40);
    await writeFile(file, full + torn);
    const index = new ManifestIndex();
    const { writer, read } = await ManifestWriter.open(file, index);
    expect(read.tornBytes).toBe(40);
    expect(index.ranges('INBOX').get(7)).toEqual({ lastUid: 1, count: 1 });
    await writer.append([record('INBOX', 7, 2, 'b')]);
    await writer.close();
    const lines = (await readFile(file, 'utf8')).split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.slice(0, 2).map((l) => JSON.parse(l).uid)).toEqual([1, 2]);
  });

  it('skips, but keeps, complete lines that are not records', async () => {
    const file = join(dir, 'manifest.jsonl');
    await writeFile(
      file,
      `${formatManifestLine(record('INBOX', 7, 1, 'a'))}{"not":"a record"}\ngarbage\n`,
    );
    const result = await readManifest(file, () => {});
    expect(result.records).toBe(1);
    expect(result.problems).toEqual([
      { line: 2, problem: 'not a record' },
      { line: 3, problem: 'not a record' },
    ]);
    expect(result.tornBytes).toBe(0);
  });

  it('takes no checkpoint from a line whose path is not its own message', async () => {
    const file = join(dir, 'manifest.jsonl');
    const forged = [
      { ...record('INBOX', 7, 999999, 'x'), path: '/etc/passwd' },
      { ...record('INBOX', 7, 999998, 'x'), path: 'INBOX/7/2.eml' },
      { ...record('INBOX', 7, 999997, 'x'), path: 'Sent/7/999997.eml' },
    ];
    await writeFile(
      file,
      [record('INBOX', 7, 2, 'a'), ...forged].map((r) => formatManifestLine(r)).join(''),
    );
    const index = new ManifestIndex();
    const { writer, read } = await ManifestWriter.open(file, index);
    await writer.close();
    expect(index.ranges('INBOX')).toEqual(new Map([[7, { lastUid: 2, count: 1 }]]));
    expect(read.problems).toEqual([
      { line: 2, problem: 'unsafe path', path: '/etc/passwd' },
      { line: 3, problem: 'wrong path', path: 'INBOX/7/2.eml' },
      { line: 4, problem: 'wrong path', path: 'Sent/7/999997.eml' },
    ]);
  });

  it('creates the manifest readable by its owner only, and tightens an older one', async () => {
    const file = join(dir, 'manifest.jsonl');
    const { writer } = await ManifestWriter.open(file, new ManifestIndex());
    await writer.close();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await chmod(file, 0o644);
    await (await ManifestWriter.open(file, new ManifestIndex())).writer.close();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});

describe('ArchiveStore', () => {
  it('writes files complete under their final name and leaves no temp files', async () => {
    const store = await ArchiveStore.open(join(dir, 'mb'));
    const folderDir = await store.folderDir('Archive/2024');
    expect(folderDir).toBe('Archive%2F2024');
    const rel = messagePath(folderDir, 9, 3);
    const written = await store.writeMessage(rel, Buffer.from('hello'));
    expect(written).toEqual({ sha256: sha256('hello'), size: 5 });
    await store.sync();
    expect(await readFile(store.absolute(rel), 'utf8')).toBe('hello');
    expect(await readdir(store.tempDir)).toEqual([]);
    expect(JSON.parse(await readFile(join(dir, 'mb', folderDir, 'folder.json'), 'utf8'))).toEqual({
      folder: 'Archive/2024',
    });
    await store.close();
    expect((await readdir(join(dir, 'mb'))).sort()).toEqual(['Archive%2F2024']);
  });

  it('prepares messages at once and places them one by one; a discarded one leaves nothing', async () => {
    const store = await ArchiveStore.open(join(dir, 'mb'));
    const folderDir = await store.folderDir('INBOX');
    // Written and flushed concurrently, as the runner does; nothing is in place before commit.
    const prepared = await Promise.all(
      ['one', 'two', 'three'].map((text) => store.prepareMessage(Buffer.from(text))),
    );
    expect(await readdir(store.tempDir)).toHaveLength(3);
    const [one, two, three] = prepared;
    expect(await one?.commit(messagePath(folderDir, 7, 1))).toEqual({
      sha256: sha256('one'),
      size: 3,
    });
    await two?.commit(messagePath(folderDir, 7, 2));
    await three?.discard();
    await expect(three?.commit(messagePath(folderDir, 7, 3)) as Promise<unknown>).rejects.toThrow(
      'already finished',
    );
    // Two calls at once: neither returns before the directory holding the renames is flushed.
    await Promise.all([store.sync(), store.sync()]);
    expect((await readdir(join(dir, 'mb', folderDir, '7'))).sort()).toEqual(['1.eml', '2.eml']);
    expect(await readdir(store.tempDir)).toEqual([]);
    await store.close();
  });

  it('drops the temp file of a message it cannot place, and takes no write after the flush', async () => {
    const store = await ArchiveStore.open(join(dir, 'mb'));
    const folderDir = await store.folderDir('INBOX');
    // A file where the UIDVALIDITY directory must go: the rename cannot happen.
    await writeFile(join(dir, 'mb', folderDir, '7'), 'in the way');
    const blocked = await store.prepareMessage(Buffer.from('blocked'));
    await expect(blocked.commit(messagePath(folderDir, 7, 1))).rejects.toThrow(/EEXIST|ENOTDIR/);
    expect(await readdir(store.tempDir)).toEqual([]);

    const partial = await store.createPartial();
    await partial.write(Buffer.from('abc'));
    await partial.flush();
    await expect(partial.write(Buffer.from('more'))).rejects.toThrow('already flushed');
    await partial.discard();
    expect(await readdir(store.tempDir)).toEqual([]);
    await store.close();
  });

  it('refuses a second writer and takes over the lock of a dead one', async () => {
    const mailboxDir = join(dir, 'mb');
    const first = await ArchiveStore.open(mailboxDir);
    await expect(ArchiveStore.open(mailboxDir)).rejects.toMatchObject({ code: 'ARCHIVE_LOCKED' });
    await first.close();
    // A process that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
    await writeFile(
      join(mailboxDir, '.lock'),
      JSON.stringify({ pid: 4194305, hostname: (await import('node:os')).hostname() }),
    );
    await mkdir(join(mailboxDir, '.tmp'), { recursive: true });
    await writeFile(join(mailboxDir, '.tmp', 'abc.part'), 'partial');
    const second = await ArchiveStore.open(mailboxDir);
    expect(second.previousRunInterrupted).toBe(true);
    expect(await readdir(second.tempDir)).toEqual([]);
    await second.close();
  });

  it('finds files in place that the manifest does not list', async () => {
    const store = await ArchiveStore.open(join(dir, 'mb'));
    const inbox = await store.folderDir('INBOX');
    await store.writeMessage(messagePath(inbox, 5, 1), Buffer.from('one'));
    await store.writeMessage(messagePath(inbox, 5, 2), Buffer.from('two'));
    await store.writeMessage(messagePath(inbox, 6, 1), Buffer.from('new uv'));
    const index = new ManifestIndex();
    index.add(record('INBOX', 5, 1, 'one'));
    const orphans = await store.findOrphans(index);
    expect(orphans.map((o) => o.path)).toEqual(['INBOX/5/2.eml', 'INBOX/6/1.eml']);
    expect(orphans[0]).toMatchObject({ folder: 'INBOX', uidValidity: 5, uid: 2 });
    expect(await hashFile(store.absolute('INBOX/5/2.eml'))).toEqual({
      sha256: sha256('two'),
      size: 3,
    });
    await store.close();
  });

  it('detects two folders landing in one directory', async () => {
    const store = await ArchiveStore.open(join(dir, 'mb'));
    await store.folderDir('INBOX');
    await mkdir(join(dir, 'mb', 'Sent'));
    await writeFile(join(dir, 'mb', 'Sent', 'folder.json'), JSON.stringify({ folder: 'sent' }));
    await expect(store.folderDir('Sent')).rejects.toMatchObject({ code: 'ARCHIVE_FOLDER_CLASH' });
    await store.close();
  });
});

describe('parseMessageMetadata', () => {
  const message = [
    'From: "Ann Example" <ann@fabrikam.example>',
    'To: archive@contoso.example, Team: bob@contoso.example, carol@contoso.example;',
    'Cc: =?UTF-8?Q?J=C3=BCrgen?= <juergen@contoso.example>',
    'Subject: =?UTF-8?B?UXVhcnRhbHNiZXJpY2h0IMOcYmVyc2ljaHQ=?=',
    'Message-ID: <q1@fabrikam.example>',
    'Date: Mon, 1 Apr 2024 09:30:00 +0200',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: multipart/alternative; boundary="b2"',
    '',
    '--b2',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Plain body',
    '--b2',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>HTML body</p>',
    '--b2--',
    '--b1',
    'Content-Type: application/pdf; name="report.pdf"',
    'Content-Disposition: attachment; filename="report.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.alloc(3000, 7).toString('base64'),
    '--b1',
    'Content-Type: text/plain; name="notes.txt"',
    'Content-Disposition: attachment; filename="notes.txt"',
    '',
    'notes',
    '--b1--',
    '',
  ].join('\r\n');

  it('reads headers, addresses and attachments (not the text bodies)', async () => {
    const meta = await parseMessageMetadata(Buffer.from(message));
    expect(meta).toEqual({
      messageId: '<q1@fabrikam.example>',
      date: '2024-04-01T07:30:00.000Z',
      from: [{ name: 'Ann Example', address: 'ann@fabrikam.example' }],
      to: [
        { name: '', address: 'archive@contoso.example' },
        { name: '', address: 'bob@contoso.example' },
        { name: '', address: 'carol@contoso.example' },
      ],
      cc: [{ name: 'Jürgen', address: 'juergen@contoso.example' }],
      subject: 'Quartalsbericht Übersicht',
      attachments: [
        { filename: 'report.pdf', contentType: 'application/pdf', size: 3000 },
        { filename: 'notes.txt', contentType: 'text/plain', size: 5 },
      ],
    });
    // The same from a file.
    const file = join(dir, 'm.eml');
    await writeFile(file, message);
    expect(await parseMessageMetadata(file)).toEqual(meta);
  });

  it('gives null for a Date header that is not a date, not the time of parsing', async () => {
    const meta = await parseMessageMetadata(Buffer.from('Date: someday\r\nSubject: x\r\n\r\nbody'));
    expect(meta.date).toBeNull();
    expect(meta.subject).toBe('x');
    expect(meta.parseError).toBeUndefined();
  });

  it('flags a message the parser gives up on and keeps what it read', async () => {
    const parts = Array.from(
      { length: 1100 },
      (_, i) => `--b0\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`,
    ).join('');
    const broken = `Subject: broken MIME\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n${parts}--b0--\r\n`;
    const meta = await parseMessageMetadata(Buffer.from(broken));
    expect(meta.parseError).toMatch(/child nodes/);
    expect(meta.subject).toBe('broken MIME');
  });

  it('reports an unreadable file as an error, not as a parse failure', async () => {
    await expect(parseMessageMetadata(join(dir, 'missing.eml'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('verifyArchive', () => {
  async function archiveOf(files: Record<string, string>): Promise<string> {
    const root = join(dir, 'out');
    const mailboxDir = join(root, 'archive@contoso.example');
    const store = await ArchiveStore.open(mailboxDir);
    const index = new ManifestIndex();
    const { writer } = await ManifestWriter.open(store.manifestFile, index);
    const records: ManifestRecord[] = [];
    let uid = 0;
    for (const [folder, data] of Object.entries(files)) {
      const folderDir = await store.folderDir(folder);
      uid++;
      const rel = messagePath(folderDir, 1, uid);
      await store.writeMessage(rel, Buffer.from(data));
      records.push({ ...record(folder, 1, uid, data), path: rel });
    }
    await store.sync();
    await writer.append(records);
    await writer.close();
    await store.close();
    return root;
  }

  it('passes an intact archive', async () => {
    const root = await archiveOf({ INBOX: 'one', 'Archive/2024': 'two' });
    const report = await verifyArchive(root);
    expect(report).toMatchObject({
      ok: true,
      checked: 2,
      bytes: 6,
      missing: [],
      altered: [],
      extra: [],
      mailboxes: ['archive@contoso.example'],
    });
    // The mailbox directory itself can be given.
    expect((await verifyArchive(join(root, 'archive@contoso.example'))).ok).toBe(true);
  });

  it('reports altered, missing and extra files by path', async () => {
    const root = await archiveOf({ INBOX: 'one', Sent: 'two', Drafts: 'three' });
    const mb = join(root, 'archive@contoso.example');
    await writeFile(join(mb, 'INBOX', '1', '1.eml'), 'ONE');
    await rm(join(mb, 'Sent', '1', '2.eml'));
    await writeFile(join(mb, 'Drafts', '1', '99.eml'), 'stray');
    await mkdir(join(mb, '.tmp'));
    await writeFile(join(mb, '.tmp', 'x.part'), 'partial');
    await appendFile(join(mb, 'manifest.jsonl'), '{"torn":');
    const report = await verifyArchive(root);
    expect(report.ok).toBe(false);
    expect(report.altered).toEqual([
      {
        path: 'archive@contoso.example/INBOX/1/1.eml',
        expectedSha256: sha256('one'),
        actualSha256: sha256('ONE'),
        expectedSize: 3,
        actualSize: 3,
      },
    ]);
    expect(report.missing).toEqual(['archive@contoso.example/Sent/1/2.eml']);
    expect(report.extra).toEqual([
      'archive@contoso.example/.tmp/x.part',
      'archive@contoso.example/Drafts/1/99.eml',
    ]);
    expect(report.tornManifests).toEqual(['archive@contoso.example/manifest.jsonl']);
  });

  it('refuses manifest paths that leave the archive and reports duplicate lines', async () => {
    const root = await archiveOf({ INBOX: 'one' });
    const manifest = join(root, 'archive@contoso.example', 'manifest.jsonl');
    await appendFile(
      manifest,
      formatManifestLine({ ...record('INBOX', 1, 1, 'one'), path: 'INBOX/1/1.eml' }) +
        formatManifestLine({ ...record('x', 1, 2, 'x'), path: '../../../etc/passwd' }),
    );
    const report = await verifyArchive(root);
    expect(report.manifestProblems).toEqual([
      {
        manifest: 'archive@contoso.example/manifest.jsonl',
        line: 2,
        problem: 'duplicate',
        path: 'archive@contoso.example/INBOX/1/1.eml',
      },
      {
        manifest: 'archive@contoso.example/manifest.jsonl',
        line: 3,
        problem: 'unsafe path',
        path: '../../../etc/passwd',
      },
    ]);
    expect(report.ok).toBe(false);
  });
});
