/**
 * The values the package exports: the supported surface (README "Library
 * API"). Adding or removing one is a decision, made here and in README.
 */
export const PUBLIC_VALUES = [
  // Authentication
  'createTokenProvider',
  'decodeAccessTokenClaims',
  'buildXOAuth2',
  'buildOAuthBearer',
  // Configuration
  'loadConfig',
  'describeConfig',
  'Secret',
  'CLOUDS',
  'CLOUD_NAMES',
  'ENVIRONMENT_VARIABLES',
  // Clients and diagnostics
  'createImapClient',
  'createImapSession',
  'createSmtpTransport',
  'EXCHANGE_MESSAGES_PER_MINUTE',
  'DEFAULT_MAX_CONNECTIONS_PER_MAILBOX',
  'DIAGNOSES',
  'diagnoseImapResponse',
  'diagnoseSmtpResponse',
  'diagnoseTokenClaims',
  'diagnosisToError',
  'runDoctor',
  // Archive
  'archiveMailbox',
  'archiveMailboxes',
  'verifyArchive',
  'readManifest',
  'parseMessageMetadata',
  'DEFAULT_ARCHIVE_CONCURRENCY',
  // Migration
  'migrateMailbox',
  'migrateMailboxList',
  'readMailboxPairs',
  'DEFAULT_MIGRATE_CONNECTIONS',
  // Relay
  'startRelay',
  'parseRelaySettings',
  'RELAY_DEFAULTS',
  'EXCHANGE_MAX_MESSAGE_SIZE',
  'EXCHANGE_MAX_RECIPIENTS',
  'hashPassword',
  'parsePasswordHash',
  'verifyPassword',
  // Proxy
  'startProxy',
  'parseProxySettings',
  // Sandbox
  'startSandbox',
  'SEEDED_DIRECTORY',
  // Setup
  'generateCertificate',
  'keyCredentialFor',
  'writeCertificateFiles',
  'buildAdminConsentUrl',
  'renderEntraScript',
  'parseExchangePlan',
  'renderExchangeScript',
  // Errors and logging
  'MailbridgeError',
  'ConfigurationError',
  'AuthenticationError',
  'ProtocolError',
  'NetworkError',
  'isMailbridgeError',
  'ExitCode',
  'ERROR_CODES',
  'silentLogger',
] as const;
