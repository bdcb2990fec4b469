#!/usr/bin/env bash
# The newcomer's first minutes, as README's quick start prints them: clones
# this checkout into a temporary folder and runs, in one shell, exactly the
# lines of the README block under "Try it first, without Microsoft 365",
# then checks what they printed. Run it as the user who will use mailbridge
# (root works too); its first line, scripts/install-packages.sh, installs
# Dovecot's packages when they are missing (as root, or through sudo).
#   scripts/try-sandbox.sh            # exits 0 when every line did what README says
#   scripts/try-sandbox.sh DIR        # the same, cloning into DIR (new) and keeping it, built
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -z "${1:-}" ] || [ ! -e "$1" ] || { echo "try-sandbox: $1 exists already: name a new folder" >&2; exit 2; }
work="$(mktemp -d)"
clone="${1:-$work/clone}"
# As root, Dovecot's own users must pass through to the sandbox's folder.
chmod 711 "$work"
export XDG_STATE_HOME="$work/state" # the sandbox's folder, so that nothing outside $work is touched
export HOME="$work/home"
mkdir -p "$HOME"
mkdir -p -m 711 "$XDG_STATE_HOME" "$XDG_STATE_HOME/mailbridge"
cleanup() {
  # Only a sandbox the quick start left running: a stop alone would first build the clone.
  if [ -f "$XDG_STATE_HOME/mailbridge/sandbox/state.json" ]; then
    (cd "$clone" && ./scripts/mailbridge sandbox stop >/dev/null 2>&1) || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

git clone --quiet "$root" "$clone"
cd "$clone"
clone="$PWD" # for the clean-up, wherever it runs
# The fenced sh block that follows the heading, line by line.
lines="$(awk '/^### Try it first/ {found=1} found && /^```sh$/ {inside=1; next} inside && /^```$/ {exit} inside {print}' README.md)"
[ -n "$lines" ] || { echo "try-sandbox: no quick-start block in README.md" >&2; exit 1; }

out="$work/out.txt"
while IFS= read -r line; do
  echo "\$ $line" | tee -a "$out"
  eval "$line" >>"$out" 2>&1 || { echo "try-sandbox: failed: $line" >&2; cat "$out" >&2; exit 1; }
done <<<"$lines"

expect() {
  grep -q -- "$1" "$out" || { echo "try-sandbox: expected \"$1\" in the output" >&2; cat "$out" >&2; exit 1; }
}
expect 'Result: all checks passed'
expect 'INBOX'
expect 'stopped the sandbox'
[ -n "$(find "$HOME/sandbox-archive" -name '*.eml' -print -quit)" ] || { echo "try-sandbox: archive wrote no .eml" >&2; exit 1; }
echo "try-sandbox: the quick start works as printed"
