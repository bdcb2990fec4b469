/**
 * The Exchange setup plan: what `mailbridge setup exchange` was asked to do,
 * checked once. Pure: flags, the config file's `setup.exchange` section and a
 * mailbox list all arrive here as plain values, and every problem is reported
 * in one ConfigurationError, each named by its plan key.
 */
import { CLOUD_NAMES, type CloudName } from '../config/clouds.js';
import { type ConfigProblem, ConfigurationError } from '../errors.js';
import { dedupeMailboxes, type MailboxEntry } from './mailbox-list.js';
import {
  displayNameProblem,
  guidProblem,
  printableNameProblem,
  quoteForMessage,
  smtpAddressProblem,
  tenantProblem,
} from './powershell.js';

export const EXCHANGE_PROTOCOLS = ['imap', 'pop', 'smtp'] as const;
export type ExchangeProtocol = (typeof EXCHANGE_PROTOCOLS)[number];

/** @default protocols when none are named */
export const DEFAULT_PROTOCOLS: readonly ExchangeProtocol[] = ['imap', 'smtp'];
/** Display name of the Exchange service principal reference when none is given. */
export const DEFAULT_DISPLAY_NAME = 'mailbridge';

/**
 * Which mailboxes the app may send as over SMTP when SMTP.SendAsApp is granted
 * through RBAC for Applications (a management scope and a role assignment in
 * Exchange) instead of tenant-wide in Entra: the members of one group, or
 * exactly the planned mailboxes.
 */
export type SmtpScope = { kind: 'group'; group: string } | { kind: 'mailboxes' };

export interface ExchangePlan {
  /** Directory (tenant) id, lower-case, or a verified domain as given. */
  tenant: string;
  /** Application (client) id, lower-case. */
  appId: string;
  /** Object id of the app's service principal (Enterprise Application), lower-case. */
  objectId: string;
  displayName: string;
  /** Addresses, deduplicated case-insensitively, in the order given. */
  mailboxes: string[];
  /** In the order of EXCHANGE_PROTOCOLS. */
  protocols: ExchangeProtocol[];
  /** Grant SendAs (Add-RecipientPermission) as well: needs `smtp`. */
  sendAs: boolean;
  /** Enable the protocols per mailbox with Set-CASMailbox where they are off. */
  enableProtocols: boolean;
  cloud: CloudName;
  /** Render the script that undoes the grants instead. */
  remove: boolean;
  /** Grant SMTP through a management scope (RBAC for Applications); needs `smtp`. */
  smtpScope?: SmtpScope;
}

/**
 * Raw input, as read from flags or a config file: any field may be missing or
 * of the wrong type; `parseExchangePlan` says which.
 */
export interface ExchangePlanInput {
  tenant?: unknown;
  appId?: unknown;
  objectId?: unknown;
  displayName?: unknown;
  /** Addresses, or entries that say where each address came from. */
  mailboxes?: unknown;
  /** `imap,smtp` or `['imap', 'smtp']`. */
  protocols?: unknown;
  sendAs?: unknown;
  enableProtocols?: unknown;
  cloud?: unknown;
  remove?: unknown;
  /** `group:NAME` or `mailboxes`. */
  smtpScope?: unknown;
}

/** Keys of the config file's `setup.exchange` section. */
export const EXCHANGE_PLAN_KEYS = [
  'tenant',
  'appId',
  'objectId',
  'displayName',
  'mailboxes',
  'protocols',
  'sendAs',
  'enableProtocols',
  'cloud',
  'smtpScope',
] as const;

/** @throws ConfigurationError `SETUP_PLAN_INVALID` listing every problem */
export function parseExchangePlan(input: ExchangePlanInput): ExchangePlan {
  const problems: ConfigProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });

  const text = (field: keyof ExchangePlanInput, what: string): string | undefined => {
    const value = input[field];
    if (value === undefined || value === null || value === '') {
      problem(field, `${what} is required`);
      return undefined;
    }
    if (typeof value !== 'string') {
      problem(field, `must be a string, not ${describeType(value)}`);
      return undefined;
    }
    return value.trim();
  };
  const flag = (field: keyof ExchangePlanInput): boolean => {
    const value = input[field];
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') {
      problem(field, `must be true or false, not ${describeType(value)}`);
      return false;
    }
    return value;
  };

  const tenant = text('tenant', 'the tenant (directory id or verified domain, --tenant)');
  if (tenant !== undefined) {
    const why = tenantProblem(tenant);
    if (why) problem('tenant', why);
  }
  const appId = text('appId', 'the application (client) id (--app-id)');
  if (appId !== undefined) {
    const why = guidProblem(appId);
    if (why) problem('appId', why);
  }
  const objectId = text(
    'objectId',
    "the Enterprise Application's (service principal's) object id (--object-id)",
  );
  if (objectId !== undefined) {
    const why = guidProblem(objectId);
    if (why) problem('objectId', why);
  }
  if (appId && objectId && appId.toLowerCase() === objectId.toLowerCase()) {
    problem(
      'objectId',
      "it equals the application id: give the object id shown on the Enterprise Application's overview page (Entra ID > Enterprise applications), not the application id",
    );
  }

  let displayName = DEFAULT_DISPLAY_NAME;
  if (input.displayName !== undefined && input.displayName !== null) {
    if (typeof input.displayName !== 'string') {
      problem('displayName', `must be a string, not ${describeType(input.displayName)}`);
    } else {
      const why = displayNameProblem(input.displayName);
      if (why) problem('displayName', why);
      else displayName = input.displayName;
    }
  }

  const mailboxes = parseMailboxes(input.mailboxes, problem);
  const protocols = parseProtocols(input.protocols, problem);

  let cloud: CloudName = 'global';
  if (input.cloud !== undefined && input.cloud !== null && input.cloud !== '') {
    if (
      typeof input.cloud === 'string' &&
      (CLOUD_NAMES as readonly string[]).includes(input.cloud)
    ) {
      cloud = input.cloud as CloudName;
    } else {
      problem(
        'cloud',
        `${typeof input.cloud === 'string' ? quoteForMessage(input.cloud) : describeType(input.cloud)} is not a cloud (one of: ${CLOUD_NAMES.join(', ')})`,
      );
    }
  }

  const sendAs = flag('sendAs');
  const enableProtocols = flag('enableProtocols');
  const remove = flag('remove');
  if (sendAs && !protocols.includes('smtp')) {
    problem('sendAs', 'SendAs is for sending over SMTP: add smtp to the protocols');
  }
  const smtpScope = parseSmtpScope(input.smtpScope, problem);
  if (smtpScope && !protocols.includes('smtp')) {
    problem('smtpScope', 'the SMTP scope is for sending over SMTP: add smtp to the protocols');
  }
  if (smtpScope && sendAs) {
    problem(
      'sendAs',
      'SendAs is not needed with an SMTP scope: the role assignment lets the app send as every mailbox in the scope',
    );
  }

  if (problems.length > 0) {
    throw new ConfigurationError({
      code: 'SETUP_PLAN_INVALID',
      message: 'The Exchange setup plan has problems; no script was written',
      remedy:
        'Fix the values (flags --tenant, --app-id, --object-id, --mailbox, --mailboxes, ... or the setup.exchange section of the config file) and run the command again.',
      problems,
    });
  }
  return {
    tenant: isGuidLike(tenant ?? '') ? (tenant ?? '').toLowerCase() : (tenant ?? ''),
    appId: (appId ?? '').toLowerCase(),
    objectId: (objectId ?? '').toLowerCase(),
    displayName,
    mailboxes,
    protocols,
    sendAs,
    enableProtocols,
    cloud,
    remove,
    ...(smtpScope ? { smtpScope } : {}),
  };
}

/** `group:NAME` (name, alias or address of a group) or `mailboxes`. */
function parseSmtpScope(
  value: unknown,
  problem: (field: string, message: string) => void,
): SmtpScope | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const usage =
    'use group:NAME (the members of one group) or mailboxes (exactly the mailboxes given)';
  if (typeof value !== 'string') {
    problem('smtpScope', `must be a string, not ${describeType(value)}: ${usage}`);
    return undefined;
  }
  if (value.trim().toLowerCase() === 'mailboxes') return { kind: 'mailboxes' };
  const group = /^group:(.*)$/is.exec(value.trimStart())?.[1];
  if (group === undefined) {
    problem('smtpScope', `${quoteForMessage(value)} is not a scope: ${usage}`);
    return undefined;
  }
  const why = printableNameProblem(group, 'the group name');
  if (why) {
    problem('smtpScope', why);
    return undefined;
  }
  return { kind: 'group', group };
}

function parseMailboxes(
  value: unknown,
  problem: (field: string, message: string) => void,
): string[] {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
    problem(
      'mailboxes',
      'at least one mailbox is required (--mailbox ADDRESS or --mailboxes FILE)',
    );
    return [];
  }
  if (!Array.isArray(value)) {
    problem('mailboxes', `must be a list of addresses, not ${describeType(value)}`);
    return [];
  }
  const entries: MailboxEntry[] = [];
  value.forEach((item: unknown, index) => {
    const field = `mailboxes[${index}]`;
    const entry: MailboxEntry | undefined =
      typeof item === 'string'
        ? { address: item.trim(), source: field }
        : isMailboxEntry(item)
          ? { address: item.address.trim(), source: item.source }
          : undefined;
    if (!entry) {
      problem(field, `must be an address, not ${describeType(item)}`);
      return;
    }
    const why = smtpAddressProblem(entry.address);
    if (why) {
      // Entries from a list file or a flag are named by where they came from.
      problem(entry.source, why);
      return;
    }
    entries.push(entry);
  });
  return dedupeMailboxes(entries).map((e) => e.address);
}

function parseProtocols(
  value: unknown,
  problem: (field: string, message: string) => void,
): ExchangeProtocol[] {
  if (value === undefined || value === null || value === '') return [...DEFAULT_PROTOCOLS];
  const names =
    typeof value === 'string'
      ? value.split(',')
      : Array.isArray(value) && value.every((v) => typeof v === 'string')
        ? (value as string[])
        : undefined;
  if (!names) {
    problem('protocols', `must be a list such as imap,smtp, not ${describeType(value)}`);
    return [...DEFAULT_PROTOCOLS];
  }
  const wanted = new Set<string>();
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (!(EXCHANGE_PROTOCOLS as readonly string[]).includes(name)) {
      problem(
        'protocols',
        `${quoteForMessage(raw.trim())} is not a protocol (one of: ${EXCHANGE_PROTOCOLS.join(', ')})`,
      );
      continue;
    }
    wanted.add(name);
  }
  if (wanted.size === 0) {
    problem('protocols', `name at least one of: ${EXCHANGE_PROTOCOLS.join(', ')}`);
    return [...DEFAULT_PROTOCOLS];
  }
  return EXCHANGE_PROTOCOLS.filter((p) => wanted.has(p));
}

function isMailboxEntry(value: unknown): value is MailboxEntry {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as MailboxEntry).address === 'string' &&
    typeof (value as MailboxEntry).source === 'string'
  );
}

function isGuidLike(value: string): boolean {
  return /^[0-9a-f-]{36}$/i.test(value);
}

function describeType(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the text ${quoteForMessage(value)}`;
  return `${typeof value} ${String(value)}`;
}
