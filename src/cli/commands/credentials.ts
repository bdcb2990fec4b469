import { credentialExpiresOn, daysUntil } from '../../auth/credential-expiry.js';
import { type AppCredential, readAppCredentials } from '../../clients/app-credentials.js';
import { CERTIFICATE_EXPIRY_WARNING_DAYS } from '../../config/certificate.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ExitCode } from '../../errors.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';

interface Row {
  /** `local`: the credential this configuration uses; `graph`: listed by Microsoft Graph. */
  source: 'local' | 'graph';
  kind: MailbridgeConfig['credential']['kind'];
  name: string;
  keyId?: string;
  hint?: string;
  thumbprint?: string;
  startsOn?: string;
  /** Absent where the end is not known here (a secret without --graph). */
  endsOn?: string;
  daysLeft?: number;
  /** Ends within --within days (or has ended). */
  expiring: boolean;
  /** The credential this configuration signs in with. */
  inUse: boolean;
}

export const credentialsCheckCommand: Command = {
  name: 'credentials check',
  summary: "list the app's secrets and certificates with their end dates; exit 1 if one ends soon",
  usage: 'credentials check [--graph [--graph-url URL]] [--within DAYS] [--json]',
  usesSettings: true,
  flags: [
    {
      name: 'graph',
      type: 'boolean',
      help: 'also list every secret and certificate of the app registration through Microsoft Graph (needs Application.Read.All)',
    },
    {
      name: 'graph-url',
      type: 'string',
      value: 'URL',
      help: "Microsoft Graph's base URL (default: the cloud's, e.g. https://graph.microsoft.com)",
    },
    {
      name: 'within',
      type: 'string',
      value: 'DAYS',
      help: `exit 1 when a credential ends within this many days (default ${CERTIFICATE_EXPIRY_WARNING_DAYS})`,
    },
    {
      name: 'json',
      type: 'boolean',
      help: 'print { appId, within, expiring, credentials: [{ source, kind, name, endsOn?, daysLeft?, expiring, inUse, ... }] }',
    },
  ],
  details: [
    'Without --graph, only the credential this configuration uses is checked: a certificate',
    "carries its end date; a client secret's end date is known to Entra ID only.",
    '',
    "--graph reads the app registration's secrets and certificates from Microsoft Graph",
    "(GET /v1.0/applications(appId='...')) with an app-only Graph token for the same app. That",
    'needs the Microsoft Graph application permission Application.Read.All (admin consent), or',
    'ownership of the app registration with Application.ReadWrite.OwnedBy; without it the command',
    'says so and exits 3.',
    '',
    'Exit 0 when nothing ends within --within days, 1 when something does (or has ended).',
    'Run it from cron or a monitoring system well before the earliest end date.',
  ].join('\n'),
  async run({ args, io, logger, loadConfig }) {
    const within = parseWithin(args.values.within);
    const graphUrl = parseGraphUrl(args.values['graph-url']);
    if (graphUrl && args.values.graph !== true) {
      throw usageError('--graph-url needs --graph', 'Add --graph, or leave --graph-url out.');
    }
    const config = await loadConfig();
    if (args.values.graph === true && config.credential.kind === 'managed-identity') {
      throw usageError(
        '--graph lists the secrets and certificates of an app registration, and a managed identity has none',
        'Leave --graph out: Azure renews the credential of a managed identity by itself.',
      );
    }
    const now = new Date();
    const rows: Row[] = [localRow(config, within, now)];
    if (args.values.graph === true) {
      const listed = await readAppCredentials(config, {
        logger,
        ...(graphUrl ? { graphUrl } : {}),
      });
      rows.push(...listed.map((credential) => graphRow(credential, config, within, now)));
    }
    const expiring = rows.filter((row) => row.expiring).length;
    if (args.values.json === true) {
      writeJson(io.stdout, { appId: config.clientId, within, expiring, credentials: rows });
    } else {
      writeLine(io.stdout, `Credentials of app ${config.clientId}:`);
      for (const row of rows) writeLine(io.stdout, `  ${describe(row)}`);
      const kind = config.credential.kind;
      if (args.values.graph !== true && (kind === 'secret' || kind === 'federated')) {
        writeLine(
          io.stdout,
          '  (the end dates of secrets are known to Entra ID only: add --graph to read them)',
        );
      }
      writeLine(
        io.stdout,
        expiring > 0
          ? `Result: ${expiring} credential${expiring === 1 ? '' : 's'} end${expiring === 1 ? 's' : ''} within ${within} days`
          : `Result: nothing ends within ${within} days`,
      );
    }
    return expiring > 0 ? ExitCode.failure : ExitCode.ok;
  },
};

function localRow(config: MailbridgeConfig, within: number, now: Date): Row {
  const credential = config.credential;
  const endsOn = credentialExpiresOn(credential);
  const daysLeft = endsOn ? daysUntil(endsOn, now) : undefined;
  return {
    source: 'local',
    kind: credential.kind,
    name:
      credential.kind === 'certificate'
        ? credential.subject
        : credential.kind === 'secret'
          ? 'client secret'
          : credential.kind === 'managed-identity'
            ? 'managed identity (renewed by Azure)'
            : 'federated credential',
    ...(credential.kind === 'certificate' ? { thumbprint: credential.thumbprintSha1 } : {}),
    ...(credential.kind === 'certificate' ? { startsOn: credential.notBefore.toISOString() } : {}),
    ...(endsOn ? { endsOn: endsOn.toISOString() } : {}),
    ...(daysLeft !== undefined ? { daysLeft } : {}),
    expiring: daysLeft !== undefined && daysLeft <= within,
    inUse: true,
  };
}

function graphRow(
  credential: AppCredential,
  config: MailbridgeConfig,
  within: number,
  now: Date,
): Row {
  const daysLeft = daysUntil(credential.endsOn, now);
  const local = config.credential;
  return {
    source: 'graph',
    kind: credential.kind,
    name: credential.name,
    ...(credential.keyId ? { keyId: credential.keyId } : {}),
    ...(credential.hint ? { hint: credential.hint } : {}),
    ...(credential.thumbprint ? { thumbprint: credential.thumbprint } : {}),
    ...(credential.startsOn ? { startsOn: credential.startsOn.toISOString() } : {}),
    endsOn: credential.endsOn.toISOString(),
    daysLeft,
    expiring: daysLeft <= within,
    inUse: local.kind === 'certificate' && credential.thumbprint === local.thumbprintSha1,
  };
}

function describe(row: Row): string {
  const what = [
    row.source === 'local' ? 'configured' : 'in Entra ID',
    row.kind,
    `"${row.name}"`,
    ...(row.thumbprint ? [`thumbprint ${row.thumbprint}`] : []),
    ...(row.hint ? [`hint ${row.hint}...`] : []),
  ].join(' ');
  const when =
    row.endsOn === undefined || row.daysLeft === undefined
      ? 'end date not known here'
      : row.daysLeft <= 0
        ? `ENDED ${row.endsOn}`
        : `ends ${row.endsOn} (in ${row.daysLeft} day${row.daysLeft === 1 ? '' : 's'})`;
  return `${row.expiring ? '[SOON]' : '[ok]  '} ${what}: ${when}${row.inUse && row.source === 'graph' ? ' [in use]' : ''}`;
}

function parseWithin(value: unknown): number {
  if (value === undefined) return CERTIFICATE_EXPIRY_WARNING_DAYS;
  if (typeof value !== 'string' || !/^\d{1,5}$/.test(value)) {
    throw usageError(
      '--within must be a whole number of days',
      `Use for example --within ${CERTIFICATE_EXPIRY_WARNING_DAYS}.`,
    );
  }
  return Number(value);
}

function parseGraphUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const plain = url?.protocol === 'https:' && !url.username && !url.password;
  if (!url || !plain || url.search || url.hash) {
    throw usageError(
      '--graph-url must be an https URL without credentials, query or fragment',
      "Use for example --graph-url https://graph.microsoft.us (the default is the cloud's Graph endpoint).",
    );
  }
  return url.toString().replace(/\/+$/, '');
}
