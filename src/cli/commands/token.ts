import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeAccessTokenClaims } from '../../auth/claims.js';
import { credentialExpiresOn } from '../../auth/credential-expiry.js';
import { tokenThroughCacheFile } from '../../auth/token-cache-file.js';
import { createTokenProvider } from '../../auth/token-provider.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ExitCode } from '../../errors.js';
import { TOOLS, type Tool, toolConfig } from '../../setup/tool-config.js';
import { formatDuration } from '../../util/format.js';
import { type ParsedArgs, SETTING_FLAGS, usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';

/** Setting flags whose value is a file: written absolute into a tool's configuration. */
const FILE_FLAGS = new Set(['config', 'certificate-path', 'federated-token-file', 'ca-file']);

/**
 * Entra's tokens live 60 to 90 minutes: asking for more than an hour left
 * would make every run a token request.
 */
const MAX_MIN_VALIDITY_MINUTES = 59;

export const tokenCommand: Command = {
  name: 'token',
  summary: 'acquire an app-only access token and show what it grants',
  usage:
    'token [--json] [--show-token] [--cache FILE [--min-validity MINUTES]] | token --for mbsync|msmtp|getmail|offlineimap --mailbox ADDRESS [--cache FILE] [--min-validity MINUTES]',
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
    {
      name: 'cache',
      type: 'string',
      value: 'FILE',
      help: 'keep the token in FILE (created 0600) and serve it from there while it has more than 5 minutes left; concurrent runs make one request (env MAILBRIDGE_TOKEN_CACHE)',
    },
    {
      name: 'min-validity',
      type: 'string',
      value: 'MINUTES',
      help: `with --cache: serve a cached token only while it has more than MINUTES left, else get a new one (1 to ${MAX_MIN_VALIDITY_MINUTES}, default 5; HVE wants 10 to 20)`,
    },
    {
      name: 'for',
      type: 'string',
      value: 'TOOL',
      help: `print a configuration snippet for ${TOOLS.join(', ')} that gets its token from this command`,
    },
    {
      name: 'mailbox',
      type: 'string',
      value: 'ADDRESS',
      address: true,
      help: 'the mailbox the --for snippet logs in to',
    },
  ],
  details: [
    'The claims are decoded for diagnosis only: the token is for Exchange Online, which validates it.',
    'An empty roles list means the app has no application permissions on Exchange Online',
    '(delegated permissions, or admin consent missing).',
    '--for prints a snippet whose password command is `mailbridge token --show-token --cache FILE`',
    '(FILE defaults to ~/.cache/mailbridge/token-<client id>.json), with the setting flags given here.',
  ].join('\n'),
  async run({ args, io, logger, loadConfig }) {
    const tool = toolOf(args);
    const mailbox = typeof args.values.mailbox === 'string' ? args.values.mailbox : undefined;
    if (mailbox && !tool) {
      throw usageError('--mailbox goes with --for TOOL', `Add --for ${TOOLS.join(', ')}.`);
    }
    const config = await loadConfig();
    const given = cachePath(args, io.env);
    const minValidity = minValidityOf(args, given !== undefined || tool !== undefined);
    if (tool) {
      if (!mailbox) {
        throw usageError(
          `--for ${tool} needs --mailbox ADDRESS`,
          'Name the mailbox the tool logs in to, e.g. --mailbox archive@contoso.com.',
        );
      }
      const cache = given ?? defaultCachePath(config, io.env);
      io.stdout.write(
        toolConfig(tool, {
          mailbox,
          imap: config.imap,
          smtp: config.smtp,
          ...(config.caFile ? { caFile: resolve(config.caFile) } : {}),
          tokenCommand: tokenCommandFor(args, cache, minValidity),
        }),
      );
      return ExitCode.ok;
    }
    const provider = createTokenProvider(config, { logger });
    const token = given
      ? await tokenThroughCacheFile(provider, config, {
          path: given,
          logger,
          ...(minValidity === undefined ? {} : { minValidityMs: minValidity * 60_000 }),
        })
      : await provider.getToken();
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

function toolOf(args: ParsedArgs): Tool | undefined {
  const value = args.values.for;
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (TOOLS as readonly string[]).includes(value)) {
    return value as Tool;
  }
  throw usageError(
    `--for takes one of ${TOOLS.join(', ')}`,
    'fetchmail is not supported yet (Debian 12\'s fetchmail 6.4 has no XOAUTH2 or OAUTHBEARER); see README "Using other mail tools".',
  );
}

/** --min-validity in minutes; only with a cache, where a token can be old. */
function minValidityOf(args: ParsedArgs, cached: boolean): number | undefined {
  const value = args.values['min-validity'];
  if (value === undefined) return undefined;
  const minutes = typeof value === 'string' && /^\d{1,2}$/.test(value) ? Number(value) : Number.NaN;
  if (!(minutes >= 1 && minutes <= MAX_MIN_VALIDITY_MINUTES)) {
    throw usageError(
      `--min-validity takes a whole number of minutes from 1 to ${MAX_MIN_VALIDITY_MINUTES}`,
      'Access tokens live 60 to 90 minutes; HVE asks for 10 to 20 minutes of life, e.g. --min-validity 20.',
    );
  }
  if (!cached) {
    throw usageError(
      '--min-validity goes with --cache FILE (or MAILBRIDGE_TOKEN_CACHE)',
      'Without a cache every run gets a new token, which has its whole life ahead of it.',
    );
  }
  return minutes;
}

/** --cache, else MAILBRIDGE_TOKEN_CACHE, as an absolute path; undefined when neither is set. */
function cachePath(args: ParsedArgs, env: NodeJS.ProcessEnv): string | undefined {
  const value =
    typeof args.values.cache === 'string' ? args.values.cache : env.MAILBRIDGE_TOKEN_CACHE;
  return value ? resolve(value) : undefined;
}

function defaultCachePath(config: MailbridgeConfig, env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'mailbridge', `token-${config.clientId}.json`);
}

/**
 * This program as the tool will run it: the same Node and script, absolute
 * (a tool's PATH may differ), then the setting flags given here, so the tool
 * gets a token for the same app.
 */
function tokenCommandFor(
  args: ParsedArgs,
  cache: string,
  minValidity: number | undefined,
): string[] {
  const command = [process.execPath, resolve(process.argv[1] ?? ''), 'token', '--show-token'];
  command.push('--cache', cache);
  if (minValidity !== undefined) command.push('--min-validity', String(minValidity));
  for (const name of ['config', ...SETTING_FLAGS.map((flag) => flag.name)]) {
    const value = args.values[name];
    if (value === true) command.push(`--${name}`);
    else if (typeof value === 'string') {
      command.push(`--${name}`, FILE_FLAGS.has(name) ? resolve(value) : value);
    }
  }
  return command;
}
