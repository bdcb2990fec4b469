/**
 * The Debian packages the sandbox runs, found by the files it uses, so that a
 * missing one is named with the command that installs it instead of failing
 * later with Dovecot's own words.
 */
import { existsSync } from 'node:fs';
import { ConfigurationError } from '../errors.js';

const NEEDED: readonly { pkg: string; file: string }[] = [
  { pkg: 'dovecot-core', file: '/usr/sbin/dovecot' },
  { pkg: 'dovecot-imapd', file: '/usr/lib/dovecot/imap' },
  { pkg: 'dovecot-lmtpd', file: '/usr/lib/dovecot/lmtp' },
  { pkg: 'dovecot-auth-lua', file: '/usr/lib/dovecot/modules/auth/libauthdb_lua.so' },
];

/** Throws SANDBOX_PACKAGES_MISSING naming every missing package; `exists` is for other roots. */
export function checkSandboxPackages(exists: (path: string) => boolean = existsSync): void {
  const missing = NEEDED.filter(({ file }) => !exists(file)).map(({ pkg }) => pkg);
  if (missing.length === 0) return;
  throw new ConfigurationError({
    code: 'SANDBOX_PACKAGES_MISSING',
    message: `The sandbox needs Dovecot from the Debian/Ubuntu packages; missing: ${missing.join(', ')}`,
    remedy: `Install them (as root): apt-get install -y ${missing.join(' ')}`,
  });
}
