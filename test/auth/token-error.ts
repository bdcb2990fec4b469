/** The error one token request ends in, for tests of failure paths. */
import { createTokenProvider } from '../../src/auth/token-provider.js';
import { loadConfig } from '../../src/config/load.js';
import type { MailbridgeError } from '../../src/errors.js';

/** Two quick attempts: enough to tell a retried failure from a permanent one. */
const FAST_RETRY = { baseDelayMs: 10, maxDelayMs: 20, maxAttempts: 2 };

export async function tokenError(env: Record<string, string>): Promise<MailbridgeError> {
  const provider = createTokenProvider(await loadConfig({ env }), { retry: FAST_RETRY });
  return provider.getToken().then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: MailbridgeError) => error,
  );
}
