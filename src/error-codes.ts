/**
 * The registry of error codes: every `code` the library or the CLI can put in
 * front of a user, with its exit code and what to do. `code` strings are
 * stable (scripts match on them); README's "Error codes" tables are checked
 * against this list by a test, and `MailbridgeError` accepts only these codes.
 */

/** Where README lists the code. */
export type ErrorCodeGroup =
  | 'usage'
  | 'token'
  | 'mail'
  | 'archive'
  | 'migrate'
  | 'queue'
  | 'relay'
  | 'proxy'
  | 'setup';

export interface ErrorCodeInfo {
  group: ErrorCodeGroup;
  /** The CLI's exit code; a list where it depends on the answer (the error's class decides). */
  exit: 0 | 1 | 2 | 3 | 4 | readonly (1 | 2 | 3 | 4)[];
  /** AADSTS numbers or HTTP statuses that lead to it (token endpoint codes). */
  aadsts?: string;
  /** What to do, in one line (README's table). */
  remedy: string;
}

export const ERROR_CODES = {
  CONFIG_INVALID: {
    group: 'usage',
    exit: 2,
    remedy: 'Fix each listed setting where it is set (flag, environment or config file).',
  },
  CONFIG_FILE_UNREADABLE: {
    group: 'usage',
    exit: 2,
    remedy: 'Check the `--config` path and that this user may read it.',
  },
  CONFIG_FILE_INVALID: {
    group: 'usage',
    exit: 2,
    remedy:
      'Fix the syntax at the line and column given; the file must be one JSON object or YAML mapping.',
  },
  USAGE: {
    group: 'usage',
    exit: 2,
    remedy:
      'Unknown command or flag, a missing required flag, or a secret passed as a flag; see `--help`.',
  },
  SASL_INVALID_INPUT: {
    group: 'usage',
    exit: 2,
    remedy: 'Give the mailbox address without control characters or line breaks.',
  },
  INPUT_UNREADABLE: {
    group: 'usage',
    exit: 2,
    remedy: '`send`: check the `--html`, `--eml` or `--attach` path.',
  },
  SECRET_INVALID: {
    group: 'token',
    exit: 3,
    aadsts: '7000215',
    remedy:
      "Use the secret's *Value*, not its *Secret ID*; create a new secret if the Value is lost.",
  },
  SECRET_EXPIRED: {
    group: 'token',
    exit: 3,
    aadsts: '7000222',
    remedy: 'Create a new secret (or switch to a certificate).',
  },
  APP_NOT_FOUND: {
    group: 'token',
    exit: 3,
    aadsts: '700016',
    remedy: "Compare `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` with the app's Overview page.",
  },
  APP_DISABLED: {
    group: 'token',
    exit: 3,
    aadsts: '7000112',
    remedy: 'Enable the Enterprise application ("Enabled for users to sign in?").',
  },
  TENANT_NOT_FOUND: {
    group: 'token',
    exit: 2,
    aadsts: '90002, 90038, 900023',
    remedy: 'Check the tenant id or domain, and the cloud.',
  },
  SCOPE_INVALID: {
    group: 'token',
    exit: 2,
    aadsts: '70011, 1002012, 700022, 700023',
    remedy: "Use the Exchange resource's `/.default`; leave `MAILBRIDGE_SCOPE` unset.",
  },
  RESOURCE_NOT_FOUND: {
    group: 'token',
    exit: 2,
    aadsts: '500011',
    remedy:
      "Exchange Online is not in the tenant, or the scope is another cloud's; check `MAILBRIDGE_CLOUD`.",
  },
  PERMISSION_NOT_REQUESTED: {
    group: 'token',
    exit: 3,
    aadsts: '650057',
    remedy: 'Add the Office 365 Exchange Online application permission and grant admin consent.',
  },
  CERTIFICATE_NOT_REGISTERED: {
    group: 'token',
    exit: 3,
    aadsts: '700027',
    remedy: 'Upload this certificate (thumbprint given) to the app registration.',
  },
  ASSERTION_AUDIENCE_INVALID: {
    group: 'token',
    exit: 3,
    aadsts: '50011, 5002741, 50012',
    remedy: "Check that authority host and tenant are those of the app's tenant and cloud.",
  },
  ASSERTION_INVALID: {
    group: 'token',
    exit: 3,
    aadsts: '50012',
    remedy:
      'Key and certificate must be a pair and the certificate current; a federated token must come from the configured issuer.',
  },
  ASSERTION_EXPIRED: {
    group: 'token',
    exit: 3,
    aadsts: '700024',
    remedy: 'Fix the clock (NTP); for a federated token, check that it is refreshed.',
  },
  FEDERATION_NO_MATCH: {
    group: 'token',
    exit: 3,
    aadsts: '70021, 700211–700213',
    remedy:
      "Add a federated credential with the token's issuer and subject (shown) and audience `api://AzureADTokenExchange`.",
  },
  CONDITIONAL_ACCESS_BLOCKED: {
    group: 'token',
    exit: 3,
    aadsts: '53003',
    remedy:
      'Find the policy in the sign-in logs; exclude the workload identity or allow its network.',
  },
  CREDENTIAL_MISSING: {
    group: 'token',
    exit: 2,
    aadsts: '7000218',
    remedy: 'Configure one credential.',
  },
  ENTRA_UNAVAILABLE: {
    group: 'token',
    exit: 4,
    aadsts: '429, 5xx, transient',
    remedy:
      "Entra kept failing after the retries; try later (the message gives Entra's `Retry-After`, if any).",
  },
  TOKEN_REQUEST_FAILED: {
    group: 'token',
    exit: [1, 2, 3],
    aadsts: 'any other',
    remedy:
      'Look the AADSTS number up and find the request in the sign-in logs. 3 for `invalid_client`/`unauthorized_client` or when msal-node refused to build the request, 2 for `invalid_request`/`invalid_scope`/`invalid_tenant`, 1 otherwise (also an answer without an OAuth error: is a proxy answering?).',
  },
  TOKEN_RESPONSE_INVALID: {
    group: 'token',
    exit: 4,
    remedy:
      "The answer's `access_token` is not a string, or it has no `expires_in`: check that the authority host is Entra ID.",
  },
  AUTHORITY_UNREACHABLE: {
    group: 'token',
    exit: 4,
    remedy: 'Check the network, proxy, firewall, and the authority host / cloud.',
  },
  GRAPH_FORBIDDEN: {
    group: 'token',
    exit: 3,
    remedy:
      'Grant the app the Microsoft Graph application permission `Application.Read.All` (admin consent), or make its service principal an owner of the app registration and grant `Application.ReadWrite.OwnedBy`.',
  },
  GRAPH_UNREACHABLE: {
    group: 'token',
    exit: 4,
    remedy: 'Check the network, proxy, firewall, and the cloud or `--graph-url`.',
  },
  GRAPH_ANSWER_INVALID: {
    group: 'token',
    exit: 1,
    remedy:
      "Microsoft Graph did not answer with the app's credentials: check the cloud or `--graph-url`, and that `clientId` is the application (client) id.",
  },
  TLS_CERTIFICATE_UNTRUSTED: {
    group: 'token',
    exit: 4,
    remedy: 'Add the private CA to `NODE_EXTRA_CA_CERTS` (also raised for IMAP and SMTP servers).',
  },
  FEDERATED_TOKEN_UNREADABLE: {
    group: 'token',
    exit: 3,
    remedy: 'Check `AZURE_FEDERATED_TOKEN_FILE` and that the projected token is mounted.',
  },
  FEDERATED_TOKEN_INVALID: {
    group: 'token',
    exit: 3,
    remedy: 'The file does not hold a JWT: point it at the token file your platform writes.',
  },
  MANAGED_IDENTITY_UNREACHABLE: {
    group: 'token',
    exit: 4,
    remedy:
      'The identity endpoint (App Service `IDENTITY_ENDPOINT`, IMDS, …) did not answer or kept failing: run where a managed identity is assigned, or check its variables.',
  },
  MANAGED_IDENTITY_REFUSED: {
    group: 'token',
    exit: 3,
    remedy:
      'The identity endpoint refused: switch on the identity of this resource, or set `AZURE_CLIENT_ID` to a user-assigned identity assigned to it.',
  },
  MANAGED_IDENTITY_ANSWER_INVALID: {
    group: 'token',
    exit: 4,
    remedy:
      'The identity endpoint answered without a token (not JSON, or too long): something else answers there.',
  },
  TOKEN_CACHE_INSECURE: {
    group: 'token',
    exit: 2,
    remedy:
      '`--cache` file readable by group or others, owned by another user, or a link: `chmod 600` it, or delete it.',
  },
  TOKEN_CACHE_UNUSABLE: {
    group: 'token',
    exit: 2,
    remedy: '`--cache` file cannot be created, opened or locked: check its folder and permissions.',
  },
  IMAP_AUTH_FAILED: {
    group: 'mail',
    exit: 3,
    remedy:
      "`NO AUTHENTICATE failed`: check `roles` with `mailbridge token`, then `New-ServicePrincipal` with the *Enterprise Application's* object id.",
  },
  IMAP_NOT_CONNECTED: {
    group: 'mail',
    exit: 3,
    remedy:
      'Token accepted, mailbox not opened: grant FullAccess, enable IMAP (`Set-CASMailbox -ImapEnabled $true`), wait 30 minutes.',
  },
  IMAP_TOKEN_EXPIRED: {
    group: 'mail',
    exit: 4,
    remedy: 'Reconnect with a new token (`createImapSession` does).',
  },
  IMAP_THROTTLED: {
    group: 'mail',
    exit: 4,
    remedy: 'Wait as suggested; use fewer connections and smaller fetches.',
  },
  IMAP_TOO_MANY_CONNECTIONS: {
    group: 'mail',
    exit: 4,
    remedy:
      'Login refused for too many connections to the mailbox: another run or client holds them; wait or lower `--connections`.',
  },
  IMAP_COMMAND_TOO_LONG: {
    group: 'mail',
    exit: 1,
    remedy: 'Send message sets in smaller batches, as ranges.',
  },
  IMAP_UNREACHABLE: {
    group: 'mail',
    exit: 4,
    remedy: 'Check the IMAP host and port (993, implicit TLS) and the network.',
  },
  IMAP_GREETING_UNEXPECTED: {
    group: 'mail',
    exit: 1,
    remedy: 'The server did not greet as IMAP: check host and port.',
  },
  IMAP_COMMAND_FAILED: {
    group: 'mail',
    exit: 1,
    remedy: 'Run `mailbridge doctor --mailbox ADDRESS --imap`.',
  },
  IMAP_FOLDER_NOT_FOUND: {
    group: 'mail',
    exit: 1,
    remedy: '`imap fetch`, `imap list`: no such folder; `mailbridge imap folders` lists them.',
  },
  IMAP_SEARCH_REFUSED: {
    group: 'mail',
    exit: 1,
    remedy: 'The server refused UID SEARCH in the folder; run again.',
  },
  IMAP_PORT_NOT_TLS: {
    group: 'mail',
    exit: 4,
    remedy: 'The IMAP port answered TLS in plain text (143?): use 993, implicit TLS.',
  },
  IMAP_MESSAGE_NOT_FOUND: {
    group: 'mail',
    exit: 1,
    remedy: '`imap fetch`: check the folder and the UID (UIDs are per folder).',
  },
  IMAP_SESSION_LOST: {
    group: 'mail',
    exit: 4,
    remedy: 'The session kept dropping; run the job again, it continues where it stopped.',
  },
  IMAP_SESSION_CLOSED: {
    group: 'mail',
    exit: 2,
    remedy: 'Library: the session was used after `close()`.',
  },
  SMTP_AUTH_FAILED: {
    group: 'mail',
    exit: 3,
    remedy: '535: check `roles` (`SMTP.SendAsApp`), the service principal and FullAccess.',
  },
  SMTP_AUTH_DISABLED_TENANT: {
    group: 'mail',
    exit: 3,
    remedy: '`Set-TransportConfig -SmtpClientAuthenticationDisabled $false`, or per mailbox.',
  },
  SMTP_AUTH_DISABLED_MAILBOX: {
    group: 'mail',
    exit: 3,
    remedy: '`Set-CASMailbox -SmtpClientAuthenticationDisabled $false`.',
  },
  SMTP_AUTH_BLOCKED_SECURITY_DEFAULTS: {
    group: 'mail',
    exit: 3,
    remedy: 'Use XOAUTH2, not a password.',
  },
  SMTP_AUTH_BLOCKED_POLICY: {
    group: 'mail',
    exit: 3,
    remedy: 'Find the Conditional Access policy in the sign-in logs.',
  },
  SMTP_BASIC_AUTH_DISABLED: {
    group: 'mail',
    exit: 3,
    remedy: 'Use XOAUTH2 with an app-only token, not a password.',
  },
  SMTP_NOT_AUTHENTICATED: {
    group: 'mail',
    exit: 3,
    remedy: '530 5.7.57: sign in (STARTTLS on 587, then AUTH) before sending.',
  },
  SMTP_SEND_AS_DENIED: {
    group: 'mail',
    exit: 3,
    remedy: "Send from the signed-in mailbox's address, or `Add-RecipientPermission … SendAs`.",
  },
  SMTP_SEND_AS_NOT_PERMITTED: { group: 'mail', exit: 3, remedy: '550 5.7.60: same.' },
  SMTP_MAILBOX_LOGON_FAILURE: {
    group: 'mail',
    exit: 3,
    remedy: '430 mailbox logon failure: grant FullAccess, wait up to 30 minutes.',
  },
  SMTP_CONCURRENCY_LIMIT: {
    group: 'mail',
    exit: 4,
    remedy: 'At most three sending connections per mailbox; send again shortly.',
  },
  SMTP_DAILY_QUOTA_EXCEEDED: {
    group: 'mail',
    exit: 1,
    remedy: '10,000 recipients per 24 hours reached; spread over mailboxes.',
  },
  SMTP_MAILBOX_FULL: {
    group: 'mail',
    exit: 1,
    remedy: 'Empty Sent Items or give it a retention policy.',
  },
  SMTP_TLS_VERSION_UNSUPPORTED: {
    group: 'mail',
    exit: 2,
    remedy: 'Remove settings that cap TLS below 1.2.',
  },
  SMTP_TENANT_EXTERNAL_LIMIT: {
    group: 'mail',
    exit: 4,
    remedy:
      "550 5.7.233 (TERRL): the tenant's daily external recipients are used up; wait at least an hour, do not resend at once.",
  },
  SMTP_DIRECT_SEND_REJECTED: {
    group: 'mail',
    exit: 3,
    remedy:
      '550 5.7.68 TenantInboundAttribution: the device must authenticate; point it at `mailbridge relay`.',
  },
  SMTP_TOKEN_EXPIRING: {
    group: 'mail',
    exit: 4,
    remedy: '5.7.142 (HVE): the token expires too soon; renew with 20 minutes left.',
  },
  SMTP_TOKEN_EXPIRED: {
    group: 'mail',
    exit: 4,
    remedy: '5.7.143: the token expired; sign in with a new one, check the clock.',
  },
  SMTP_HVE_SENDER_MISMATCH: {
    group: 'mail',
    exit: 3,
    remedy: '5.7.62 (HVE): MAIL FROM must be the HVE account.',
  },
  SMTP_HVE_FROM_MISMATCH: {
    group: 'mail',
    exit: 3,
    remedy: '5.6.241 (HVE): the From header must be the HVE account.',
  },
  SMTP_HVE_NOT_HVE_ACCOUNT: {
    group: 'mail',
    exit: 3,
    remedy: '5.2.240: not an HVE account; `New-MailUser -HVEAccount`, `Add-HVEAppAccess`.',
  },
  SMTP_HVE_EXTERNAL_RECIPIENT: {
    group: 'mail',
    exit: 2,
    remedy:
      '550 5.5.105: HVE delivers to internal recipients only; send external mail through a mailbox.',
  },
  SMTP_NO_GREETING: {
    group: 'mail',
    exit: 4,
    remedy:
      'Connected, but no SMTP greeting in 5 s: the port expects implicit TLS or is not SMTP; use 587.',
  },
  SMTP_PORT_NOT_TLS: {
    group: 'mail',
    exit: 4,
    remedy: 'Port 465 (implicit TLS) answered in plain text: use 587 (STARTTLS).',
  },
  SMTP_NO_STARTTLS: {
    group: 'mail',
    exit: 1,
    remedy:
      "The server did not upgrade the connection with STARTTLS: use port 587 of the cloud's SMTP host.",
  },
  SMTP_UNREACHABLE: {
    group: 'mail',
    exit: 4,
    remedy: 'Check the SMTP host and port (587, STARTTLS) and the network.',
  },
  SMTP_TEMPORARY_FAILURE: {
    group: 'mail',
    exit: 4,
    remedy:
      'Exchange refused for now (4yz) on every attempt: send again later, or through the relay.',
  },
  SMTP_FAILED: {
    group: 'mail',
    exit: 1,
    remedy: 'Run `mailbridge doctor --mailbox ADDRESS --smtp`.',
  },
  TOKEN_WRONG_TENANT: {
    group: 'mail',
    exit: 2,
    remedy: 'The token is from another tenant: fix `AZURE_TENANT_ID`.',
  },
  TOKEN_WRONG_AUDIENCE: {
    group: 'mail',
    exit: 2,
    remedy: 'The token is not for Exchange (e.g. Graph): leave `MAILBRIDGE_SCOPE` unset.',
  },
  TOKEN_DELEGATED: {
    group: 'mail',
    exit: 3,
    remedy: 'A user token: use the client credentials flow.',
  },
  TOKEN_NO_ROLES: {
    group: 'mail',
    exit: 3,
    remedy:
      'Add the *application* permission of Office 365 Exchange Online and grant admin consent.',
  },
  TOKEN_ROLE_MISSING: {
    group: 'mail',
    exit: 3,
    remedy: 'Add the missing one (`IMAP.AccessAsApp` or `SMTP.SendAsApp`) and grant admin consent.',
  },
  TOKEN_NOT_JWT: {
    group: 'mail',
    exit: 1,
    remedy: '`doctor`: the token is not a JWT; check the authority host.',
  },
  INTERNAL: { group: 'mail', exit: 1, remedy: 'A bug: report it with the output of `--debug`.' },
  ARCHIVE_NOT_FOUND: {
    group: 'archive',
    exit: 2,
    remedy: '`archive verify`: give the directory used as `--out`, or a mailbox directory in it.',
  },
  ARCHIVE_LOCKED: {
    group: 'archive',
    exit: 1,
    remedy:
      'Another run writes to the same archive: wait for it; delete the `.lock` file only if that run is gone for good.',
  },
  ARCHIVE_INTERRUPTED: {
    group: 'archive',
    exit: 1,
    remedy: 'The run was stopped (signal): run it again, it continues where it stopped.',
  },
  ARCHIVE_FOLDER_CLASH: {
    group: 'archive',
    exit: 1,
    remedy:
      'Two folders map to one directory on a case-insensitive filesystem: archive to a case-sensitive one, or `--exclude` one.',
  },
  ARCHIVE_MANIFEST_WRITE_FAILED: {
    group: 'archive',
    exit: 1,
    remedy: 'Fix the cause (disk full, permissions) and run the archive again.',
  },
  ARCHIVE_STORE_URL_INVALID: {
    group: 'archive',
    exit: 2,
    remedy:
      '`--out` is not a blob container URL: give `azblob://ACCOUNT/CONTAINER[/PREFIX]` or `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`, without a SAS or query.',
  },
  ARCHIVE_STORE_CREDENTIALS_INVALID: {
    group: 'archive',
    exit: 2,
    remedy:
      '`AZURE_STORAGE_CONNECTION_STRING` is malformed or names another account or endpoint than `--out`: fix it, or unset it to use Entra.',
  },
  ARCHIVE_STORE_AUTH_FAILED: {
    group: 'archive',
    exit: 3,
    remedy:
      "The blob service refused the key, SAS or Entra identity (or none was found): check the connection string, the SAS's permissions and expiry, or the identity's Storage Blob Data Contributor role.",
  },
  ARCHIVE_STORE_UNREACHABLE: {
    group: 'archive',
    exit: 4,
    remedy:
      'The blob endpoint did not answer (DNS, firewall, TLS): check the endpoint, then run again; it continues where it stopped.',
  },
  ARCHIVE_STORE_NOT_FOUND: {
    group: 'archive',
    exit: 2,
    remedy: 'The container in `--out` does not exist: create it first, or fix the name.',
  },
  ARCHIVE_STORE_FAILED: {
    group: 'archive',
    exit: 1,
    remedy:
      'The blob service failed an operation (its HTTP status and code are in the message): run again; it continues where it stopped.',
  },
  ARCHIVE_UIDVALIDITY_CHANGED: {
    group: 'archive',
    exit: 1,
    remedy:
      'Warning: the folder was recreated on the server; it is archived again under its new UIDVALIDITY.',
  },
  IMAP_PARTIAL_FETCH_IGNORED: {
    group: 'archive',
    exit: 1,
    remedy:
      'The server ignores partial FETCH, so large messages cannot be streamed from it: report it.',
  },
  PROXY_CONFIG_INVALID: {
    group: 'proxy',
    exit: 2,
    remedy:
      'Fix each listed proxy setting (`proxy:` section): TLS beyond loopback, `allowNetworks`, users and their mailboxes.',
  },
  PROXY_LISTEN_FAILED: {
    group: 'proxy',
    exit: 4,
    remedy:
      'Choose a free address for `proxy.imap.listen` / `proxy.pop3.listen`; ports below 1024 need `CAP_NET_BIND_SERVICE`.',
  },
  PROXY_TLS_UNREADABLE: {
    group: 'proxy',
    exit: 2,
    remedy:
      'Check `proxy.tls.cert` and `proxy.tls.key` (PEM) and that the proxy user may read them.',
  },
  POP3_AUTH_FAILED: {
    group: 'proxy',
    exit: 3,
    remedy:
      'In the proxy log: Exchange refused the POP3 XOAUTH2 login. Check `POP.AccessAsApp` (`mailbridge token`), FullAccess, and `Set-CASMailbox -PopEnabled $true`.',
  },
  POP3_THROTTLED: {
    group: 'proxy',
    exit: 4,
    remedy: 'In the proxy log: POP3 busy or throttled; wait, then use fewer sessions per mailbox.',
  },
  POP3_MAILBOX_IN_USE: {
    group: 'proxy',
    exit: 4,
    remedy: 'In the proxy log: another POP3 session holds the mailbox; stop the other client.',
  },
  RELAY_CONFIG_INVALID: {
    group: 'relay',
    exit: 2,
    remedy: 'Fix each listed relay setting (`relay:` section, `--listen`, users file, rules).',
  },
  RELAY_LISTEN_FAILED: {
    group: 'relay',
    exit: 4,
    remedy:
      'Choose a free address for `relay.listen`; ports below 1024 need `CAP_NET_BIND_SERVICE`.',
  },
  RELAY_SPOOL_LOCKED: {
    group: 'relay',
    exit: 2,
    remedy: 'Another relay uses this spool: stop it, or give this one its own `relay.spool`.',
  },
  RELAY_SPOOL_NOT_FOUND: {
    group: 'relay',
    exit: 2,
    remedy: '`relay status`/`retry`: give the directory named by `relay.spool`.',
  },
  RELAY_SPOOL_UNUSABLE: {
    group: 'relay',
    exit: 2,
    remedy: 'Point `relay.spool` at a local directory the relay user owns.',
  },
  RELAY_TLS_UNREADABLE: {
    group: 'relay',
    exit: 2,
    remedy:
      'Check `relay.tls.cert` and `relay.tls.key` (PEM) and that the relay user may read them.',
  },
  RELAY_USERS_UNREADABLE: {
    group: 'relay',
    exit: 2,
    remedy: 'Check `relay.users` and that the relay user may read the file.',
  },
  RELAY_USERS_INVALID: {
    group: 'relay',
    exit: 2,
    remedy: 'Each line is `name:hash`, the hash printed by `mailbridge relay hash-password`.',
  },
  SPOOL_FILE_MISSING: {
    group: 'relay',
    exit: 1,
    remedy:
      'A queued message lost its data file: it is moved to `dead/`; ask the sender to send it again.',
  },
  SANDBOX_PACKAGES_MISSING: {
    group: 'setup',
    exit: 2,
    remedy:
      'Install the Debian packages the message names (`apt-get install -y …`), then start again.',
  },
  SANDBOX_DIRECTORY_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'Fix the `--directory` JSON file at the paths the message lists.',
  },
  SANDBOX_NOT_RUNNING: {
    group: 'setup',
    exit: 2,
    remedy: 'Start it with `mailbridge sandbox start` (same `--dir`).',
  },
  SANDBOX_ALREADY_RUNNING: {
    group: 'setup',
    exit: 2,
    remedy: 'Use the running one (`mailbridge sandbox env`), stop it, or give another `--dir`.',
  },
  SANDBOX_APP_UNKNOWN: {
    group: 'setup',
    exit: 2,
    remedy: 'Give an app name or client id from `mailbridge sandbox status`.',
  },
  SANDBOX_TENANT_UNKNOWN: {
    group: 'setup',
    exit: 2,
    remedy: 'Give a tenant domain or id from `mailbridge sandbox status`.',
  },
  SANDBOX_GRANT_CROSS_TENANT: {
    group: 'setup',
    exit: 2,
    remedy: "Grant an app only mailboxes of its own tenant; use the other tenant's app there.",
  },
  SANDBOX_START_FAILED: {
    group: 'setup',
    exit: 1,
    remedy: 'Read the log file the message names; a port of `--port-base` may be taken.',
  },
  SETUP_APP_NAME: { group: 'setup', exit: 2, remedy: 'Give a plain `--app-name`.' },
  SETUP_SHELL: { group: 'setup', exit: 2, remedy: 'Use `--shell az` or `--shell pwsh`.' },
  SETUP_CLOUD_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'Use one of the cloud names listed in the message.',
  },
  SETUP_TENANT_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'Give the directory (tenant) id or a verified domain, or `organizations`.',
  },
  SETUP_CLIENT_ID_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: "Give the app registration's Application (client) id, a GUID.",
  },
  SETUP_REDIRECT_URI_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'Give a redirect URI registered on the app (Authentication > Web).',
  },
  SETUP_CERT_UNREADABLE: {
    group: 'setup',
    exit: 2,
    remedy: 'Check the `--cert` path, or make one with `mailbridge setup cert`.',
  },
  SETUP_CERT_INVALID: {
    group: 'setup',
    exit: 2,
    remedy:
      'Give an X.509 certificate (PEM or DER), such as the `.crt` from `mailbridge setup cert`.',
  },
  SETUP_CERT_HAS_PRIVATE_KEY: {
    group: 'setup',
    exit: 2,
    remedy: 'Give the certificate alone; the private key stays on this machine.',
  },
  SETUP_CERT_EXPIRED: {
    group: 'setup',
    exit: 2,
    remedy: 'Make a new certificate with `mailbridge setup cert`.',
  },
  SETUP_CERTIFICATE_BROKEN: {
    group: 'setup',
    exit: 1,
    remedy: 'A bug: report it with your Node.js and node-forge versions.',
  },
  SETUP_SUBJECT: { group: 'setup', exit: 2, remedy: 'Give a short `--subject`.' },
  SETUP_DAYS: { group: 'setup', exit: 2, remedy: 'Give `--days` as a whole number of days.' },
  SETUP_KEY_SIZE: {
    group: 'setup',
    exit: 2,
    remedy: 'Give `--key-size` from 2048 to 8192, a multiple of 1024.',
  },
  SETUP_FILE_EXISTS: {
    group: 'setup',
    exit: 2,
    remedy: 'Choose another `--out-dir`, or `--force` (the old key is lost).',
  },
  SETUP_WRITE_FAILED: {
    group: 'setup',
    exit: 1,
    remedy: 'Check that the directory exists or can be created and that this user may write to it.',
  },
  SETUP_OUT_EXISTS: {
    group: 'setup',
    exit: 2,
    remedy: 'Pass `--force` to overwrite the script, or choose another `--out` file.',
  },
  SETUP_OUT_UNWRITABLE: {
    group: 'setup',
    exit: 2,
    remedy: 'Check the `--out` path and that this user may write there.',
  },
  SETUP_PLAN_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'Fix the `setup.exchange` section or the flags as listed.',
  },
  SETUP_MAILBOX_LIST_UNREADABLE: {
    group: 'setup',
    exit: 2,
    remedy: 'Check the `--mailboxes` path and that this user may read it.',
  },
  SETUP_MAILBOX_LIST_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'One address per line, or a CSV file with an `address` column.',
  },
  SETUP_UNSAFE_VALUE: {
    group: 'setup',
    exit: 2,
    remedy: 'Remove line breaks, tabs and other control characters from the value.',
  },
  SETUP_VALUE_INVALID: {
    group: 'setup',
    exit: 2,
    remedy: 'Correct the value named in the message.',
  },
  AUTHORITY_RESPONSE_TOO_LARGE: {
    group: 'token',
    exit: 4,
    remedy:
      'The answer was longer than 1 MiB and was cut off: not Entra ID, or something in between is broken.',
  },
  AUTHORITY_ANSWER_NOT_JSON: {
    group: 'token',
    exit: 4,
    remedy:
      "An HTML page or other non-JSON answer (quoted, escaped): a proxy, portal or other service answers in Entra's place.",
  },
  PROXY_UNREACHABLE: {
    group: 'token',
    exit: 4,
    remedy:
      'The proxy of `HTTPS_PROXY`/`HTTP_PROXY` could not be reached: check its host and port, or exempt the authority with `NO_PROXY`.',
  },
  PROXY_REFUSED: {
    group: 'token',
    exit: 4,
    remedy: 'The proxy refused the CONNECT tunnel; 407: put its credentials in the proxy URL.',
  },
  ARCHIVE_NO_FOLDER_MATCHED: {
    group: 'archive',
    exit: 2,
    remedy:
      '`--folder`/`--exclude` select no folder of the mailbox: check the names (`mailbridge imap folders`), or pass `--allow-empty`.',
  },
  ARCHIVE_OPTION_INVALID: {
    group: 'archive',
    exit: 2,
    remedy:
      '`archive`: fix the option or `archive:` setting named (`--connections` is a whole number from 1 to the per-mailbox cap, 8 by default).',
  },
  ARCHIVE_FAILED: {
    group: 'archive',
    exit: 1,
    remedy:
      'An unexpected failure: run again with `--debug` and report the output if it keeps failing.',
  },
  ARCHIVE_ENOSPC: {
    group: 'archive',
    exit: 1,
    remedy:
      'The disk holding the archive is full: free space, then run again; it continues where it stopped.',
  },
  ARCHIVE_EDQUOT: {
    group: 'archive',
    exit: 1,
    remedy: "The user's disk quota is used up: free space or raise the quota, then run again.",
  },
  ARCHIVE_EACCES: {
    group: 'archive',
    exit: 1,
    remedy:
      'The archive directory is not writable by this user: give write access or choose another `--out`.',
  },
  ARCHIVE_EPERM: {
    group: 'archive',
    exit: 1,
    remedy: 'The filesystem refused the operation: give write access or choose another `--out`.',
  },
  ARCHIVE_EROFS: {
    group: 'archive',
    exit: 1,
    remedy:
      'The archive directory is on a read-only filesystem: make it writable or choose another `--out`.',
  },
  ARCHIVE_EIO: {
    group: 'archive',
    exit: 1,
    remedy: 'The disk reported an I/O error: check the disk and its logs before running again.',
  },
  ARCHIVE_DISK_FAILED: {
    group: 'archive',
    exit: 1,
    remedy:
      "Another error of the archive's files (the errno is in the message): check the archive directory, then run again.",
  },
  MIGRATE_ENDPOINT_INVALID: {
    group: 'migrate',
    exit: 2,
    remedy:
      '`migrate`: give `--from`/`--to` as `m365:user@contoso.com` or `imaps://USER@HOST:993` (user name percent-encoded, no password in the URL).',
  },
  MIGRATE_ENDPOINT_UNSUPPORTED: {
    group: 'migrate',
    exit: 2,
    remedy:
      '`migrate`: `archive:DIR` is a source only (write archives with `mailbridge archive`), and an `azblob://` archive cannot be restored yet: copy it to a folder first.',
  },
  MIGRATE_ARCHIVE_INVALID: {
    group: 'migrate',
    exit: 2,
    remedy:
      "`migrate --from archive:DIR`: give the one mailbox's folder `mailbridge archive --out` wrote (it holds `manifest.jsonl`).",
  },
  MIGRATE_TOKEN_COMMAND_FAILED: {
    group: 'migrate',
    exit: 3,
    remedy:
      '`migrate`: the `migrate.fromTokenCommand`/`toTokenCommand` could not be run, failed or printed no token (its stderr is in the message); run it yourself and fix it.',
  },
  MIGRATE_PASSWORD_MISSING: {
    group: 'migrate',
    exit: 2,
    remedy:
      '`migrate`: put the password in a file for `--from-password-file`/`--to-password-file`, or in `MAILBRIDGE_FROM_PASSWORD`/`MAILBRIDGE_TO_PASSWORD`.',
  },
  MIGRATE_OPTION_INVALID: {
    group: 'migrate',
    exit: 2,
    remedy:
      "`migrate`: fix the option or `migrate:` setting named (`--map 'SRC=DEST'`, `--since`, the configuration files).",
  },
  MIGRATE_NO_FOLDER_MATCHED: {
    group: 'migrate',
    exit: 2,
    remedy:
      '`migrate`: `--folder`/`--exclude` select no folder of the source; check the names with `--dry-run`.',
  },
  MIGRATE_STATE_MISMATCH: {
    group: 'migrate',
    exit: 2,
    remedy:
      '`migrate`: the `--state` folder belongs to another pair of mailboxes; give each pair its own.',
  },
  MIGRATE_STATE_FAILED: {
    group: 'migrate',
    exit: 1,
    remedy:
      '`migrate`: the state folder cannot be read or written; fix the cause (disk full, permissions) and run again.',
  },
  MIGRATE_STATE_LOCKED: {
    group: 'migrate',
    exit: 1,
    remedy:
      '`migrate`: another run of the same pair holds its state folder; wait for it to finish (or stop it), then run again.',
  },
  MIGRATE_LOGIN_REFUSED: {
    group: 'migrate',
    exit: 3,
    remedy:
      '`migrate`: the IMAP server refused the user name and password; check them (and that IMAP and password logins are enabled for that user).',
  },
  MIGRATE_UNREACHABLE: {
    group: 'migrate',
    exit: 4,
    remedy:
      '`migrate`: the IMAP server could not be reached or dropped the connection; check the host, the port and the network.',
  },
  MIGRATE_INTERRUPTED: {
    group: 'migrate',
    exit: 1,
    remedy: '`migrate`: the run was stopped (signal); run it again, it continues where it stopped.',
  },
  MIGRATE_COMMAND_FAILED: {
    group: 'migrate',
    exit: 1,
    remedy:
      '`migrate`: the IMAP server refused a command the migration needs (its words are in the message); run again with `--debug`.',
  },
  MIGRATE_MAILBOX_LIST_INVALID: {
    group: 'migrate',
    exit: 2,
    remedy:
      '`migrate --mailboxes`: fix the lines named (one `source,destination` pair a line, `#` comments) or the path, then run it again.',
  },
  QUEUE_PASSWORD_IN_ARGV: {
    group: 'queue',
    exit: 2,
    remedy:
      'Give `--queue` the URL without its password; put the password in `MAILBRIDGE_REDIS_URL` (or `queue.url` of a config file only you can read).',
  },
  QUEUE_URL_INVALID: {
    group: 'queue',
    exit: 2,
    remedy: 'Give a Redis URL: `redis://HOST:PORT/DB`, or `rediss://…` for TLS.',
  },
  QUEUE_URL_MISSING: {
    group: 'queue',
    exit: 2,
    remedy:
      'Name the Redis server: `--queue redis://HOST:PORT/DB`, `MAILBRIDGE_REDIS_URL` or `queue.url`.',
  },
  QUEUE_OPTION_INVALID: {
    group: 'queue',
    exit: 2,
    remedy: 'Fix the `queue:` setting or the option named.',
  },
  QUEUE_UNREACHABLE: {
    group: 'queue',
    exit: 4,
    remedy:
      'Redis did not answer: check the URL, that it runs, the password and TLS; `jobs` and `archive --queue` give up, a worker keeps retrying.',
  },
  QUEUE_RUN_NOT_FOUND: {
    group: 'queue',
    exit: 2,
    remedy:
      'No run with that id in this queue: `mailbridge jobs status --queue URL` lists the runs.',
  },
  QUEUE_JOB_STALLED: {
    group: 'queue',
    exit: 1,
    remedy:
      "In `jobs status`: the job's workers died or lost Redis more often than allowed; `mailbridge jobs retry --run ID --failed` runs it again from its checkpoint.",
  },
  QUEUE_WORKER_PASSWORD_MISSING: {
    group: 'queue',
    exit: 2,
    remedy:
      "A migrate job's `imaps://` endpoint has no password on this worker (passwords never travel through Redis): set `MAILBRIDGE_FROM_PASSWORD`/`MAILBRIDGE_TO_PASSWORD` in the worker's environment or `migrate.fromPasswordFile`/`toPasswordFile` in its `--config`, then `mailbridge jobs retry --run ID --failed`.",
  },
  QUEUE_WORKER_SETTINGS_MISSING: {
    group: 'queue',
    exit: 2,
    remedy:
      "A job needs the app's settings (tenant, client id, credential) and this worker started without them (an archive job, or a migrate job with an `m365:` side): give the worker the same settings as `mailbridge archive` (environment or `--config`), restart it, then `mailbridge jobs retry --run ID --failed`.",
  },
  RELAY_SPOOL_LOCK_UNAVAILABLE: {
    group: 'relay',
    exit: 2,
    remedy:
      "The spool lock's native module has no build for this platform (musl, 32-bit ARM): run the relay on glibc Linux, macOS or Windows.",
  },
  RELAY_DELIVERY_RECORD_UNWRITABLE: {
    group: 'relay',
    exit: 1,
    remedy:
      "Not an exit: the spool's disk refuses the delivery record, so the relay pauses delivery and answers 451; free space and it resumes by itself.",
  },
  OUTPUT_UNWRITABLE: {
    group: 'usage',
    exit: 2,
    remedy:
      '`imap fetch --out`: the file cannot be created; check that the directory exists and is writable.',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}
