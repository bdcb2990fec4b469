/**
 * The bounce sent to an envelope sender when a message ends in `dead/`
 * (only with `relay.bounce: true`): a delivery status notification
 * (RFC 3464, multipart/report) with the original header section, not the
 * body. Pure: the relay queues the bytes like any other message.
 */
import { randomBytes } from 'node:crypto';
import { asciiText } from '../../util/display-text.js';

export interface BounceInput {
  /** The relay's host name (Reporting-MTA, Message-ID). */
  hostname: string;
  /** Address the bounce comes from: the mailbox that sends it. */
  from: string;
  /** The original envelope sender. */
  to: string;
  originalMessageId: string;
  receivedAt: string;
  recipients: string[];
  /** Why, including the server's reply. */
  reason: string;
  /** SMTP reply code of the last failure, if any. */
  responseCode?: number;
  /** The original header section, as received. */
  headers: string;
  now?: Date;
}

/** Whether a message must not be bounced: the null sender, or one that is itself automatic. */
export function mustNotBounce(sender: string, headers: string): boolean {
  if (sender.trim() === '') return true;
  const unfolded = headers.replace(/\r?\n[ \t]+/g, ' ');
  const auto = /^auto-submitted:\s*([^\r\n;]+)/im.exec(unfolded)?.[1]?.trim().toLowerCase();
  return auto !== undefined && auto !== 'no';
}

export function buildBounce(input: BounceInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `=_mailbridge_${randomBytes(12).toString('hex')}`;
  const enhanced = /\b([45]\.\d{1,3}\.\d{1,3})\b/.exec(input.reason)?.[1];
  const status =
    enhanced ?? (input.responseCode !== undefined && input.responseCode < 500 ? '4.4.7' : '5.0.0');
  // The report is 7-bit (charset=us-ascii), and the reason quotes a server's reply.
  const ascii = (text: string) => asciiText(text, Number.POSITIVE_INFINITY);
  const wrap = (text: string) =>
    ascii(text)
      .replace(/(.{1,76})(\s+|$)/g, '$1\r\n')
      .trimEnd();
  const lines = [
    `From: Mail Delivery System <${input.from}>`,
    `To: <${input.to}>`,
    'Subject: Undelivered Mail Returned to Sender',
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <bounce.${randomBytes(8).toString('hex')}@${input.hostname}>`,
    `In-Reply-To: ${input.originalMessageId}`,
    `References: ${input.originalMessageId}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is the mail relay at ${input.hostname}.`,
    '',
    `Your message ${ascii(input.originalMessageId)}, received at ${input.receivedAt},`,
    'could not be delivered to:',
    '',
    ...input.recipients.map((r) => `  <${ascii(r)}>`),
    '',
    'Reason:',
    wrap(input.reason),
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${input.hostname}`,
    `Arrival-Date: ${new Date(input.receivedAt).toUTCString().replace('GMT', '+0000')}`,
    '',
    ...input.recipients.flatMap((r, i) => [
      ...(i > 0 ? [''] : []),
      `Final-Recipient: rfc822; ${ascii(r)}`,
      'Action: failed',
      `Status: ${status}`,
      `Diagnostic-Code: smtp; ${ascii(input.reason).slice(0, 900)}`,
    ]),
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    input.headers.replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, ''),
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'latin1');
}
