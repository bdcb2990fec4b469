/**
 * Reads a JSON or YAML config file. Parser messages are never passed on as
 * they are: both V8's JSON.parse and the `yaml` package quote the offending
 * source line, which may be the line holding `clientSecret`. Errors here carry
 * only a line, a column and a fixed description.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { ConfigurationError } from '../errors.js';
import type { Settings } from './types.js';

/** Settings that name files; relative ones are resolved against the config file's directory. */
export const FILE_PATH_SETTINGS = ['certificatePath', 'federatedTokenFile', 'caFile'] as const;

/** A config file is a few hundred bytes; anything this large is the wrong file. */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

export type ConfigFileFormat = 'json' | 'yaml';

/**
 * Reads and parses a config file. `.json` is JSON, `.yaml`/`.yml` is YAML,
 * anything else is tried as JSON, then as YAML. Keys are returned as written;
 * `validateSettings` checks them, so that every problem is reported at once.
 *
 * @throws ConfigurationError `CONFIG_FILE_UNREADABLE` or `CONFIG_FILE_INVALID`
 */
export async function readConfigFile(path: string): Promise<Settings> {
  const absolute = resolve(path);
  const text = await readText(absolute);
  const extension = extname(absolute).toLowerCase();
  const format: ConfigFileFormat | undefined =
    extension === '.json'
      ? 'json'
      : extension === '.yaml' || extension === '.yml'
        ? 'yaml'
        : undefined;

  let data: unknown;
  if (format === 'json') {
    data = parseJson(text, absolute);
  } else if (format === 'yaml') {
    data = await parseYaml(text, absolute);
  } else {
    try {
      data = JSON.parse(text);
    } catch {
      data = await parseYaml(text, absolute);
    }
  }

  // An empty YAML file (or one holding only comments) is no settings at all.
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw invalid(
      absolute,
      `it holds ${Array.isArray(data) ? 'a list' : `a single ${typeof data}`}, not a mapping of settings`,
    );
  }
  return resolvePaths(data as Settings, dirname(absolute));
}

/** Settings whose values are secrets: a file holding one must be private to its owner. */
const SECRET_SETTINGS = ['clientSecret', 'certificatePassword'] as const;

/**
 * Warnings about the file itself: one holding a secret and readable by the
 * group or others gives the secret to every such user. Only the key names
 * are said, never the values.
 */
export async function configFileWarnings(path: string, settings: Settings): Promise<string[]> {
  const secrets = SECRET_SETTINGS.filter((key) => settings[key] !== undefined);
  if (secrets.length === 0) return [];
  const absolute = resolve(path);
  const warning = await readableByOthers(
    absolute,
    `The config file ${absolute} holds ${secrets.join(' and ')}`,
  );
  return warning === undefined
    ? []
    : [
        `${warning}: run chmod 600 ${absolute}, or keep the secret in AZURE_CLIENT_SECRET (or a certificate) instead.`,
      ];
}

/**
 * A warning for a file that holds a secret (`what`, e.g. "The config file
 * /etc/x.json holds clientSecret") when its group or all users may read it;
 * undefined when only its owner may, or when it cannot be looked at. POSIX
 * modes only: Windows has ACLs instead. The caller adds the remedy.
 */
export async function readableByOthers(path: string, what: string): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & 0o044) === 0) return undefined;
  const readers = [mode & 0o040 ? 'its group' : '', mode & 0o004 ? 'all users' : '']
    .filter(Boolean)
    .join(' and ');
  return `${what} and can be read by ${readers} (mode ${mode.toString(8).padStart(4, '0')})`;
}

function resolvePaths(settings: Settings, directory: string): Settings {
  const result: Settings = { ...settings };
  for (const key of FILE_PATH_SETTINGS) {
    const value = result[key];
    if (typeof value === 'string' && value.trim() !== '' && !isAbsolute(value)) {
      result[key] = resolve(directory, value);
    }
  }
  return result;
}

async function readText(path: string): Promise<string> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw unreadable(path, 'it is a directory');
    if (info.size > MAX_CONFIG_FILE_BYTES) {
      throw invalid(path, `it is ${info.size} bytes long, too large for a config file`);
    }
    // Editors on Windows may start the file with a byte order mark; JSON.parse refuses it.
    return (await readFile(path, 'utf8')).replace(/^\uFEFF/, '');
  } catch (error) {
    if (error instanceof ConfigurationError) throw error;
    throw unreadable(path, describeFsError(error), error);
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const located = locateJsonError(text);
    if (!located) throw invalid(path, 'it is not valid JSON');
    const { line, column } = lineAndColumn(text, located.offset);
    throw invalid(
      path,
      `it is not valid JSON at line ${line}, column ${column}: ${located.reason}`,
    );
  }
}

/** `yaml` is loaded only for a YAML file: about 9 MB of memory a JSON or env-only run does not need. */
async function parseYaml(text: string, path: string): Promise<unknown> {
  const { parseDocument } = await import('yaml');
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = document.errors[0];
  if (first) {
    const position = first.linePos?.[0];
    const where = position ? ` at line ${position.line}, column ${position.col}` : '';
    throw invalid(
      path,
      `it is not valid YAML${where}: ${YAML_ERRORS[first.code] ?? 'syntax error'} (${first.code})`,
    );
  }
  try {
    return document.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (error) {
    // The `yaml` package throws a ReferenceError for an alias bomb ("billion laughs").
    throw invalid(
      path,
      error instanceof ReferenceError
        ? `its aliases (*name) expand to more than ${MAX_YAML_ALIASES} copies, which is refused as a resource exhaustion attack`
        : 'its YAML cannot be turned into settings',
    );
  }
}

/** Aliases expanded per document; a config file needs a handful at most. */
const MAX_YAML_ALIASES = 100;

/** Fixed descriptions: the `yaml` package's own messages may quote the source. */
const YAML_ERRORS: Record<string, string> = {
  ALIAS_PROPS: 'an alias cannot have an anchor or a tag',
  BAD_ALIAS: 'an alias is not valid here',
  BAD_COLLECTION_TYPE: 'a tag is used on the wrong kind of collection',
  BAD_DIRECTIVE: 'a directive is not valid',
  BAD_DQ_ESCAPE: 'an escape sequence in a double-quoted string is not valid',
  BAD_INDENT: 'the indentation is wrong',
  BAD_PROP_ORDER: 'anchors and tags must come after the indicator',
  BAD_SCALAR_START: 'a plain value cannot start with this character (quote the value)',
  BLOCK_AS_IMPLICIT_KEY: 'a nested mapping is not allowed here (quote a value holding ": ")',
  BLOCK_IN_FLOW: 'a block collection cannot be inside a flow collection',
  DUPLICATE_KEY: 'a key appears twice in the same mapping',
  IMPOSSIBLE: 'the parser reached an impossible state',
  KEY_OVER_1024_CHARS: 'a key is longer than 1024 characters',
  MISSING_CHAR: 'a closing quote, bracket or separator is missing',
  MULTILINE_IMPLICIT_KEY: 'a key must be on a single line',
  MULTIPLE_ANCHORS: 'a node has more than one anchor',
  MULTIPLE_DOCS: 'the file holds more than one YAML document',
  MULTIPLE_TAGS: 'a node has more than one tag',
  NON_STRING_KEY: 'a key is not a string',
  TAB_AS_INDENT: 'tabs cannot be used for indentation',
  TAG_RESOLVE_FAILED: 'a tag cannot be resolved',
  UNEXPECTED_TOKEN: 'unexpected content',
};

function unreadable(path: string, why: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError({
    code: 'CONFIG_FILE_UNREADABLE',
    message: `Cannot read the config file ${path}: ${why}.`,
    remedy: 'Check the path and that this user may read the file.',
    cause,
  });
}

function invalid(path: string, why: string): ConfigurationError {
  return new ConfigurationError({
    code: 'CONFIG_FILE_INVALID',
    message: `The config file ${path} cannot be used: ${why}.`,
    remedy:
      'Fix the file: it must be a JSON object or a YAML mapping of settings (tenantId: …, clientId: …).',
  });
}

export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file (ENOENT)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'EISDIR':
      return 'it is a directory (EISDIR)';
    case 'ENOTDIR':
      return 'a part of the path is not a directory (ENOTDIR)';
    case 'ELOOP':
      return 'too many symbolic links (ELOOP)';
    default:
      return code ? `error ${code}` : 'unknown error';
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return { line, column };
}

class JsonSyntaxError {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {}
}

/**
 * Finds where JSON.parse failed. Node 20's V8 says "Unexpected token 'x',
 * …"source"… is not valid JSON" without a position but with a piece of the
 * source, so the position is found by scanning again. Only runs on failure.
 */
export function locateJsonError(text: string): { offset: number; reason: string } | undefined {
  let i = 0;
  const fail = (reason: string, at = i): never => {
    throw new JsonSyntaxError(at, at >= text.length ? 'unexpected end of file' : reason);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const expect = (char: string, reason: string) => {
    space();
    if (text.charAt(i) !== char) fail(reason);
    i++;
  };
  const string = () => {
    const start = i;
    i++;
    while (i < text.length) {
      const char = text.charAt(i);
      if (char === '"') {
        i++;
        return;
      }
      if (char < ' ') fail('a string holds a raw control character (write a newline as \\n)');
      if (char === '\\') {
        const next = text.charAt(i + 1);
        if (next === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('a \\u escape is not valid');
          i += 6;
          continue;
        }
        if (!'"\\/bfnrt'.includes(next) || next === '') fail('an escape sequence is not valid');
        i += 2;
        continue;
      }
      i++;
    }
    fail('a string is not closed', start);
  };
  const value = (): void => {
    space();
    const char = text.charAt(i);
    if (char === '{') {
      i++;
      space();
      if (text.charAt(i) === '}') {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text.charAt(i) !== '"') fail('expected a property name in double quotes');
        string();
        expect(':', "expected ':' after a property name");
        value();
        space();
        if (text.charAt(i) === ',') {
          i++;
          continue;
        }
        if (text.charAt(i) === '}') {
          i++;
          return;
        }
        fail("expected ',' or '}' after a property value");
      }
    }
    if (char === '[') {
      i++;
      space();
      if (text.charAt(i) === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        space();
        if (text.charAt(i) === ',') {
          i++;
          continue;
        }
        if (text.charAt(i) === ']') {
          i++;
          return;
        }
        fail("expected ',' or ']' after a list item");
      }
    }
    if (char === '"') {
      string();
      return;
    }
    const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (number && number[0] !== '-') {
      i += number[0].length;
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    fail('unexpected character (strings need double quotes)');
  };

  try {
    value();
    space();
    if (i < text.length) fail('unexpected content after the end of the JSON value');
    return undefined;
  } catch (error) {
    if (error instanceof JsonSyntaxError) return { offset: error.offset, reason: error.reason };
    // A RangeError from nesting deeper than the stack: no position to give.
    return undefined;
  }
}
