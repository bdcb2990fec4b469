/** Errors of the archive's own files, named by what the user has to do before a new run can get further. */
import type { ErrorCode } from '../../error-codes.js';
import { MailbridgeError } from '../../errors.js';

/** The disk side failed (full, read-only, no permission): no other folder can do better. */
export class ArchiveDiskError extends MailbridgeError {
  override name = 'ArchiveDiskError';
}

/** Errors from the disk, by what the user has to do before a new run can get further. */
const DISK_REMEDIES: Record<string, string> = {
  EACCES:
    'Give the user running mailbridge write access to the archive directory (or choose another one), then run the archive again.',
  ENOSPC:
    'Free space on the disk holding the archive, then run the archive again: it continues where it stopped.',
  EROFS:
    'The archive directory is on a read-only filesystem: make it writable or choose another one, then run the archive again.',
};
DISK_REMEDIES.EPERM = DISK_REMEDIES.EACCES as string;
DISK_REMEDIES.EDQUOT = DISK_REMEDIES.ENOSPC as string;

/** Disk errnos with a code of their own (`ARCHIVE_ENOSPC`, …); any other is `ARCHIVE_DISK_FAILED`. */
const DISK_CODES = {
  ENOSPC: 'ARCHIVE_ENOSPC',
  EDQUOT: 'ARCHIVE_EDQUOT',
  EACCES: 'ARCHIVE_EACCES',
  EPERM: 'ARCHIVE_EPERM',
  EROFS: 'ARCHIVE_EROFS',
  EIO: 'ARCHIVE_EIO',
} as const satisfies Record<string, ErrorCode>;

/** The registered code for a disk error of the archive's own files. */
export function diskErrorCode(cause: unknown): ErrorCode {
  const errno = (cause as NodeJS.ErrnoException).code ?? '';
  return DISK_CODES[errno as keyof typeof DISK_CODES] ?? 'ARCHIVE_DISK_FAILED';
}

/** A disk error (`cause`, with its errno `code`) as what the user has to do about it. */
export function diskError(code: ErrorCode, message: string, cause: unknown): ArchiveDiskError {
  const errno = (cause as NodeJS.ErrnoException).code ?? '';
  return new ArchiveDiskError({
    code,
    message,
    remedy:
      DISK_REMEDIES[errno] ??
      'Check the archive directory (space, permissions), then run the archive again.',
    cause,
  });
}
