/**
 * Start-up checks of `relay.policy`: each user it names must be in the users
 * file; each address must be a syntactically valid mailbox address (RFC 5321
 * §4.1.2: a dot-atom local part of at most 64 octets, a host name, 254 in
 * all; non-ASCII letters allowed as RFC 6531 does); and each mailbox mail
 * goes out as should have worked at least once.
 *
 * "Seen to work" means: the spool's delivery records (delivered.jsonl and
 * its rotated predecessor) hold a delivery as that mailbox, i.e. Exchange
 * accepted a message that logged in as it. A mailbox without one is not an
 * error (a new relay has no records), only worth a warning: a typo or a
 * mailbox without permission otherwise shows first as a dead letter.
 */
import { readFile } from 'node:fs/promises';
import type { ConfigProblem } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { asciiText } from '../../util/display-text.js';
import { throwSectionProblems } from '../listener/config-problems.js';
import type { PolicyRule, RelaySettings } from './config.js';
import type { UserStore } from './users.js';

const ATOM = "[\\p{L}\\p{N}!#$%&'*+/=?^_`{|}~-]+";
const LOCAL_PART = new RegExp(`^${ATOM}(?:\\.${ATOM})*$`, 'u');
const LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

/** Whether `address` is a mailbox address a server can accept in MAIL FROM. */
export function isValidMailboxAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0 || address.length > 254) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  return (
    Buffer.byteLength(local) <= 64 &&
    LOCAL_PART.test(local) &&
    domain.split('.').every((label) => LABEL.test(label))
  );
}

/** The addresses a rule names: its explicit senders and its mailbox, with their keys. */
function namedAddresses(rule: PolicyRule): { field: string; address: string; sendsAs: string }[] {
  const field = `relay.policy[${rule.index}]`;
  const senders = rule.senders.flatMap((pattern, i) =>
    pattern.kind === 'address'
      ? [
          {
            field: `${field}.senders[${i}]`,
            address: pattern.address,
            sendsAs: rule.mailbox ?? pattern.address,
          },
        ]
      : [],
  );
  return rule.mailbox
    ? [...senders, { field: `${field}.mailbox`, address: rule.mailbox, sendsAs: rule.mailbox }]
    : senders;
}

/** @throws ConfigurationError `RELAY_CONFIG_INVALID` naming each invalid address */
export function checkPolicyAddresses(policy: readonly PolicyRule[]): void {
  const problems: ConfigProblem[] = policy
    .flatMap(namedAddresses)
    .filter((named) => !isValidMailboxAddress(named.address))
    .map((named) => ({
      field: named.field,
      message: `'${asciiText(named.address, 80)}' is not a valid mail address (local@domain, no spaces, quotes or empty dot-separated parts).`,
    }));
  throwSectionProblems(
    'relay',
    'RELAY_CONFIG_INVALID',
    problems,
    'Correct the addresses in relay.policy.',
  );
}

/** @throws ConfigurationError `RELAY_CONFIG_INVALID` for each rule naming a user the users file lacks */
export async function checkPolicyUsers(settings: RelaySettings, users: UserStore): Promise<void> {
  const known = new Set(await users.names());
  const problems = settings.policy
    .filter((rule) => rule.user !== undefined && !known.has(rule.user))
    .map((rule) => ({
      field: `relay.policy[${rule.index}].user`,
      message: `user '${rule.user}' is not in the users file ${settings.users}.`,
    }));
  throwSectionProblems(
    'relay',
    'RELAY_CONFIG_INVALID',
    problems,
    'Add the user with `mailbridge relay hash-password --user NAME >> USERS_FILE`, or fix the rule.',
  );
}

/**
 * The mailboxes the policy sends as that have no delivery record in the
 * spool, sorted. Rules without explicit addresses (`*@domain`, `*`) name no
 * mailbox in advance and are not checked.
 */
export async function mailboxesNeverSeenWorking(
  policy: readonly PolicyRule[],
  deliveredPath: string,
): Promise<string[]> {
  const wanted = new Set(policy.flatMap(namedAddresses).map((named) => named.sendsAs));
  for (const path of [deliveredPath, `${deliveredPath}.1`]) {
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (wanted.size === 0) break;
      const mailbox = mailboxOf(line);
      if (mailbox) wanted.delete(mailbox.toLowerCase());
    }
  }
  return [...wanted].sort();
}

function mailboxOf(line: string): string | undefined {
  if (!line) return undefined;
  try {
    const record = JSON.parse(line) as { mailbox?: unknown };
    return typeof record.mailbox === 'string' ? record.mailbox : undefined;
  } catch {
    return undefined; // a line cut short by a crash
  }
}

/** Logs one warning naming the mailboxes never seen to work, if any. */
export async function warnUnprovenMailboxes(
  policy: readonly PolicyRule[],
  deliveredPath: string,
  logger: Logger,
): Promise<void> {
  const unproven = await mailboxesNeverSeenWorking(policy, deliveredPath);
  if (unproven.length === 0) return;
  logger.log('warn', 'policy mailboxes never seen to work', {
    event: 'mailboxes-unproven',
    count: unproven.length,
    mailboxes: unproven.join(' '),
    remedy:
      'No delivery as these mailboxes is on record in this spool: check each with `mailbridge doctor --mailbox ADDRESS --smtp`.',
  });
}
