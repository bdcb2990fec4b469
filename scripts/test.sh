#!/usr/bin/env bash
# The one test command (README "Development"): on a fresh Debian machine, as
# root, it installs what the tests need, then builds, lints and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the real-server tests (none yet beyond Node.js itself).
APT_PACKAGES=()
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Keep package scripts from starting system-wide services on all interfaces.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

npm ci --no-audit --no-fund
npm run build
npm run typecheck
npx biome ci .
npx vitest run "$@"
