import { describe, expect, it } from 'vitest';
import {
  decodeName,
  encodeName,
  MAX_NAME_LENGTH,
  mailboxDirName,
  messagePath,
  parseMessagePath,
} from '../../../src/jobs/archive/paths.js';

const AWKWARD = [
  'INBOX',
  'Archive/2024',
  'Archive%2F2024',
  'Archive.2024',
  'Ünïcödé',
  'U\u0308nïcödé', // the same letters, decomposed: another IMAP name
  '日本語のフォルダ',
  'a..b',
  '.',
  '..',
  '...',
  '.hidden',
  'trailing.',
  '../../etc/passwd',
  '/',
  '\\',
  'C:\\Windows',
  'with space',
  ' leading space',
  'tab\there',
  'nul\u0000byte',
  'new\nline',
  'CON',
  'con.txt',
  'Nul',
  'LPT1',
  'manifest.jsonl',
  'MANIFEST.JSONL',
  'folder.json',
  '.tmp',
  '.lock',
  '~',
  'a~b',
  '%',
  '%25',
  '',
  '*',
  '?<>|":',
  '&ANw-n&AO8-c&APY-d&AOk-', // modified UTF-7 as text, should a server list it undecoded
  'x'.repeat(300),
  `${'x'.repeat(300)}y`,
  'ü'.repeat(200),
  '\uD800lone',
  'lone\uDC00',
  '\uD83D\uDE00 emoji',
];

describe('encodeName', () => {
  it('is injective over awkward folder names', () => {
    const encoded = AWKWARD.map(encodeName);
    expect(new Set(encoded).size).toBe(AWKWARD.length);
  });

  it('gives names that are safe on every filesystem and cannot leave the directory', () => {
    for (const name of AWKWARD) {
      const e = encodeName(name);
      expect(e, name).toMatch(/^[A-Za-z0-9_@+.%~-]+$/);
      expect(e.length, name).toBeLessThanOrEqual(MAX_NAME_LENGTH);
      expect(e.startsWith('.'), name).toBe(false);
      expect(e.endsWith('.'), name).toBe(false);
      expect(['.', '..', 'manifest.jsonl'], name).not.toContain(e.toLowerCase());
      expect(e.split('.')[0]?.toLowerCase(), name).not.toMatch(/^(con|prn|aux|nul|com\d|lpt\d)$/);
    }
  });

  it('round-trips every name that is not hashed', () => {
    for (const name of AWKWARD) {
      const e = encodeName(name);
      if (!e.includes('~')) expect(decodeName(e), name).toBe(name);
    }
  });

  it('keeps readable names readable', () => {
    expect(encodeName('INBOX')).toBe('INBOX');
    expect(encodeName('Archive/2024')).toBe('Archive%2F2024');
    expect(encodeName('a..b')).toBe('a..b');
    expect(encodeName('with space')).toBe('with%20space');
    expect(encodeName('..')).toBe('%2E%2E');
    expect(encodeName('CON')).toBe('%43ON');
    expect(encodeName('manifest.jsonl')).toBe('%6Danifest.jsonl');
    expect(encodeName('Ünïcödé')).toBe('%C3%9Cn%C3%AFc%C3%B6d%C3%A9');
  });

  it('cuts long names with a hash suffix, distinct for distinct names', () => {
    const a = encodeName('x'.repeat(300));
    const b = encodeName(`${'x'.repeat(300)}y`);
    expect(a).toMatch(/^x+~[0-9a-f]{20}$/);
    expect(a).not.toBe(b);
    // An escape is never cut in half.
    expect(encodeName('ü'.repeat(200))).toMatch(/^(%C3%BC)+~[0-9a-f]{20}$/);
    expect(encodeName('x'.repeat(300))).toBe(a);
  });

  it('maps mailbox addresses case-insensitively', () => {
    expect(mailboxDirName(' Archive@Contoso.com ')).toBe('archive@contoso.com');
  });
});

describe('message paths', () => {
  it('carry UIDVALIDITY and UID and parse back', () => {
    const path = messagePath('Archive%2F2024', 1700000000, 42);
    expect(path).toBe('Archive%2F2024/1700000000/42.eml');
    expect(parseMessagePath(path)).toEqual({
      folderDir: 'Archive%2F2024',
      uidValidity: 1700000000,
      uid: 42,
    });
  });

  it('refuse paths that could leave the mailbox directory', () => {
    for (const bad of [
      '../1/2.eml',
      '../../etc/passwd',
      '/abs/1/2.eml',
      'a/b/1/2.eml',
      'a/1/2.eml/..',
      '.tmp/1/2.eml',
      'a\\b/1/2.eml',
      'a/0/2.eml',
      'a/1/02.eml',
      'a/1/99999999999.eml',
      'a/1/2.txt',
    ]) {
      expect(parseMessagePath(bad), bad).toBeUndefined();
    }
  });
});
