import { usageError } from './args.js';

// Values of flags that several commands take. Their own module, not the
// archive command's: `imap list --since` must not load the archive job (and
// mailparser behind it) at start-up.

/** `YYYY-MM-DD` (a day: IMAP SEARCH SINCE has no time of day), or an ISO date-time's day. */
export function parseSince(text: string): Date {
  const match = /^(\d{4}-\d{2}-\d{2})(?:[T ].*)?$/.exec(text.trim());
  const date = match ? new Date(`${match[1]}T00:00:00Z`) : undefined;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== match?.[1]) {
    throw usageError(
      `--since must be a date like 2024-01-31, not '${text.slice(0, 40)}'`,
      'Give a day as YYYY-MM-DD: only messages received on or after it (UTC) are taken.',
    );
  }
  return date;
}

export function positiveInteger(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^[1-9]\d{0,3}$/.test(value)) {
    throw usageError(`${flag} must be a whole number from 1 to 9999`, `For example: ${flag} 4.`);
  }
  return Number(value);
}
