#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages `mailbridge sandbox` needs (with --tests:
# also those the test suite needs) WITHOUT starting them as system services.
# Installed the usual way, dovecot-* and postfix start the system-wide Dovecot
# and Postfix, listening on all interfaces; the sandbox and the tests run
# their own instances from a folder of their own instead. So while apt-get
# runs, /usr/sbin/policy-rc.d forbids every service start (exit 101), and the
# one that was there before (if any) is put back afterwards, whatever happens.
#
#   scripts/install-packages.sh            # the sandbox's packages
#   scripts/install-packages.sh --tests    # and the tests' (scripts/test.sh)
#   scripts/install-packages.sh --check    # exit 0 if all are installed, 1 if not; changes nothing
#
# Idempotent: when everything is installed it says so and changes nothing
# (no root needed). Otherwise it runs `apt-get update` first, then installs
# what is missing, as root (through sudo when run as another user).
set -euo pipefail

# Dovecot: IMAP, POP3, LMTP (the sandbox's SMTP delivers through it) and the
# Lua passdb that asks the sandbox's token service (lua-cjson reads its JSON).
SANDBOX_PACKAGES=(dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-auth-lua lua-cjson)
# The tests also run Postfix (submission as root), real clients to compare
# with and to log in through `mailbridge token --for` (swaks with Net::SSLeay
# for STARTTLS, msmtp, isync with the KDE XOAUTH2 SASL plugin, getmail6,
# offlineimap3, fetchmail, curl) and Redis for the distributed job queue.
TEST_PACKAGES=(postfix swaks libnet-ssleay-perl msmtp isync libsasl2-modules-kdexoauth2 getmail6
  offlineimap3 fetchmail curl redis-server)

packages=("${SANDBOX_PACKAGES[@]}")
check_only=false
for arg in "$@"; do
  case "$arg" in
    --tests) packages+=("${TEST_PACKAGES[@]}") ;;
    --check) check_only=true ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-packages: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-packages: all installed (${packages[*]})"
  exit 0
fi
if [ "$check_only" = true ]; then
  echo "install-packages: missing: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo "$0" "$@"
  fi
  echo "install-packages: missing ${missing[*]}; run this script as root to install them" >&2
  exit 2
fi

policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
  saved="$(mktemp)"
  cp -p "$policy" "$saved"
fi
restore() {
  if [ -n "$saved" ]; then
    cp -p "$saved" "$policy" && rm -f "$saved"
  else
    rm -f "$policy"
  fi
}
trap restore EXIT
printf '#!/bin/sh\n# scripts/install-packages.sh: no service starts while it installs\nexit 101\n' >"$policy"
chmod 755 "$policy"

apt-get update
# Postfix's package would otherwise ask how to configure /etc/postfix; the
# tests give their instances a configuration folder of their own.
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
echo "install-packages: installed ${missing[*]} (no service was started)"
