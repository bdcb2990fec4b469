/**
 * The POP3 dialogue until login (RFC 1939, 2449, 2595, 5034 subset): CAPA,
 * STLS, USER/PASS, AUTH PLAIN, QUIT. On a login Exchange accepts, the client
 * hears `+OK` and the bytes are spliced.
 */
import type { ClientConnection } from './connection.js';
import { decodePlain, type FrontHooks } from './imap-front.js';
import { LineTooLongError } from './line-reader.js';

const MAX_FAILURES = 3;

export async function servePop3(connection: ClientConnection, hooks: FrontHooks): Promise<void> {
  connection.write('+OK mailbridge proxy ready\r\n');
  let failures = 0;
  let user: string | undefined;
  for (;;) {
    let line: string | undefined;
    try {
      line = await connection.reader.line();
    } catch (error) {
      if (error instanceof LineTooLongError) connection.close('-ERR Line too long\r\n');
      return;
    }
    if (line === undefined) return;
    const space = line.indexOf(' ');
    const command = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const argument = space === -1 ? '' : line.slice(space + 1);
    let credentials: { name: string; password: string } | undefined;
    switch (command) {
      case 'CAPA':
        connection.write(
          `+OK Capability list follows\r\n${[
            ...(connection.canStartTls ? ['STLS'] : []),
            ...(connection.passwordsAllowed ? ['USER', 'SASL PLAIN'] : []),
            'TOP',
            'UIDL',
            'RESP-CODES',
            'AUTH-RESP-CODE',
            '.',
          ].join('\r\n')}\r\n`,
        );
        continue;
      case 'QUIT':
        connection.close('+OK Bye\r\n');
        return;
      case 'STLS':
        if (!connection.canStartTls) {
          connection.write('-ERR STLS not available\r\n');
          continue;
        }
        connection.write('+OK Begin TLS negotiation\r\n');
        if (!(await connection.startTls())) return;
        user = undefined;
        continue;
      case 'USER':
        if (!connection.passwordsAllowed) {
          connection.write('-ERR [AUTH] Use STLS before logging in\r\n');
          continue;
        }
        user = argument;
        connection.write('+OK\r\n');
        continue;
      case 'PASS':
        if (user === undefined || !connection.passwordsAllowed) {
          connection.write('-ERR USER first\r\n');
          continue;
        }
        credentials = { name: user, password: argument };
        break;
      case 'AUTH': {
        if (argument === '') {
          connection.write('+OK\r\nPLAIN\r\n.\r\n');
          continue;
        }
        if (!connection.passwordsAllowed) {
          connection.write('-ERR [AUTH] Use STLS before logging in\r\n');
          continue;
        }
        const [mechanism, initial] = argument.split(' ');
        if (mechanism?.toUpperCase() !== 'PLAIN') {
          connection.write('-ERR Unsupported authentication mechanism\r\n');
          continue;
        }
        let response = initial;
        if (response === undefined) {
          connection.write('+ \r\n');
          response = await connection.reader.line().catch(() => undefined);
          if (response === undefined) return;
        }
        credentials = response === '*' ? undefined : decodePlain(response === '=' ? '' : response);
        if (!credentials) {
          connection.write('-ERR Invalid SASL PLAIN response\r\n');
          continue;
        }
        break;
      }
      default:
        connection.write('-ERR Command not valid before login\r\n');
        continue;
    }
    user = undefined;
    const result = await hooks.login(credentials.name, credentials.password);
    if (result.ok) {
      connection.write('+OK Logged in\r\n');
      hooks.spliced(result, connection.reader.detach());
      return;
    }
    failures++;
    const code =
      result.outcome === 'too_many' || result.outcome === 'token_failed' ? 'SYS/TEMP' : 'AUTH';
    connection.write(`-ERR [${code}] ${result.reason}\r\n`);
    if (failures >= MAX_FAILURES || result.outcome === 'throttled') {
      connection.close();
      return;
    }
  }
}
