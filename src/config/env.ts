/**
 * The only reader of `process.env` in the library, and only when called: a
 * module that reads the environment at import time cannot be tested or
 * embedded (the caller may want to pass its own environment).
 */
import type { ConfigProblem } from '../errors.js';
import type { Settings } from './types.js';

export interface EnvironmentVariable {
  name: string;
  /** The setting it fills, by its config-file key (`imap.port` for nested ones). */
  setting: string;
  description: string;
}

/**
 * Every environment variable the configuration reads. The `AZURE_*` names are
 * the ones @azure/identity's `EnvironmentCredential` and workload identity
 * use, so a pod or pipeline set up for Azure SDKs works unchanged.
 */
export const ENVIRONMENT_VARIABLES = [
  {
    name: 'AZURE_TENANT_ID',
    setting: 'tenantId',
    description: 'Directory (tenant) id or a verified domain of the tenant.',
  },
  {
    name: 'AZURE_CLIENT_ID',
    setting: 'clientId',
    description: 'Application (client) id of the app registration.',
  },
  {
    name: 'AZURE_CLIENT_SECRET',
    setting: 'clientSecret',
    description: 'Client secret value (not its id).',
  },
  {
    name: 'AZURE_CLIENT_CERTIFICATE_PATH',
    setting: 'certificatePath',
    description: 'PEM file with the private key and certificate, or a PFX/P12 file.',
  },
  {
    name: 'AZURE_CLIENT_CERTIFICATE_PASSWORD',
    setting: 'certificatePassword',
    description: 'Password of an encrypted PEM key or of the PFX file.',
  },
  {
    name: 'AZURE_CLIENT_SEND_CERTIFICATE_CHAIN',
    setting: 'sendCertificateChain',
    description: 'true/false/1/0: send the certificate chain (x5c) for subject name/issuer auth.',
  },
  {
    name: 'AZURE_FEDERATED_TOKEN_FILE',
    setting: 'federatedTokenFile',
    description: 'File holding a federated token (workload identity), re-read when it changes.',
  },
  {
    name: 'MAILBRIDGE_CREDENTIAL',
    setting: 'managedIdentity',
    description:
      'managed-identity: use the Azure managed identity (AZURE_CLIENT_ID picks a user-assigned one).',
  },
  {
    name: 'AZURE_AUTHORITY_HOST',
    setting: 'authorityHost',
    description: 'Authority host, e.g. https://login.microsoftonline.us (https only).',
  },
  {
    name: 'MAILBRIDGE_CLOUD',
    setting: 'cloud',
    description: 'National cloud: global, usgov-high, usgov-dod or china.',
  },
  {
    name: 'MAILBRIDGE_SCOPE',
    setting: 'scope',
    description: "Token scope, one resource's /.default (default: the cloud's Exchange resource).",
  },
  {
    name: 'MAILBRIDGE_IMAP_HOST',
    setting: 'imap.host',
    description: 'IMAP host name.',
  },
  {
    name: 'MAILBRIDGE_IMAP_PORT',
    setting: 'imap.port',
    description: 'IMAP port (default 993).',
  },
  {
    name: 'MAILBRIDGE_SMTP_HOST',
    setting: 'smtp.host',
    description: 'SMTP submission host name.',
  },
  {
    name: 'MAILBRIDGE_SMTP_PORT',
    setting: 'smtp.port',
    description: 'SMTP submission port (default 587).',
  },
  {
    name: 'MAILBRIDGE_POP_HOST',
    setting: 'pop.host',
    description: 'POP3 host name (for `mailbridge proxy`; default the IMAP host of the cloud).',
  },
  {
    name: 'MAILBRIDGE_POP_PORT',
    setting: 'pop.port',
    description: 'POP3 port (default 995, implicit TLS).',
  },
  {
    name: 'MAILBRIDGE_CA_FILE',
    setting: 'caFile',
    description: "PEM file of CA certificates to trust besides Node's default ones.",
  },
] as const satisfies readonly EnvironmentVariable[];

/** The one value of MAILBRIDGE_CREDENTIAL. */
const MANAGED_IDENTITY = 'managed-identity';

export type EnvironmentVariableName = (typeof ENVIRONMENT_VARIABLES)[number]['name'];

export type Environment = Readonly<Record<string, string | undefined>>;

/** The environment variable that fills a setting (`imap.port` → `MAILBRIDGE_IMAP_PORT`). */
export function environmentVariableFor(setting: string): EnvironmentVariableName | undefined {
  return ENVIRONMENT_VARIABLES.find((variable) => variable.setting === setting)?.name;
}

/**
 * Names of the variables that are set (not empty), for logs and `doctor`
 * output. Never their values.
 */
export function environmentVariablesFound(
  env: Environment = process.env,
): EnvironmentVariableName[] {
  return ENVIRONMENT_VARIABLES.filter(({ name }) => readVariable(env, name) !== undefined).map(
    ({ name }) => name,
  );
}

export interface EnvironmentSettings {
  settings: Settings;
  /** Values that cannot be used (a port that is not a number, …), named by variable. */
  problems: ConfigProblem[];
  /** Setting key (`imap.port`) → the variable it came from. */
  origins: Map<string, EnvironmentVariableName>;
}

/** Reads the settings the environment holds. Empty values count as unset. */
export function readEnvironment(env: Environment = process.env): EnvironmentSettings {
  const settings: Settings = {};
  const problems: ConfigProblem[] = [];
  const origins = new Map<string, EnvironmentVariableName>();

  for (const { name, setting } of ENVIRONMENT_VARIABLES) {
    const raw = readVariable(env, name);
    if (raw === undefined) continue;
    let value: string | number | boolean = raw;

    if (setting === 'sendCertificateChain') {
      const flag = parseFlag(raw);
      if (flag === undefined) {
        problems.push({
          field: setting,
          message: `${name} must be true, false, 1 or 0.`,
        });
        continue;
      }
      value = flag;
    } else if (setting === 'managedIdentity') {
      // The other credentials are chosen by their own variables; this one has no value to give.
      if (raw.trim().toLowerCase() !== MANAGED_IDENTITY) {
        problems.push({
          field: setting,
          message: `${name} must be ${MANAGED_IDENTITY}, or unset (a secret, certificate or federated token is chosen by its own variable).`,
        });
        continue;
      }
      value = true;
    } else if (setting.endsWith('.port')) {
      const port = parsePort(raw);
      if (port === undefined) {
        problems.push({
          field: setting,
          message: `${name} must be a port number from 1 to 65535.`,
        });
        continue;
      }
      value = port;
    } else if (!isSecretSetting(setting)) {
      value = raw.trim();
    }

    const [head, tail] = setting.split('.') as [string, string | undefined];
    if (tail === undefined) {
      settings[head] = value;
    } else {
      const nested = (settings[head] ?? {}) as Record<string, unknown>;
      nested[tail] = value;
      settings[head] = nested;
    }
    origins.set(setting, name);
  }
  return { settings, problems, origins };
}

function readVariable(env: Environment, name: string): string | undefined {
  const value = env[name];
  // A variable exported empty (or as spaces) by a template counts as unset.
  return value === undefined || value.trim() === '' ? undefined : value;
}

function isSecretSetting(setting: string): boolean {
  return setting === 'clientSecret' || setting === 'certificatePassword';
}

function parseFlag(raw: string): boolean | undefined {
  const value = raw.trim().toLowerCase();
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return undefined;
}

function parsePort(raw: string): number | undefined {
  const value = raw.trim();
  if (!/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * What the environment says about the network beneath the settings: the
 * proxy for HTTPS requests and the CAs Node was started with. These are other
 * programs' variables too (curl, npm, Node itself), so they are read as those
 * read them, and are not settings of ours.
 */
export interface NetworkEnvironment {
  /** The proxy variable that applies to https URLs, by name and value. */
  proxy?: { variable: string; value: string };
  /** NO_PROXY entries. */
  noProxy: string[];
  /** Path in NODE_EXTRA_CA_CERTS, which Node 20 cannot hand back as certificates. */
  nodeExtraCaCerts?: string;
}

/**
 * The lower-case names first, as curl and undici read them; for https URLs
 * HTTPS_PROXY, falling back to HTTP_PROXY as undici's EnvHttpProxyAgent does.
 */
const PROXY_VARIABLES = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY'] as const;

export function readNetworkEnvironment(env: Environment = process.env): NetworkEnvironment {
  const variable = PROXY_VARIABLES.find((name) => readVariable(env, name) !== undefined);
  const noProxy = readVariable(env, 'no_proxy') ?? readVariable(env, 'NO_PROXY');
  const nodeExtraCaCerts = readVariable(env, 'NODE_EXTRA_CA_CERTS');
  return {
    ...(variable ? { proxy: { variable, value: (env[variable] as string).trim() } } : {}),
    noProxy: noProxy ? noProxy.split(/[\s,]+/).filter(Boolean) : [],
    ...(nodeExtraCaCerts ? { nodeExtraCaCerts } : {}),
  };
}

/**
 * `MAILBRIDGE_REDIS_URL`: the job queue's Redis, password included. Read
 * here rather than from a flag: argv is visible to every user in `ps`.
 */
export function readRedisUrlEnvironment(env: Environment = process.env): string | undefined {
  return readVariable(env, 'MAILBRIDGE_REDIS_URL');
}
