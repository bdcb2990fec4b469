/**
 * `relay.routes.hve`: High Volume Email, Exchange Online's submission service
 * for internal bulk and application mail. It takes the app's token (Exchange
 * Online `Mail.Send`, the app in the HVE account's allowed apps) for one HVE
 * account, refuses external recipients (`550 5.5.105`), and has no 30
 * messages/minute window; its own limits per message are enforced before
 * sending (route.ts).
 */
import * as v from 'valibot';
import {
  count,
  duration,
  FIELD,
  parsedBy,
  rule,
  sectionMapping,
  whenAbsent,
} from '../../config/schema.js';
import { parseSize } from './size.js';

/** Microsoft's endpoint since 2025; `smtp-hve.office365.com` is being retired. */
export const HVE_HOST = 'smtp.hve.mx.microsoft';
export const HVE_PORT = 587;
/**
 * HVE's recipients per message (To, Cc and Bcc together) and message size, as
 * published for the service; a message beyond them is refused by HVE, so the
 * relay splits the recipients or uses the mailbox route instead.
 */
export const HVE_MAX_RECIPIENTS = 50;
export const HVE_MAX_MESSAGE_SIZE = 10 * 1024 * 1024;
/**
 * HVE refuses a token about to expire (`535 5.7.142`) and wants 10 to 20
 * minutes of life left: tokens for the relay are renewed this long before
 * they expire when an HVE route is configured.
 */
export const HVE_TOKEN_REFRESH_MARGIN_MS = 20 * 60_000;
/** The token provider's own margin: a route never makes the relay's token renewal later. */
const MIN_TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** Beyond this, a token of an hour (Entra's shortest) would be renewed at once. */
const MAX_TOKEN_REFRESH_MARGIN_MS = 30 * 60_000;

export interface HveRoute {
  /** The HVE account (a mail user), signed in as with the app's token and used as MAIL FROM. */
  account: string;
  /** @default smtp.hve.mx.microsoft */
  host: string;
  /** @default 587 (STARTTLS) */
  port: number;
  /** Recipient domains that count as internal, lower case; recipients elsewhere take the mailbox route. */
  internalDomains: string[];
  /** Recipients per HVE submission; more are sent in several. @default 50 */
  maxRecipients: number;
  /** Bytes; a larger message takes the mailbox route. @default 10 MiB */
  maxMessageSize: number;
  /** A token is renewed when it has less life than this left. @default 20 min */
  tokenRefreshMarginMs: number;
}

const ADDRESS = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+$/;
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$/i;
const ACCOUNT_REQUIRED = `${FIELD} is required: the address of the HVE account mail is sent as (New-MailUser -HVEAccount; see \`mailbridge setup exchange --hve-account\`).`;
const ACCOUNT_MESSAGE = `${FIELD} must be the address of an HVE account, e.g. notifications@contoso.com.`;
const DOMAINS_MESSAGE = `${FIELD} must list the recipient domains that count as internal (the tenant's accepted domains), e.g. [contoso.com].`;

const domain = parsedBy(
  (input) => {
    if (typeof input !== 'string') return undefined;
    const name = input.trim().replace(/^@/, '').toLowerCase();
    return DOMAIN.test(name) ? name : undefined;
  },
  // Not quoted: an entry that is no domain could be anything pasted there.
  'this entry is not a domain name such as contoso.com.',
);

const size = parsedBy(parseSize, `${FIELD} must be a size such as 10MB or a number of bytes.`);

export const hveRouteSchema = v.pipe(
  sectionMapping(
    {
      account: v.pipe(
        v.string(whenAbsent(ACCOUNT_REQUIRED, ACCOUNT_MESSAGE)),
        v.trim(),
        v.regex(ADDRESS, ACCOUNT_MESSAGE),
        v.toLowerCase(),
      ),
      host: v.optional(
        v.pipe(
          v.string(`${FIELD} must be a host name.`),
          v.regex(/^[a-z0-9.-]{1,253}$/i, `${FIELD} must be a host name.`),
        ),
      ),
      port: v.optional(count(1, 65535)),
      internalDomains: v.pipe(
        v.array(domain, whenAbsent(DOMAINS_MESSAGE, DOMAINS_MESSAGE)),
        v.nonEmpty(DOMAINS_MESSAGE),
      ),
      maxRecipients: v.optional(count(1, 1000)),
      maxMessageSize: v.optional(size),
      tokenRefreshMargin: v.optional(
        v.pipe(
          duration,
          rule((ms: number) =>
            ms < MIN_TOKEN_REFRESH_MARGIN_MS || ms > MAX_TOKEN_REFRESH_MARGIN_MS
              ? `${FIELD} must be from 5m to 30m (HVE wants tokens with 10 to 20 minutes left).`
              : undefined,
          ),
        ),
      ),
    },
    `${FIELD} must be a mapping: { account, internalDomains: [...] }.`,
  ),
  v.transform(
    (route): HveRoute => ({
      account: route.account,
      host: route.host ?? HVE_HOST,
      port: route.port ?? HVE_PORT,
      internalDomains: [...new Set(route.internalDomains)],
      maxRecipients: route.maxRecipients ?? HVE_MAX_RECIPIENTS,
      maxMessageSize: route.maxMessageSize ?? HVE_MAX_MESSAGE_SIZE,
      tokenRefreshMarginMs: route.tokenRefreshMargin ?? HVE_TOKEN_REFRESH_MARGIN_MS,
    }),
  ),
);

/**
 * The refresh margin of the relay's one token source: the largest any route
 * asks for. The token is app-wide, so renewing it earlier for HVE costs one
 * token request every 40 to 70 minutes instead of every 55 to 85; the token
 * provider's default margin applies when no route asks for more.
 */
export function tokenRefreshMarginMs(routes: { hve?: HveRoute }): number | undefined {
  return routes.hve?.tokenRefreshMarginMs;
}
