/**
 * What the admin's log says when the mail service refuses the proxy's own
 * login. IMAP replies go through the shared diagnostics table
 * (clients/diagnostics.ts); POP3 replies, which that table does not know,
 * get their counterparts here. The client never sees any of it: it hears
 * `clientReason`, which carries nothing the upstream said.
 */
import { diagnoseImapResponse, replyLine } from '../../clients/diagnostics.js';
import type { ProxyProtocol } from './config.js';

export interface UpstreamDiagnosis {
  /** Stable, for the log and the metric: `IMAP_…` from the table, `POP3_…` from here. */
  code: string;
  /** The server's line, shortened and 7-bit. */
  reply: string;
  fix: string;
  /** What the client is told. */
  clientReason: string;
}

const BUSY = 'The mail service is busy, try again later';
const REFUSED = 'The mail service refused the login';

/**
 * Exchange Online's POP3 refuses an app-only login with a bare `-ERR`
 * (RFC 2449 response codes at best): the causes are the IMAP ones, with
 * POP's own permission and switch.
 */
const POP3_DIAGNOSES: readonly {
  code: string;
  test: RegExp;
  fix: string;
  clientReason: string;
}[] = [
  {
    code: 'POP3_MAILBOX_IN_USE',
    test: /\[IN-USE\]|\bin use\b|\block(ed)?\b/i,
    fix: 'Another POP3 session holds this mailbox (POP3 allows one at a time): stop the other client of the mailbox, or let it finish, then try again.',
    clientReason: BUSY,
  },
  {
    code: 'POP3_THROTTLED',
    test: /\[SYS\/TEMP\]|throttl|try again later|server unavailable/i,
    fix: 'Exchange Online is busy or throttling the app: wait a few minutes, then use fewer POP3 and IMAP sessions per mailbox.',
    clientReason: BUSY,
  },
  {
    code: 'POP3_AUTH_FAILED',
    test: /^-ERR\b/i,
    fix: "Check the token with `mailbridge token` (roles must list POP.AccessAsApp, the application permission of 'Office 365 Exchange Online' with admin consent). Then check the Exchange side as for IMAP (`mailbridge setup exchange`: service principal and FullAccess on the mailbox), and that POP3 is enabled for the mailbox (Get-CASMailbox; Set-CASMailbox -PopEnabled $true).",
    clientReason: REFUSED,
  },
];

/** The diagnosis of the upstream's refusal line, when there is one to read. */
export function diagnoseUpstreamRefusal(
  protocol: ProxyProtocol,
  reply: string,
): UpstreamDiagnosis | undefined {
  if (protocol === 'imap') {
    const diagnosis = diagnoseImapResponse(reply);
    if (!diagnosis) return undefined;
    const clientReason =
      diagnosis.code === 'IMAP_THROTTLED'
        ? BUSY
        : diagnosis.code === 'IMAP_NOT_CONNECTED'
          ? 'The mailbox cannot be opened now'
          : REFUSED;
    return {
      code: diagnosis.code,
      reply: diagnosis.reply ?? replyLine(reply),
      fix: diagnosis.fix,
      clientReason,
    };
  }
  const found = POP3_DIAGNOSES.find((d) => d.test.test(reply));
  return found
    ? {
        code: found.code,
        reply: replyLine(reply),
        fix: found.fix,
        clientReason: found.clientReason,
      }
    : undefined;
}

/** What the client hears when no diagnosis applies: whether the service answered at all. */
export function undiagnosedReason(answered: boolean): string {
  return answered ? REFUSED : 'The mail service cannot be reached';
}
