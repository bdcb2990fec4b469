#!/bin/sh
# Enqueue the archive of every mailbox listed in a CSV export (first column the
# address, a header line), e.g. from
#   Get-EXOMailbox -ResultSize Unlimited | Select PrimarySmtpAddress | Export-Csv mailboxes.csv
# Usage: enqueue-from-csv.sh mailboxes.csv /srv/mail-archive
# The password: MAILBRIDGE_REDIS_URL in the environment, never on this command line.
set -eu
csv=$1
out=$2
list=$(mktemp)
trap 'rm -f "$list"' EXIT
tail -n +2 "$csv" | cut -d, -f1 | tr -d '"\r' | grep -v '^$' > "$list"
run=$(mailbridge archive --mailboxes "$list" --out "$out" --queue "${QUEUE:-rediss://redis.internal:6380/0}")
echo "run $run: follow it with  mailbridge jobs status --queue ${QUEUE:-rediss://redis.internal:6380/0} --run $run"
