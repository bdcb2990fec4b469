/**
 * Validates merged settings once, collecting every problem, and builds the
 * `MailbridgeConfig` the rest of the library uses. A user fixing a config
 * should see all that is wrong in one run, not one problem per run. Each
 * setting's shape and value is `settingsSchema`; the rules between settings
 * and the files (certificate, token file, CA file) are checked after it.
 *
 * No message here quotes a secret, a password, or a free-form value that may
 * be a misplaced secret (a client secret pasted into `clientId` is common):
 * values are quoted only where their shape was checked first.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as v from 'valibot';
import { type ConfigProblem, ConfigurationError } from '../errors.js';
import { closestName } from '../util/did-you-mean.js';
import { readCaFile, readNodeExtraCaCerts } from './ca-file.js';
import { loadCertificate } from './certificate.js';
import {
  BUILT_IN_AUTHORITY_HOSTS,
  CLOUD_NAMES,
  CLOUDS,
  type CloudName,
  DEFAULT_IMAP_PORT,
  DEFAULT_POP_PORT,
  DEFAULT_SMTP_PORT,
  GRAPH_RESOURCES,
} from './clouds.js';
import { ENVIRONMENT_VARIABLES, environmentVariableFor, type NetworkEnvironment } from './env.js';
import { describeFsError } from './file.js';
import { checkProxy } from './proxy.js';
import { ABSENT, FIELD, isPlainObject, mapping, parsedBy, parseSection, rule } from './schema.js';
import { Secret } from './secret.js';
import {
  type Credential,
  type Endpoint,
  type MailbridgeConfig,
  type Settings,
  SYSTEM_ASSIGNED_CLIENT_ID,
} from './types.js';
import { quotedKey } from './unknown-key.js';

/** Where a setting's value came from, to name it in messages. */
export type SettingOrigin =
  | { source: 'override' }
  | { source: 'environment'; variable: string }
  | { source: 'file'; path: string };

export interface ValidateOptions {
  /** Setting key (`imap.port` for nested ones) → where its value came from. */
  origins?: ReadonlyMap<string, SettingOrigin>;
  /** Problems found before merging (unusable environment values), reported with the rest. */
  problems?: readonly ConfigProblem[];
  /** The time certificates are checked against. @default new Date() */
  now?: Date;
  /** Proxy and CA variables of the environment. @default none */
  network?: NetworkEnvironment;
}

/** Top-level keys with a meaning; any other object-valued key is a job section. */
export const SETTING_KEYS = [
  'tenantId',
  'clientId',
  'clientSecret',
  'certificatePath',
  'certificatePassword',
  'sendCertificateChain',
  'federatedTokenFile',
  'clientAssertion',
  'managedIdentity',
  'authorityHost',
  'cloud',
  'scope',
  'imap',
  'smtp',
  'pop',
  'caFile',
] as const;

const ENDPOINT_KEYS = ['host', 'port'] as const;
const CREDENTIAL_KEYS = [
  'clientSecret',
  'certificatePath',
  'federatedTokenFile',
  'clientAssertion',
  'managedIdentity',
] as const;
const RESERVED_TENANTS = ['common', 'organizations', 'consumers'];
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN =
  /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/i;
const DEFAULT_SUFFIX = '/.default';

const NOT_TEXT = `${FIELD} must be a string (in YAML, put the value in quotes).`;
const TENANT_MISSING =
  "tenantId is missing. Set it (or AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page, or a verified domain such as contoso.onmicrosoft.com.";
const CLIENT_MISSING =
  "clientId is missing. Set it (or AZURE_CLIENT_ID) to the Application (client) ID from the app registration's Overview page.";
function noCredential(): string {
  return `No credential is set. Set exactly one of ${CREDENTIAL_KEYS.slice(0, 3)
    .map((key) => `${key} (${environmentVariableFor(key)})`)
    .join(
      ', ',
    )}; a certificate is the safer choice for unattended use. In Azure, managedIdentity: true (MAILBRIDGE_CREDENTIAL=managed-identity) needs none of them.`;
}

/**
 * Whether `problems` say only that the app's settings were never given (no
 * tenant, no client, no credential), as on a machine that runs password-login
 * jobs only; settings given wrongly, or anything else wrong, are not that.
 */
export function onlyAppSettingsAbsent(problems: readonly ConfigProblem[]): boolean {
  const absent = new Set([TENANT_MISSING, CLIENT_MISSING, noCredential()]);
  return problems.length === absent.size && problems.every((p) => absent.has(p.message));
}

const CLIENT_NOT_GUID = `${FIELD} is not a GUID. Use the Application (client) ID from the app registration's Overview page (not its name, and not a secret).`;
const IDENTITY_CLIENT_NOT_GUID = `${FIELD} is not a GUID. With managedIdentity it names a user-assigned identity: use its Client ID (the identity's Overview page), or leave it unset for the system-assigned identity.`;

/** A required string setting: null and blank count as missing. */
const requiredText = (missing: string) =>
  v.pipe(
    v.string((issue) => (issue.input === ABSENT || issue.input === null ? missing : NOT_TEXT)),
    v.trim(),
    v.nonEmpty(missing),
  );
/** An optional path or name: trimmed, and not blank when given. */
const optionalText = v.nullish(
  v.pipe(v.string(NOT_TEXT), v.trim(), v.nonEmpty(`${FIELD} is empty.`)),
);

function tenantProblem(tenantId: string): string | undefined {
  if (RESERVED_TENANTS.includes(tenantId.toLowerCase())) {
    return `${FIELD} is '${tenantId.toLowerCase()}', which cannot be used for app-only tokens: the client credentials flow must name the tenant. Use the Directory (tenant) ID (a GUID) or a verified domain of the tenant.`;
  }
  if (GUID.test(tenantId) || DOMAIN.test(tenantId)) return undefined;
  // A tenant's initial domain name is at most 27 characters; a secret pasted here is longer.
  const hint = /^[a-z0-9-]{1,27}$/i.test(tenantId)
    ? ` (did you mean ${tenantId.toLowerCase()}.onmicrosoft.com?)`
    : '';
  return `${FIELD} is neither a GUID nor a domain name${hint}. Use the Directory (tenant) ID from the app registration's Overview page, or a verified domain of the tenant.`;
}

function cloudProblem(cloud: string): string | undefined {
  if ((CLOUD_NAMES as readonly string[]).includes(cloud)) return undefined;
  const near = closestName(cloud, CLOUD_NAMES, 3);
  const hint =
    cloud === 'gcc'
      ? ' GCC (moderate) tenants use the global cloud.'
      : near
        ? ` Did you mean '${near}'?`
        : '';
  return `${FIELD} must be one of ${CLOUD_NAMES.join(', ')}.${hint}`;
}

const cloudSchema = v.nullish(
  v.pipe(
    v.string(NOT_TEXT),
    v.trim(),
    v.toLowerCase(),
    rule(cloudProblem),
    v.transform((cloud) => cloud as CloudName),
  ),
);

type EndpointSection = 'imap' | 'smtp' | 'pop';

/** `imap:`, `smtp:` or `pop:`: a host name and a port, each optional. */
function endpointSchema(section: EndpointSection, defaultHost: string, defaultPort: number) {
  return v.nullish(
    mapping(
      {
        host: v.nullish(
          v.pipe(
            v.string(`${FIELD} must be a string.`),
            v.trim(),
            v.nonEmpty(`${FIELD} is empty. Set a host name, or remove it to use ${defaultHost}.`),
            rule((host: string) =>
              /[\s/]/.test(host) || /^[^:]+:\d*$/.test(host)
                ? `${FIELD} must be a host name only, like ${defaultHost}: no scheme, path or port (the port goes in ${section}.port).`
                : undefined,
            ),
          ),
        ),
        port: v.nullish(parsedBy(parsePort, `${FIELD} must be a whole number from 1 to 65535.`)),
      },
      {
        notMapping: `${section} must be a mapping with host and/or port, e.g. ${section}: { host: ${defaultHost}, port: ${defaultPort} }.`,
        unknownKey: (key) => unknownSettingMessage(key, ENDPOINT_KEYS, `${section}.`),
      },
    ),
  );
}

/**
 * The settings as a schema. The cloud's defaults appear in messages (the
 * host to fall back on, the scope to use), so the schema is built for a cloud.
 */
export function settingsSchema(cloud: CloudName, managedIdentity = false) {
  const profile = CLOUDS[cloud];
  const guid = (message: string) =>
    rule((clientId: string) => (GUID.test(clientId) ? undefined : message));
  return mapping(
    {
      tenantId: v.pipe(requiredText(TENANT_MISSING), rule(tenantProblem)),
      // A managed identity needs a client id only to pick a user-assigned identity.
      clientId: managedIdentity
        ? v.nullish(v.pipe(optionalText.wrapped, guid(IDENTITY_CLIENT_NOT_GUID)))
        : v.pipe(requiredText(CLIENT_MISSING), guid(CLIENT_NOT_GUID)),
      // Secrets are taken as they are: no trimming.
      clientSecret: v.nullish(v.pipe(v.string(NOT_TEXT), v.nonEmpty(`${FIELD} is empty.`))),
      certificatePath: optionalText,
      certificatePassword: v.nullish(v.string(NOT_TEXT)),
      sendCertificateChain: v.nullish(parsedBy(parseFlag, `${FIELD} must be true or false.`)),
      federatedTokenFile: optionalText,
      clientAssertion: v.nullish(
        v.function(
          'clientAssertion must be a function returning a signed client assertion (JWT); it can only be given in code. From a file or the environment, use federatedTokenFile (AZURE_FEDERATED_TOKEN_FILE).',
        ),
      ),
      managedIdentity: v.nullish(parsedBy(parseFlag, `${FIELD} must be true or false.`)),
      authorityHost: v.nullish(
        v.pipe(
          v.string(NOT_TEXT),
          v.trim(),
          v.rawTransform(({ dataset, addIssue, NEVER }) => {
            const checked = checkAuthorityHost(dataset.value, FIELD);
            if ('authorityHost' in checked) return checked.authorityHost;
            addIssue({ message: checked.problem });
            return NEVER;
          }),
        ),
      ),
      cloud: cloudSchema,
      scope: v.nullish(
        v.pipe(
          v.string(NOT_TEXT),
          v.trim(),
          rule((scope: string) => checkScope(scope, cloud, FIELD).problem),
        ),
      ),
      imap: endpointSchema('imap', profile.imapHost, DEFAULT_IMAP_PORT),
      smtp: endpointSchema('smtp', profile.smtpHost, DEFAULT_SMTP_PORT),
      pop: endpointSchema('pop', profile.imapHost, DEFAULT_POP_PORT),
      caFile: optionalText,
    },
    {
      notMapping: 'The settings must be a mapping.',
      unknownKey: (key, _near, value) => {
        if (value === undefined || value === null) return undefined;
        if (!isPlainObject(value)) return unknownSettingMessage(key, SETTING_KEYS);
        // Any other mapping is a job's section, checked by the job; one a letter off imap/smtp is a typo.
        const near = closestName(key, ['imap', 'smtp'], 1);
        return near ? `Unknown section ${quotedKey(key)}: did you mean '${near}'?` : undefined;
      },
    },
  );
}

/** Settings as the schema reads them, before files are read and defaults applied. */
export type CheckedSettings = v.InferOutput<ReturnType<typeof settingsSchema>>;

/**
 * Checks merged settings and builds the configuration. Reads the certificate
 * and checks that a federated token file is readable.
 *
 * @throws ConfigurationError `CONFIG_INVALID`, listing every problem
 */
export async function validateSettings(
  settings: Settings,
  options: ValidateOptions = {},
): Promise<MailbridgeConfig> {
  const problems: ConfigProblem[] = [...(options.problems ?? [])];
  const warnings: string[] = [];
  const origins = options.origins ?? new Map<string, SettingOrigin>();
  const add = (field: string, message: string) => problems.push({ field, message });
  const named = (key: string) => nameWithOrigin(key, origins.get(key));

  const early = v.safeParse(cloudSchema, settings.cloud);
  const cloud: CloudName = (early.success && early.output) || 'global';
  const profile = CLOUDS[cloud];
  const managedIdentity = parseFlag(settings.managedIdentity) === true;
  const parsed = parseSection(settingsSchema(cloud, managedIdentity), settings, { name: named });
  problems.push(...parsed.problems);
  // A setting with a problem counts as not set, so that one mistake is not reported twice.
  const read = parsed.value as Partial<CheckedSettings>;
  const valid = <K extends keyof CheckedSettings & string>(key: K) =>
    parsed.ok || !parsed.invalid(key) ? (read[key] ?? undefined) : undefined;

  const sections: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(settings)) {
    if ((SETTING_KEYS as readonly string[]).includes(key) || !isPlainObject(value)) continue;
    if (!closestName(key, ['imap', 'smtp'], 1)) sections[key] = value;
  }

  // Credential: exactly one.
  const present = CREDENTIAL_KEYS.filter((key) =>
    key === 'managedIdentity'
      ? managedIdentity
      : settings[key] !== undefined && settings[key] !== null,
  );
  if (present.length === 0) {
    add('credential', noCredential());
  } else if (present.length > 1) {
    add(
      'credential',
      `More than one credential is set: ${present.map((key) => describeSource(key, origins.get(key))).join(', ')}. Set exactly one, and remove the others from the flags, the environment or the config file.`,
    );
  }

  const tenantId = valid('tenantId');
  const clientId = valid('clientId');
  const clientSecret = valid('clientSecret');
  const certificatePath = valid('certificatePath');
  const certificatePassword = valid('certificatePassword');
  const federatedTokenFile = valid('federatedTokenFile');
  const clientAssertion = valid('clientAssertion');
  if (certificatePassword !== undefined && settings.certificatePath === undefined) {
    add(
      'certificatePassword',
      `${named('certificatePassword')} is set but certificatePath is not: the password only decrypts the certificate's key. Set certificatePath (AZURE_CLIENT_CERTIFICATE_PATH) or remove the password.`,
    );
  }
  const sendCertificateChain = valid('sendCertificateChain') ?? false;
  if (sendCertificateChain && settings.certificatePath === undefined) {
    warnings.push(
      'sendCertificateChain is set but no certificate is used (certificatePath is not set); it is ignored.',
    );
  }

  const authorityHost = valid('authorityHost') ?? profile.authorityHost;
  const customAuthorityHost =
    valid('authorityHost') !== undefined &&
    !BUILT_IN_AUTHORITY_HOSTS.includes(new URL(authorityHost).host);

  const scopeSetting = valid('scope');
  const scope = scopeSetting ?? profile.scope;
  const scopeWarning =
    scopeSetting === undefined
      ? undefined
      : checkScope(scopeSetting, cloud, named('scope')).warning;
  if (scopeWarning) warnings.push(scopeWarning);

  const endpoint = (section: EndpointSection, host: string, port: number): Endpoint => {
    const given = isPlainObject(read[section]) ? read[section] : undefined;
    const hostOk = !parsed.ok && parsed.invalid(`${section}.host`) ? undefined : given?.host;
    const portOk = !parsed.ok && parsed.invalid(`${section}.port`) ? undefined : given?.port;
    return { host: hostOk ?? host, port: portOk ?? port };
  };
  const imap = endpoint('imap', profile.imapHost, DEFAULT_IMAP_PORT);
  const smtp = endpoint('smtp', profile.smtpHost, DEFAULT_SMTP_PORT);
  const pop = endpoint('pop', profile.imapHost, DEFAULT_POP_PORT);

  // Files: checked even when other settings are wrong, so that one run shows everything.
  let certificateCredential: Credential | undefined;
  if (certificatePath) {
    const result = await loadCertificate({
      path: certificatePath,
      ...(certificatePassword === undefined ? {} : { password: certificatePassword }),
      sendCertificateChain,
      ...(options.now ? { now: options.now } : {}),
    });
    if (result.ok) {
      certificateCredential = result.credential;
      warnings.push(...result.warnings);
    } else {
      problems.push(...result.problems);
    }
  }
  let federatedPath: string | undefined;
  if (federatedTokenFile) {
    federatedPath = resolve(federatedTokenFile);
    const problem = await checkReadableFile(federatedPath);
    if (problem) {
      add(
        'federatedTokenFile',
        `${named('federatedTokenFile')} ${federatedPath} cannot be read: ${problem}. With workload identity, the token file is mounted into the pod by the webhook; check the pod's service account and the path.`,
      );
    }
  }

  let extraCaCertificates: string[] | undefined;
  const caSetting = valid('caFile');
  const caFile = caSetting ? resolve(caSetting) : undefined;
  if (caFile) {
    const result = await readCaFile(caFile);
    if ('problem' in result) {
      add('caFile', `${named('caFile')} ${caFile} cannot be used: ${result.problem}.`);
    } else {
      extraCaCertificates = [
        ...result.certificates,
        ...(await readNodeExtraCaCerts(options.network?.nodeExtraCaCerts)),
      ];
    }
  }

  const proxy = options.network ? checkProxy(options.network) : {};
  if ('problem' in proxy) add(options.network?.proxy?.variable ?? 'proxy', proxy.problem);

  if (problems.length > 0) throw invalidConfiguration(problems);

  let credential: Credential;
  if (managedIdentity) {
    credential = {
      kind: 'managed-identity',
      ...(clientId === undefined ? {} : { userAssignedClientId: clientId }),
    };
  } else if (certificateCredential) {
    credential = certificateCredential;
  } else if (clientSecret) {
    credential = { kind: 'secret', clientSecret: new Secret(clientSecret) };
  } else if (federatedPath) {
    credential = { kind: 'federated', federatedTokenFile: federatedPath };
  } else {
    credential = {
      kind: 'federated',
      clientAssertion: clientAssertion as () => string | Promise<string>,
    };
  }

  return {
    tenantId: tenantId as string,
    clientId: clientId ?? SYSTEM_ASSIGNED_CLIENT_ID,
    credential,
    cloud,
    authorityHost,
    authority: `${authorityHost}/${tenantId}`,
    customAuthorityHost,
    scope,
    imap,
    smtp,
    pop,
    ...(caFile && extraCaCertificates ? { caFile, extraCaCertificates } : {}),
    ...('proxy' in proxy && proxy.proxy ? { proxy: proxy.proxy } : {}),
    warnings,
    sections,
  };
}

function invalidConfiguration(problems: ConfigProblem[]): ConfigurationError {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  const lines = problems.map((problem) => `  - ${problem.field}: ${problem.message}`);
  return new ConfigurationError({
    code: 'CONFIG_INVALID',
    // The count closes the list so that the remedy, appended after it, reads as its own line.
    message: `The configuration is not valid:\n${lines.join('\n')}\n${count}.`,
    remedy:
      'Fix each setting where it is set: a command-line flag wins over the environment, which wins over the config file.',
    problems,
  });
}

/**
 * Checks an authority host. Plain http is refused rather than allowed for
 * tests: the client's credential goes to this host, and TLS verification is
 * never switched off anywhere in the library.
 */
export function checkAuthorityHost(
  value: string,
  name = 'authorityHost',
): { authorityHost: string } | { problem: string } {
  const example = 'e.g. https://login.microsoftonline.us';
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    return { problem: `${name} must be a URL starting with https://, ${example}.` };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { problem: `${name} is not a valid URL; ${example}.` };
  }
  if (url.protocol === 'http:') {
    return {
      problem: `${name} uses http: the authority receives the app's credential, so it must be https, and TLS verification is never switched off. For a service with a private CA, add that CA to NODE_EXTRA_CA_CERTS and use https.`,
    };
  }
  if (url.protocol !== 'https:') {
    return { problem: `${name} must use https, ${example}.` };
  }
  if (url.username || url.password) {
    return { problem: `${name} must not carry a user name or password.` };
  }
  const origin = `${url.protocol}//${url.host}`;
  if (url.pathname !== '/' && url.pathname !== '') {
    return {
      problem: `${name} takes the scheme, host and port only (${origin}); no path. The tenant goes in tenantId.`,
    };
  }
  if (url.search || url.hash) {
    return {
      problem: `${name} takes the scheme, host and port only (${origin}); no query or fragment.`,
    };
  }
  return { authorityHost: origin };
}

/** Exchange Online resources by cloud; `outlook.office.com` is the global cloud's older name. */
const EXCHANGE_RESOURCES: readonly { resource: string; cloud: CloudName }[] = [
  ...CLOUD_NAMES.map((cloud) => ({ resource: stripDefault(CLOUDS[cloud].scope), cloud })),
  { resource: 'https://outlook.office.com', cloud: 'global' },
];

/**
 * Checks a token scope. IMAP and SMTP accept only tokens for the Exchange
 * resource, asked for with `/.default` (app-only tokens carry the
 * application permissions granted to the app, IMAP.AccessAsApp and
 * SMTP.SendAsApp, never named scopes).
 */
export function checkScope(
  scope: string,
  cloud: CloudName,
  name = 'scope',
): { problem?: string; warning?: string } {
  const exchange = CLOUDS[cloud].scope;
  if (scope === '') return { problem: `${name} is empty. Remove it to use ${exchange}.` };
  const parts = scope.split(/[\s,]+/).filter(Boolean);
  if (parts.length > 1) {
    return {
      problem: `${name} holds ${parts.length} scopes, but an app-only token is for one resource: use only ${exchange}.`,
    };
  }
  const resource = stripDefault(scope).replace(/\/+$/, '');
  // Quoted only when shaped like a scope (a URI, or a permission name like Mail.Send):
  // a secret pasted here must not be printed.
  const quoted =
    /^(?:[a-z][a-z0-9+.-]*:\/\/[A-Za-z0-9:/._-]{1,200}|[A-Za-z]+(?:\.[A-Za-z]+)+)$/.test(scope)
      ? ` '${scope}'`
      : '';
  if (isGraph(scope)) {
    return {
      problem: `${name}${quoted} is a Microsoft Graph scope, and IMAP and SMTP refuse Graph tokens. Use the Exchange Online scope, e.g. ${exchange}.`,
    };
  }
  if (!scope.endsWith(DEFAULT_SUFFIX)) {
    const bare = !scope.includes('://') && !GUID.test(resource);
    const delegated = bare || hasPath(resource);
    return {
      problem: delegated
        ? `${name}${quoted} is a delegated permission, which app-only tokens cannot carry. Use the resource's /.default, e.g. ${exchange}, and grant the app the application permissions IMAP.AccessAsApp and/or SMTP.SendAsApp (Office 365 Exchange Online) with admin consent.`
        : `${name}${quoted} lacks /.default: use ${quoted ? resource : "the resource's URI followed by"}${DEFAULT_SUFFIX}.`,
    };
  }
  if (resource === '') {
    return { problem: `${name} names no resource; use ${exchange}.` };
  }
  const known = EXCHANGE_RESOURCES.find((entry) => entry.resource === resource.toLowerCase());
  if (
    known &&
    !EXCHANGE_RESOURCES.some((e) => e.cloud === cloud && e.resource === known.resource)
  ) {
    return {
      warning: `${name} ${scope} is the Exchange resource of the ${known.cloud} cloud, but cloud is ${cloud}: the servers of one cloud refuse the tokens of another. Set cloud to ${known.cloud} (MAILBRIDGE_CLOUD), or use ${exchange}.`,
    };
  }
  return {};
}

function isGraph(scope: string): boolean {
  const resource = stripDefault(scope).replace(/\/+$/, '').toLowerCase();
  let base = resource;
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(resource)) {
    try {
      base = new URL(resource).origin;
    } catch {
      base = resource;
    }
  } else {
    base = resource.split('/')[0] ?? resource;
  }
  return GRAPH_RESOURCES.some((graph) => {
    const known = graph.replace(/\/+$/, '').toLowerCase();
    return known === resource || known === base;
  });
}

function hasPath(resource: string): boolean {
  try {
    return new URL(resource).pathname.replace(/\/+$/, '') !== '';
  } catch {
    return resource.includes('/');
  }
}

function stripDefault(scope: string): string {
  return scope.endsWith(DEFAULT_SUFFIX) ? scope.slice(0, -DEFAULT_SUFFIX.length) : scope;
}

async function checkReadableFile(path: string): Promise<string | undefined> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return 'it is not a regular file';
    await access(path, constants.R_OK);
    return undefined;
  } catch (error) {
    return describeFsError(error);
  }
}

function parseFlag(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && (value === 0 || value === 1)) return value === 1;
  if (typeof value !== 'string') return undefined;
  const lower = value.trim().toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  return undefined;
}

function parsePort(value: unknown): number | undefined {
  const port =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\s*\d{1,5}\s*$/.test(value)
        ? Number(value)
        : Number.NaN;
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : undefined;
}

function nameWithOrigin(key: string, origin: SettingOrigin | undefined): string {
  return origin?.source === 'environment' ? `${key} (${origin.variable})` : key;
}

function describeSource(key: string, origin: SettingOrigin | undefined): string {
  switch (origin?.source) {
    case 'environment':
      return `${key} (from ${origin.variable})`;
    case 'file':
      return `${key} (from the config file ${origin.path})`;
    case 'override':
      return `${key} (from a flag or option)`;
    default:
      return key;
  }
}

function unknownSettingMessage(key: string, known: readonly string[], prefix = ''): string {
  const environment = ENVIRONMENT_VARIABLES.find((variable) => variable.name === key);
  if (environment && prefix === '') {
    return `Unknown setting '${key}': that is an environment variable's name; in the config file write '${environment.setting}'.`;
  }
  const near = closestName(key, known);
  return near
    ? `Unknown setting ${quotedKey(key, prefix)} — did you mean '${prefix}${near}'?`
    : `Unknown setting ${quotedKey(key, prefix)}. Known settings: ${known.map((k) => prefix + k).join(', ')}; settings of a job go in its section (relay:, archive:, …).`;
}
