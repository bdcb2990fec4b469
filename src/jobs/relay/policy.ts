/**
 * Who may relay, with which envelope senders, and as which Microsoft 365
 * mailbox. Pure decisions over the validated settings; the SMTP server turns
 * them into replies.
 *
 * An authenticated session is judged by the rules naming its user only; an
 * unauthenticated one by the rules whose network holds its address. The first
 * rule whose sender pattern matches wins, so specific rules go first.
 */

import { asciiText } from '../../util/display-text.js';
import { anyCidrContains, type Cidr, cidrContains } from '../listener/cidr.js';

export interface PolicyRule {
  /** Position in `relay.policy`, for messages. */
  index: number;
  /** A local account (from the users file) this rule applies to… */
  user?: string;
  /** …or the network an unauthenticated client comes from. */
  network?: Cidr;
  /** Envelope senders allowed: `a@b`, `*@b`, `*` or `<>` (the null sender). */
  senders: SenderPattern[];
  /** The Microsoft 365 mailbox the app signs in as; absent: the envelope sender itself. */
  mailbox?: string;
}

export type SenderPattern =
  | { kind: 'address'; address: string; text: string }
  | { kind: 'domain'; domain: string; text: string }
  | { kind: 'any'; text: string }
  | { kind: 'null'; text: string };

/** `a@contoso.com`, `*@contoso.com`, `*` (any non-null sender) or `<>` (the null sender). */
export function parseSenderPattern(input: string): SenderPattern | undefined {
  const text = input.trim();
  if (text === '*') return { kind: 'any', text };
  if (text === '<>') return { kind: 'null', text };
  const domain =
    /^\*@([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)$/i.exec(text);
  if (domain) return { kind: 'domain', domain: (domain[1] as string).toLowerCase(), text };
  if (/^[^\s@<>()[\]\\,;:"*]+@[^\s@<>()[\]\\,;:"*]+$/.test(text)) {
    return { kind: 'address', address: text.toLowerCase(), text };
  }
  return undefined;
}

/** Whether an envelope sender (`''` for the null sender) fits the pattern. Case-insensitive. */
export function senderMatches(pattern: SenderPattern, sender: string): boolean {
  const address = sender.trim().toLowerCase();
  switch (pattern.kind) {
    case 'null':
      return address === '';
    case 'any':
      return address !== '';
    case 'address':
      return address === pattern.address;
    case 'domain':
      return (
        address.endsWith(`@${pattern.domain}`) && address.indexOf('@') === address.lastIndexOf('@')
      );
  }
}

export interface ClientIdentity {
  /** The local account, once AUTH succeeded. */
  user?: string;
  remoteAddress: string;
}

export type SenderDecision =
  | { ok: true; mailbox: string; rule: number }
  | { ok: false; responseCode: number; message: string };

/**
 * Whether `identity` may use envelope sender `sender`, and the mailbox the
 * message goes out as. A refusal carries the SMTP reply (enhanced code first)
 * and a reason fit for the client: it names the sender and the account, not
 * the rules.
 */
export function decideSender(
  policy: readonly PolicyRule[],
  identity: ClientIdentity,
  sender: string,
): SenderDecision {
  const rules = policy.filter((rule) =>
    identity.user !== undefined
      ? rule.user === identity.user
      : rule.network !== undefined && cidrContains(rule.network, identity.remoteAddress),
  );
  const who =
    identity.user !== undefined
      ? `user ${identity.user}`
      : `clients from ${identity.remoteAddress}`;
  const shownSender = sender === '' ? '<>' : `<${asciiText(sender, 254)}>`;
  if (rules.length === 0) {
    return {
      ok: false,
      responseCode: 550,
      message: `5.7.1 Relaying denied: no relay policy covers ${who}`,
    };
  }
  for (const rule of rules) {
    const pattern = rule.senders.find((p) => senderMatches(p, sender));
    if (!pattern) continue;
    return { ok: true, mailbox: rule.mailbox ?? sender.trim().toLowerCase(), rule: rule.index };
  }
  return {
    ok: false,
    responseCode: 550,
    message: `5.7.1 Sender ${shownSender} is not permitted for ${who} by the relay policy`,
  };
}

export type Admission =
  /** The network is allowed: may send without AUTH (and may still authenticate). */
  | 'network'
  /** Must authenticate before MAIL FROM. */
  | 'authenticate'
  /** Can neither: refused at connection. */
  | 'refuse';

/** What a new connection from `remoteAddress` may do. */
export function admitClient(
  allowNetworks: readonly Cidr[],
  authAvailable: boolean,
  remoteAddress: string,
): Admission {
  if (anyCidrContains(allowNetworks, remoteAddress)) return 'network';
  return authAvailable ? 'authenticate' : 'refuse';
}
