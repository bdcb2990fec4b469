/**
 * m365-mailbridge: app-only OAuth2 for IMAP and SMTP on Microsoft 365.
 * Everything public is exported here, and only what we mean to keep once
 * published: the token provider, SASL builders, clients and diagnostics, the
 * jobs' entry points, the setup renderers, errors and their codes. Deep
 * imports are not part of the API. test/packaging/exports.test.ts holds the
 * list: an export added or removed by accident fails it.
 */

export type { AccessTokenClaims } from './auth/claims.js';
export { decodeAccessTokenClaims } from './auth/claims.js';
export type { RetryOptions } from './auth/retry-policy.js';
export { buildOAuthBearer, buildXOAuth2 } from './auth/sasl.js';
export type {
  AccessToken,
  GetTokenOptions,
  TokenProvider,
  TokenProviderOptions,
} from './auth/token-provider.js';
// Authentication
export { createTokenProvider } from './auth/token-provider.js';
export { DEFAULT_MAX_CONNECTIONS_PER_MAILBOX } from './clients/connection-limit.js';
export type { Diagnosis } from './clients/diagnostics.js';
// Diagnostics
export {
  DIAGNOSES,
  diagnoseImapResponse,
  diagnoseSmtpResponse,
  diagnoseTokenClaims,
  diagnosisToError,
} from './clients/diagnostics.js';
export type { ImapClientOptions } from './clients/imap-client.js';
// IMAP and SMTP clients
export { createImapClient } from './clients/imap-client.js';
export type { ImapSession, ImapSessionOptions, ImapSessionStats } from './clients/imap-session.js';
export { createImapSession } from './clients/imap-session.js';
export type { SmtpTransport, SmtpTransportOptions } from './clients/smtp-transport.js';
export { createSmtpTransport, EXCHANGE_MESSAGES_PER_MINUTE } from './clients/smtp-transport.js';
export type { CloudName, CloudProfile } from './config/clouds.js';
export { CLOUD_NAMES, CLOUDS } from './config/clouds.js';
export { ENVIRONMENT_VARIABLES } from './config/env.js';
export type { LoadConfigOptions } from './config/load.js';
// Configuration
export { describeConfig, loadConfig } from './config/load.js';
export { Secret } from './config/secret.js';
export type {
  CertificateCredential,
  Credential,
  Endpoint,
  FederatedCredential,
  MailbridgeConfig,
  ManagedIdentityCredential,
  SecretCredential,
  Settings,
} from './config/types.js';
export type { DoctorOptions, DoctorReport, DoctorStep, DoctorStepName } from './doctor/run.js';
export { runDoctor } from './doctor/run.js';
export type { ConfigProblem, EntraErrorDetails } from './errors.js';
// Archive: incremental, crash-safe mailbox archiving
export {
  archiveMailbox,
  archiveMailboxes,
  DEFAULT_ARCHIVE_CONCURRENCY,
  parseMessageMetadata,
  readManifest,
  verifyArchive,
} from './jobs/archive/index.js';
export type {
  AlteredFile,
  ArchiveCounts,
  ArchiveFolderResult,
  ArchiveMailboxesOptions,
  ArchiveMailboxFailure,
  ArchiveMailboxOptions,
  ArchiveMailboxResult,
  ArchiveProgressEvent,
  ArchiveRunResult,
  ArchiveSummary,
  AttachmentInfo,
  FolderFilter,
  ManifestProblem,
  ManifestRecord,
  MessageAddress,
  MessageMetadata,
  VerifyOptions,
  VerifyReport,
} from './jobs/archive/index.js';
// Migration: mailbox to mailbox over IMAP, resumable, without duplicates
export {
  DEFAULT_MIGRATE_CONNECTIONS,
  migrateMailbox,
  migrateMailboxList,
  readMailboxPairs,
} from './jobs/migrate/index.js';
export type {
  MailboxPair,
  MigrateListResult,
  MigrateMailboxListOptions,
  PairOutcome,
  M365Endpoint,
  MigrateEndpoint,
  MigrateFolderResult,
  MigrateMailboxOptions,
  MigrateProgressEvent,
  MigrateResult,
  PasswordImapEndpoint,
  SkippedMessage,
} from './jobs/migrate/index.js';

// Relay: a local SMTP bridge for legacy senders
export { startRelay } from './jobs/relay/relay.js';
export type { RelayHandle, StartRelayOptions } from './jobs/relay/relay.js';
export {
  EXCHANGE_MAX_MESSAGE_SIZE,
  EXCHANGE_MAX_RECIPIENTS,
  parseRelaySettings,
  RELAY_DEFAULTS,
} from './jobs/relay/config.js';
export type {
  ListenAddress,
  ParseRelayOptions,
  PolicyRule,
  RelaySettings,
} from './jobs/relay/config.js';
export type { DeliveryTransport } from './jobs/relay/delivery.js';
export { hashPassword, parsePasswordHash, verifyPassword } from './jobs/listener/password.js';
export type { DeliveryRecord, SpoolEnvelope } from './jobs/relay/spool.js';

// Proxy: IMAP/POP3 with a local password, app-only OAuth2 towards Exchange
export { startProxy } from './jobs/proxy/proxy.js';
export type { ProxyHandle, StartProxyOptions } from './jobs/proxy/proxy.js';
export { parseProxySettings } from './jobs/proxy/config.js';
export type { ProxySettings, ProxyUser } from './jobs/proxy/config.js';

// Errors
export { ERROR_CODES, type ErrorCode, type ErrorCodeInfo } from './error-codes.js';
export {
  AuthenticationError,
  ConfigurationError,
  ExitCode,
  isMailbridgeError,
  MailbridgeError,
  NetworkError,
  ProtocolError,
} from './errors.js';
export type { LogFields, Logger, LogLevel } from './log/logger.js';
// Logging
export { silentLogger } from './log/logger.js';
export {
  generateCertificate,
  keyCredentialFor,
  writeCertificateFiles,
} from './setup/certificate.js';
export { buildAdminConsentUrl } from './setup/consent-url.js';
export { renderEntraScript } from './setup/entra-script.js';
export type { ExchangePlan } from './setup/exchange-plan.js';
// Setup: scripts, certificates and consent for administrators
export { parseExchangePlan } from './setup/exchange-plan.js';
export { renderExchangeScript } from './setup/exchange-script.js';

// Sandbox: a local Microsoft 365 stand-in (Entra-like token service, IMAP, SMTP) for trying
// mailbridge and for testing your own code against Exchange Online's behaviour
export {
  SEEDED_DIRECTORY,
  type SandboxApp,
  type SandboxDirectory,
} from './sandbox/directory.js';
export {
  type Sandbox,
  type SandboxFault,
  type SandboxOptions,
  startSandbox,
} from './sandbox/sandbox.js';
