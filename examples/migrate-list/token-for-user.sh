#!/bin/sh
# A token command serving every pair of a list (migrate.fromTokenCommand: [./token-for-user.sh]):
# mailbridge sets MAILBRIDGE_USER to the user name of the imaps:// endpoint it logs in to.
# Print an access token for that user on stdout, e.g. from a refresh token kept per user.
set -eu
exec oauth2l fetch --credentials "$HOME/.config/oauth/$MAILBRIDGE_USER.json" \
  --scope https://mail.google.com/ --output_format bare
