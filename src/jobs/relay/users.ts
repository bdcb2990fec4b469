/**
 * The relay's local accounts: a file of `name:hash` lines (`#` comments and
 * blank lines allowed), hashes in PHC scrypt form. The file is read at start
 * and again whenever its modification time or size changes, so accounts can
 * be added without a restart.
 */
import { readFile, stat } from 'node:fs/promises';
import { type ConfigProblem, ConfigurationError } from '../../errors.js';
import { type ParsedScryptHash, parsePasswordHash, verifyPassword } from '../listener/password.js';

export interface UsersFileParse {
  users: Map<string, ParsedScryptHash>;
  problems: ConfigProblem[];
}

/** A user name: no colon, no whitespace, printable ASCII, at most 128 characters. */
const USER_NAME = /^[\x21-\x39\x3b-\x7e]{1,128}$/;

/** Parses the text of a users file; every bad line is a problem, quoting no hash. */
export function parseUsersFile(text: string, path: string): UsersFileParse {
  const users = new Map<string, ParsedScryptHash>();
  const problems: ConfigProblem[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const field = `${path}:${index + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      problems.push({ field, message: 'expected a line of the form name:$scrypt$…' });
      return;
    }
    const name = line.slice(0, colon);
    if (!USER_NAME.test(name)) {
      problems.push({
        field,
        message: 'the user name must be printable ASCII without spaces or colons',
      });
      return;
    }
    const parsed = parsePasswordHash(line.slice(colon + 1));
    if (!parsed.ok) {
      problems.push({ field, message: `the hash of user '${name}': ${parsed.reason}` });
      return;
    }
    if (users.has(name)) {
      problems.push({ field, message: `user '${name}' appears twice` });
      return;
    }
    users.set(name, parsed.value);
  });
  return { users, problems };
}

export interface UserStore {
  /** Names known now. */
  names(): Promise<string[]>;
  /** Whether `name` is an account, as of the last read of the file (for logs: a known name is no secret). */
  knows(name: string): boolean;
  /** The user's name when the password matches, else `undefined`. Takes as long either way. */
  verify(name: string, password: string): Promise<string | undefined>;
}

/**
 * Reads and watches the users file. A file that becomes unreadable or invalid
 * after start keeps the last good accounts (and `onProblem` is told), so a
 * half-saved edit does not lock every device out.
 */
export async function openUserStore(
  path: string,
  onProblem: (message: string) => void = () => {},
): Promise<UserStore> {
  let current = await load(path);
  let stamp = await stampOf(path);
  // Verified against when the name is unknown, so that a wrong name costs as much as a wrong password.
  const decoy = parsePasswordHash(
    '$scrypt$ln=15,r=8,p=1$bWFpbGJyaWRnZS1kZWNveQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  );
  const refresh = async (): Promise<void> => {
    const now = await stampOf(path).catch(() => undefined);
    if (now === undefined || now === stamp) return;
    try {
      current = await load(path);
      stamp = now;
    } catch (error) {
      stamp = now;
      onProblem((error as Error).message);
    }
  };
  return {
    async names() {
      await refresh();
      return [...current.keys()];
    },
    knows(name) {
      return current.has(name);
    },
    async verify(name, password) {
      await refresh();
      const user = current.get(name);
      const hash = user ?? (decoy.ok ? decoy.value : undefined);
      if (!hash) return undefined;
      const ok = await verifyPassword(password, hash);
      return ok && user ? name : undefined;
    },
  };
}

async function stampOf(path: string): Promise<string> {
  const info = await stat(path);
  return `${info.mtimeMs}:${info.size}:${info.ino}`;
}

async function load(path: string): Promise<Map<string, ParsedScryptHash>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ConfigurationError({
      code: 'RELAY_USERS_UNREADABLE',
      message: `The relay users file ${path} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
      remedy: 'Check relay.users and that the relay user may read the file.',
      cause,
    });
  }
  const parsed = parseUsersFile(text, path);
  if (parsed.problems.length > 0) {
    throw new ConfigurationError({
      code: 'RELAY_USERS_INVALID',
      message: `The relay users file ${path} has ${parsed.problems.length} problem(s)`,
      remedy: 'Each line is name:hash, the hash printed by `mailbridge relay hash-password`.',
      problems: parsed.problems,
    });
  }
  return parsed.users;
}
