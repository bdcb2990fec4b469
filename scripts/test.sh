#!/usr/bin/env bash
# The one test command (README "Development"): on a fresh Debian machine, as
# root, it installs what the tests need, then builds, lints and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the real-server tests (test/helpers/mail-servers.ts):
# Dovecot (IMAP, LMTP, Lua passdb with lua-cjson for the token service's JSON)
# and Postfix (submission), each run from a temporary folder, never as the
# system-wide services; swaks (with Net::SSLeay for STARTTLS) is the legacy
# SMTP client of the relay tests; msmtp, isync (mbsync, with the KDE XOAUTH2
# SASL plugin), getmail6 and offlineimap3 log in through `mailbridge token --for`;
# dovecot-pop3d and fetchmail serve the POP3 side (proxy, sandbox), redis-server
# the distributed job queue.
APT_PACKAGES=(dovecot-imapd dovecot-lmtpd dovecot-pop3d dovecot-auth-lua lua-cjson postfix swaks
  libnet-ssleay-perl msmtp isync libsasl2-modules-kdexoauth2 getmail6 offlineimap3 fetchmail curl
  redis-server)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Keep package scripts from starting system-wide services on all interfaces.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update
  # Postfix's package would otherwise ask how to configure /etc/postfix; the
  # tests give their instances a configuration folder of their own.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

npm ci --no-audit --no-fund
npm run build
npm run typecheck
npx biome ci .
npx vitest run "$@"
