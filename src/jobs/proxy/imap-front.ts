/**
 * The IMAP dialogue until login, spoken by the proxy itself (RFC 9051 /
 * 3501 subset): CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN and
 * AUTHENTICATE PLAIN (with SASL-IR). On a login that Exchange accepts, the
 * client's tag gets `OK [CAPABILITY <Exchange's>]` and the bytes are spliced.
 */
import type { ClientConnection } from './connection.js';
import { LineTooLongError } from './line-reader.js';
import type { LoginResult } from './login.js';

/** Literals before login carry a user name or a password: a few KB at most. */
const MAX_LITERAL = 4096;
/** After this many refused logins in one session the connection is closed. */
const MAX_FAILURES = 3;

export interface FrontHooks {
  login(loginName: string, password: string): Promise<LoginResult>;
  /** Login done: splice, with what the client sent past its command. */
  spliced(result: Extract<LoginResult, { ok: true }>, fromClient: Buffer): void;
}

export async function serveImap(connection: ClientConnection, hooks: FrontHooks): Promise<void> {
  connection.write(`* OK [CAPABILITY ${capabilities(connection)}] mailbridge proxy ready\r\n`);
  let failures = 0;
  for (;;) {
    let line: string | undefined;
    try {
      line = await connection.reader.line();
    } catch (error) {
      if (error instanceof LineTooLongError) connection.close('* BYE Line too long\r\n');
      return;
    }
    if (line === undefined) return;
    const m = /^([\x21-\x7e]+) ([A-Za-z]+)(?: (.*))?$/.exec(line);
    if (!m) {
      connection.write('* BAD Invalid command\r\n');
      continue;
    }
    const tag = m[1] as string;
    const command = (m[2] as string).toUpperCase();
    const rest = m[3] ?? '';
    switch (command) {
      case 'CAPABILITY':
        connection.write(
          `* CAPABILITY ${capabilities(connection)}\r\n${tag} OK CAPABILITY completed\r\n`,
        );
        break;
      case 'NOOP':
        connection.write(`${tag} OK NOOP completed\r\n`);
        break;
      case 'ID':
        connection.write(`* ID ("name" "mailbridge proxy")\r\n${tag} OK ID completed\r\n`);
        break;
      case 'LOGOUT':
        connection.close(`* BYE Logging out\r\n${tag} OK LOGOUT completed\r\n`);
        return;
      case 'STARTTLS':
        if (!connection.canStartTls) {
          connection.write(`${tag} BAD STARTTLS not available\r\n`);
          break;
        }
        connection.write(`${tag} OK Begin TLS negotiation now\r\n`);
        if (!(await connection.startTls())) return;
        break;
      case 'LOGIN':
      case 'AUTHENTICATE': {
        if (!connection.passwordsAllowed) {
          connection.write(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n`);
          break;
        }
        const credentials =
          command === 'LOGIN'
            ? await loginArguments(connection, rest)
            : await authenticatePlain(connection, tag, rest);
        if (credentials === 'gone') return;
        if (typeof credentials === 'string') {
          connection.write(`${tag} ${credentials}\r\n`);
          break;
        }
        const result = await hooks.login(credentials.name, credentials.password);
        if (result.ok) {
          const caps = result.session.capabilities ?? 'IMAP4rev1';
          connection.write(`${tag} OK [CAPABILITY ${caps}] Logged in\r\n`);
          hooks.spliced(result, connection.reader.detach());
          return;
        }
        failures++;
        const code =
          result.outcome === 'too_many' || result.outcome === 'token_failed'
            ? 'UNAVAILABLE'
            : 'AUTHENTICATIONFAILED';
        connection.write(`${tag} NO [${code}] ${result.reason}\r\n`);
        if (failures >= MAX_FAILURES || result.outcome === 'throttled') {
          connection.close('* BYE Too many failed logins\r\n');
          return;
        }
        break;
      }
      default:
        // COMPRESS, ENABLE, SELECT…: nothing before login; after it, Exchange answers them.
        connection.write(`${tag} BAD Command not valid before login\r\n`);
    }
  }
}

function capabilities(connection: ClientConnection): string {
  const caps = ['IMAP4rev1', 'SASL-IR', 'ID', 'LITERAL+'];
  if (connection.canStartTls) caps.push('STARTTLS');
  caps.push(connection.passwordsAllowed ? 'AUTH=PLAIN' : 'LOGINDISABLED');
  return caps.join(' ');
}

type Credentials = { name: string; password: string };

/** `LOGIN user pass`, each an atom, a quoted string or a literal. */
async function loginArguments(
  connection: ClientConnection,
  first: string,
): Promise<Credentials | string | 'gone'> {
  const args: string[] = [];
  let rest = first;
  while (args.length < 3) {
    rest = rest.replace(/^ +/, '');
    if (rest === '') break;
    if (rest.startsWith('"')) {
      const quoted = /^"((?:[^"\\]|\\["\\])*)"/.exec(rest);
      if (!quoted) return 'BAD Invalid quoted string';
      args.push((quoted[1] as string).replace(/\\(["\\])/g, '$1'));
      rest = rest.slice(quoted[0].length);
      continue;
    }
    const literal = /^\{(\d{1,6})(\+?)\}$/.exec(rest);
    if (literal) {
      const size = Number(literal[1]);
      if (size > MAX_LITERAL) return 'BAD Literal too long';
      if (literal[2] !== '+') connection.write('+ Ready\r\n');
      const bytes = await connection.reader.bytes(size);
      const next =
        bytes === undefined ? undefined : await connection.reader.line().catch(() => undefined);
      if (bytes === undefined || next === undefined) return 'gone';
      args.push(bytes.toString('utf8'));
      rest = next;
      continue;
    }
    const atom = /^[^\s(){"\\]+/.exec(rest);
    if (!atom) return 'BAD Invalid arguments';
    args.push(atom[0]);
    rest = rest.slice(atom[0].length);
  }
  if (args.length !== 2 || rest.trim() !== '') return 'BAD LOGIN takes a user name and a password';
  return { name: args[0] as string, password: args[1] as string };
}

/** `AUTHENTICATE PLAIN [initial-response]`; other mechanisms are refused. */
async function authenticatePlain(
  connection: ClientConnection,
  tag: string,
  rest: string,
): Promise<Credentials | string | 'gone'> {
  const [mechanism, initial] = rest.split(' ');
  if (mechanism?.toUpperCase() !== 'PLAIN') return 'NO Unsupported authentication mechanism';
  let response = initial;
  if (response === undefined) {
    connection.write('+ \r\n');
    response = await connection.reader.line().catch(() => undefined);
    if (response === undefined) return 'gone';
  }
  if (response === '*') return 'BAD Authentication cancelled';
  const credentials = decodePlain(response === '=' ? '' : response);
  void tag;
  return credentials ?? 'BAD Invalid SASL PLAIN response';
}

/** RFC 4616: `authzid NUL authcid NUL passwd`, base64; an authzid other than the user is refused. */
export function decodePlain(base64: string): Credentials | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) return undefined;
  const parts = Buffer.from(base64, 'base64').toString('utf8').split('\0');
  if (parts.length !== 3) return undefined;
  const [authzid, name, password] = parts as [string, string, string];
  if (name === '' || (authzid !== '' && authzid !== name)) return undefined;
  return { name, password };
}
