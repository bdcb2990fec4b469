/**
 * Gets an app-only access token for Exchange Online and prints what it
 * grants: its expiry and its application roles. Never the token itself.
 *
 *   export AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_CERTIFICATE_PATH=…
 *   npx tsx examples/get-token.ts
 */
import {
  createTokenProvider,
  decodeAccessTokenClaims,
  isMailbridgeError,
  loadConfig,
} from 'm365-mailbridge';

try {
  // Settings come from the environment (AZURE_*, MAILBRIDGE_*), as the CLI reads them.
  const config = await loadConfig();
  for (const warning of config.warnings) console.error(`warning: ${warning}`);

  // One provider per app for the life of the process: it caches the token and
  // shares one request among concurrent callers.
  const provider = createTokenProvider(config);
  const token = await provider.getToken();

  // Decoded without checking the signature: only Exchange validates the token.
  const claims = decodeAccessTokenClaims(token.accessToken);
  const roles = Array.isArray(claims?.roles) ? claims.roles : [];

  console.log(`scope:   ${provider.scope}`);
  console.log(`expires: ${token.expiresOn.toISOString()}`);
  console.log(
    `roles:   ${roles.length > 0 ? roles.join(', ') : '(none: no application permission granted)'}`,
  );
} catch (error) {
  if (!isMailbridgeError(error)) throw error;
  // The message says what happened and what to do; handle-errors.ts shows the parts.
  console.error(`${error.code}: ${error.message}`);
  process.exitCode = error.exitCode;
}
