import { describe, expect, it } from 'vitest';
import { smtpErrorToMailbridge } from '../../../src/clients/smtp-transport.js';
import { AuthenticationError, NetworkError } from '../../../src/errors.js';
import {
  classifyDeliveryError,
  nextStep,
  retryDelay,
  senderLoginRefused,
  spoolErrorDelay,
} from '../../../src/jobs/relay/backoff.js';
import { expiredMessages, planDeliveries } from '../../../src/jobs/relay/schedule.js';

/** A nodemailer error as the transport maps it (our error with nodemailer's as cause). */
function smtpError(
  code: string,
  responseCode: number | undefined,
  response: string,
  command = 'DATA',
) {
  const raw = Object.assign(new Error(response), {
    code,
    command,
    ...(responseCode !== undefined ? { responseCode, response } : {}),
  });
  return smtpErrorToMailbridge(raw, 'smtp.office365.com:587', 'scans@contoso.com');
}

describe('retryDelay', () => {
  const options = { initialMs: 60_000, maxMs: 3_600_000, jitter: 0 };
  it('doubles from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 7, 8, 50].map((n) => retryDelay(n, options))).toEqual([
      60_000, 120_000, 240_000, 480_000, 3_600_000, 3_600_000, 3_600_000,
    ]);
  });
  it('spreads by the jitter and never exceeds the cap', () => {
    const j = { ...options, jitter: 0.2 };
    expect(retryDelay(1, j, () => 0)).toBe(48_000);
    expect(retryDelay(1, j, () => 0.999999)).toBe(72_000);
    expect(retryDelay(10, j, () => 0.999999)).toBe(3_600_000);
  });
});

describe('spoolErrorDelay', () => {
  it('waits a second after the first spool error, doubling up to 30 s', () => {
    const none = () => 0.5;
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => spoolErrorDelay(n, none))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
    expect(spoolErrorDelay(1, () => 0)).toBe(800);
    expect(spoolErrorDelay(9, () => 0.999999)).toBe(30_000);
  });
});

describe('classifyDeliveryError', () => {
  it('retries 4xx replies, with the diagnosis code', () => {
    expect(
      classifyDeliveryError(
        smtpError(
          'EMESSAGE',
          432,
          '432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending',
        ),
      ),
    ).toMatchObject({
      kind: 'temporary',
      scope: 'mailbox',
      code: 'SMTP_CONCURRENCY_LIMIT',
      responseCode: 432,
    });
    expect(
      classifyDeliveryError(smtpError('EMESSAGE', 451, '451 4.3.0 Temporary server error')),
    ).toMatchObject({
      kind: 'temporary',
      scope: 'message',
      code: 'SMTP_TEMPORARY_FAILURE',
    });
  });

  it('gives up on 5xx replies, naming the diagnosis', () => {
    expect(
      classifyDeliveryError(
        smtpError(
          'EENVELOPE',
          550,
          '550 5.7.60 SMTP; Client does not have permissions to send as this sender',
          'MAIL FROM',
        ),
      ),
    ).toMatchObject({ kind: 'permanent', code: 'SMTP_SEND_AS_NOT_PERMITTED', responseCode: 550 });
    expect(
      classifyDeliveryError(
        smtpError(
          'EENVELOPE',
          553,
          '553 5.7.1 <a@b>: Sender address rejected: not owned by user x',
          'MAIL FROM',
        ),
      ),
    ).toMatchObject({
      kind: 'permanent',
      code: 'SMTP_PERMANENT_FAILURE',
      reply: expect.stringContaining('not owned by user'),
    });
  });

  it('retries a refused login (soft bounce) and the daily quota, for the whole mailbox', () => {
    expect(
      classifyDeliveryError(
        smtpError('EAUTH', 535, '535 5.7.3 Authentication unsuccessful [AM0PR]', 'AUTH XOAUTH2'),
      ),
    ).toMatchObject({ kind: 'temporary', scope: 'mailbox', code: 'SMTP_AUTH_FAILED' });
    expect(
      classifyDeliveryError(
        smtpError(
          'EMESSAGE',
          554,
          '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message',
        ),
      ),
    ).toMatchObject({
      kind: 'temporary',
      scope: 'mailbox',
      code: 'SMTP_DAILY_QUOTA_EXCEEDED',
      minDelayMs: 3_600_000,
    });
  });

  it('retries network failures and token endpoint failures', () => {
    expect(
      classifyDeliveryError(smtpError('ECONNECTION', undefined, 'connect ECONNREFUSED', 'CONN')),
    ).toMatchObject({
      kind: 'temporary',
      scope: 'mailbox',
      code: 'SMTP_UNREACHABLE',
    });
    expect(
      classifyDeliveryError(
        new NetworkError({ code: 'AUTHORITY_UNREACHABLE', message: 'x', remedy: 'y' }),
      ),
    ).toMatchObject({ kind: 'temporary', scope: 'mailbox', code: 'AUTHORITY_UNREACHABLE' });
  });

  it('keeps our code for a token error nodemailer relabelled EAUTH', () => {
    const refused = new AuthenticationError({
      code: 'SECRET_INVALID',
      message: 'Entra ID refused the client secret',
      remedy: 'Create a new secret.',
    });
    // What nodemailer's _formatError does to an error from the provision callback.
    Object.assign(refused, { originalCode: refused.code, code: 'EAUTH', command: 'AUTH XOAUTH2' });
    const failure = classifyDeliveryError(smtpErrorToMailbridge(refused, 'h:587', 'a@b.example'));
    expect(failure).toMatchObject({ kind: 'temporary', scope: 'mailbox', code: 'SECRET_INVALID' });
    expect(failure.login).toBeUndefined();
  });

  it('marks a refused login, which a sender signing in as itself cannot get past', () => {
    const failure = classifyDeliveryError(
      smtpError('EAUTH', 535, '535 5.7.8 Error: authentication failed', 'AUTH XOAUTH2'),
    );
    expect(failure).toMatchObject({ login: true, kind: 'temporary', code: 'SMTP_AUTH_FAILED' });
    expect(senderLoginRefused(failure, 'ghost\u001b[2J@contoso.example')).toMatchObject({
      kind: 'permanent',
      scope: 'message',
      reply:
        '535 5.7.8 Error: authentication failed (the sender <ghost?[2J@contoso.example> is the mailbox; its login was refused with a fresh token: no such mailbox, or the app has no permission for it)',
    });
  });

  it('keeps Exchange diagnostic blobs and control characters out of the reply', () => {
    const failure = classifyDeliveryError(
      smtpError(
        'EMESSAGE',
        550,
        '550 5.7.708 Service unavailable\r\n[BeginDiagnosticData]secret-ish[EndDiagnosticData]',
      ),
    );
    expect(failure.reply).toBe('550 5.7.708 Service unavailable');
  });
});

describe('nextStep', () => {
  const options = { initialMs: 1000, maxMs: 8000, jitter: 0, retryForMs: 60_000 };
  const temporary = { kind: 'temporary', scope: 'message', code: 'X', reply: 'r' } as const;
  it('retries until the window closes, then gives up with the last failure', () => {
    expect(nextStep(temporary, { failures: 1, since: 0 }, 0, options)).toEqual({
      action: 'retry',
      at: 1000,
      delayMs: 1000,
    });
    const dead = nextStep(temporary, { failures: 9, since: 0 }, 55_000, options);
    expect(dead).toEqual({
      action: 'dead',
      reason: 'gave up after 55 s and 9 attempt(s); last failure X: r',
    });
  });
  it('sends permanent failures to dead at once', () => {
    expect(
      nextStep({ ...temporary, kind: 'permanent' }, { failures: 1, since: 0 }, 0, options),
    ).toEqual({
      action: 'dead',
      reason: 'permanent failure X: r',
    });
  });
});

describe('planDeliveries', () => {
  const msg = (id: string, mailbox: string, nextAttemptAt = 0) => ({ id, mailbox, nextAttemptAt });
  it('keeps to the connections per mailbox, oldest first', () => {
    const plan = planDeliveries({
      now: 100,
      messages: [
        msg('c', 'a@x', 50),
        msg('a', 'a@x', 10),
        msg('b', 'a@x', 10),
        msg('d', 'b@x'),
        msg('e', 'b@x', 500),
      ],
      inFlight: new Set(),
      inFlightByMailbox: new Map([['b@x', 2]]),
      health: new Map(),
      maxPerMailbox: 2,
    });
    expect(plan).toEqual({ start: ['a', 'b'], wakeAt: 500 });
  });

  it('picks the earliest due of a long backlog in order, whatever the queue order', () => {
    // 200 messages due at 199..0 (ids with ties), 3 connections, one busy, another mailbox full.
    const messages = Array.from({ length: 200 }, (_, i) =>
      msg(`m${String(i).padStart(3, '0')}`, 'a@x', Math.floor((199 - i) / 2)),
    );
    messages.splice(50, 0, msg('other', 'b@x'), msg('busy', 'a@x', 0));
    const plan = planDeliveries({
      now: 1000,
      messages,
      inFlight: new Set(['busy', 'm199']),
      inFlightByMailbox: new Map([
        ['a@x', 1],
        ['b@x', 3],
      ]),
      health: new Map(),
      maxPerMailbox: 3,
    });
    expect(plan).toEqual({ start: ['m198', 'm196'] });
  });

  it('pauses a failing mailbox, then probes it with one delivery', () => {
    const messages = [msg('a', 'a@x'), msg('b', 'a@x')];
    const base = {
      messages,
      inFlight: new Set<string>(),
      inFlightByMailbox: new Map(),
      maxPerMailbox: 2,
    };
    expect(
      planDeliveries({
        ...base,
        now: 100,
        health: new Map([['a@x', { failures: 1, pausedUntil: 200 }]]),
      }),
    ).toEqual({
      start: [],
      wakeAt: 200,
    });
    expect(
      planDeliveries({
        ...base,
        now: 200,
        health: new Map([['a@x', { failures: 1, pausedUntil: 200 }]]),
      }),
    ).toEqual({
      start: ['a'],
    });
  });

  it('finds messages whose retry window closed while they waited', () => {
    expect(
      expiredMessages(
        [
          { ...msg('a', 'a@x'), since: 0 },
          { ...msg('b', 'a@x'), since: 50 },
          { ...msg('c', 'a@x'), since: 0 },
        ],
        new Set(['c']),
        100,
        60,
      ),
    ).toEqual(['a']);
  });
});
