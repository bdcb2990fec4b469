/**
 * The registry of error codes against the two places that must agree with it:
 * the codes src/ really raises, and README's "Error codes" tables.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/error-codes.js';
import {
  AuthenticationError,
  ConfigurationError,
  MailbridgeError,
  NetworkError,
} from '../src/errors.js';

const ROOT = resolve(import.meta.dirname, '..');

function sourceText(dir: string): string {
  return readdirSync(dir, { withFileTypes: true })
    .map((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sourceText(path);
      return entry.name.endsWith('.ts') ? readFileSync(path, 'utf8') : '';
    })
    .join('\n');
}

/** `| \`CODE\` | exit | …` rows of README's "Error codes" section. */
function readmeRows(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Error codes');
  const end = readme.indexOf('\n## ', start + 1);
  const rows = new Map<string, string>();
  for (const m of readme.slice(start, end).matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]+) \|/gm)) {
    const code = m[1] as string;
    if (rows.has(code)) throw new Error(`README lists ${code} twice`);
    rows.set(code, (m[2] as string).trim());
  }
  return rows;
}

function exitText(exit: (typeof ERROR_CODES)[keyof typeof ERROR_CODES]['exit']): string {
  if (typeof exit === 'number') return String(exit);
  return `${exit.slice(0, -1).join(', ')} or ${exit.at(-1)}`;
}

describe('the error code registry', () => {
  it('holds every code that src/ raises', () => {
    const raised = new Set(
      [...sourceText(join(ROOT, 'src')).matchAll(/\bcode: '([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]),
    );
    const missing = [...raised].filter((code) => code !== undefined && !(code in ERROR_CODES));
    expect(missing).toEqual([]);
  });

  it('is what README lists, with the same exit codes', () => {
    const rows = readmeRows();
    const documented = Object.fromEntries(rows);
    const registered = Object.fromEntries(
      Object.entries(ERROR_CODES).map(([code, info]) => [code, exitText(info.exit)]),
    );
    expect(documented).toEqual(registered);
  });

  it('gives every error the exit code its code has in the registry, whatever its class', () => {
    const made = (code: 'ARCHIVE_NOT_FOUND' | 'SMTP_UNREACHABLE') =>
      new MailbridgeError({ code, message: 'm', remedy: 'r' });
    expect(made('ARCHIVE_NOT_FOUND').exitCode).toBe(2);
    expect(made('SMTP_UNREACHABLE').exitCode).toBe(4);
    expect(made('SMTP_UNREACHABLE').toJSON()).toMatchObject({ exitCode: 4 });
  });

  it('leaves the exit code to the class where the registry lists several', () => {
    const options = { code: 'TOKEN_REQUEST_FAILED', message: 'm', remedy: 'r' } as const;
    expect(new MailbridgeError(options).exitCode).toBe(1);
    expect(new ConfigurationError(options).exitCode).toBe(2);
    expect(new AuthenticationError(options).exitCode).toBe(3);
    expect(new NetworkError(options).exitCode).toBe(4);
  });
});
