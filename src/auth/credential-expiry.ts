/**
 * When the app's credential stops working, as far as this machine can tell:
 * a certificate carries its end date (notAfter); a secret's end date and a
 * federated credential's live only in Entra ID (`mailbridge credentials check`
 * reads them through Microsoft Graph). For `token --json`, `doctor` and a
 * metrics gauge such as `mailbridge_credential_expiry_timestamp_seconds`.
 */
import { CERTIFICATE_EXPIRY_WARNING_DAYS } from '../config/certificate.js';
import type { Credential } from '../config/types.js';

const DAY_MS = 86_400_000;

/** The end date known locally, or undefined (secret, federated). */
export function credentialExpiresOn(credential: Credential): Date | undefined {
  return credential.kind === 'certificate' ? credential.notAfter : undefined;
}

/** Whole days from `now` until `date`, rounded up; negative once past. */
export function daysUntil(date: Date, now: Date = new Date()): number {
  return Math.ceil((date.getTime() - now.getTime()) / DAY_MS);
}

/**
 * A sentence warning that the credential ends within `withinDays` (default
 * 30, the certificate loader's threshold), or undefined when it does not or
 * its end is not known here.
 */
export function credentialExpiryWarning(
  credential: Credential,
  now: Date = new Date(),
  withinDays: number = CERTIFICATE_EXPIRY_WARNING_DAYS,
): string | undefined {
  const expiresOn = credentialExpiresOn(credential);
  if (!expiresOn || credential.kind !== 'certificate') return undefined;
  const days = daysUntil(expiresOn, now);
  if (days > withinDays) return undefined;
  const when = days <= 0 ? 'has expired' : `expires in ${days} day${days === 1 ? '' : 's'}`;
  return `The certificate credential (thumbprint ${credential.thumbprintSha1}) ${when}, on ${expiresOn.toISOString()}: make a new one (mailbridge setup cert), upload it (mailbridge setup entra --cert FILE) and point certificatePath at it before then.`;
}
