import { describe, expect, it } from 'vitest';
import { isBlobTarget, parseBlobLocation } from '../../../src/jobs/archive/store/blob-location.js';

describe('--out as a blob container URL', () => {
  it.each([
    [
      'azblob://contosoarchive/mail/nightly/2026',
      { account: 'contosoarchive', container: 'mail', prefix: 'nightly/2026/' },
    ],
    ['azblob://contosoarchive/mail/', { account: 'contosoarchive', container: 'mail', prefix: '' }],
    [
      'https://contosoarchive.blob.core.windows.net/mail/a%20b',
      {
        account: 'contosoarchive',
        container: 'mail',
        prefix: 'a b/',
        endpoint: 'https://contosoarchive.blob.core.windows.net',
      },
    ],
    [
      'https://gov1.blob.core.usgovcloudapi.net/mail',
      { account: 'gov1', endpoint: 'https://gov1.blob.core.usgovcloudapi.net' },
    ],
    [
      'http://127.0.0.1:10000/devstoreaccount1/mail/x',
      {
        account: 'devstoreaccount1',
        container: 'mail',
        prefix: 'x/',
        endpoint: 'http://127.0.0.1:10000/devstoreaccount1',
      },
    ],
  ])('%s', (url, expected) => {
    expect(isBlobTarget(url)).toBe(true);
    expect(parseBlobLocation(url)).toMatchObject(expected);
  });

  it.each([
    ['azblob://contosoarchive/Mail', /container name/],
    ['azblob://x/mail', /storage account name/],
    ['azblob://contosoarchive', /container name/],
    ['azblob://contosoarchive/mail/a/../b', /\.\. part/],
    ['azblob://contosoarchive:443/mail', /no port/],
    ['https://contosoarchive.blob.core.windows.net/mail?sv=1&sig=SECRET', /query/],
    ['https://user:pw@contosoarchive.blob.core.windows.net/mail', /credentials/],
    ['http://storage.example/devstoreaccount1/mail', /plain http/],
  ])('refuses %s with ARCHIVE_STORE_URL_INVALID (exit 2)', (url, why) => {
    let error: (Error & { code?: string; exitCode?: number }) | undefined;
    try {
      parseBlobLocation(url);
    } catch (caught) {
      error = caught as typeof error;
    }
    expect(error?.code).toBe('ARCHIVE_STORE_URL_INVALID');
    expect(error?.exitCode).toBe(2);
    expect(error?.message).toMatch(why);
    expect(error?.message).not.toContain('SECRET');
    expect(error?.message).not.toContain('pw@');
  });

  it('leaves directories alone', () => {
    for (const dir of ['/srv/archive', 'archive', 'C:\\archive', './https']) {
      expect(isBlobTarget(dir)).toBe(false);
    }
  });
});
