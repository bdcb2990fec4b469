import { dirname, resolve } from 'node:path';
import { ExitCode, MailbridgeError } from '../../errors.js';
import { parseProxySettings } from '../../jobs/proxy/config.js';
import { startProxy } from '../../jobs/proxy/proxy.js';
import { createJsonLogger } from '../../log/json-logger.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { catchSignals, relayHashPasswordCommand, runHashPassword } from './relay.js';

const PROXY_DETAILS = [
  'Lets programs that can only log in with a user name and a password (fetchmail, ERP systems',
  'polling POP3, scanners) read Exchange Online mailboxes. They log in to the proxy with a local',
  "password (proxy.users, scrypt hashes); the proxy logs in to Exchange with the app's token (IMAP",
  'AUTHENTICATE XOAUTH2, POP3 AUTH XOAUTH2) and then relays the session unchanged. The login name',
  "selects the mailbox: `name` the user's first, `name#shared@contoso.com` another of its list.",
  'The config file needs the usual app settings and a proxy: section: imap {listen}, pop3 {listen},',
  'tls {cert, key, minVersion}, users [{name, passwordHash, mailboxes}], allowNetworks,',
  'maxConnections, maxConnectionsPerAddress, maxConnectionsPerUser, idleTimeout, loginTimeout,',
  'shutdownTimeout, authPenalty {initial, max}, http. POP3 goes to pop.host:pop.port',
  '(MAILBRIDGE_POP_HOST/PORT).',
  '',
  'Logs one JSON line per login on stdout (user, mailbox, client, outcome; never a password or',
  'token). A listener beyond loopback without TLS or without allowNetworks is refused at start-up',
  '(exit 2). SIGTERM or SIGINT: stop listening, BYE to clients not logged in, end each session',
  'between two replies (a FETCH under way finishes first) or at proxy.shutdownTimeout, exit 0.',
].join('\n');

export const proxyCommand: Command = {
  name: 'proxy',
  summary:
    'let password-only IMAP/POP3 clients read Exchange Online mailboxes, the proxy logging in with the app',
  usage: 'proxy --config FILE',
  usesSettings: true,
  flags: [],
  details: PROXY_DETAILS,
  async run({ args, io, loadConfig }) {
    const configFile = typeof args.values.config === 'string' ? args.values.config : undefined;
    if (!configFile) {
      // Users and their mailboxes exist only in a file.
      throw usageError(
        '--config FILE is required',
        'Give the config file whose proxy: section holds the listeners and users (see examples/proxy).',
      );
    }
    const config = await loadConfig();
    const settings = parseProxySettings(config.sections.proxy, {
      baseDir: dirname(resolve(configFile)),
    });
    const logger = createJsonLogger(io.stdout, {
      level: args.values.debug === true ? 'debug' : 'info',
    });
    const signals = catchSignals(['SIGTERM', 'SIGINT']);
    let proxy: Awaited<ReturnType<typeof startProxy>>;
    try {
      proxy = await startProxy(config, { settings, logger });
    } catch (error) {
      signals.release();
      logger.log('error', 'proxy not started', {
        event: 'start-failed',
        code: error instanceof MailbridgeError ? error.code : 'UNEXPECTED',
      });
      throw error;
    }
    const signal = await signals.first;
    logger.log('info', 'signal received', { event: 'signal', signal });
    await proxy.close();
    return ExitCode.ok;
  },
};

/** The relay's command, for proxy.users: the same PHC scrypt format. */
export const proxyHashPasswordCommand: Command = {
  ...relayHashPasswordCommand,
  name: 'proxy hash-password',
  summary: 'read a password on stdin and print its scrypt hash (PHC format) for proxy.users',
  usage: 'proxy hash-password',
  flags: [],
  details: [
    'At a terminal it asks twice without echo; otherwise it reads the first line of stdin.',
    'The password is never accepted as an argument (argv is visible to other users).',
    'Put the hash in proxy.users[].passwordHash. Example: printf %s "$PW" | mailbridge proxy hash-password',
  ].join('\n'),
  run: (context) => runHashPassword(context, 'proxy hash-password'),
};
