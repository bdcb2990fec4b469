import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hashPassword,
  parsePasswordHash,
  verifyPassword,
} from '../../../src/jobs/listener/password.js';
import { openUserStore, parseUsersFile } from '../../../src/jobs/relay/users.js';

// Cheap parameters keep the suite fast; the default (ln=15) is checked once below.
const FAST = { ln: 10, r: 8, p: 1 };

describe('PHC scrypt hashes', () => {
  it('hashes with the default parameters in PHC form and verifies', async () => {
    const hash = await hashPassword('correct horse');
    expect(hash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    const parsed = parsePasswordHash(hash);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(await verifyPassword('correct horse', parsed.value)).toBe(true);
    expect(await verifyPassword('correct horse ', parsed.value)).toBe(false);
  });

  it('salts every hash', async () => {
    expect(await hashPassword('x', FAST)).not.toBe(await hashPassword('x', FAST));
  });

  it('matches an independently computed vector', async () => {
    // node -e "crypto.scryptSync('pw', Buffer.from('c2FsdHNhbHRzYWx0c2FsdA','base64'), 32, {N:1024,r:8,p:1})"
    const { scryptSync } = await import('node:crypto');
    const salt = Buffer.from('c2FsdHNhbHRzYWx0c2FsdA', 'base64');
    const expected = scryptSync('pw', salt, 32, { N: 1024, r: 8, p: 1 }).toString('base64');
    const parsed = parsePasswordHash(
      `$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$${expected.replace(/=+$/, '')}`,
    );
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(await verifyPassword('pw', parsed.value)).toBe(true);
  });

  it('refuses plain text, argon2id, unknown algorithms and unsafe parameters, without echoing them', () => {
    const cases: [string, RegExp][] = [
      ['hunter2', /never stored in plain text/],
      [
        '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
        /argon2id hashes are not supported on Node\.js 20/,
      ],
      ['$2b$10$abcdefghijklmnopqrstuv', /algorithm '2b' is not supported/],
      // A plain password that starts with '$': no piece of it is quoted as an algorithm name.
      ['$hunter2$x$y$z', /^the hash algorithm is not supported \(scrypt is\)$/],
      ['$scrypt$ln=15,hunter2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA', /parameters are not valid/],
      [
        '$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA',
        /ln=40 is outside 10\.\.20/,
      ],
      ['$scrypt$ln=15,r=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA', /parameter p is missing/],
      ['$scrypt$ln=15,r=8,p=1$!!$aGFzaA', /salt is not valid/],
    ];
    for (const [text, reason] of cases) {
      const parsed = parsePasswordHash(text);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) {
        expect(parsed.reason).toMatch(reason);
        expect(parsed.reason).not.toContain('hunter2');
      }
    }
  });
});

describe('users file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relay-users-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists every bad line at once and never quotes a password', () => {
    const text = [
      '# comment',
      '',
      'scanner:hunter2',
      'bad name:$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA',
      'nocolon',
      'printer:$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA',
      'printer:$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA',
    ].join('\n');
    const { users, problems } = parseUsersFile(text, 'users');
    expect([...users.keys()]).toEqual(['printer']);
    expect(problems.map((p) => p.field)).toEqual(['users:3', 'users:4', 'users:5', 'users:7']);
    expect(JSON.stringify(problems)).not.toContain('hunter2');
    expect(problems[0]?.message).toMatch(/plain text/);
  });

  it('verifies, refuses wrong passwords and unknown users, and reloads when the file changes', async () => {
    const path = join(dir, 'users');
    await writeFile(path, `scanner:${await hashPassword('s3cret', FAST)}\n`);
    const store = await openUserStore(path);
    expect(await store.verify('scanner', 's3cret')).toBe('scanner');
    expect(await store.verify('scanner', 'wrong')).toBeUndefined();
    expect(await store.verify('nobody', 's3cret')).toBeUndefined();
    await writeFile(
      path,
      `scanner:${await hashPassword('s3cret', FAST)}\nprinter:${await hashPassword('p', FAST)}\n`,
    );
    expect(await store.verify('printer', 'p')).toBe('printer');
    expect((await store.names()).sort()).toEqual(['printer', 'scanner']);
  });

  it('keeps the last good accounts when an edit breaks the file', async () => {
    const path = join(dir, 'users2');
    await writeFile(path, `scanner:${await hashPassword('s3cret', FAST)}\n`);
    const problems: string[] = [];
    const store = await openUserStore(path, (m) => problems.push(m));
    await writeFile(path, 'scanner:plaintext-oops\n');
    expect(await store.verify('scanner', 's3cret')).toBe('scanner');
    expect(problems.join()).toMatch(/RELAY_USERS_INVALID|problem/);
  });

  it('refuses a file with problems at start, as a ConfigurationError listing them', async () => {
    const path = join(dir, 'users3');
    await writeFile(path, 'scanner:plaintext\n');
    await expect(openUserStore(path)).rejects.toMatchObject({
      code: 'RELAY_USERS_INVALID',
      exitCode: 2,
      problems: [{ field: `${path}:1` }],
    });
  });
});
