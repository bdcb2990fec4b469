/**
 * A refused login says which side of the migration refused it. Both sides are
 * often Microsoft 365 mailboxes under one app, and the diagnosis alone (token,
 * service principal, FullAccess) does not tell which mailbox lacks what; doctor
 * checks one mailbox step by step and names the missing step.
 */
import { AuthenticationError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { describeEndpoint, type MigrateEndpoint, type Side } from './endpoint.js';

/** `error` with the side and endpoint in front when it is an authentication refusal; else `error` itself. */
export function refusedOnSide(error: unknown, side: Side, endpoint: MigrateEndpoint): unknown {
  if (!(error instanceof AuthenticationError)) return error;
  const role = side === 'to' ? '--to destination' : '--from source';
  const doctor =
    endpoint.kind === 'm365'
      ? `Run \`mailbridge doctor --mailbox ${displayText(endpoint.mailbox, 254)}\` for the exact cause on that mailbox. `
      : '';
  return new AuthenticationError({
    code: error.code,
    message: `The ${role} ${displayText(describeEndpoint(endpoint), 300)} refused the login: ${error.message}`,
    remedy: `${doctor}${error.remedy}`,
    cause: error,
    ...(error.entra ? { entra: error.entra } : {}),
  });
}
