/**
 * The credential monitor's timing, on a token source that fails as told:
 * while Entra refuses, it asks again after the back-off, but never waits
 * longer than five minutes (new mail is refused meanwhile).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthenticationError } from '../../../src/errors.js';
import { CredentialMonitor } from '../../../src/jobs/relay/credential.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('CredentialMonitor', () => {
  it('probes a refused credential within 5 minutes, whatever retryBackoff says', async () => {
    vi.useFakeTimers();
    let refuse = true;
    let requests = 0;
    const monitor = new CredentialMonitor(
      {
        scope: 'x',
        getToken: async () => {
          requests++;
          if (refuse) {
            throw new AuthenticationError({ code: 'APP_DISABLED', message: 'm', remedy: 'r' });
          }
          return { accessToken: 't', expiresOn: new Date(Date.now() + 3_600_000) };
        },
      },
      { backoff: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: 0 } },
    );
    expect(await monitor.check()).toMatchObject({ status: 'refused', code: 'APP_DISABLED' });
    expect(monitor.refusingMail()).toBe(true);
    // Routes get the failure without a request while it holds.
    await expect(monitor.tokenProvider.getToken()).rejects.toThrow(AuthenticationError);
    expect(requests).toBe(1);

    refuse = false;
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(requests).toBe(2);
    expect(monitor.state).toEqual({ status: 'ok' });
    expect(monitor.refusingMail()).toBe(false);
    monitor.close();
  });
});
