import { describe, expect, it } from 'vitest';
import { classifySessionFailure, nextSessionDelay } from '../../src/clients/session-policy.js';
import { AuthenticationError, NetworkError } from '../../src/errors.js';

const options = { maxAttempts: 5, baseDelayMs: 100, maxThrottleWaitMs: 10_000 };

function imapError(fields: Record<string, unknown>): Error {
  return Object.assign(new Error('Command failed'), fields);
}

describe('classifySessionFailure', () => {
  it('waits out what is left of a throttling hint imapflow partly waited', () => {
    const failure = classifySessionFailure(
      imapError({ code: 'ETHROTTLE', throttleReset: 299_609, throttleWaited: 60_000 }),
      true,
    );
    expect(failure).toMatchObject({ kind: 'throttled', waitMs: 239_609 });
  });

  it('treats a BYE for an expired token as a dropped connection', () => {
    const failure = classifySessionFailure(
      imapError({ code: 'NoConnection', reason: 'Session invalidated - AccessTokenExpired' }),
      false,
    );
    expect(failure).toEqual({
      kind: 'dropped',
      reason: 'Session invalidated - AccessTokenExpired',
    });
  });

  it('treats socket errors as dropped', () => {
    expect(classifySessionFailure(imapError({ code: 'ECONNRESET' }), false).kind).toBe('dropped');
  });

  it('treats a refused command on a working connection as fatal', () => {
    const failure = classifySessionFailure(
      imapError({ responseStatus: 'NO', responseText: 'Mailbox does not exist' }),
      true,
    );
    expect(failure).toEqual({ kind: 'fatal', reason: 'Mailbox does not exist' });
  });

  it('retries an unreachable server but not a refused login', () => {
    const unreachable = new NetworkError({ code: 'IMAP_UNREACHABLE', message: 'x', remedy: 'y' });
    const refused = new AuthenticationError({
      code: 'IMAP_AUTH_FAILED',
      message: 'x',
      remedy: 'y',
    });
    expect(classifySessionFailure(unreachable, false).kind).toBe('dropped');
    expect(classifySessionFailure(refused, false).kind).toBe('fatal');
  });

  it('treats a bug in the job (a TypeError) as fatal even on a lost connection', () => {
    expect(classifySessionFailure(new TypeError('x is undefined'), true).kind).toBe('fatal');
  });
});

describe('nextSessionDelay', () => {
  it('reconnects at once the first time, then backs off', () => {
    const dropped = { kind: 'dropped', reason: 'x' } as const;
    expect(nextSessionDelay(dropped, 1, options)).toBe(0);
    expect(nextSessionDelay(dropped, 2, options, () => 0)).toBe(50);
    expect(nextSessionDelay(dropped, 3, options, () => 1)).toBe(200);
  });

  it('waits exactly the throttling hint, within the cap', () => {
    expect(nextSessionDelay({ kind: 'throttled', waitMs: 1_500, reason: '' }, 1, options)).toBe(
      1_500,
    );
    expect(
      nextSessionDelay({ kind: 'throttled', waitMs: 20_000, reason: '' }, 1, options),
    ).toBeUndefined();
  });

  it('gives up after maxAttempts and never retries fatal failures', () => {
    expect(nextSessionDelay({ kind: 'dropped', reason: '' }, 5, options)).toBeUndefined();
    expect(nextSessionDelay({ kind: 'fatal', reason: '' }, 1, options)).toBeUndefined();
  });
});
