#!/usr/bin/env bash
# The one test command (README "Development"): on a fresh Debian machine, as
# root, it installs what the tests need, then builds, lints and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the real-server tests (Dovecot, Postfix, real mail
# clients, Redis: the list is in install-packages.sh), installed without
# starting them as system-wide services; a no-op when all are there.
scripts/install-packages.sh --tests

npm ci --no-audit --no-fund
npm run build
npm run typecheck
npx biome ci .
npx vitest run "$@"
