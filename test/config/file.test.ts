import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFsError, locateJsonError, readConfigFile } from '../../src/config/file.js';
import { CLIENT_SECRET, configurationError } from './support.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-config-file-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function write(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  return path;
}

describe('formats', () => {
  it('reads JSON', async () => {
    const path = await write('a.json', '{ "tenantId": "contoso.com", "imap": { "port": 1993 } }');
    expect(await readConfigFile(path)).toEqual({ tenantId: 'contoso.com', imap: { port: 1993 } });
  });

  it.each(['a.yaml', 'a.yml', 'A.YML'])('reads YAML (%s)', async (name) => {
    const path = await write(name, '# comment\ntenantId: contoso.com\nimap:\n  port: 1993\n');
    expect(await readConfigFile(path)).toEqual({ tenantId: 'contoso.com', imap: { port: 1993 } });
  });

  it('tries JSON, then YAML, for other extensions', async () => {
    const json = await write('mailbridge.conf', '{"tenantId":"contoso.com"}');
    const yaml = await write('mailbridgerc', 'tenantId: contoso.com\n');
    expect(await readConfigFile(json)).toEqual({ tenantId: 'contoso.com' });
    expect(await readConfigFile(yaml)).toEqual({ tenantId: 'contoso.com' });
  });

  it('accepts a byte order mark', async () => {
    const path = await write('bom.json', '\uFEFF{"tenantId":"contoso.com"}');
    expect(await readConfigFile(path)).toEqual({ tenantId: 'contoso.com' });
  });

  it('reads an empty YAML file as no settings', async () => {
    expect(await readConfigFile(await write('empty.yaml', '# nothing yet\n'))).toEqual({});
  });
});

describe('relative paths', () => {
  it('resolves certificatePath and federatedTokenFile against the file directory', async () => {
    const path = await write(
      'nested/dir/config.yaml',
      'certificatePath: certs/client.pem\nfederatedTokenFile: ../token\n',
    );
    expect(await readConfigFile(path)).toEqual({
      certificatePath: join(dir, 'nested/dir/certs/client.pem'),
      federatedTokenFile: join(dir, 'nested/token'),
    });
  });

  it('keeps absolute paths', async () => {
    const path = await write('abs.json', '{"certificatePath":"/etc/mailbridge/client.pem"}');
    expect((await readConfigFile(path)).certificatePath).toBe('/etc/mailbridge/client.pem');
  });
});

describe('CONFIG_FILE_UNREADABLE', () => {
  it('refuses a missing file', async () => {
    const path = join(dir, 'missing.yaml');
    const error = await configurationError(readConfigFile(path));
    expect(error.code).toBe('CONFIG_FILE_UNREADABLE');
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(path);
    expect(error.message).toContain('no such file');
  });

  it('refuses a directory', async () => {
    const error = await configurationError(readConfigFile(dir));
    expect(error.code).toBe('CONFIG_FILE_UNREADABLE');
    expect(error.message).toContain('it is a directory');
  });
});

describe('CONFIG_FILE_INVALID', () => {
  it('gives the line and column of a JSON error, without quoting the source', async () => {
    const path = await write(
      'bad.json',
      `{\n  "tenantId": "contoso.com",\n  "clientSecret": ${CLIENT_SECRET}\n}\n`,
    );
    const error = await configurationError(readConfigFile(path));
    expect(error.code).toBe('CONFIG_FILE_INVALID');
    expect(error.message).toContain('not valid JSON at line 3, column 19');
    expect(error.message).not.toContain(CLIENT_SECRET.slice(0, 8));
    expect(JSON.stringify(error)).not.toContain(CLIENT_SECRET.slice(0, 8));
  });

  it('gives the line and column of a YAML error, without quoting the source', async () => {
    const path = await write(
      'bad.yaml',
      `tenantId: contoso.com\nclientSecret: ${CLIENT_SECRET}: x\n`,
    );
    const error = await configurationError(readConfigFile(path));
    expect(error.code).toBe('CONFIG_FILE_INVALID');
    expect(error.message).toMatch(/not valid YAML at line 2, column \d+/);
    expect(error.message).toContain('BLOCK_AS_IMPLICIT_KEY');
    expect(error.message).not.toContain(CLIENT_SECRET.slice(0, 8));
  });

  it('refuses duplicate keys in YAML', async () => {
    const path = await write('dup.yaml', 'tenantId: a.com\ntenantId: b.com\n');
    const error = await configurationError(readConfigFile(path));
    expect(error.message).toContain('a key appears twice');
    expect(error.message).toContain('line 2, column 1');
  });

  it('reports the YAML error when an unknown extension is neither', async () => {
    const path = await write('bad.conf', 'a: "unclosed\n');
    const error = await configurationError(readConfigFile(path));
    expect(error.code).toBe('CONFIG_FILE_INVALID');
    expect(error.message).toContain('not valid YAML');
  });

  it.each([
    ['list.yaml', '- a\n- b\n', 'a list'],
    ['scalar.json', '"tenant"', 'a single string'],
  ])('refuses a file that is not a mapping (%s)', async (name, content, what) => {
    const error = await configurationError(readConfigFile(await write(name, content)));
    expect(error.code).toBe('CONFIG_FILE_INVALID');
    expect(error.message).toContain(`it holds ${what}, not a mapping of settings`);
  });
});

describe('locateJsonError', () => {
  it.each([
    ['{"a": 1,}', 8, 'expected a property name'],
    ['{"a" 1}', 5, "expected ':'"],
    ['{"a": 1 "b": 2}', 8, "expected ',' or '}'"],
    ['[1, 2', 5, 'unexpected end of file'],
    ['{"a": "x\ny"}', 8, 'raw control character'],
    ['{"a": "\\q"}', 7, 'escape sequence'],
    ['{"a": tru}', 6, 'unexpected character'],
    ['{} {}', 3, 'unexpected content after'],
    ['{"a": "open', 6, 'a string is not closed'],
  ])('finds the error in %j', (text, offset, reason) => {
    expect(() => JSON.parse(text)).toThrow();
    const located = locateJsonError(text);
    expect(located?.offset).toBe(offset);
    expect(located?.reason).toContain(reason);
  });

  it('finds nothing in valid JSON', () => {
    expect(locateJsonError('{"a": [1, -2.5e3, true, null, "\\u00e9"]}')).toBeUndefined();
  });
});

describe('describeFsError', () => {
  it.each([
    ['ENOENT', 'no such file (ENOENT)'],
    ['EACCES', 'permission denied (EACCES)'],
    ['EPERM', 'permission denied (EPERM)'],
    ['EISDIR', 'it is a directory (EISDIR)'],
    ['EMFILE', 'error EMFILE'],
  ])('describes %s', (code, text) => {
    expect(describeFsError(Object.assign(new Error('x'), { code }))).toBe(text);
  });
});
