/**
 * Prints the base64 SASL XOAUTH2 string for one mailbox, for a tool that
 * takes it ready-made (`AUTHENTICATE XOAUTH2 <string>` in IMAP, `AUTH XOAUTH2
 * <string>` in SMTP).
 *
 *   npx tsx examples/xoauth2-string.ts archive@contoso.com
 */
import { buildXOAuth2, createTokenProvider, isMailbridgeError, loadConfig } from 'm365-mailbridge';

const mailbox = process.argv[2];
if (!mailbox) {
  console.error('usage: npx tsx examples/xoauth2-string.ts MAILBOX-ADDRESS');
  process.exit(2);
}

try {
  const config = await loadConfig();
  const token = await createTokenProvider(config).getToken();

  // SECRET: the string carries a live access token (valid about an hour). Pipe
  // it straight into the tool that needs it; never log it or store it.
  console.log(buildXOAuth2(mailbox, token.accessToken));
} catch (error) {
  if (!isMailbridgeError(error)) throw error;
  console.error(`${error.code}: ${error.message}`);
  process.exitCode = error.exitCode;
}
