export type {
  MigrateFolderResult,
  MigrateProgressEvent,
  SkippedMessage,
} from './copy-folder.js';
export type { M365Endpoint, MigrateEndpoint, PasswordImapEndpoint } from './endpoint.js';
export type {
  MigrateFolderSummary,
  MigrateMailboxOptions,
  MigrateResult,
} from './migrate.js';
export { DEFAULT_MIGRATE_CONNECTIONS, migrateMailbox } from './migrate.js';
