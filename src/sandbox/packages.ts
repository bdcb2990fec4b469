/**
 * The Debian packages the sandbox runs, found by the files it uses, so that a
 * missing one is named with the command that installs it instead of failing
 * later with Dovecot's own words.
 */
import { existsSync } from 'node:fs';
import { ConfigurationError } from '../errors.js';

/** Where Debian puts architecture-specific libraries (lua-cjson's module). */
const MULTIARCH = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';

/** Each package, found by any one of its files. scripts/install-packages.sh installs the same list. */
const NEEDED: readonly { pkg: string; files: readonly string[] }[] = [
  { pkg: 'dovecot-core', files: ['/usr/sbin/dovecot'] },
  { pkg: 'dovecot-imapd', files: ['/usr/lib/dovecot/imap'] },
  { pkg: 'dovecot-pop3d', files: ['/usr/lib/dovecot/pop3'] },
  { pkg: 'dovecot-lmtpd', files: ['/usr/lib/dovecot/lmtp'] },
  { pkg: 'dovecot-auth-lua', files: ['/usr/lib/dovecot/modules/auth/libauthdb_lua.so'] },
  // The Lua passdb reads the token service's JSON with it; which Lua Dovecot links varies.
  {
    pkg: 'lua-cjson',
    files: ['5.4', '5.3', '5.2', '5.1'].map((v) => `/usr/lib/${MULTIARCH}/lua/${v}/cjson.so`),
  },
];

/** Throws SANDBOX_PACKAGES_MISSING naming every missing package; `exists` is for other roots. */
export function checkSandboxPackages(exists: (path: string) => boolean = existsSync): void {
  const missing = NEEDED.filter(({ files }) => !files.some(exists)).map(({ pkg }) => pkg);
  if (missing.length === 0) return;
  throw new ConfigurationError({
    code: 'SANDBOX_PACKAGES_MISSING',
    message: `The sandbox needs Dovecot from the Debian/Ubuntu packages; missing: ${missing.join(', ')}`,
    remedy: `Install them (as root): apt-get install -y ${missing.join(' ')}; in a checkout, scripts/install-packages.sh does it without starting the system-wide Dovecot.`,
  });
}
