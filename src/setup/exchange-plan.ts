/**
 * The Exchange setup plan: what `mailbridge setup exchange` was asked to do,
 * checked once. Pure: flags, the config file's `setup.exchange` section and a
 * mailbox list all arrive here as plain values, and every problem is reported
 * in one ConfigurationError, each named by its plan key.
 */
import * as v from 'valibot';
import { CLOUD_NAMES, type CloudName } from '../config/clouds.js';
import {
  ABSENT,
  FIELD,
  isPlainObject,
  mapping,
  parseSection,
  rule,
  sectionMapping,
} from '../config/schema.js';
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
  /** High Volume Email account to create when missing and allow the app on (Add-HVEAppAccess). */
  hveAccount?: string;
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
  /** The HVE account's address. */
  hveAccount?: unknown;
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
  'hveAccount',
] as const;

/**
 * The config file's `setup:` as this command reads it: its `exchange:` keys,
 * unknown ones refused as in every section. The values are checked with the
 * plan, once flags and fallbacks are merged in; other `setup:` sections are
 * not this command's.
 */
const setupSectionSchema = v.nullish(
  mapping(
    {
      exchange: v.nullish(
        sectionMapping(
          Object.fromEntries(EXCHANGE_PLAN_KEYS.map((key) => [key, v.optional(v.unknown())])),
          `${FIELD} must be a mapping of plan values.`,
        ),
      ),
    },
    {
      notMapping: `${FIELD} must be a mapping with an exchange section.`,
      unknownKey: () => undefined,
    },
  ),
);

/** The `setup.exchange` values of a config file, and the problems of its shape. */
export function exchangeSectionOf(settings: Record<string, unknown>): {
  values: Record<string, unknown>;
  problems: ConfigProblem[];
} {
  const { problems } = parseSection(setupSectionSchema, settings.setup, { prefix: 'setup' });
  // The known keys of a section with an unknown one are still read, so that their problems show too.
  const setup = settings.setup;
  const exchange = isPlainObject(setup) ? setup.exchange : undefined;
  return { values: isPlainObject(exchange) ? exchange : {}, problems };
}

/** Nothing given: a missing key, null, or an empty text. */
const isUnset = (value: unknown) =>
  value === ABSENT || value === undefined || value === null || value === '';

/** A required plan value: `what` names it (and its flag) when it is missing. */
const requiredText = (what: string, problemOf: (value: string) => string | undefined) =>
  v.pipe(
    v.unknown(),
    v.check((value) => !isUnset(value), `${what} is required`),
    v.string((issue) => `must be a string, not ${describeType(issue.input)}`),
    v.trim(),
    rule(problemOf),
  );

const flag = v.nullish(
  v.boolean((issue) => `must be true or false, not ${describeType(issue.input)}`),
);

const SCOPE_USAGE =
  'use group:NAME (the members of one group) or mailboxes (exactly the mailboxes given)';

const MAILBOXES_REQUIRED =
  'at least one mailbox is required (--mailbox ADDRESS or --mailboxes FILE)';

/** The plan's values as a schema; the mailbox addresses and the rules between values are checked after. */
export const exchangePlanSchema = mapping(
  {
    tenant: requiredText('the tenant (directory id or verified domain, --tenant)', tenantProblem),
    appId: requiredText('the application (client) id (--app-id)', guidProblem),
    objectId: requiredText(
      "the Enterprise Application's (service principal's) object id (--object-id)",
      guidProblem,
    ),
    displayName: v.nullish(
      v.pipe(
        v.string((issue) => `must be a string, not ${describeType(issue.input)}`),
        rule(displayNameProblem),
      ),
    ),
    mailboxes: v.pipe(
      v.unknown(),
      v.check(
        (value) => !isUnset(value) && !(Array.isArray(value) && value.length === 0),
        MAILBOXES_REQUIRED,
      ),
      v.array(
        v.pipe(
          v.unknown(),
          v.rawTransform<unknown, MailboxEntry>(({ dataset, addIssue, NEVER }) => {
            const item = dataset.value;
            const entry =
              typeof item === 'string'
                ? { address: item.trim(), source: '' }
                : isMailboxEntry(item)
                  ? { address: item.address.trim(), source: item.source }
                  : undefined;
            const why = entry
              ? smtpAddressProblem(entry.address)
              : `must be an address, not ${describeType(item)}`;
            if (why === undefined && entry) return entry;
            addIssue({ message: why ?? '' });
            return NEVER;
          }),
        ),
        (issue) => `must be a list of addresses, not ${describeType(issue.input)}`,
      ),
    ),
    protocols: v.nullish(
      v.pipe(
        v.union(
          [
            v.pipe(
              v.string(),
              v.transform((list) => list.split(',')),
            ),
            v.array(v.string()),
          ],
          (issue) => `must be a list such as imap,smtp, not ${describeType(issue.input)}`,
        ),
        v.rawTransform<string[], ExchangeProtocol[]>(({ dataset, addIssue, NEVER }) => {
          const wanted = new Set<string>();
          for (const raw of dataset.value) {
            const name = raw.trim().toLowerCase();
            if (name === '') continue;
            if ((EXCHANGE_PROTOCOLS as readonly string[]).includes(name)) wanted.add(name);
            else {
              addIssue({
                message: `${quoteForMessage(raw.trim())} is not a protocol (one of: ${EXCHANGE_PROTOCOLS.join(', ')})`,
              });
            }
          }
          if (wanted.size === 0 && !dataset.issues) {
            addIssue({ message: `name at least one of: ${EXCHANGE_PROTOCOLS.join(', ')}` });
          }
          return dataset.issues ? NEVER : EXCHANGE_PROTOCOLS.filter((p) => wanted.has(p));
        }),
      ),
    ),
    cloud: v.nullish(
      v.union(
        [v.literal(''), v.picklist(CLOUD_NAMES)],
        (issue) =>
          `${typeof issue.input === 'string' ? quoteForMessage(issue.input) : describeType(issue.input)} is not a cloud (one of: ${CLOUD_NAMES.join(', ')})`,
      ),
    ),
    sendAs: flag,
    enableProtocols: flag,
    remove: flag,
    smtpScope: v.nullish(
      v.pipe(
        v.string((issue) => `must be a string, not ${describeType(issue.input)}: ${SCOPE_USAGE}`),
        v.rawTransform<string, SmtpScope | undefined>(({ dataset, addIssue, NEVER }) => {
          const value = dataset.value;
          if (value === '') return undefined;
          if (value.trim().toLowerCase() === 'mailboxes') return { kind: 'mailboxes' };
          const group = /^group:(.*)$/is.exec(value.trimStart())?.[1];
          const why =
            group === undefined
              ? `${quoteForMessage(value)} is not a scope: ${SCOPE_USAGE}`
              : printableNameProblem(group, 'the group name');
          if (why === undefined && group !== undefined) return { kind: 'group', group };
          addIssue({ message: why ?? '' });
          return NEVER;
        }),
      ),
    ),
    hveAccount: v.nullish(
      v.pipe(
        v.string((issue) => `must be an address, not ${describeType(issue.input)}`),
        v.trim(),
        rule((value: string) => (value === '' ? undefined : smtpAddressProblem(value))),
      ),
    ),
  },
  {
    notMapping: 'the plan must be a mapping of values',
    unknownKey: (_key, near) =>
      `unknown key${near ? ` (did you mean ${near}?)` : ''} (known: ${EXCHANGE_PLAN_KEYS.join(', ')})`,
  },
);

/** @throws ConfigurationError `SETUP_PLAN_INVALID` listing every problem */
export function parseExchangePlan(input: ExchangePlanInput): ExchangePlan {
  const parsed = parseSection(exchangePlanSchema, input);
  // An address from a list file or a flag is named by where it came from.
  const listed = Array.isArray(input.mailboxes) ? input.mailboxes : [];
  const problems: ConfigProblem[] = parsed.problems.map((p) => {
    const index = /^mailboxes\[(\d+)\]$/.exec(p.field)?.[1];
    const entry = index === undefined ? undefined : listed[Number(index)];
    return isMailboxEntry(entry) ? { ...p, field: entry.source } : p;
  });
  const problem = (field: string, message: string) => problems.push({ field, message });
  const valid = (field: string) => parsed.ok || !parsed.invalid(field);
  const plan = parsed.value as Partial<v.InferOutput<typeof exchangePlanSchema>>;

  const tenant = valid('tenant') ? plan.tenant : undefined;
  const appId = valid('appId') ? plan.appId : undefined;
  const objectId = valid('objectId') ? plan.objectId : undefined;
  if (appId && objectId && appId.toLowerCase() === objectId.toLowerCase()) {
    problem(
      'objectId',
      "it equals the application id: give the object id shown on the Enterprise Application's overview page (Entra ID > Enterprise applications), not the application id",
    );
  }

  const entries: MailboxEntry[] = [];
  (Array.isArray(plan.mailboxes) ? plan.mailboxes : []).forEach((entry, index) => {
    if (valid(`mailboxes[${index}]`) && isMailboxEntry(entry)) {
      entries.push({ address: entry.address, source: entry.source || `mailboxes[${index}]` });
    }
  });
  const mailboxes = dedupeMailboxes(entries).map((e) => e.address);

  const protocols = (valid('protocols') && plan.protocols) || [...DEFAULT_PROTOCOLS];
  const sendAs = (valid('sendAs') && plan.sendAs) || false;
  if (sendAs && !protocols.includes('smtp')) {
    problem('sendAs', 'SendAs is for sending over SMTP: add smtp to the protocols');
  }
  const smtpScope = (valid('smtpScope') && plan.smtpScope) || undefined;
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
    displayName: plan.displayName ?? DEFAULT_DISPLAY_NAME,
    mailboxes,
    protocols,
    sendAs,
    enableProtocols: plan.enableProtocols ?? false,
    cloud: plan.cloud || 'global',
    remove: plan.remove ?? false,
    ...(smtpScope ? { smtpScope } : {}),
    ...(valid('hveAccount') && plan.hveAccount ? { hveAccount: plan.hveAccount } : {}),
  };
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
