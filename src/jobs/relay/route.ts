/**
 * Which upstream each recipient of a queued message goes through. Pure, and
 * worked out again from the settings on every attempt, so that a message
 * queued before the config changed follows the config of the relay that
 * delivers it.
 *
 * Without an HVE route everything goes as before: one part, through the
 * mailbox the policy chose. With one, the internal recipients go through HVE
 * (MAIL FROM the HVE account, as HVE requires: `5.7.62` otherwise), in parts of
 * at most `maxRecipients`; the others through the mailbox. A message larger
 * than HVE takes goes through the mailbox whole, with the reason said.
 */
import type { HveRoute } from './route-config.js';
import type { SpoolEnvelope } from './spool.js';

export interface RoutePart {
  route: 'mailbox' | 'hve';
  /** What the part is scheduled and pooled by: the mailbox, or `hve:` and the HVE account. */
  key: string;
  /** Who signs in upstream. */
  account: string;
  /** Envelope sender upstream. */
  from: string;
  to: string[];
  /** Why internal recipients take the mailbox route, when they do. */
  fallback?: string;
}

type Routed = Pick<SpoolEnvelope, 'from' | 'to' | 'mailbox' | 'size'>;

export interface RecipientRouter {
  /**
   * The parts in the order they are sent: that of the first recipient's
   * route first. The worker puts a part that failed for now behind the
   * others, so that they do not wait out its retry.
   */
  parts(envelope: Routed): RoutePart[];
  /** The key the message is scheduled by: that of its first part. */
  key(envelope: Routed): string;
}

export function createRecipientRouter(hve: HveRoute | undefined): RecipientRouter {
  const parts = (envelope: Routed): RoutePart[] => {
    const mailboxPart = (to: string[], fallback?: string): RoutePart => ({
      route: 'mailbox',
      key: envelope.mailbox,
      account: envelope.mailbox,
      from: envelope.from,
      to,
      ...(fallback ? { fallback } : {}),
    });
    if (!hve) return [mailboxPart(envelope.to)];
    const internal = envelope.to.filter((address) => isInternal(address, hve.internalDomains));
    if (internal.length === 0) return [mailboxPart(envelope.to)];
    if (envelope.size > hve.maxMessageSize) {
      return [
        mailboxPart(
          envelope.to,
          `the message (${envelope.size} bytes) is larger than High Volume Email takes (relay.routes.hve.maxMessageSize, ${hve.maxMessageSize} bytes)`,
        ),
      ];
    }
    const external = envelope.to.filter((address) => !isInternal(address, hve.internalDomains));
    const hveParts: RoutePart[] = [];
    for (let i = 0; i < internal.length; i += hve.maxRecipients) {
      hveParts.push({
        route: 'hve',
        key: hveKey(hve),
        account: hve.account,
        from: hve.account,
        to: internal.slice(i, i + hve.maxRecipients),
      });
    }
    if (external.length === 0) return hveParts;
    const mailbox = mailboxPart(external);
    return internal[0] === envelope.to[0] ? [...hveParts, mailbox] : [mailbox, ...hveParts];
  };
  return {
    parts,
    key: (envelope) => (parts(envelope)[0] as RoutePart).key,
  };
}

export function hveKey(hve: Pick<HveRoute, 'account'>): string {
  return `hve:${hve.account}`;
}

/** Whether the address's domain is one of `domains` (lower case), compared without case. */
export function isInternal(address: string, domains: readonly string[]): boolean {
  const at = address.lastIndexOf('@');
  if (at === -1) return false;
  return domains.includes(address.slice(at + 1).toLowerCase());
}
