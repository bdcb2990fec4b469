/**
 * The admin's diagnosis of a refused upstream login, and the words the
 * client hears instead (never the server's own).
 */
import { describe, expect, it } from 'vitest';
import { diagnoseUpstreamRefusal } from '../../../src/jobs/proxy/upstream-diagnosis.js';

describe('diagnoseUpstreamRefusal', () => {
  it.each([
    ['-ERR [IN-USE] Mailbox is locked by another session', 'POP3_MAILBOX_IN_USE', 'busy'],
    ['-ERR [SYS/TEMP] Server Unavailable. 21', 'POP3_THROTTLED', 'busy'],
    [
      '-ERR Authentication failure: unknown user name or bad password.',
      'POP3_AUTH_FAILED',
      'refused',
    ],
  ])('reads the POP3 refusal %s as %s', (reply, code, heard) => {
    const diagnosis = diagnoseUpstreamRefusal('pop3', reply);
    expect(diagnosis?.code).toBe(code);
    expect(diagnosis?.reply).toBe(reply);
    expect(diagnosis?.clientReason).toContain(heard);
    expect(diagnosis?.clientReason).not.toContain(reply.slice(5, 20));
  });

  it('uses the shared table for IMAP, telling the client only that it is busy when throttled', () => {
    const throttled = diagnoseUpstreamRefusal(
      'imap',
      'P1 NO Request is throttled. Suggested Backoff Time: 299609 milliseconds',
    );
    expect(throttled).toMatchObject({
      code: 'IMAP_THROTTLED',
      clientReason: expect.stringContaining('busy'),
    });
    expect(diagnoseUpstreamRefusal('imap', 'P1 NO AUTHENTICATE failed.')?.code).toBe(
      'IMAP_AUTH_FAILED',
    );
    expect(diagnoseUpstreamRefusal('imap', 'P1 NO something else')).toBeUndefined();
  });
});
