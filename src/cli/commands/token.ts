import { decodeAccessTokenClaims } from '../../auth/claims.js';
import { credentialExpiresOn } from '../../auth/credential-expiry.js';
import { createTokenProvider } from '../../auth/token-provider.js';
import { ExitCode } from '../../errors.js';
import { formatDuration } from '../../util/format.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';

export const tokenCommand: Command = {
  name: 'token',
  summary: 'acquire an app-only access token and show what it grants',
  usage: 'token [--json] [--show-token]',
  usesSettings: true,
  flags: [
    {
      name: 'json',
      type: 'boolean',
      help: 'print {expiresOn, tenantId, appId, roles, scope, credentialExpiresOn?} as JSON',
    },
    {
      name: 'show-token',
      type: 'boolean',
      help: 'print the access token alone on stdout, for piping (it is a secret: keep it out of logs)',
    },
  ],
  details: [
    'The claims are decoded for diagnosis only: the token is for Exchange Online, which validates it.',
    'An empty roles list means the app has no application permissions on Exchange Online',
    '(delegated permissions, or admin consent missing).',
  ].join('\n'),
  async run({ args, io, logger, loadConfig }) {
    const config = await loadConfig();
    const provider = createTokenProvider(config, { logger });
    const token = await provider.getToken();
    if (args.values['show-token'] === true) {
      writeLine(io.stdout, token.accessToken);
      return ExitCode.ok;
    }
    const claims = decodeAccessTokenClaims(token.accessToken) ?? {};
    const credentialEnd = credentialExpiresOn(config.credential);
    const summary = {
      expiresOn: token.expiresOn.toISOString(),
      tenantId: typeof claims.tid === 'string' ? claims.tid : config.tenantId,
      appId: claims.appid ?? claims.azp ?? config.clientId,
      roles: Array.isArray(claims.roles) ? claims.roles : [],
      scope: config.scope,
      // Known locally for a certificate only; `credentials check` reads secrets' end dates.
      ...(credentialEnd ? { credentialExpiresOn: credentialEnd.toISOString() } : {}),
    };
    if (args.values.json === true) {
      writeJson(io.stdout, summary);
      return ExitCode.ok;
    }
    writeLine(io.stdout, `Token acquired for ${summary.scope}`);
    writeLine(io.stdout, `  tenant:   ${summary.tenantId}`);
    writeLine(io.stdout, `  app id:   ${summary.appId}`);
    writeLine(
      io.stdout,
      `  roles:    ${summary.roles.length > 0 ? summary.roles.join(', ') : '(none: no application permissions granted)'}`,
    );
    writeLine(
      io.stdout,
      `  expires:  ${summary.expiresOn} (in ${formatDuration(token.expiresOn.getTime() - Date.now())})`,
    );
    return ExitCode.ok;
  },
};
