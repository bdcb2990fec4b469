import { buildXOAuth2, checkSaslUser } from '../../auth/sasl.js';
import { createTokenProvider } from '../../auth/token-provider.js';
import { ExitCode } from '../../errors.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeLine } from '../output.js';

export const xoauth2Command: Command = {
  name: 'xoauth2',
  summary: 'print the base64 SASL XOAUTH2 string for a mailbox, for other tools',
  usage: 'xoauth2 --user ADDRESS',
  usesSettings: true,
  flags: [
    {
      name: 'user',
      type: 'string',
      value: 'ADDRESS',
      address: true,
      required: true,
      help: 'mailbox to log in as',
    },
  ],
  details:
    'The string carries a live access token: treat it as a secret. Use it as the argument of\n`AUTHENTICATE XOAUTH2` (IMAP) or `AUTH XOAUTH2` (SMTP).',
  async run({ args, io, logger, loadConfig }) {
    const user = args.values.user;
    if (typeof user !== 'string' || user === '') {
      throw usageError(
        '--user ADDRESS is required',
        'Name the mailbox to log in as, e.g. --user archive@contoso.com.',
      );
    }
    checkSaslUser(user);
    const config = await loadConfig();
    const token = await createTokenProvider(config, { logger }).getToken();
    writeLine(io.stdout, buildXOAuth2(user, token.accessToken));
    return ExitCode.ok;
  },
};
