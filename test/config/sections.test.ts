import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { parseSection } from '../../src/config/schema.js';
import {
  type MigrateSection,
  migrateSectionSchema,
  type ProxySection,
  proxySectionSchema,
  type QueueSection,
  queueSectionSchema,
  sectionProblems,
} from '../../src/config/sections.js';

describe('declared sections (migrate, proxy, queue)', () => {
  it('reads a migrate section, a list of SRC=DEST as a mapping', () => {
    const migrate: MigrateSection = v.parse(migrateSectionSchema, {
      from: 'imaps://old.example.com',
      to: 'archive@contoso.com',
      folders: ['INBOX', 'Sent'],
      exclude: 'Junk',
      map: ['Sent = Sent Items', 'Trash=Deleted Items'],
      since: '2024-02-29',
      state: 'state.json',
      connections: 4,
      syncFlags: true,
      fromPasswordFile: '/run/secrets/old',
      toPasswordFile: '/run/secrets/new',
    });
    expect(migrate.map).toEqual({ Sent: 'Sent Items', Trash: 'Deleted Items' });
    expect(migrate.connections).toBe(4);
  });

  it('reads a proxy section and a queue section', () => {
    const proxy: ProxySection = v.parse(proxySectionSchema, {
      imap: { listen: ['127.0.0.1:1143', 'imaps://0.0.0.0:993'] },
      pop3: { listen: 'pop3s://0.0.0.0:995' },
      tls: { cert: 'c.pem', key: 'k.pem', minVersion: 'TLSv1' },
      users: [{ name: 'erp', passwordHash: '$scrypt$x', mailboxes: ['erp@contoso.com'] }],
      allowNetworks: ['10.0.0.0/8'],
      maxConnectionsPerUser: 4,
      idleTimeout: '30m',
      http: '127.0.0.1:9026',
    });
    expect(proxy.pop3?.listen).toEqual(['pop3s://0.0.0.0:995']);
    expect(proxy.idleTimeout).toBe(1_800_000);
    const queue: QueueSection = v.parse(queueSectionSchema, {
      url: 'rediss://redis.lan:6380/0',
      concurrency: 8,
    });
    expect(queue.concurrency).toBe(8);
  });

  it('refuses unknown keys, at any depth, with their did-you-mean', () => {
    expect(sectionProblems('migrate', { foldrs: ['INBOX'], sinse: '2024-01-01' })).toEqual([
      {
        field: 'migrate.foldrs',
        message: "Unknown setting 'migrate.foldrs': did you mean 'migrate.folders'?",
      },
      {
        field: 'migrate.sinse',
        message: "Unknown setting 'migrate.sinse': did you mean 'migrate.since'?",
      },
    ]);
    expect(
      sectionProblems('proxy', {
        imap: { listn: ['127.0.0.1:1143'] },
        tls: { cert: 'c', key: 'k', minversion: 'TLSv1' },
        users: [{ name: 'a', passwordHsh: 'x', mailboxes: ['a@b.c'] }],
      }),
    ).toEqual([
      {
        field: 'proxy.imap.listn',
        message: "Unknown setting 'proxy.imap.listn': did you mean 'proxy.imap.listen'?",
      },
      {
        field: 'proxy.tls.minversion',
        message: "Unknown setting 'proxy.tls.minversion': did you mean 'proxy.tls.minVersion'?",
      },
      {
        field: 'proxy.users[0].passwordHash',
        message:
          'proxy.users[0].passwordHash must be a password hash (make one with `mailbridge proxy hash-password`).',
      },
      {
        field: 'proxy.users[0].passwordHsh',
        message:
          "Unknown setting 'proxy.users[0].passwordHsh': did you mean 'proxy.users[0].passwordHash'?",
      },
    ]);
    expect(sectionProblems('queue', { concurency: 2 })).toEqual([
      {
        field: 'queue.concurency',
        message: "Unknown setting 'queue.concurency': did you mean 'queue.concurrency'?",
      },
    ]);
    expect(sectionProblems('queue', { frobnicate: 1 })).toEqual([
      {
        field: 'queue.frobnicate',
        message:
          "Unknown setting 'queue.frobnicate'. Known: url, concurrency, connectionsPerMailbox, attempts, lockDuration, lockWait, caFile.",
      },
    ]);
  });

  it('says what is wrong with a value, each by its key', () => {
    expect(
      sectionProblems('migrate', {
        connections: 17,
        since: '2024-02-30',
        map: ['INBOX'],
        syncFlags: 'yes',
      }),
    ).toEqual([
      {
        field: 'migrate.map',
        message:
          "migrate.map must map source folders to target folders: { SRC: DEST } or a list of 'SRC=DEST'.",
      },
      { field: 'migrate.since', message: 'migrate.since must be a date, YYYY-MM-DD.' },
      {
        field: 'migrate.connections',
        message: 'migrate.connections must be a whole number from 1 to 16.',
      },
      { field: 'migrate.syncFlags', message: 'migrate.syncFlags must be true or false.' },
    ]);
    expect(
      sectionProblems('proxy', {
        users: [{ name: 'a', passwordHash: 'x', mailboxes: [] }],
        tls: { cert: 'c', key: 'k', minVersion: 'SSLv3' },
        idleTimeout: 'a while',
      }),
    ).toEqual([
      {
        field: 'proxy.tls.minVersion',
        message: 'proxy.tls.minVersion must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3.',
      },
      {
        field: 'proxy.users[0].mailboxes',
        message: 'proxy.users[0].mailboxes must list at least one mailbox the user may read.',
      },
      {
        field: 'proxy.idleTimeout',
        message: 'proxy.idleTimeout must be a duration such as 90s, 30m, 24h or 2d.',
      },
    ]);
  });

  it('never quotes a queue URL, which may hold the Redis password', () => {
    const problems = sectionProblems('queue', { url: 'http://:S3cr3t-pw@redis.lan:6379' });
    expect(problems).toEqual([
      {
        field: 'queue.url',
        message: 'queue.url must be a Redis URL, redis://HOST:PORT/DB or rediss://… for TLS.',
      },
    ]);
  });

  it('has no problems when the section is absent, and one when it is not a mapping', () => {
    expect(sectionProblems('proxy', undefined)).toEqual([]);
    expect(parseSection(queueSectionSchema, ['redis://x'], { prefix: 'queue' }).problems).toEqual([
      { field: 'queue', message: 'queue must be a mapping of settings.' },
    ]);
  });
});
