/**
 * Resolves the configuration exactly as the CLI does. Sources, highest first:
 * overrides (CLI flags, library callers) > environment > config file >
 * defaults (the cloud's endpoints). Mappings (`imap`, `smtp`, job sections)
 * merge key by key, so `MAILBRIDGE_IMAP_PORT` changes the port and keeps the
 * file's host. One side of a two-tenant job reverses the first two
 * (`fileIsIdentity`).
 */
import {
  type Environment,
  type EnvironmentSettings,
  readEnvironment,
  readNetworkEnvironment,
} from './env.js';
import { configFileWarnings, readConfigFile } from './file.js';
import { isPlainObject } from './schema.js';
import type { MailbridgeConfig, Settings } from './types.js';
import { type SettingOrigin, validateSettings } from './validate.js';

export interface LoadConfigOptions {
  /** Environment to read. @default process.env */
  env?: Environment;
  /** Path of a JSON or YAML config file. */
  file?: string;
  /** Highest-priority settings: CLI flags, or a library caller's options. */
  overrides?: Settings;
  /**
   * The file is one side's identity in a job between two tenants
   * (`--from-config`/`--to-config`): the environment then holds the other
   * side's app, so the app's identity (tenant, client, credential) comes from
   * the file alone, and the file's other settings win over the environment's,
   * which fills only what the file leaves out.
   */
  fileIsIdentity?: boolean;
}

/** Settings that say which app signs in as whom: never mixed between two sides. */
const IDENTITY_SETTINGS = new Set([
  'tenantId',
  'clientId',
  'clientSecret',
  'certificatePath',
  'certificatePassword',
  'sendCertificateChain',
  'federatedTokenFile',
  'managedIdentity',
]);

/**
 * Merges the sources and validates them once.
 *
 * @throws ConfigurationError `CONFIG_FILE_UNREADABLE` / `CONFIG_FILE_INVALID`
 *   for the file itself, `CONFIG_INVALID` (listing every problem) otherwise
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<MailbridgeConfig> {
  const fromFile = options.file === undefined ? {} : await readConfigFile(options.file);
  const fileFirst = options.fileIsIdentity === true && options.file !== undefined;
  const environment = readEnvironment(options.env);
  if (fileFirst) withoutIdentity(environment);

  const merged: Settings = {};
  const origins = new Map<string, SettingOrigin>();
  const mergeFile = () => {
    if (options.file === undefined) return;
    const path = options.file;
    mergeInto(merged, fromFile, origins, () => ({ source: 'file', path }));
  };
  if (!fileFirst) mergeFile();
  mergeInto(merged, environment.settings, origins, (key) => ({
    source: 'environment',
    variable: environment.origins.get(key) ?? key,
  }));
  if (fileFirst) mergeFile();
  if (options.overrides) {
    mergeInto(merged, options.overrides, origins, () => ({ source: 'override' }));
  }

  const warnings =
    options.file === undefined ? [] : await configFileWarnings(options.file, fromFile);
  const config = await validateSettings(merged, {
    origins,
    problems: environment.problems,
    network: readNetworkEnvironment(options.env),
  });
  config.warnings.unshift(...warnings);
  return config;
}

function withoutIdentity(environment: EnvironmentSettings): void {
  for (const setting of IDENTITY_SETTINGS) {
    delete environment.settings[setting];
    environment.origins.delete(setting);
  }
  environment.problems = environment.problems.filter((p) => !IDENTITY_SETTINGS.has(p.field));
}

/**
 * Writes `source` over `target`: `undefined` and `null` leave the lower
 * source's value, plain objects merge key by key, anything else replaces.
 */
function mergeInto(
  target: Record<string, unknown>,
  source: Record<string, unknown>,
  origins: Map<string, SettingOrigin>,
  originOf: (key: string) => SettingOrigin,
  prefix = '',
): void {
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined || value === null) continue;
    const path = `${prefix}${key}`;
    const existing = target[key];
    if (isPlainObject(value)) {
      const nested: Record<string, unknown> = isPlainObject(existing) ? { ...existing } : {};
      mergeInto(nested, value, origins, originOf, `${path}.`);
      target[key] = nested;
    } else {
      target[key] = value;
    }
    origins.set(path, originOf(path));
  }
}

/** A log-safe summary of a configuration: no secret, no key, no password. */
export interface ConfigSummary {
  tenantId: string;
  clientId: string;
  cloud: string;
  credential: MailbridgeConfig['credential']['kind'];
  /** With a managed identity: which one. */
  managedIdentity?: 'system-assigned' | 'user-assigned';
  certificate?: {
    path: string;
    subject: string;
    thumbprintSha1: string;
    thumbprintSha256: string;
    notAfter: string;
    keyBits: number;
    sendCertificateChain: boolean;
  };
  federatedTokenFile?: string;
  authority: string;
  customAuthorityHost: boolean;
  scope: string;
  imap: string;
  smtp: string;
  warnings: string[];
}

/** What to log or print about a configuration (`--verbose`, `doctor`). */
export function describeConfig(config: MailbridgeConfig): ConfigSummary {
  const { credential } = config;
  const summary: ConfigSummary = {
    tenantId: config.tenantId,
    clientId: config.clientId,
    cloud: config.cloud,
    credential: credential.kind,
    authority: config.authority,
    customAuthorityHost: config.customAuthorityHost,
    scope: config.scope,
    imap: `${config.imap.host}:${config.imap.port}`,
    smtp: `${config.smtp.host}:${config.smtp.port}`,
    warnings: [...config.warnings],
  };
  if (credential.kind === 'certificate') {
    summary.certificate = {
      path: credential.path,
      subject: credential.subject,
      thumbprintSha1: credential.thumbprintSha1,
      thumbprintSha256: credential.thumbprintSha256,
      notAfter: credential.notAfter.toISOString(),
      keyBits: credential.keyBits,
      sendCertificateChain: credential.sendCertificateChain,
    };
  }
  if (credential.kind === 'managed-identity') {
    summary.managedIdentity = credential.userAssignedClientId ? 'user-assigned' : 'system-assigned';
  }
  if (credential.kind === 'federated' && credential.federatedTokenFile) {
    summary.federatedTokenFile = credential.federatedTokenFile;
  }
  return summary;
}
